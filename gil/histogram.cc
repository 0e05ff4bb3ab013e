#include "gil/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace gillab::gil {

int Histogram::BucketOf(int64_t value) {
  if (value < kSubBuckets) return value < 0 ? 0 : static_cast<int>(value);
  const auto v = static_cast<uint64_t>(value);
  const int top = 63 - std::countl_zero(v);  // top >= kSubBits
  const int shift = top - kSubBits;
  const int sub = static_cast<int>((v >> shift) & (kSubBuckets - 1));
  return (shift + 1) * kSubBuckets + sub;
}

int64_t Histogram::BucketLow(int bucket) {
  if (bucket < kSubBuckets) return bucket;
  const int shift = bucket / kSubBuckets - 1;
  const uint64_t sub = bucket % kSubBuckets;
  return static_cast<int64_t>((uint64_t{kSubBuckets} + sub) << shift);
}

int64_t Histogram::BucketHigh(int bucket) {
  if (bucket < kSubBuckets) return bucket;
  const int shift = bucket / kSubBuckets - 1;
  return BucketLow(bucket) + static_cast<int64_t>((uint64_t{1} << shift) - 1);
}

void Histogram::Record(int64_t value) {
  if (value < 0) value = 0;
  counts_[BucketOf(value)]++;
  if (count_ == 0 || value < min_) min_ = value;
  if (value > max_) max_ = value;
  sum_ += value;
  count_++;
}

void Histogram::Merge(const Histogram& other) {
  if (other.count_ == 0) return;
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  min_ = count_ ? std::min(min_, other.min_) : other.min_;
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
  count_ += other.count_;
}

int64_t Histogram::Percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  // Rank of the wanted sample, 1-based: the smallest value with at least p% at or below it.
  auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const int64_t mid = BucketLow(i) + (BucketHigh(i) - BucketLow(i)) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

std::vector<std::pair<double, int64_t>> Histogram::Cdf() const {
  std::vector<std::pair<double, int64_t>> cdf;
  if (count_ == 0) return cdf;
  for (double p : kCdfPercentiles) cdf.emplace_back(p, p == 0 ? min() : p == 100 ? max() : Percentile(p));
  return cdf;
}

}  // namespace gillab::gil
