// frame.cc — the one stream framing (see frame.h).
#include "servers/frame.h"

#include <cstring>

namespace gillab::servers {
namespace {

constexpr size_t kPrefixBytes = 4;
// Consumed bytes are dropped from the front of the buffer only once they are
// both this large and at least half of it, so compaction stays amortised O(1).
constexpr size_t kCompactBytes = 64 * 1024;

uint32_t DecodeLength(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

}  // namespace

void AppendFrame(std::string& out, std::string_view payload) {
  const auto n = static_cast<uint32_t>(payload.size());
  const char prefix[kPrefixBytes] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                                     static_cast<char>(n >> 8), static_cast<char>(n)};
  out.append(prefix, kPrefixBytes);
  out.append(payload.data(), payload.size());
}

FrameReader::FrameReader(uint64_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

void FrameReader::Feed(const char* data, size_t n) {
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  } else if (consumed_ >= kCompactBytes && consumed_ * 2 >= buffer_.size()) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(data, n);
}

FrameReader::Status FrameReader::Next(std::string& out) {
  if (buffered_bytes() < kPrefixBytes) return Status::kNeedMore;
  declared_bytes_ = DecodeLength(buffer_.data() + consumed_);
  if (declared_bytes_ > max_message_bytes_) return Status::kTooLarge;
  const size_t frame_bytes = kPrefixBytes + declared_bytes_;
  if (buffered_bytes() < frame_bytes) {
    // Grow once to the whole frame rather than doubling through a large body.
    buffer_.reserve(consumed_ + frame_bytes);
    return Status::kNeedMore;
  }
  out.assign(buffer_, consumed_ + kPrefixBytes, declared_bytes_);
  consumed_ += frame_bytes;
  return Status::kFrame;
}

}  // namespace gillab::servers
