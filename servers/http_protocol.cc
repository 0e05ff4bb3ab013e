// http_protocol.cc — see http_protocol.h.
#include "servers/http_protocol.h"

#include <exception>
#include <optional>
#include <string_view>
#include <vector>

#include <fmt/core.h>

#include "servers/http_parser.h"
#include "servers/http_routes.h"

namespace gillab::servers {

namespace {

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    default: return "Error";
  }
}

class HttpProtocol final : public StreamProtocol {
 public:
  explicit HttpProtocol(const ServerOptions& options)
      : max_body_bytes_(options.max_message_bytes),
        vm_parser_(options.http_parser == "vm"),
        parser_id_(options.http_parser_handler_id),
        routes_(options.http_routes ? options.http_routes : DefaultRoutes()) {}

  void Feed(const char* data, size_t n) override {
    if (error_ || closing_) return;  // the connection ends after its last reply: drop the rest
    // Process drained every ready request, so nothing points into the consumed part.
    if (consumed_ > 0) {
      buffer_.erase(0, consumed_);
      consumed_ = 0;
    }
    buffer_.append(data, n);
    if (!vm_parser_) Advance(nullptr);
  }

  Next Process(IoThread& io, std::string& outbox, const std::string& peer) override {
    if (closing_) return Next::kCloseAfterReply;
    if (ready_.empty()) Advance(&io);  // else a parked call's request (HandlerParked) comes first
    for (; answered_ < ready_.size(); ++answered_) {
      const Ready& request = ready_[answered_];
      const std::string_view body = std::string_view(buffer_).substr(request.body_offset, request.head.content_length);
      Answer(io, outbox, peer, request.head, body);  // HandlerParked leaves it unanswered
      if (!request.head.keep_alive) {
        closing_ = true;  // pipelined requests after this one are not answered (RFC 9112 §9.6)
        break;
      }
    }
    ready_.clear();
    answered_ = 0;
    if (closing_) return Next::kCloseAfterReply;
    if (error_) {
      ReportPeer(peer, fmt::format("{} {}: {}; closing connection", error_->status, ReasonPhrase(error_->status),
                                   error_->why));
      AppendHttpResponse(outbox, error_->status, fmt::format("{} {}\n", error_->status, ReasonPhrase(error_->status)),
                         /*keep_alive=*/false);
      closing_ = true;
      return Next::kCloseAfterReply;
    }
    return Next::kKeepOpen;
  }

  void ReportEndOfStream(const std::string& peer) const override {
    if (closing_ || error_) return;
    const size_t unfinished = buffer_.size() - consumed_;
    if (unfinished == 0 && !head_) return;
    ReportPeer(peer, fmt::format("connection closed mid-request with {} bytes of an unfinished request{}; closing connection",
                                 unfinished,
                                 head_ ? fmt::format(" ({} of a {}-byte body)", unfinished, head_->content_length)
                                       : std::string()));
  }

 private:
  struct Ready {
    HttpHead head;
    size_t body_offset;  // in buffer_
  };

  static std::shared_ptr<const HttpRoutes> DefaultRoutes() {
    static const auto routes = std::make_shared<const HttpRoutes>();
    return routes;
  }

  // Moves complete requests from buffer_ to ready_. io null: only what needs
  // no interpreter (the native parser); the vm parser waits for Process.
  void Advance(IoThread* io) {
    while (!error_) {
      const std::string_view pending = std::string_view(buffer_).substr(consumed_);
      if (!head_) {
        if (pending.empty()) return;
        HttpHeadResult result;
        if (!vm_parser_) {
          result = ParseHttpHeadNative(pending, max_body_bytes_);
        } else {
          result = FindHttpHeadEnd(pending);
          if (result.kind == HttpHeadResult::Kind::kHead) {
            if (io == nullptr) return;
            const size_t head_bytes = result.head.head_bytes;
            try {
              result = ReadVmParserVerdict(io->HandleWith(parser_id_, pending.substr(0, head_bytes)), head_bytes,
                                           max_body_bytes_);
            } catch (const std::exception& e) {
              result = {};
              result.kind = HttpHeadResult::Kind::kError;
              result.status = 500;
              result.why = fmt::format("the vm http parser failed: {}", e.what());
            }
          }
        }
        if (result.kind == HttpHeadResult::Kind::kNeedMore) return;
        if (result.kind == HttpHeadResult::Kind::kError) {
          error_ = std::move(result);
          return;
        }
        consumed_ += result.head.head_bytes;
        head_ = std::move(result.head);
        continue;
      }
      if (pending.size() < head_->content_length) return;
      ready_.push_back({std::move(*head_), consumed_});
      consumed_ += ready_.back().head.content_length;
      head_.reset();
    }
  }

  void Answer(IoThread& io, std::string& outbox, const std::string& peer, const HttpHead& head, std::string_view body) {
    const HttpRoutes::Match match = routes_->Find(head.method, head.target, body);
    if (match.status != 200) {
      ReportPeer(peer, fmt::format("{} {}: {} {}", match.status, ReasonPhrase(match.status), head.method,
                                   head.target.substr(0, 200)));
      AppendHttpResponse(outbox, match.status, fmt::format("{} {}\n", match.status, ReasonPhrase(match.status)),
                         head.keep_alive);
      return;
    }
    try {
      AppendHttpResponse(outbox, 200, io.HandleWith(match.handler_id, match.request), head.keep_alive);
    } catch (const std::exception& e) {
      ReportPeer(peer, fmt::format("500 {}: {} {}: handler failed: {}", ReasonPhrase(500), head.method,
                                   head.target.substr(0, 200), e.what()));
      AppendHttpResponse(outbox, 500, "500 Internal Server Error\n", head.keep_alive);
    }
  }

  uint64_t max_body_bytes_;
  bool vm_parser_;
  size_t parser_id_;
  std::shared_ptr<const HttpRoutes> routes_;
  std::string buffer_;
  size_t answered_ = 0;            // ready_[0..answered_) have their replies in the outbox
  size_t consumed_ = 0;            // bytes of buffer_ that belong to parsed requests
  std::optional<HttpHead> head_;   // parsed, its body still arriving
  std::vector<Ready> ready_;       // complete, not yet answered
  std::optional<HttpHeadResult> error_;
  bool closing_ = false;           // the last reply is out; nothing more is read
};

}  // namespace

void AppendHttpResponse(std::string& out, int status, std::string_view body, bool keep_alive) {
  out += fmt::format("HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}Connection: {}\r\n\r\n", status,
                     ReasonPhrase(status), body.size(), status == 405 ? "Allow: GET, POST\r\n" : "",
                     keep_alive ? "keep-alive" : "close");
  out.append(body);
}

std::unique_ptr<StreamProtocol> MakeHttpProtocol(const ServerOptions& options) {
  return std::make_unique<HttpProtocol>(options);
}

}  // namespace gillab::servers
