// http_client.cc — keep-alive, pipelined HTTP/1.1 for the load client (see http_client.h).
#include "servers/http_client.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <fmt/core.h>

namespace gillab::servers {
namespace {

namespace http = boost::beast::http;

constexpr size_t kRecvChunkBytes = 64 * 1024;

}  // namespace

std::string HttpRequestText(std::string_view target, std::string_view host_header, std::string_view payload) {
  if (target == "/echo") {
    return fmt::format(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n{}",
        target, host_header, payload.size(), payload);
  }
  return fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", target, host_header);
}

HttpClientConnection::HttpClientConnection(const std::string& endpoint, std::string target, int reply_timeout_ms)
    : endpoint_(endpoint),
      address_(ParseTcpEndpoint(endpoint)),
      target_(std::move(target)),
      post_(target_ == "/echo"),
      reply_timeout_ms_(reply_timeout_ms) {
  if (target_.empty() || target_[0] != '/') {
    throw std::invalid_argument(fmt::format("http target '{}' must start with '/'", target_));
  }
  host_header_ = address_.host.find(':') != std::string::npos
                     ? fmt::format("[{}]:{}", address_.host, address_.port)
                     : fmt::format("{}:{}", address_.host, address_.port);
  Connect();
}

void HttpClientConnection::Connect() {
  fd_.reset();
  in_.clear();
  closing_ = false;
  try {
    fd_ = ConnectTcp(address_);
  } catch (const std::system_error& e) {
    throw std::runtime_error(fmt::format("cannot connect to {}: {}", endpoint_, e.what()));
  }
  SetRecvTimeoutMs(fd_.get(), reply_timeout_ms_);
  ++connects_;
}

void HttpClientConnection::Send(std::string_view payload) {
  if (closing_ && outstanding_ == 0) Connect();
  if (closing_) {
    throw std::runtime_error(fmt::format("{}: the server closes the connection; cannot pipeline to it", endpoint_));
  }
  out_ += HttpRequestText(target_, host_header_, post_ ? payload : std::string_view());
  ++outstanding_;
}

void HttpClientConnection::Flush() {
  if (out_.empty()) return;
  if (!SendAll(fd_.get(), out_)) {
    throw std::runtime_error(fmt::format("{}: send failed: {}", endpoint_, std::strerror(errno)));
  }
  out_.clear();
}

void HttpClientConnection::Receive(HttpReply& reply) {
  if (outstanding_ == 0) throw std::logic_error("HttpClientConnection::Receive without a request");
  Flush();
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxHttpReplyBytes);
  parser.eager(true);
  boost::system::error_code ec;
  char chunk[kRecvChunkBytes];
  while (!parser.is_done()) {
    if (!in_.empty()) {
      const size_t used = parser.put(boost::asio::buffer(in_.data(), in_.size()), ec);
      in_.erase(0, used);
      if (ec == http::error::need_more) {
        ec = {};
      } else if (ec) {
        throw std::runtime_error(fmt::format("{}: malformed reply: {}", endpoint_, ec.message()));
      }
      if (parser.is_done() || (used > 0 && !in_.empty())) continue;
    }
    const ssize_t n = RecvSome(fd_.get(), chunk, sizeof chunk);
    if (n > 0) {
      in_.append(chunk, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      // A reply delimited by the close of the connection ends here; anything else was cut short.
      if (parser.got_some() && parser.is_header_done()) {
        parser.put_eof(ec);
        if (!ec && parser.is_done()) break;
      }
      throw std::runtime_error(fmt::format("{}: server closed the connection with {} repl{} outstanding", endpoint_,
                                           outstanding_, outstanding_ == 1 ? "y" : "ies"));
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      throw std::runtime_error(fmt::format("{}: no reply within the reply timeout", endpoint_));
    }
    throw std::runtime_error(fmt::format("{}: recv failed: {}", endpoint_, std::strerror(errno)));
  }
  --outstanding_;
  reply.status = static_cast<int>(parser.get().result_int());
  reply.body = std::move(parser.get().body());
  if (!parser.get().keep_alive()) {
    closing_ = true;
    if (outstanding_ > 0) {
      throw std::runtime_error(fmt::format("{}: server closed the connection with {} repl{} outstanding", endpoint_,
                                           outstanding_, outstanding_ == 1 ? "y" : "ies"));
    }
    fd_.reset();
  }
}

void HttpClientConnection::Exchange(std::string_view request, std::string& reply) {
  Send(request);
  HttpReply r;
  Receive(r);
  if (r.status < 200 || r.status > 299) {
    throw std::runtime_error(fmt::format("{}: {} {} answered {}", endpoint_, post_ ? "POST" : "GET", target_, r.status));
  }
  reply = std::move(r.body);
}

}  // namespace gillab::servers
