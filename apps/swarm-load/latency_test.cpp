#include "apps/swarm-load/latency.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace swarm::load {
namespace {

// The exact nearest-rank q-quantile: the ceil(q*n)-th smallest sample.
double exact_quantile(std::vector<std::uint64_t> v, double q) {
  std::sort(v.begin(), v.end());
  if (q <= 0) return static_cast<double>(v.front());
  const auto rank = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))));
  return static_cast<double>(v[std::min(rank, v.size()) - 1]);
}

LatencyHistogram histogram_of(const std::vector<std::uint64_t>& v) {
  LatencyHistogram h;
  for (std::uint64_t x : v) h.record(x);
  return h;
}

std::vector<std::uint64_t> lognormal_samples(std::size_t n, std::uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> d(std::log(50'000.0), 1.5);  // ~50 us median, a long tail
  std::vector<std::uint64_t> v(n);
  for (auto& x : v) x = static_cast<std::uint64_t>(d(rng));
  return v;
}

TEST(LatencyBuckets, EveryValueFallsInsideItsBucketAndBucketsAreNarrow) {
  std::mt19937_64 rng(1);
  for (int k = 0; k < 200000; ++k) {
    const std::uint64_t v = rng() >> (rng() % 64);
    if (v > LatencyBuckets::kMaxValue) continue;
    const std::size_t i = LatencyBuckets::index(v);
    ASSERT_LT(i, LatencyBuckets::kCount);
    ASSERT_LE(LatencyBuckets::lower(i), v);
    ASSERT_LT(v, LatencyBuckets::lower(i) + LatencyBuckets::width(i));
    if (v >= 256) {
      ASSERT_LE(static_cast<double>(LatencyBuckets::width(i)) / LatencyBuckets::lower(i), 1.0 / 128);
    }
  }
  // Buckets tile the range without gaps or overlaps.
  for (std::size_t i = 0; i + 1 < LatencyBuckets::kCount; ++i) {
    ASSERT_EQ(LatencyBuckets::lower(i) + LatencyBuckets::width(i), LatencyBuckets::lower(i + 1)) << i;
  }
  EXPECT_EQ(LatencyBuckets::index(LatencyBuckets::kMaxValue), LatencyBuckets::kCount - 1);
}

TEST(LatencyHistogram, PercentilesAreWithinFourTenthsOfAPercentOfTheExactOnes) {
  const std::vector<std::vector<std::uint64_t>> sets = {
      lognormal_samples(100'000, 7),
      [] {  // uniform over 1 ns .. 10 ms
        std::mt19937_64 rng(3);
        std::vector<std::uint64_t> v(50'000);
        for (auto& x : v) x = 1 + rng() % 10'000'000;
        return v;
      }(),
      [] {  // a bimodal mix: fast path and a slow tail
        std::mt19937_64 rng(5);
        std::vector<std::uint64_t> v(20'000);
        for (auto& x : v) x = (rng() % 100 == 0) ? 5'000'000 + rng() % 1'000'000 : 2'000 + rng() % 500;
        return v;
      }(),
  };
  for (const auto& samples : sets) {
    const LatencyHistogram h = histogram_of(samples);
    for (double q : {0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0}) {
      const double exact = exact_quantile(samples, q);
      EXPECT_NEAR(h.quantile(q), exact, exact * 0.004) << "q = " << q;
    }
    EXPECT_EQ(h.count(), samples.size());
    EXPECT_EQ(h.min(), *std::min_element(samples.begin(), samples.end()));
    EXPECT_EQ(h.max(), *std::max_element(samples.begin(), samples.end()));
  }
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  std::vector<std::uint64_t> v;
  for (std::uint64_t x = 0; x < 256; ++x) v.push_back(x);
  const LatencyHistogram h = histogram_of(v);
  for (double q : {0.01, 0.25, 0.5, 0.75, 0.99}) EXPECT_EQ(h.quantile(q), exact_quantile(v, q)) << q;
  EXPECT_DOUBLE_EQ(h.mean(), 127.5);
}

TEST(LatencyHistogram, KnownSamplesGiveKnownPercentiles) {
  // 1..1000 us: p50 is the 500th value, p99 the 990th.
  LatencyHistogram h;
  for (std::uint64_t us = 1; us <= 1000; ++us) h.record(us * 1000);
  EXPECT_NEAR(h.quantile(0.5), 500'000, 500'000 * 0.004);
  EXPECT_NEAR(h.quantile(0.99), 990'000, 990'000 * 0.004);
  EXPECT_EQ(h.quantile(1.0), 1'000'000);
  EXPECT_EQ(h.quantile(0.0), 1'000);
}

TEST(LatencyHistogram, EmptyHistogramReportsZeros) {
  LatencyHistogram h;
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.quantile(0.99), 0);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0);
}

TEST(LatencyHistogram, MergingPartsEqualsRecordingTheWhole) {
  const auto all = lognormal_samples(30'000, 11);
  LatencyHistogram a, b, c;
  for (std::size_t i = 0; i < all.size(); ++i) (i % 3 == 0 ? a : i % 3 == 1 ? b : c).record(all[i]);
  LatencyHistogram merged;
  merged.merge(a);
  merged.merge(b);
  merged.merge(c);
  EXPECT_EQ(merged, histogram_of(all));
  for (double q : {0.5, 0.99, 0.999}) EXPECT_NEAR(merged.quantile(q), exact_quantile(all, q), exact_quantile(all, q) * 0.004);
}

TEST(LatencyHistogram, SubtractingAnEarlierSnapshotLeavesTheInterval) {
  const auto first = lognormal_samples(5'000, 1);
  const auto second = lognormal_samples(5'000, 2);
  LatencyHistogram running = histogram_of(first);
  const LatencyHistogram snapshot = running;
  for (std::uint64_t x : second) running.record(x);
  running.subtract(snapshot);
  const LatencyHistogram expected = histogram_of(second);
  EXPECT_EQ(running.count(), expected.count());
  for (std::size_t i = 0; i < LatencyBuckets::kCount; ++i) ASSERT_EQ(running.bucket_count(i), expected.bucket_count(i));
  EXPECT_NEAR(running.quantile(0.99), expected.quantile(0.99), expected.quantile(0.99) * 0.008);
}

TEST(LatencyHistogram, ValuesBeyondTheRangeAreClampedAndCounted) {
  LatencyHistogram h;
  h.record(LatencyBuckets::kMaxValue + 12345);
  h.record(10);
  EXPECT_EQ(h.saturated(), 1u);
  EXPECT_EQ(h.max(), LatencyBuckets::kMaxValue);
  EXPECT_EQ(h.count(), 2u);
}

TEST(LatencyHistogram, JsonRoundTripKeepsEveryBucket) {
  LatencyHistogram h = histogram_of(lognormal_samples(10'000, 9));
  h.record(LatencyBuckets::kMaxValue + 1);
  const std::string text = h.to_json().dump();
  auto back = LatencyHistogram::from_json(nlohmann::json::parse(text));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, h);
  EXPECT_EQ(back->quantile(0.999), h.quantile(0.999));
  // Only non-empty buckets are written.
  std::size_t non_empty = 0;
  for (std::size_t i = 0; i < LatencyBuckets::kCount; ++i) non_empty += h.bucket_count(i) != 0;
  EXPECT_EQ(h.to_json()["buckets"].size(), non_empty);
}

TEST(LatencyHistogram, EmptyHistogramRoundTrips) {
  auto back = LatencyHistogram::from_json(LatencyHistogram().to_json());
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, LatencyHistogram());
}

TEST(LatencyHistogram, MalformedJsonIsRejectedWithTheReason) {
  nlohmann::json good = histogram_of({100, 2000, 300000}).to_json();
  auto expect_error = [](const nlohmann::json& j, const std::string& words) {
    auto r = LatencyHistogram::from_json(j);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find(words), std::string::npos) << r.error();
  };
  nlohmann::json j = good;
  j.erase("count");
  expect_error(j, "missing field \"count\"");
  j = good;
  j["count"] = 4;
  expect_error(j, "differs from the sum of the buckets");
  j = good;
  j["buckets"][1][0] = 2001;  // not a bucket's lower bound
  expect_error(j, "does not start on a bucket bound");
  j = good;
  j["sub_bucket_bits"] = 3;
  expect_error(j, "sub_bucket_bits = 3 is not supported");
  j = good;
  std::swap(j["buckets"][0], j["buckets"][2]);
  expect_error(j, "out of order");
  expect_error(nlohmann::json::array(), "expected an object");
}

TEST(LatencyRecorder, ThreadsRecordIntoTheirOwnShardsAndTheSumIsExact) {
  LatencyRecorder rec;
  constexpr int kThreads = 4, kPerThread = 20'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&rec, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const auto v = static_cast<std::uint64_t>(1000 * (t + 1) + i);
        rec.record(v, i % 2 == 0 ? Phase::measured : Phase::warmup, i % 4 == 0, v);
      }
    });
  }
  // A reader summing while they write sees monotone counts.
  std::uint64_t last = 0;
  for (int k = 0; k < 50; ++k) {
    const std::uint64_t now = rec.histogram_all().count();
    EXPECT_GE(now, last);
    last = now;
  }
  for (auto& t : threads) t.join();
  LatencyHistogram expected;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; i += 2) expected.record(static_cast<std::uint64_t>(1000 * (t + 1) + i));
  }
  EXPECT_EQ(rec.histogram(Phase::measured), expected);
  EXPECT_EQ(rec.histogram_all().count(), std::uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(rec.completed(Phase::measured), std::uint64_t{kThreads} * kPerThread / 4);
  EXPECT_EQ(rec.completed(Phase::warmup), 0u);
  EXPECT_EQ(rec.shard_count(), static_cast<std::size_t>(kThreads));
  EXPECT_EQ(rec.last_measured_completion_ns(), std::uint64_t{1000 * kThreads + kPerThread - 4});
}

TEST(LatencyRecorder, ASecondRecorderOnTheSameThreadStartsEmpty) {
  auto first = std::make_unique<LatencyRecorder>();
  first->record(100, Phase::measured, true, 1);
  first.reset();
  LatencyRecorder second;  // possibly at the same address
  second.record(200, Phase::measured, true, 2);
  EXPECT_EQ(second.histogram(Phase::measured).count(), 1u);
  EXPECT_EQ(second.histogram(Phase::measured).max(), 200u);
}

TEST(LatencyRecorder, LostMessagesAreCountedByPhase) {
  LatencyRecorder rec;
  rec.lose(Phase::warmup);
  rec.lose(Phase::measured);
  rec.lose(Phase::measured);
  EXPECT_EQ(rec.lost(Phase::warmup), 1u);
  EXPECT_EQ(rec.lost(Phase::measured), 2u);
  EXPECT_EQ(rec.lost_all(), 3u);
}

}  // namespace
}  // namespace swarm::load
