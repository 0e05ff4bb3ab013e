// histogram.h — a small log-bucketed histogram of non-negative integers
// (nanoseconds or microseconds), in the spirit of HdrHistogram, which Debian 12
// does not package.
//
// Buckets: values below 2^kSubBits are exact; above, each power-of-two range
// [2^k, 2^(k+1)) is split into 2^kSubBits equal sub-buckets. A percentile is
// reported as the midpoint of its bucket, so its relative error is at most
// 2^-(kSubBits+1) (0.4% with kSubBits = 7). Recording is O(1), no allocation.
//
//   Histogram h;
//   h.Record(latency_ns);
//   int64_t p99 = h.Percentile(99.0);
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace gillab::gil {

class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr int kSubBuckets = 1 << kSubBits;
  static constexpr int kBuckets = (64 - kSubBits + 1) * kSubBuckets;
  // Upper bound of the relative error of Percentile() for values >= kSubBuckets.
  static constexpr double kRelativeError = 1.0 / (2 * kSubBuckets);

  void Record(int64_t value);
  void Merge(const Histogram& other);
  void Reset() { *this = Histogram{}; }

  uint64_t count() const { return count_; }
  int64_t min() const { return count_ ? min_ : 0; }
  int64_t max() const { return max_; }
  int64_t sum() const { return sum_; }
  double Mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0.0; }
  // The value at percentile p in [0, 100]; 0 when empty. Clamped to [min, max].
  int64_t Percentile(double p) const;
  // The distribution as (percentile, value) pairs on kCdfPercentiles, for
  // plotting a CDF: Percentile(p), except the exact min() at 0 and max() at
  // 100. Empty when the histogram is.
  static constexpr std::array<double, 22> kCdfPercentiles = {
      0, 1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.8, 99.9, 99.95, 99.99, 100};
  std::vector<std::pair<double, int64_t>> Cdf() const;

  static int BucketOf(int64_t value);
  static int64_t BucketLow(int bucket);
  static int64_t BucketHigh(int bucket);  // inclusive

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
  int64_t sum_ = 0;
};

}  // namespace gillab::gil
