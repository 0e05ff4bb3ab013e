// http_protocol.h — the http StreamProtocol (design §11): RFC 9112's subset
// over one connection.
//
// Requests are answered in arrival order, pipelined ones included, their
// replies appended to the outbox together (one write). Keep-alive by default
// for HTTP/1.1; "Connection: close", or HTTP/1.0 without "Connection:
// keep-alive", closes after that reply. Statuses: 404 unknown target, 405
// other method (the connection stays open, the body having been read); 400
// malformed, 413 body above max_message_bytes, 431 head above 8 KiB, 501
// Transfer-Encoding, 500 a handler failure. 400/413/431/501 end the
// connection after the error reply, as the framing is lost. Every non-200
// reply writes one line on stderr naming the peer. Limits are checked before
// buffering past them: at most 8 KiB of head, a body only once its
// Content-Length passed the 413 check.
//
// Where parsing happens is the point of --http-parser (http_parser.h):
// native parses heads in Feed, with the lock released; vm leaves each head to
// Process, which runs the `http_request` program under the lock.
//
//   auto http = MakeHttpProtocol({.protocol = "http", .http_routes = routes});
#pragma once

#include <memory>

#include "servers/stream_protocol.h"

namespace gillab::servers {

// options.http_routes null: the built-in targets (HttpRoutes()).
std::unique_ptr<StreamProtocol> MakeHttpProtocol(const ServerOptions& options);

// Appends one complete reply, head and body, to `out`.
void AppendHttpResponse(std::string& out, int status, std::string_view body, bool keep_alive);

}  // namespace gillab::servers
