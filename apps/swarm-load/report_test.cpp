#include "apps/swarm-load/report.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

namespace swarm::load {
namespace {

RunResult sample_run(std::uint32_t seed = 1, double latency_scale = 1.0, double throughput = 200'000) {
  RunResult r;
  r.scenario = "pipeline";
  r.scenario_json = R"({"name":"pipeline","stages":4})";
  r.mode = "open";
  r.target_rate = 200'000;
  r.schedule = "200000/s";
  r.started_at = "2026-01-02T03:04:05Z";
  r.warmup_seconds = 1;
  r.measured_seconds = 10.0001;
  r.sent = 2'000'000;
  r.completed = 2'000'000;
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> d(std::log(20'000.0), 1.0);
  for (int i = 0; i < 50'000; ++i) r.latency.record(static_cast<std::uint64_t>(d(rng) * latency_scale));
  r.observations = r.latency.count();
  r.throughput = throughput;
  for (std::string_view reason : kDropReasons) r.dropped[std::string(reason)] = 0;
  r.dropped["total"] = 0;
  r.cpu_user_seconds = 3.25;
  r.cpu_system_seconds = 0.5;
  r.peak_rss_bytes = 40u << 20;
  r.generator_cpu_seconds = 0.6;
  r.generator_ns_per_message = 300;
  r.generator_max_lag_seconds = 0.00005;
  r.workers = 2;
  r.cores = 2;
  r.host = "box";
  r.notes = {"a note"};
  for (int t = 1; t <= 3; ++t) {
    IntervalStats p;
    p.t = t;
    p.seconds = 1;
    p.warmup = t == 1;
    p.target_rate = 200'000;
    p.sent = 200'000 + t;
    p.completed = 199'990 + t;
    p.observations = p.completed;
    p.dropped = t == 3 ? 2 : 0;
    p.p50 = 2e-5;
    p.p99 = 1e-4 * t;
    p.max = 1e-3;
    r.timeline.push_back(p);
  }
  return r;
}

TEST(ReportJson, HoldsTheContractFields) {
  const nlohmann::json j = to_json(sample_run());
  for (const char* key : {"scenario", "target_rate", "throughput_msgs_per_s", "latency_seconds", "dropped", "histogram"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  for (const char* q : {"p50", "p90", "p99", "p999", "max"}) EXPECT_TRUE(j["latency_seconds"][q].is_number()) << q;
  EXPECT_EQ(j["dropped"]["timeout"], 0);
  EXPECT_EQ(j["dropped"]["total"], 0);
  EXPECT_EQ(j["scenario_config"]["stages"], 4);
  EXPECT_EQ(j["histogram"]["count"], 50'000);
}

TEST(ReportJson, RoundTripKeepsEverything) {
  const RunResult r = sample_run();
  const nlohmann::json first = to_json(r);
  auto back = run_from_json(nlohmann::json::parse(first.dump()));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->latency, r.latency);
  EXPECT_EQ(back->scenario, r.scenario);
  EXPECT_EQ(back->throughput, r.throughput);
  EXPECT_EQ(back->dropped, r.dropped);
  EXPECT_EQ(back->timeline.size(), r.timeline.size());
  EXPECT_EQ(back->timeline[2].p99, r.timeline[2].p99);
  EXPECT_EQ(back->timeline[0].warmup, true);
  EXPECT_EQ(back->notes, r.notes);
  // Writing what was read gives the same document.
  EXPECT_EQ(to_json(*back), first);
}

TEST(ReportJson, FilesRoundTrip) {
  const std::string path = (std::filesystem::temp_directory_path() / "swarm-load-report-test.json").string();
  const RunResult r = sample_run(3);
  ASSERT_TRUE(write_json(r, path));
  auto back = read_json(path);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(to_json(*back), to_json(r));
  std::filesystem::remove(path);
  auto missing = read_json(path);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), "swarm-load: cannot read " + path);
}

TEST(ReportJson, MalformedResultsNameTheField) {
  auto expect_error = [](nlohmann::json j, const std::string& want) {
    auto r = run_from_json(j);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find(want), std::string::npos) << r.error();
  };
  const nlohmann::json good = to_json(sample_run());
  nlohmann::json j = good;
  j.erase("scenario");
  expect_error(j, "missing field \"scenario\"");
  j = good;
  j["throughput_msgs_per_s"] = "fast";
  expect_error(j, "field \"throughput_msgs_per_s\" must be a number");
  j = good;
  j.erase("histogram");
  expect_error(j, "missing field \"histogram\"");
  j = good;
  j["dropped"]["mailbox_full"] = -1;
  expect_error(j, "dropped.mailbox_full must be a non-negative integer");
  j = good;
  j["latency_seconds"].erase("p99");
  expect_error(j, "latency_seconds.p99 is missing");
}

TEST(ReportTable, ShowsTheFiguresAReaderLooksFor) {
  const std::string t = format_table(sample_run());
  for (const char* words : {"throughput", "200,000 msgs/s", "latency p50", "latency p99.9", "latency max", "dropped",
                            "CPU time", "peak RSS", "40.0 MiB", "note: a note"}) {
    EXPECT_NE(t.find(words), std::string::npos) << words << "\n" << t;
  }
}

TEST(ReportFormat, NumbersReadWell) {
  EXPECT_EQ(format_count(1234567), "1,234,567");
  EXPECT_EQ(format_count(999), "999");
  EXPECT_EQ(format_latency_ns(850), "850 ns");
  EXPECT_EQ(format_latency_ns(12'345), "12.3 µs");
  EXPECT_EQ(format_latency_ns(4'560'000), "4.56 ms");
  EXPECT_EQ(format_latency_ns(1.2e9), "1.20 s");
}

const CompareRow& row(const Comparison& c, const std::string& metric) {
  for (const CompareRow& r : c.rows) {
    if (r.metric == metric) return r;
  }
  static CompareRow none;
  ADD_FAILURE() << "no row " << metric;
  return none;
}

TEST(Compare, IdenticalRunsHaveNoRegression) {
  const RunResult a = sample_run();
  const Comparison c = compare(a, a);
  EXPECT_FALSE(c.regression());
  for (const CompareRow& r : c.rows) {
    EXPECT_EQ(r.ratio, 1) << r.metric;
    EXPECT_NE(r.verdict, Verdict::regression) << r.metric;
  }
  EXPECT_TRUE(c.warnings.empty());
}

TEST(Compare, SlowerLatencyBeyondTheThresholdIsARegression) {
  const RunResult a = sample_run(1, 1.0);
  const Comparison c = compare(a, sample_run(1, 1.15));  // every latency 15% higher
  EXPECT_TRUE(c.regression());
  EXPECT_EQ(row(c, "p99").verdict, Verdict::regression);
  EXPECT_NEAR(row(c, "p99").ratio, 1.15, 0.01);
  EXPECT_EQ(row(c, "max").verdict, Verdict::not_judged);  // noisy: shown, not judged
  EXPECT_EQ(row(c, "throughput").verdict, Verdict::ok);
  // Within a 20% threshold it passes.
  EXPECT_FALSE(compare(a, sample_run(1, 1.15), {.threshold = 0.20}).regression());
  // 5% slower is within the default 10%.
  EXPECT_FALSE(compare(a, sample_run(1, 1.05)).regression());
}

TEST(Compare, ThroughputDirectionMatters) {
  const RunResult a = sample_run(1, 1.0, 200'000);
  const Comparison lower = compare(a, sample_run(1, 1.0, 150'000));
  EXPECT_EQ(row(lower, "throughput").verdict, Verdict::regression);
  EXPECT_TRUE(lower.regression());
  const Comparison higher = compare(a, sample_run(1, 1.0, 250'000));
  EXPECT_EQ(row(higher, "throughput").verdict, Verdict::better);
  EXPECT_FALSE(higher.regression());
  const Comparison faster = compare(a, sample_run(1, 0.8));
  EXPECT_EQ(row(faster, "p50").verdict, Verdict::better);
}

TEST(Compare, DropsWhereThereWereNoneAreARegression) {
  const RunResult a = sample_run();
  RunResult b = sample_run();
  b.dropped["mailbox_full"] = 500;
  b.dropped["total"] = 500;
  const Comparison c = compare(a, b);
  EXPECT_EQ(row(c, "dropped").verdict, Verdict::regression);
  EXPECT_TRUE(std::isinf(row(c, "dropped").ratio));
  // One drop in two million is below the floor of one in a million.
  b.dropped["total"] = 1;
  EXPECT_EQ(row(compare(a, b), "dropped").verdict, Verdict::ok);
}

TEST(Compare, OnlyChosenMetricsAreJudged) {
  const RunResult a = sample_run(1, 1.0);
  const Comparison c = compare(a, sample_run(1, 1.5), {.threshold = 0.1, .metrics = {"throughput"}});
  EXPECT_FALSE(c.regression());
  EXPECT_EQ(row(c, "p99").verdict, Verdict::not_judged);
}

TEST(Compare, DifferentSetupsAreWarnedAbout) {
  RunResult b = sample_run();
  b.scenario = "fanout";
  b.target_rate = 1000;
  b.workers = 4;
  const Comparison c = compare(sample_run(), b);
  ASSERT_EQ(c.warnings.size(), 3u);
  EXPECT_EQ(c.warnings[0], "different scenarios: pipeline vs fanout");
}

TEST(Compare, TheTableShowsRatiosAndTheVerdict) {
  const Comparison c = compare(sample_run(1, 1.0), sample_run(1, 1.3));
  const std::string t = format_comparison(c, "A base.json", "B new.json");
  EXPECT_NE(t.find("REGRESSION (> +10%)"), std::string::npos) << t;
  EXPECT_NE(t.find("1.300"), std::string::npos) << t;
  EXPECT_NE(t.find("regressions beyond 10%"), std::string::npos) << t;
  const std::string same = format_comparison(compare(sample_run(), sample_run()), "A", "B");
  EXPECT_NE(same.find("no regression beyond 10%"), std::string::npos) << same;
}

TEST(Compare, ThresholdsParseAsPercentOrFraction) {
  EXPECT_DOUBLE_EQ(*parse_fraction("10%", "--threshold"), 0.10);
  EXPECT_DOUBLE_EQ(*parse_fraction("0.25", "--threshold"), 0.25);
  auto bad = parse_fraction("ten", "--threshold");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "swarm-load: --threshold = \"ten\" is not a fraction (allowed: e.g. 10% or 0.1)");
  EXPECT_FALSE(parse_fraction("-5%", "--threshold"));
}

}  // namespace
}  // namespace swarm::load
