// stream_protocol.cc — the frame protocol and the protocol table (see stream_protocol.h).
#include "servers/stream_protocol.h"

#include <cstdio>
#include <exception>
#include <functional>
#include <new>
#include <utility>

#include <fmt/core.h>

#include "gil/error.h"
#include "servers/frame.h"
#include "servers/http_protocol.h"

namespace gillab::servers {

void ReportPeer(const std::string& peer, const std::string& what) {
  fmt::print(stderr, "gillab serve: {}: {}\n", peer, what);
  std::fflush(stderr);
}

namespace {

void ReportClosing(const std::string& peer, const std::string& what) {
  ReportPeer(peer, what + "; closing connection");
}

// Design §4: every complete frame through io.Handle, each reply framed.
class FrameProtocol final : public StreamProtocol {
 public:
  explicit FrameProtocol(uint64_t max_message_bytes) : max_message_bytes_(max_message_bytes), reader_(max_message_bytes) {}

  void Feed(const char* data, size_t n) override { reader_.Feed(data, n); }

  Next Process(IoThread& io, std::string& outbox, const std::string& peer) override {
    for (;;) {
      if (!have_request_) {  // else a parked call's request (HandlerParked) comes first
        FrameReader::Status status;
        try {
          status = reader_.Next(request_);
        } catch (const std::bad_alloc&) {
          // The frame is within --max-message-bytes but the process cannot hold
          // it now (RLIMIT_AS, a full machine): this client goes, the others stay.
          ReportClosing(peer, fmt::format("out of memory for a message of {} bytes", reader_.declared_bytes()));
          return Next::kCloseNow;
        }
        switch (status) {
          case FrameReader::Status::kNeedMore:
            return Next::kKeepOpen;
          case FrameReader::Status::kTooLarge:
            ReportClosing(peer, fmt::format("message of {} bytes exceeds --max-message-bytes {}",
                                            reader_.declared_bytes(), max_message_bytes_));
            return Next::kCloseNow;
          case FrameReader::Status::kFrame:
            break;
        }
        have_request_ = true;
      }
      try {
        AppendFrame(outbox, io.Handle(request_));  // HandlerParked leaves have_request_ set
        have_request_ = false;
      } catch (const std::exception& e) {
        // A reply frame cannot carry an error out of band, so the client learns
        // of it by the close; the line here says why.
        ReportClosing(peer, fmt::format("handler failed: {}", e.what()));
        return Next::kCloseNow;
      }
    }
  }

  void ReportEndOfStream(const std::string& peer) const override {
    if (!reader_.mid_frame()) return;
    ReportClosing(peer, fmt::format("connection closed mid-frame with {} bytes of an unfinished frame",
                                    reader_.buffered_bytes()));
  }

 private:
  uint64_t max_message_bytes_;
  FrameReader reader_;
  std::string request_;  // reused: one allocation per connection, not per frame
  bool have_request_ = false;  // request_ is read but not yet answered (HandlerParked)
};

struct ProtocolRow {
  std::string name;
  std::function<std::unique_ptr<StreamProtocol>(const ServerOptions&)> make;
};

const std::vector<ProtocolRow>& ProtocolTable() {
  static const std::vector<ProtocolRow> table = {
      {"frame", [](const ServerOptions& o) { return std::make_unique<FrameProtocol>(o.max_message_bytes); }},
      {"http", [](const ServerOptions& o) { return MakeHttpProtocol(o); }},
  };
  return table;
}

}  // namespace

std::unique_ptr<StreamProtocol> MakeStreamProtocol(const ServerOptions& options) {
  for (const auto& row : ProtocolTable()) {
    if (row.name == options.protocol) return row.make(options);
  }
  throw UsageError(fmt::format("unknown protocol '{}' (expected frame or http)", options.protocol));
}

}  // namespace gillab::servers
