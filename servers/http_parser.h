// http_parser.h — the head of one HTTP/1.1 request (RFC 9112 subset, design
// §11), read by either of the two parsers `--http-parser` chooses between:
//
//   native  Boost.Beast's request parser, in C++. The stream servers run it
//           with the lock released, inside the recv's blocking section, as a
//           C server parses with no interpreter lock at all.
//   vm      the toy program `http_request` (interp/programs/http_request.gasm),
//           run through the engine under the lock, as Python's http.server
//           parses in Python. C++ only finds where the head ends (the
//           blank line, as BufferedReader.readline finds line ends in C) and
//           enforces the 8 KiB head limit before buffering more; the program
//           gets the head's bytes and returns its verdict as one line:
//             "ok METHOD TARGET CONTENT_LENGTH KEEP_ALIVE"   (KEEP_ALIVE 0|1)
//             "STATUS WHY"                                  (400 or 501)
//
// Both return an HttpHeadResult. Limits are checked before anything is
// allocated for the request: a head above kHttpMaxHeadBytes is 431, a
// Content-Length above max_body_bytes 413 (the body is not read), chunked
// transfer coding 501 (not implemented), everything malformed 400.
//
//   HttpHeadResult r = ParseHttpHeadNative(buffered, max_message_bytes);
//   if (r.kind == HttpHeadResult::Kind::kHead) { /* r.head.head_bytes, then content_length body bytes */ }
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gillab::servers {

constexpr size_t kHttpMaxHeadBytes = 8192;  // request line + header lines + blank line

struct HttpHead {
  std::string method;           // as sent, e.g. "GET"
  std::string target;           // origin-form: an absolute-form target is reduced to its path
  uint64_t content_length = 0;  // body bytes that follow the head
  bool keep_alive = true;       // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "keep-alive"
  size_t head_bytes = 0;        // bytes of the head, blank line included
};

struct HttpHeadResult {
  enum class Kind { kNeedMore, kHead, kError };
  Kind kind = Kind::kNeedMore;
  HttpHead head;  // kHead
  int status = 0;  // kError: 400, 413, 431 or 501
  std::string why;  // kError: for the server's stderr line
};

// Beast parses the head at the start of `data`.
HttpHeadResult ParseHttpHeadNative(std::string_view data, uint64_t max_body_bytes);

// vm parser, step 1 (C++): kHead with only head_bytes set once the blank line
// is in `data`; kError 431 once kHttpMaxHeadBytes pass without it.
HttpHeadResult FindHttpHeadEnd(std::string_view data);
// vm parser, step 2: the program's verdict line on a head of `head_bytes`.
// A reply that is neither form is the program's defect: kError 500.
HttpHeadResult ReadVmParserVerdict(std::string_view verdict, size_t head_bytes, uint64_t max_body_bytes);

// The path of an absolute-form target ("http://host:80/static" -> "/static");
// any other target unchanged.
std::string OriginForm(std::string_view target);

}  // namespace gillab::servers
