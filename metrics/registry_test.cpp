#include "metrics/registry.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <thread>
#include <vector>

namespace swarm::metrics {
namespace {

TEST(Buckets, EveryValueLandsInTheBucketThatHoldsIt) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const std::uint64_t v = rng() >> (rng() % 64);
    const std::uint32_t b = Buckets::index(v);
    ASSERT_LT(b, Buckets::kCount);
    ASSERT_LE(Buckets::lower(b), v) << v;
    if (b != Buckets::kCount - 1) {
      ASSERT_LT(v, Buckets::upper(b)) << v;
    }
  }
}

TEST(Buckets, AreContiguousAndAtMostAnEighthWide) {
  for (std::uint32_t i = 0; i + 1 < Buckets::kCount; ++i) {
    ASSERT_EQ(Buckets::upper(i), Buckets::lower(i + 1));
    const std::uint64_t width = Buckets::upper(i) - Buckets::lower(i);
    if (Buckets::lower(i) >= 16) {
      ASSERT_LE(width * 8, Buckets::lower(i)) << i;
    }
  }
  EXPECT_EQ(Buckets::index(0), 0u);
  EXPECT_EQ(Buckets::index(~std::uint64_t{0}), Buckets::kCount - 1);
}

TEST(Histogram, KnownDurationsLandInTheirBuckets) {
  Registry reg;
  Histogram h = reg.histogram("test_seconds", "t");
  h.observe_ns(1000);     // [1000, 1024)
  h.observe_ns(1'500'000);
  h.observe_ns(1'500'000);
  HistogramSnapshot s = reg.snapshot(h);
  EXPECT_EQ(s.count(), 3u);
  EXPECT_EQ(s.sum_ns, 3'001'000u);
  EXPECT_EQ(s.counts[Buckets::index(1000)], 1u);
  EXPECT_EQ(s.counts[Buckets::index(1'500'000)], 2u);
  EXPECT_LE(Buckets::lower(Buckets::index(1000)), 1000u);
}

TEST(Histogram, QuantileErrorIsWithinTheBucketWidth) {
  Registry reg;
  Histogram h = reg.histogram("test_seconds", "t");
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> dist(10.0, 2.0);  // ~22 us median, wide tail
  std::vector<std::uint64_t> samples;
  for (int i = 0; i < 100000; ++i) {
    samples.push_back(static_cast<std::uint64_t>(dist(rng)) + 1);
    h.observe_ns(samples.back());
  }
  std::sort(samples.begin(), samples.end());
  HistogramSnapshot s = reg.snapshot(h);
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const auto exact = samples[static_cast<std::size_t>(std::ceil(q * samples.size())) - 1];
    const std::uint32_t b = Buckets::index(exact);
    const double width = static_cast<double>(Buckets::upper(b) - Buckets::lower(b));
    EXPECT_LE(std::abs(s.quantile_ns(q) - static_cast<double>(exact)), width) << "q=" << q;
  }
}

TEST(Counter, SumsEveryThreadIncludingThreadsThatExited) {
  Registry reg;
  Counter c = reg.counter("test_total", "t");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([c] {
      for (int i = 0; i < 100000; ++i) c.inc();
    });
  }
  for (auto& t : threads) t.join();  // their cells are folded into the retired set
  c.inc(5);
  EXPECT_EQ(reg.value(c), 400005u);
}

TEST(Counter, ScrapesWhileThreadsCountNeverGoBackwards) {
  Registry reg;
  Counter c = reg.counter("test_total", "t");
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, c] {
      // Short-lived threads: exits race with the scrapes below.
      while (!stop.load()) std::thread([c] { for (int i = 0; i < 1000; ++i) c.inc(); }).join();
    });
  }
  std::uint64_t last = 0;
  for (int i = 0; i < 2000; ++i) {
    const std::uint64_t v = reg.value(c);
    ASSERT_GE(v, last);
    last = v;
  }
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(reg.value(c) % 1000, 0u);
}

TEST(Gauge, AddsAndSubtractsAcrossThreads) {
  Registry reg;
  Gauge g = reg.gauge("test_in_flight", "t");
  std::thread([g] { g.add(10); }).join();
  g.add(-3);
  EXPECT_EQ(reg.value(g), 7);
}

TEST(Registry, SlotsOfADestroyedRegistryStartAtZeroWhenReused) {
  std::uint32_t slot;
  {
    Registry a;
    Counter c = a.counter("test_total", "t");
    c.inc(42);
    slot = c.slot();
  }
  Registry b;
  Counter c = b.counter("test_total", "t");
  EXPECT_EQ(c.slot(), slot);
  EXPECT_EQ(b.value(c), 0u);
}

TEST(Registry, RejectsBadAndDuplicateNames) {
  Registry reg;
  EXPECT_THROW(reg.counter("bad-name", "t"), std::invalid_argument);
  EXPECT_THROW(reg.counter("ok_total", "t", {{"__reserved", "x"}}), std::invalid_argument);
  reg.counter("ok_total", "t", {{"reason", "a"}});
  reg.counter("ok_total", "t", {{"reason", "b"}});
  EXPECT_THROW(reg.counter("ok_total", "t", {{"reason", "a"}}), std::invalid_argument);
  EXPECT_THROW(reg.gauge("ok_total", "t"), std::invalid_argument);
  try {
    reg.counter("9lives", "t");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("\"9lives\""), std::string::npos) << e.what();
  }
}

TEST(Registry, RendersThePrometheusTextFormat) {
  Registry reg;
  reg.counter("swarm_test_total", "Things.", {{"reason", "a\"b"}}).inc(3);
  reg.histogram("swarm_test_seconds", "Durations.").observe_ns(1'000'000);
  reg.add_callback([](Collector& c) { c.gauge("swarm_test_depth", "Depth.", {{"worker", "0"}}, 12); });
  const std::string text = reg.render();
  EXPECT_NE(text.find("# TYPE swarm_test_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_test_total{reason=\"a\\\"b\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_test_seconds_bucket{le=\"0.001048576\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_test_seconds_bucket{le=\"0.000524288\"} 0"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_test_seconds_count 1"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_test_depth{worker=\"0\"} 12"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_metrics_series_dropped_total 0"), std::string::npos) << text;
}

TEST(Registry, TheSeriesCapCutsAndCountsWhatItCut) {
  Registry reg({.max_series = 12});
  for (int i = 0; i < 20; ++i) reg.counter("swarm_test_total", "t", {{"worker", std::to_string(i)}}).inc();
  auto families = reg.Collect();
  std::size_t exported = 0;
  double dropped = -1;
  for (const auto& f : families) {
    if (f.name == "swarm_test_total") exported = f.metric.size();
    if (f.name == "swarm_metrics_series_dropped_total") dropped = f.metric[0].counter.value;
  }
  EXPECT_EQ(exported, 10u);  // 12 minus the registry's own two
  EXPECT_EQ(dropped, 10);
  reg.Collect();
  for (const auto& f : reg.Collect()) {
    if (f.name == "swarm_metrics_series_dropped_total") {
      EXPECT_EQ(f.metric[0].counter.value, 30);
    }
  }
}

TEST(Registry, RemovedCallbacksAreNotCalled) {
  Registry reg;
  int calls = 0;
  auto id = reg.add_callback([&](Collector&) { ++calls; });
  reg.Collect();
  reg.remove_callback(id);
  reg.Collect();
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace swarm::metrics

namespace swarm::metrics {
namespace {

TEST(Registry, ExportsTheStandardProcessSeries) {
  Registry reg;
  const std::string text = reg.render();
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                           "process_open_fds", "process_max_fds", "process_threads", "process_start_time_seconds"}) {
    EXPECT_NE(text.find(std::string("\n") + name + " "), std::string::npos) << name;
  }
  auto p = read_process_stats();
  ASSERT_TRUE(p);
  EXPECT_GT(p->resident_bytes, 1 << 20);
  EXPECT_GE(p->threads, 1);
  EXPECT_GE(p->open_fds, 3);  // stdin, stdout, stderr
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_GT(p->start_time_seconds, now - 3600);  // started within the hour...
  EXPECT_LE(p->start_time_seconds, now + 1);     // ...and not in the future
  // CPU time only grows.
  volatile double sink = 0;
  for (int i = 0; i < 20'000'000; ++i) sink = sink + i;
  EXPECT_GE(read_process_stats()->cpu_seconds, p->cpu_seconds);
}

}  // namespace
}  // namespace swarm::metrics
