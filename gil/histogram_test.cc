// histogram_test.cc — exact small values, bounded relative error, merge, empty.
#include "gil/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace gillab::gil {
namespace {

// The exact percentile with Histogram's definition: the smallest sample with
// at least p% of the samples at or below it.
int64_t ExactPercentile(std::vector<int64_t> sorted, double p) {
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

TEST(Histogram, EmptyReportsZeros) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.sum(), 0);
  EXPECT_EQ(h.Mean(), 0.0);
  EXPECT_EQ(h.Percentile(50), 0);
  EXPECT_EQ(h.Percentile(100), 0);
}

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  std::vector<int64_t> values;
  for (int64_t v = Histogram::kSubBuckets - 1; v >= 0; --v) {  // 127..0, unsorted input
    h.Record(v);
    values.push_back(v);
  }
  std::sort(values.begin(), values.end());
  EXPECT_EQ(h.count(), static_cast<uint64_t>(Histogram::kSubBuckets));
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), Histogram::kSubBuckets - 1);
  EXPECT_EQ(h.sum(), (Histogram::kSubBuckets - 1) * Histogram::kSubBuckets / 2);
  for (double p : {0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 100.0}) {
    EXPECT_EQ(h.Percentile(p), ExactPercentile(values, p)) << "p" << p;
  }
  Histogram one;
  one.Record(42);
  EXPECT_EQ(one.Percentile(0), 42);
  EXPECT_EQ(one.Percentile(50), 42);
  EXPECT_EQ(one.Percentile(100), 42);
  EXPECT_DOUBLE_EQ(one.Mean(), 42.0);
}

TEST(Histogram, PercentileRelativeErrorIsBounded) {
  std::mt19937_64 rng(12345);
  // Log-uniform from 1 to 1e12 ns: every bucket size the lock ever sees.
  std::uniform_real_distribution<double> exponent(0.0, 12.0);
  for (int trial = 0; trial < 5; ++trial) {
    Histogram h;
    std::vector<int64_t> values;
    for (int i = 0; i < 20000; ++i) {
      const auto v = static_cast<int64_t>(std::pow(10.0, exponent(rng)));
      values.push_back(v);
      h.Record(v);
    }
    std::sort(values.begin(), values.end());
    EXPECT_EQ(h.min(), values.front());
    EXPECT_EQ(h.max(), values.back());
    for (double p : {0.0, 0.1, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
      const int64_t exact = ExactPercentile(values, p);
      const int64_t got = h.Percentile(p);
      EXPECT_LE(std::abs(static_cast<double>(got - exact)),
                static_cast<double>(exact) * Histogram::kRelativeError)
          << "trial " << trial << " p" << p << " exact " << exact << " got " << got;
    }
  }
}

TEST(Histogram, EveryValueFallsInsideItsBucket) {
  std::mt19937_64 rng(7);
  std::vector<int64_t> probes = {0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20,
                                 std::numeric_limits<int64_t>::max()};
  for (int i = 0; i < 10000; ++i) probes.push_back(static_cast<int64_t>(rng() >> (1 + rng() % 63)));
  for (int64_t v : probes) {
    const int b = Histogram::BucketOf(v);
    ASSERT_GE(b, 0);
    ASSERT_LT(b, Histogram::kBuckets);
    EXPECT_LE(Histogram::BucketLow(b), v) << v;
    EXPECT_GE(Histogram::BucketHigh(b), v) << v;
  }
  Histogram h;
  h.Record(std::numeric_limits<int64_t>::max());
  EXPECT_EQ(h.Percentile(50), std::numeric_limits<int64_t>::max());
}

TEST(Histogram, NegativeValuesCountAsZero) {
  Histogram h;
  h.Record(-5);
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.Percentile(100), 0);
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(99);
  std::uniform_int_distribution<int64_t> dist(0, 50'000'000);
  Histogram a, b, all;
  for (int i = 0; i < 5000; ++i) {
    const int64_t v = dist(rng);
    (i % 3 ? a : b).Record(v);
    all.Record(v);
  }
  Histogram merged = a;
  merged.Merge(b);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_EQ(merged.sum(), all.sum());
  for (double p : {0.0, 50.0, 90.0, 99.0, 100.0}) EXPECT_EQ(merged.Percentile(p), all.Percentile(p));

  Histogram empty;
  Histogram into_empty;
  into_empty.Merge(a);
  EXPECT_EQ(into_empty.count(), a.count());
  EXPECT_EQ(into_empty.min(), a.min());
  EXPECT_EQ(into_empty.Percentile(50), a.Percentile(50));
  Histogram unchanged = a;
  unchanged.Merge(empty);
  EXPECT_EQ(unchanged.count(), a.count());
  EXPECT_EQ(unchanged.min(), a.min());
  unchanged.Reset();
  EXPECT_EQ(unchanged.count(), 0u);
  EXPECT_EQ(unchanged.Percentile(50), 0);
}

TEST(Histogram, CdfRunsFromMinToMaxThroughThePercentiles) {
  EXPECT_TRUE(Histogram{}.Cdf().empty());
  Histogram h;
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(10.0, 1.5);
  for (int i = 0; i < 50'000; ++i) h.Record(static_cast<int64_t>(dist(rng)));
  const auto cdf = h.Cdf();
  ASSERT_EQ(cdf.size(), Histogram::kCdfPercentiles.size());
  EXPECT_EQ(cdf.front(), std::make_pair(0.0, h.min()));
  EXPECT_EQ(cdf.back(), std::make_pair(100.0, h.max()));
  for (size_t i = 0; i < cdf.size(); ++i) {
    EXPECT_EQ(cdf[i].first, Histogram::kCdfPercentiles[i]);
    if (i > 0 && i + 1 < cdf.size()) {
      EXPECT_EQ(cdf[i].second, h.Percentile(cdf[i].first));
    }
    if (i > 0) {
      EXPECT_GT(cdf[i].first, cdf[i - 1].first);
      EXPECT_GE(cdf[i].second, cdf[i - 1].second) << "at p" << cdf[i].first;
    }
  }
}

}  // namespace
}  // namespace gillab::gil
