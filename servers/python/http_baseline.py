"""http_baseline: Debian CPython's own http.server as an outside baseline (design §11).

Serves a directory holding one file, `static`: the same 6,600 bytes that
`gillab serve --protocol http` answers GET /static with, through exactly the
code `python3 -m http.server` runs (ThreadingHTTPServer + SimpleHTTPRequestHandler,
HTTP/1.0: one request per connection, as the module serves it). Beside it run
--cpu-threads pure-Python CPU threads, the loop of cpu_spin.py, so the GIL
convoy of the toy engine can be set against CPython's on the same wrk load.
SIGTERM or SIGINT: exit 0 (the runner stops it with SIGTERM).

    /usr/bin/python3 servers/python/http_baseline.py --port 8000 --cpu-threads 1
    wrk -c 8 -t 2 -d 10 --latency http://127.0.0.1:8000/static
"""

import argparse
import functools
import http.server
import os
import signal
import sys
import tempfile
import threading

STATIC_PAGE_BYTES = 6600
# The same text as servers/http_routes.cc's HttpStaticPage().
STATIC_LINE = "gillab static page: the 6,600 bytes PyParallel's wrk runs fetched.\n"


def static_page():
    text = STATIC_LINE * (STATIC_PAGE_BYTES // len(STATIC_LINE) + 1)
    return text[:STATIC_PAGE_BYTES].encode("ascii")


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # one line per request would cost more than the request
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client hanging up mid-reply (wrk stopping at its deadline) is not an error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def spin(stop):
    iterations = 0
    while not stop.set:
        iterations += 1
    return iterations


class StopFlag:
    __slots__ = ("set",)

    def __init__(self):
        self.set = False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--cpu-threads", type=int, default=0)
    args = parser.parse_args()
    if args.cpu_threads < 0 or not 0 <= args.port <= 65535:
        parser.error("--cpu-threads must be >= 0 and --port from 0 to 65535")

    root = tempfile.mkdtemp(prefix="gillab-http-baseline-")
    path = os.path.join(root, "static")
    with open(path, "wb") as f:
        f.write(static_page())
    stop = StopFlag()
    for _ in range(args.cpu_threads):
        threading.Thread(target=spin, args=(stop,), daemon=True).start()

    def terminate(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    handler = functools.partial(Quiet, directory=root)
    try:
        with Server((args.bind, args.port), handler) as server:
            print(f"listening tcp://{args.bind}:{server.server_address[1]}", flush=True)
            server.serve_forever()
    except OSError as e:
        print(f"http_baseline: cannot serve on {args.bind}:{args.port}: {e}", file=sys.stderr)
        return 1
    finally:
        stop.set = True
        os.remove(path)
        os.rmdir(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
