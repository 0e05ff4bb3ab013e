// frame_test.cc — the stream framing of design §4, fed in every possible split.
#include "servers/frame.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace gillab::servers {
namespace {

std::string Frame(std::string_view payload) {
  std::string out;
  AppendFrame(out, payload);
  return out;
}

// Pops every complete frame; stops at the first non-kFrame status.
FrameReader::Status Drain(FrameReader& reader, std::vector<std::string>& frames) {
  std::string msg;
  FrameReader::Status status;
  while ((status = reader.Next(msg)) == FrameReader::Status::kFrame) frames.push_back(msg);
  return status;
}

TEST(AppendFrame, WritesBigEndianLengthThenPayload) {
  EXPECT_EQ(Frame("abc"), std::string("\0\0\0\3abc", 7));
  EXPECT_EQ(Frame(std::string(0x010203, 'x')).substr(0, 4), std::string("\0\1\2\3", 4));
  EXPECT_EQ(Frame(""), std::string(4, '\0'));
}

TEST(FrameReader, ReassemblesAFrameSplitAtEveryByte) {
  const std::string payload = "hello, framing";
  const std::string wire = Frame(payload) + Frame("");
  for (size_t split = 0; split <= wire.size(); ++split) {
    FrameReader reader(1024);
    std::vector<std::string> frames;
    reader.Feed(wire.data(), split);
    EXPECT_EQ(Drain(reader, frames), FrameReader::Status::kNeedMore);
    reader.Feed(wire.data() + split, wire.size() - split);
    EXPECT_EQ(Drain(reader, frames), FrameReader::Status::kNeedMore);
    ASSERT_EQ(frames.size(), 2u) << "split at " << split;
    EXPECT_EQ(frames[0], payload);
    EXPECT_EQ(frames[1], "");
    EXPECT_FALSE(reader.mid_frame());
  }
}

TEST(FrameReader, ReassemblesOneByteAtATime) {
  const std::string wire = Frame("a") + Frame(std::string(300, 'b')) + Frame("c");
  FrameReader reader(1024);
  std::vector<std::string> frames;
  for (char c : wire) {
    reader.Feed(&c, 1);
    ASSERT_EQ(Drain(reader, frames), FrameReader::Status::kNeedMore);
  }
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0], "a");
  EXPECT_EQ(frames[1], std::string(300, 'b'));
  EXPECT_EQ(frames[2], "c");
}

TEST(FrameReader, PopsSeveralFramesFromOneFeed) {
  std::string wire;
  for (int i = 0; i < 50; ++i) AppendFrame(wire, std::string(static_cast<size_t>(i), char('a' + i % 26)));
  FrameReader reader(1024);
  std::vector<std::string> frames;
  reader.Feed(wire.data(), wire.size());
  EXPECT_EQ(Drain(reader, frames), FrameReader::Status::kNeedMore);
  ASSERT_EQ(frames.size(), 50u);
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(frames[i], std::string(i, char('a' + i % 26)));
  }
  EXPECT_EQ(reader.buffered_bytes(), 0u);
}

TEST(FrameReader, ZeroLengthFrameIsAFrame) {
  FrameReader reader(0);  // even a zero limit admits an empty message
  const std::string wire = Frame("");
  reader.Feed(wire.data(), wire.size());
  std::string msg = "stale";
  EXPECT_EQ(reader.Next(msg), FrameReader::Status::kFrame);
  EXPECT_EQ(msg, "");
}

TEST(FrameReader, ReportsOversizedFrameFromItsPrefixAlone) {
  FrameReader reader(16);
  const std::string prefix("\xff\xff\xff\xff", 4);
  reader.Feed(prefix.data(), prefix.size());  // no body at all yet
  std::string msg;
  EXPECT_EQ(reader.Next(msg), FrameReader::Status::kTooLarge);
  EXPECT_EQ(reader.declared_bytes(), 4294967295u);
}

TEST(FrameReader, AcceptsExactlyTheLimitAndRejectsOneMore) {
  FrameReader at_limit(16);
  const std::string ok = Frame(std::string(16, 'x'));
  at_limit.Feed(ok.data(), ok.size());
  std::string msg;
  EXPECT_EQ(at_limit.Next(msg), FrameReader::Status::kFrame);
  FrameReader over(16);
  const std::string bad = Frame(std::string(17, 'x'));
  over.Feed(bad.data(), bad.size());
  EXPECT_EQ(over.Next(msg), FrameReader::Status::kTooLarge);
  EXPECT_EQ(over.declared_bytes(), 17u);
}

TEST(FrameReader, TruncatedFrameStaysMidFrame) {
  const std::string wire = Frame("truncated payload");
  for (size_t cut = 1; cut < wire.size(); ++cut) {
    FrameReader reader(1024);
    reader.Feed(wire.data(), cut);
    std::string msg;
    EXPECT_EQ(reader.Next(msg), FrameReader::Status::kNeedMore);
    EXPECT_TRUE(reader.mid_frame()) << "cut at " << cut;
    EXPECT_EQ(reader.buffered_bytes(), cut);
  }
}

TEST(FrameReader, CarriesALargeFrameInManyChunks) {
  std::string payload(1 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 + 7);
  const std::string wire = Frame(payload) + Frame("tail");
  FrameReader reader(16 << 20);
  std::vector<std::string> frames;
  constexpr size_t kChunk = 4093;  // prime: splits land everywhere, prefix included
  for (size_t at = 0; at < wire.size(); at += kChunk) {
    reader.Feed(wire.data() + at, std::min(kChunk, wire.size() - at));
    ASSERT_EQ(Drain(reader, frames), FrameReader::Status::kNeedMore);
  }
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0], payload);
  EXPECT_EQ(frames[1], "tail");
}

}  // namespace
}  // namespace gillab::servers
