// frame_fuzzer.cc — libFuzzer target for FrameReader (frame.h), built with
// GILLAB_FUZZ=ON (scripts/fuzz).
//
// The input picks a small max_message_bytes, then a byte stream and the
// chunks it arrives in. The reader's output is checked against a reference
// parse of the whole stream: the same frames in the same order, each of its
// announced size and none above the limit, kTooLarge exactly where the first
// oversized prefix starts (and from then on), kNeedMore with exactly the
// unconsumed bytes buffered. Every other input is a valid run too: a crash, a
// leak or a failed check is a bug.
//
//   build-fuzz/servers/frame_fuzzer servers/fuzz_corpus/frame
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "servers/frame.h"

namespace gillab::servers {
namespace {

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "frame_fuzzer: check failed: %s\n", what);
  std::abort();
}

struct Expected {
  std::vector<std::string> frames;
  bool too_large = false;     // the stream ends in an oversized prefix
  uint64_t declared_bytes = 0;  // that prefix's length
  size_t leftover_bytes = 0;  // unconsumed bytes after the last frame
};

// The reference parse: frames are cut from the whole stream at once.
Expected Parse(const std::string& stream, uint64_t max_message_bytes) {
  Expected e;
  size_t at = 0;
  while (stream.size() - at >= 4) {
    const auto* p = reinterpret_cast<const unsigned char*>(stream.data() + at);
    const uint64_t n = (uint64_t{p[0]} << 24) | (uint64_t{p[1]} << 16) | (uint64_t{p[2]} << 8) | p[3];
    if (n > max_message_bytes) {
      e.too_large = true;
      e.declared_bytes = n;
      break;
    }
    if (stream.size() - at - 4 < n) break;
    e.frames.push_back(stream.substr(at + 4, n));
    at += 4 + n;
  }
  e.leftover_bytes = stream.size() - at;
  return e;
}

void Run(FuzzedDataProvider& in) {
  const uint64_t max_message_bytes = in.ConsumeIntegralInRange<uint64_t>(0, 64);
  // Up to 64 chunks; a chunk's size byte comes before it.
  std::vector<std::string> chunks;
  while (in.remaining_bytes() > 0 && chunks.size() < 64) {
    const size_t n = in.ConsumeIntegralInRange<size_t>(0, 80);
    chunks.push_back(in.ConsumeBytesAsString(n));
  }
  std::string stream;
  for (const std::string& c : chunks) stream += c;
  const Expected expected = Parse(stream, max_message_bytes);

  FrameReader reader(max_message_bytes);
  std::vector<std::string> frames;
  size_t fed_bytes = 0;
  size_t framed_bytes = 0;  // prefixes and bodies popped so far
  bool too_large = false;
  for (const std::string& chunk : chunks) {
    reader.Feed(chunk.data(), chunk.size());
    fed_bytes += chunk.size();
    std::string msg;
    FrameReader::Status status;
    while ((status = reader.Next(msg)) == FrameReader::Status::kFrame) {
      Check(msg.size() <= max_message_bytes, "a frame above max_message_bytes");
      Check(reader.declared_bytes() == msg.size(), "a frame of another size than announced");
      Check(frames.size() < expected.frames.size(), "more frames than the stream holds");
      Check(msg == expected.frames[frames.size()], "a frame differs from the stream's");
      framed_bytes += 4 + msg.size();
      frames.push_back(msg);
    }
    Check(reader.buffered_bytes() == fed_bytes - framed_bytes, "buffered_bytes is not the unconsumed bytes");
    Check(reader.mid_frame() == (reader.buffered_bytes() > 0), "mid_frame disagrees with buffered_bytes");
    if (status == FrameReader::Status::kTooLarge) {
      Check(expected.too_large, "kTooLarge without an oversized prefix");
      Check(reader.declared_bytes() == expected.declared_bytes, "kTooLarge reports another size");
      Check(reader.declared_bytes() > max_message_bytes, "kTooLarge for a size within the limit");
      // The stream is unusable: asking again must say so again, not resync.
      Check(reader.Next(msg) == FrameReader::Status::kTooLarge, "kTooLarge is not sticky");
      too_large = true;
      break;
    }
  }
  Check(frames.size() == expected.frames.size(), "fewer frames than the stream holds");
  Check(too_large == expected.too_large, "an oversized prefix was not reported");
  if (!too_large) Check(reader.buffered_bytes() == expected.leftover_bytes, "leftover bytes differ");

  // What AppendFrame writes, FrameReader reads back whole.
  if (!frames.empty()) {
    std::string framed;
    for (const std::string& f : frames) AppendFrame(framed, f);
    FrameReader again(max_message_bytes);
    again.Feed(framed.data(), framed.size());
    std::string msg;
    for (const std::string& f : frames) {
      Check(again.Next(msg) == FrameReader::Status::kFrame && msg == f, "AppendFrame does not round-trip");
    }
    Check(again.Next(msg) == FrameReader::Status::kNeedMore && !again.mid_frame(), "AppendFrame left bytes");
  }
}

}  // namespace
}  // namespace gillab::servers

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  gillab::servers::Run(in);
  return 0;
}
