// http_parser.cc — see http_parser.h.
#include "servers/http_parser.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <fmt/core.h>

namespace gillab::servers {
namespace {

namespace http = boost::beast::http;

HttpHeadResult Error(int status, std::string why) {
  HttpHeadResult r;
  r.kind = HttpHeadResult::Kind::kError;
  r.status = status;
  r.why = std::move(why);
  return r;
}

// The checks both parsers share once the head is read.
HttpHeadResult Accept(HttpHead head, uint64_t max_body_bytes) {
  if (head.content_length > max_body_bytes) {
    return Error(413, fmt::format("body of {} bytes exceeds --max-message-bytes {}", head.content_length,
                                  max_body_bytes));
  }
  head.target = OriginForm(head.target);
  HttpHeadResult r;
  r.kind = HttpHeadResult::Kind::kHead;
  r.head = std::move(head);
  return r;
}

}  // namespace

std::string OriginForm(std::string_view target) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() < scheme.size()) continue;
    bool match = true;
    for (size_t i = 0; i < scheme.size() && match; ++i) {
      match = (target[i] | 0x20) == scheme[i] || target[i] == scheme[i];
    }
    if (!match) continue;
    const size_t path = target.find('/', scheme.size());
    return path == std::string_view::npos ? std::string("/") : std::string(target.substr(path));
  }
  return std::string(target);
}

HttpHeadResult ParseHttpHeadNative(std::string_view data, uint64_t max_body_bytes) {
  http::request_parser<http::empty_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(kHttpMaxHeadBytes));
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // 413 is decided in Accept, for both parsers
  parser.eager(false);  // stop after the head: the stream server frames the body
  boost::beast::error_code ec;
  const size_t used = parser.put(boost::asio::buffer(data.data(), data.size()), ec);
  if (ec == http::error::need_more) {
    if (data.size() > kHttpMaxHeadBytes) return Error(431, fmt::format("request head above {} bytes", kHttpMaxHeadBytes));
    return {};
  }
  if (ec == http::error::header_limit) return Error(431, fmt::format("request head above {} bytes", kHttpMaxHeadBytes));
  if (ec) return Error(400, fmt::format("malformed request ({})", ec.message()));
  if (!parser.is_header_done()) return {};
  const auto& message = parser.get();
  if (message.count(http::field::transfer_encoding) != 0) {
    return Error(501, "Transfer-Encoding is not implemented (send a Content-Length body)");
  }
  HttpHead head;
  head.method = std::string(message.method_string());
  head.target = std::string(message.target());
  head.content_length = parser.content_length().value_or(0);
  head.keep_alive = parser.keep_alive();
  head.head_bytes = used;
  return Accept(std::move(head), max_body_bytes);
}

HttpHeadResult FindHttpHeadEnd(std::string_view data) {
  const std::string_view window = data.substr(0, std::min(data.size(), kHttpMaxHeadBytes));
  const size_t end = window.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (data.size() >= kHttpMaxHeadBytes) return Error(431, fmt::format("request head above {} bytes", kHttpMaxHeadBytes));
    return {};
  }
  HttpHeadResult r;
  r.kind = HttpHeadResult::Kind::kHead;
  r.head.head_bytes = end + 4;
  return r;
}

HttpHeadResult ReadVmParserVerdict(std::string_view verdict, size_t head_bytes, uint64_t max_body_bytes) {
  const std::string_view whole = verdict;
  // Splits off the next space-separated field.
  auto next = [&verdict]() {
    const size_t space = verdict.find(' ');
    std::string_view field = verdict.substr(0, space);
    verdict = space == std::string_view::npos ? std::string_view() : verdict.substr(space + 1);
    return field;
  };
  const std::string_view kind = next();
  if (kind == "400" || kind == "501") {
    return Error(kind == "400" ? 400 : 501, std::string(verdict.empty() ? "malformed request" : verdict));
  }
  HttpHead head;
  const std::string_view method = next(), target = next(), length = next(), keep_alive = next();
  auto [end, ec] = std::from_chars(length.data(), length.data() + length.size(), head.content_length);
  if (kind != "ok" || method.empty() || target.empty() || ec != std::errc() || end != length.data() + length.size() ||
      (keep_alive != "0" && keep_alive != "1") || !verdict.empty()) {
    return Error(500, fmt::format("the vm http parser returned '{}'", whole.substr(0, 80)));
  }
  head.method = std::string(method);
  head.target = std::string(target);
  head.keep_alive = keep_alive == "1";
  head.head_bytes = head_bytes;
  return Accept(std::move(head), max_body_bytes);
}

}  // namespace gillab::servers
