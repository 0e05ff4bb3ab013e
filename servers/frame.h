// frame.h — the stream framing of design §4: a 4-byte unsigned big-endian
// length N, then N bytes. One reader serves the three stream servers and the
// load client, so no two of them can disagree about a frame.
//
// FrameReader is incremental: feed it whatever recv returned, in any split,
// and pop complete frames. A declared length above max_message_bytes is
// reported as kTooLarge before any of the body is buffered.
//
//   FrameReader reader(max_message_bytes);
//   reader.Feed(buf, n);
//   std::string msg;
//   while (reader.Next(msg) == FrameReader::Status::kFrame) Handle(msg);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gillab::servers {

// Appends the 4-byte length prefix and the payload to `out`.
void AppendFrame(std::string& out, std::string_view payload);

class FrameReader {
 public:
  enum class Status { kNeedMore, kFrame, kTooLarge };
  explicit FrameReader(uint64_t max_message_bytes);
  void Feed(const char* data, size_t n);
  // kFrame: `out` holds the next message. kTooLarge: the stream is unusable
  // (declared_bytes() says what the peer announced). kNeedMore: feed more.
  Status Next(std::string& out);
  uint64_t declared_bytes() const { return declared_bytes_; }
  size_t buffered_bytes() const { return buffer_.size() - consumed_; }
  // True when a frame has started but not finished (a close now truncates it).
  bool mid_frame() const { return buffered_bytes() > 0; }

 private:
  uint64_t max_message_bytes_;
  uint64_t declared_bytes_ = 0;
  std::string buffer_;
  size_t consumed_ = 0;
};

}  // namespace gillab::servers
