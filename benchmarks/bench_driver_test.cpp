#include "benchmarks/bench_driver.hpp"

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/nats_cluster.hpp"

namespace swarm::bench {
namespace {

using nlohmann::json;

RunResult run(double value, double seconds = 1, std::uint64_t checksum = 0) {
  return {value, seconds, std::nullopt, checksum};
}

TEST(ComputeStats, OddCountTakesMiddle) {
  std::vector<double> v = {5, 1, 3};
  Stats s = compute_stats(v);
  EXPECT_EQ(s.median, 3);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 5);
}

TEST(ComputeStats, EvenCountAveragesMiddleTwo) {
  std::vector<double> v = {10, 2, 4, 7};
  Stats s = compute_stats(v);
  EXPECT_EQ(s.median, 5.5);
  EXPECT_EQ(s.min, 2);
  EXPECT_EQ(s.max, 10);
}

TEST(ComputeStats, SingleAndEmpty) {
  std::vector<double> one = {42};
  Stats s = compute_stats(one);
  EXPECT_EQ(s.median, 42);
  EXPECT_EQ(s.min, 42);
  EXPECT_EQ(s.max, 42);
  Stats none = compute_stats({});
  EXPECT_EQ(none.median, 0);
}

TEST(SummaryJson, HasContractFields) {
  Summary s{"W2", "caf", "msgs/s", {4, 2}, {run(3e6, 0.3), run(1e6, 0.9), run(2e6, 0.5)}};
  json j = json::parse(summary_json(s));
  EXPECT_EQ(j.at("workload"), "W2");
  EXPECT_EQ(j.at("runtime"), "caf");
  EXPECT_EQ(j.at("unit"), "msgs/s");
  EXPECT_EQ(j.at("median").get<double>(), 2e6);
  EXPECT_EQ(j.at("min").get<double>(), 1e6);
  EXPECT_EQ(j.at("max").get<double>(), 3e6);
  EXPECT_EQ(j.at("runs"), json({3e6, 1e6, 2e6}));
  EXPECT_FALSE(j.contains("bytes_per_agent"));
  EXPECT_EQ(j.at("workers"), 4);
  EXPECT_EQ(j.at("scale"), 2);
  EXPECT_EQ(j.at("seconds"), json({0.3, 0.9, 0.5}));
  EXPECT_EQ(summary_json(s).find('\n'), std::string::npos);
}

TEST(SummaryJson, W1HasMedianBytesPerAgent) {
  Summary s{"W1", "swarm", "spawns/s", {}, {run(1), run(2), run(3), run(4)}};
  double bytes[] = {400, 100, 300, 200};
  for (int i = 0; i < 4; ++i) s.runs[i].bytes_per_agent = bytes[i];
  json j = json::parse(summary_json(s));
  EXPECT_EQ(j.at("bytes_per_agent").get<double>(), 250);
  EXPECT_EQ(j.at("median").get<double>(), 2.5);
}

TEST(SummaryJson, S2HasTheMedianHistoryP95AndTheTableShowsIt) {
  Summary s{"S2", "swarm", "events/s", {}, {run(1), run(2), run(3)}};
  double p95[] = {3.0, 1.0, 2.0};
  for (int i = 0; i < 3; ++i) s.runs[i].history_p95_ms = p95[i];
  EXPECT_EQ(json::parse(summary_json(s)).at("history_p95_ms").get<double>(), 2.0);
  EXPECT_NE(format_table({&s, 1}).find("history(agent) p95 2.00 ms"), std::string::npos) << format_table({&s, 1});
}

TEST(SummaryJson, G2HasLatencyMediansAndTheTableTheirRatio) {
  Summary swarm{"G2", "swarm", "requests/s", {}, {run(5e3), run(6e3), run(7e3)}};
  Summary raw{"G2", "raw", "requests/s", {}, {run(9e3), run(1e4), run(1.1e4)}};
  double median[] = {150, 140, 145}, p99[] = {600, 500, 700}, raw_median[] = {100, 90, 95};
  for (int i = 0; i < 3; ++i) {
    swarm.runs[i].latency_median_us = median[i];
    swarm.runs[i].latency_p99_us = p99[i];
    raw.runs[i].latency_median_us = raw_median[i];
    raw.runs[i].latency_p99_us = 300;
  }
  json j = json::parse(summary_json(swarm));
  EXPECT_EQ(j.at("latency_median_us").get<double>(), 145);
  EXPECT_EQ(j.at("latency_p99_us").get<double>(), 600);
  EXPECT_FALSE(j.contains("drops"));
  std::vector<Summary> both = {swarm, raw};
  const std::string table = format_table(both);
  EXPECT_NE(table.find("swarm    round trip median 145.0 us, p99 600.0 us"), std::string::npos) << table;
  EXPECT_NE(table.find("swarm/raw ratio of round-trip medians: 1.53x"), std::string::npos) << table;
}

TEST(SummaryJson, DropsArePerRunAndTheTableSaysSo) {
  Summary s{"G3", "raw", "deliveries/s", {}, {run(1), run(2), run(3)}};
  std::uint64_t drops[] = {0, 12, 0};
  for (int i = 0; i < 3; ++i) s.runs[i].drops = drops[i];
  EXPECT_EQ(json::parse(summary_json(s)).at("drops"), json({0, 12, 0}));
  EXPECT_NE(format_table({&s, 1}).find("raw      drops: 12 in 1 of 3 runs"), std::string::npos) << format_table({&s, 1});
}

TEST(RunResultJson, RoundTrips) {
  RunResult r{12345678.9, 0.0811, 321.5, 18446744073709551615ull, 1.25};
  Result<RunResult> back = parse_run_result(run_result_json(r));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->value, r.value);
  EXPECT_EQ(back->seconds, r.seconds);
  EXPECT_EQ(back->bytes_per_agent, r.bytes_per_agent);
  EXPECT_EQ(back->checksum, r.checksum);
  EXPECT_EQ(back->history_p95_ms, r.history_p95_ms);

  RunResult g;
  g.value = 9e3;
  g.seconds = 11;
  g.latency_median_us = 95.5;
  g.latency_p99_us = 310.25;
  g.drops = 7;
  back = parse_run_result(run_result_json(g));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->latency_median_us, 95.5);
  EXPECT_EQ(back->latency_p99_us, 310.25);
  EXPECT_EQ(back->drops, 7u);

  back = parse_run_result(R"({"value": 2.5, "seconds": 1})");
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->value, 2.5);
  EXPECT_FALSE(back->bytes_per_agent.has_value());
  EXPECT_FALSE(back->history_p95_ms.has_value());
  EXPECT_FALSE(back->latency_median_us.has_value());
  EXPECT_FALSE(back->drops.has_value());
  EXPECT_EQ(back->checksum, 0u);
}

TEST(RunResultJson, RejectsBadLines) {
  for (const char* line : {"", "not json", "[1,2]", R"({"seconds": 1})",
                           R"({"value": "fast", "seconds": 1})",
                           R"({"value": 1, "seconds": 1, "checksum": -3})",
                           R"({"value": 1, "seconds": 1, "history_p95_ms": "slow"})",
                           R"({"value": 1, "seconds": 1, "latency_p99_us": "slow"})",
                           R"({"value": 1, "seconds": 1, "drops": -1})"}) {
    Result<RunResult> r = parse_run_result(line);
    ASSERT_FALSE(r) << line;
    EXPECT_EQ(r.error().rfind("swarm-bench: ", 0), 0u) << r.error();
  }
}

TEST(Workloads, FindsKnownIds) {
  for (const char* id : {"W1", "W2", "W5", "W6"}) {
    Result<const Workload*> w = find_workload(id);
    ASSERT_TRUE(w) << id;
    EXPECT_EQ((*w)->id, id);
    EXPECT_FALSE((*w)->unit.empty());
    EXPECT_FALSE((*w)->description.empty());
  }
  EXPECT_EQ((*find_workload("W5"))->unit, "hops/s");
}

TEST(Workloads, UnknownIdNamesValueAndAllowed) {
  Result<const Workload*> w = find_workload("W9");
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error(), "swarm-bench: unknown workload 'W9' (allowed: W1, W2, W3, W4, W5, W6, S1, S2, G1, G2, G3, C1, C2, C3)");
}

TEST(Workloads, RuntimeErrors) {
  Workload swarm_only{"S1", "ops/s", "storage", [](const WorkloadParams&) { return RunResult{}; },
                      {}};
  EXPECT_TRUE(workload_function(swarm_only, "swarm"));
  Result<WorkloadFn> caf = workload_function(swarm_only, "caf");
  ASSERT_FALSE(caf);
  EXPECT_EQ(caf.error(), "swarm-bench: workload S1 is not available for runtime caf");
  Result<WorkloadFn> bad = workload_function(swarm_only, "akka");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("'akka'"), std::string::npos);
}

TEST(ParseRuntimes, BothAndSingleAndBad) {
  EXPECT_EQ(*parse_runtimes("both"), (std::vector<std::string>{"swarm", "caf"}));
  EXPECT_EQ(*parse_runtimes("caf"), (std::vector<std::string>{"caf"}));
  Result<std::vector<std::string>> bad = parse_runtimes("Swarm");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "swarm-bench: unknown runtime 'Swarm' (allowed: swarm, caf, raw, both)");
}

TEST(ParseRuntimes, BothMeansSwarmAndTheWorkloadsPeer) {
  EXPECT_EQ(*parse_runtimes("both", *find_workload("S1")), (std::vector<std::string>{"swarm", "raw"}));
  EXPECT_EQ(*parse_runtimes("both", *find_workload("S2")), (std::vector<std::string>{"swarm", "raw"}));
  EXPECT_EQ(*parse_runtimes("both", *find_workload("W3")), (std::vector<std::string>{"swarm", "caf"}));
  for (const char* id : {"G1", "G2", "G3", "C1", "C2", "C3"}) {
    EXPECT_EQ(*parse_runtimes("both", *find_workload(id)), (std::vector<std::string>{"swarm", "raw"})) << id;
    EXPECT_FALSE(workload_function(**find_workload(id), "caf")) << id;
  }
  EXPECT_FALSE(workload_function(**find_workload("S1"), "caf"));
  EXPECT_TRUE(workload_function(**find_workload("S1"), "raw"));
}

TEST(Summary, StorageRunsReportTheirBatching) {
  Summary s{"S1", "swarm", "states/s", {}, {run(3e5)}};
  s.params.redis_url = "redis://127.0.0.1:7000";
  s.params.batch = 256;
  s.params.max_delay_ms = 5;
  s.params.connections = 1;
  auto j = nlohmann::json::parse(summary_json(s));
  EXPECT_EQ(j["batch"], 256);
  EXPECT_EQ(j["max_delay_ms"], 5);
  EXPECT_EQ(j["connections"], 1);
  EXPECT_FALSE(j.contains("redis")) << "a URL may carry a password";
  EXPECT_FALSE(j.contains("staged"));  // S2 only

  Summary s2{"S2", "swarm", "events/s", {}, {run(1e5)}};
  s2.params.postgres_dsn = "host=127.0.0.1";
  s2.params.staged = true;
  EXPECT_EQ(nlohmann::json::parse(summary_json(s2))["staged"], true);
}

TEST(CheckServers, SaysWhatToPass) {
  WorkloadParams none;
  EXPECT_TRUE(check_servers(**find_workload("W2"), none));
  EXPECT_TRUE(check_servers(**find_workload("G1"), none));
  EXPECT_EQ(check_servers(**find_workload("S1"), none).error(), "swarm-bench: S1 needs --redis redis://HOST:PORT");
  EXPECT_NE(check_servers(**find_workload("S2"), none).error().find("S2 needs --postgres"), std::string::npos);
  for (const char* id : {"C1", "C2", "C3"}) {
    Result<void> r = check_servers(**find_workload(id), none);
    ASSERT_FALSE(r) << id;
    EXPECT_EQ(r.error(), "swarm-bench: " + std::string(id) +
                             " needs --nats nats://HOST:PORT[,nats://HOST:PORT...], a nats-server with JetStream "
                             "(e.g. nats-server -js -a 127.0.0.1 -p 4222)");
  }
  WorkloadParams nats;
  nats.nats_urls = "nats://127.0.0.1:4222";
  EXPECT_TRUE(check_servers(**find_workload("C1"), nats));
  EXPECT_FALSE(check_servers(**find_workload("S1"), nats));
}

TEST(Summary, ClusterRunsReportSendAsapNotTheUrls) {
  Summary c1{"C1", "swarm", "msgs/s", {}, {run(8e5)}};
  c1.params.nats_urls = "nats://user:secret@127.0.0.1:4222";
  Summary raw = c1;
  raw.runtime = "raw";
  auto j = json::parse(summary_json(c1));
  EXPECT_EQ(j.at("send_asap"), false);  // C1: bulk throughput, libnats batches writes
  EXPECT_EQ(summary_json(c1).find("secret"), std::string::npos);
  EXPECT_EQ(json::parse(summary_json(raw)).at("send_asap"), false);
  std::vector<Summary> both = {c1, raw};
  EXPECT_NE(format_table(both).find("NATS send_asap: off (every connection"), std::string::npos) << format_table(both);

  Summary c2{"C2", "swarm", "requests/s", {}, {run(5e3)}};
  c2.params.nats_urls = "nats://127.0.0.1:4222";
  EXPECT_EQ(json::parse(summary_json(c2)).at("send_asap"), true);  // latency first
  c2.params.send_asap = false;
  EXPECT_EQ(json::parse(summary_json(c2)).at("send_asap"), false);
  c1.params.send_asap = true;
  EXPECT_NE(format_table({&c1, 1}).find("NATS send_asap: on (every connection"), std::string::npos);

  Summary w2{"W2", "swarm", "msgs/s", {}, {run(1e7)}};
  EXPECT_FALSE(json::parse(summary_json(w2)).contains("send_asap"));
  EXPECT_EQ(format_table({&w2, 1}).find("NATS"), std::string::npos);
}

TEST(RunBenchmark, InterleavesRuntimesAndReportsProgress) {
  const Workload& w = **find_workload("W2");
  std::vector<std::string> order;
  Runner fake = [&](const Workload&, std::string_view rt, const WorkloadParams&) {
    order.emplace_back(rt);
    return Result<RunResult>(run(rt == "swarm" ? 2e6 : 1e6));
  };
  std::vector<std::string> rts = {"swarm", "caf"};
  std::ostringstream progress;
  auto sums = run_benchmark(w, rts, 2, {}, fake, progress);
  ASSERT_TRUE(sums) << sums.error();
  EXPECT_EQ(order, (std::vector<std::string>{"swarm", "caf", "swarm", "caf"}));
  ASSERT_EQ(sums->size(), 2u);
  EXPECT_EQ((*sums)[0].runtime, "swarm");
  EXPECT_EQ((*sums)[1].runs.size(), 2u);
  EXPECT_NE(progress.str().find("W2 caf run 2/2: 1.00 M msgs/s\n"), std::string::npos);
  EXPECT_NE(format_table(*sums).find("swarm/caf ratio of medians: 2.00x"), std::string::npos);
}

TEST(RunBenchmark, StopsAtFirstFailure) {
  const Workload& w = **find_workload("W6");
  int calls = 0;
  Runner failing = [&](const Workload&, std::string_view, const WorkloadParams&) {
    return ++calls == 2 ? Result<RunResult>(unexpected(std::string("swarm-bench: boom")))
                        : Result<RunResult>(run(1));
  };
  std::vector<std::string> rts = {"swarm"};
  std::ostringstream progress;
  auto sums = run_benchmark(w, rts, 5, {}, failing, progress);
  ASSERT_FALSE(sums);
  EXPECT_EQ(sums.error(), "swarm-bench: boom (run 2/5)");
  EXPECT_EQ(calls, 2);
}

TEST(RunChildProcess, FailingChildNamesWorkloadRuntimeAndStatus) {
  const Workload& w = **find_workload("W5");
  Result<RunResult> r = run_child_process("/bin/false", w, "caf", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "swarm-bench: W5 caf child exited with status 1");
}

TEST(RunChildProcess, NonJsonOutputIsAnError) {
  // echo prints its arguments: a line that is not a RunResult.
  Result<RunResult> r = run_child_process("/bin/echo", **find_workload("W2"), "swarm", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().rfind("swarm-bench: W2 swarm child: bad run result", 0), 0u) << r.error();
}

TEST(RunChildProcess, PassesTheNatsServersAndSendAsap) {
  // echo prints its arguments: the child's command line comes back in the error.
  WorkloadParams p;
  p.nats_urls = "nats://127.0.0.1:1,nats://127.0.0.1:2";
  p.send_asap = false;
  Result<RunResult> r = run_child_process("/bin/echo", **find_workload("C1"), "raw", p);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("--nats nats://127.0.0.1:1,nats://127.0.0.1:2 --send-asap off"), std::string::npos)
      << r.error();
  p.send_asap.reset();  // the workload's default: the child decides
  r = run_child_process("/bin/echo", **find_workload("C1"), "raw", p);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().find("--send-asap"), std::string::npos) << r.error();
}

// The cluster workloads end to end, small, through a nats-server of their
// own: swarm-bench starts node A, nothing is lost, the checksums count what
// arrived, and each run's buckets are gone afterwards.
TEST(RunChildProcess, ClusterWorkloadsRunEndToEnd) {
  test::NatsCluster nats(1);
  struct Case {
    const char* id;
    std::uint64_t scale;
  };
  for (Case c : {Case{"C1", 20'000}, Case{"C2", 300}, Case{"C3", 20'000}}) {
    for (const char* runtime : {"swarm", "raw"}) {
      WorkloadParams p;
      p.scale = c.scale;
      p.nats_urls = nats.url(0);
      Result<RunResult> r = run_child_process(SWARM_BENCH_EXE, **find_workload(c.id), runtime, p);
      ASSERT_TRUE(r) << r.error();
      EXPECT_GT(r->value, 0) << c.id << ' ' << runtime;
      EXPECT_EQ(r->checksum, c.scale) << c.id << ' ' << runtime;
      if (std::string_view(c.id) == "C1") {
        EXPECT_EQ(r->drops, 0u) << runtime;
      }
      if (std::string_view(c.id) == "C2") {
        ASSERT_TRUE(r->latency_median_us && r->latency_p99_us) << runtime;
        EXPECT_GE(*r->latency_p99_us, *r->latency_median_us);
      }
    }
  }
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, nats.url(0).c_str()), NATS_OK);
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  jsStreamNamesList* streams = nullptr;
  const natsStatus listed = js_StreamNames(&streams, js, nullptr, nullptr);
  EXPECT_TRUE(listed == NATS_NOT_FOUND || (listed == NATS_OK && streams->Count == 0)) << "a run's key-value buckets were left behind";
  if (streams != nullptr) jsStreamNamesList_Destroy(streams);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

// The gateway workloads end to end, small: swarm-bench starts its client
// process, nothing is lost, the checksums count what arrived.
TEST(RunChildProcess, GatewayWorkloadsRunEndToEnd) {
  struct Case {
    const char* id;
    std::uint64_t scale, checksum;
  };
  for (Case c : {Case{"G1", 20'000, 20'000}, Case{"G2", 300, 300}, Case{"G3", 200, 200 * 100}}) {
    for (const char* runtime : {"swarm", "raw"}) {
      WorkloadParams p;
      p.scale = c.scale;
      Result<RunResult> r = run_child_process(SWARM_BENCH_EXE, **find_workload(c.id), runtime, p);
      ASSERT_TRUE(r) << r.error();
      EXPECT_GT(r->value, 0) << c.id << ' ' << runtime;
      EXPECT_EQ(r->checksum, c.checksum) << c.id << ' ' << runtime;
      if (std::string_view(c.id) == "G2") {
        ASSERT_TRUE(r->latency_median_us && r->latency_p99_us) << runtime;
        EXPECT_GT(*r->latency_median_us, 0);
        EXPECT_GE(*r->latency_p99_us, *r->latency_median_us);
      } else {
        EXPECT_EQ(r->drops, 0u) << c.id << ' ' << runtime;
      }
    }
  }
}

TEST(FormatRate, ScalesWithPrefix) {
  EXPECT_EQ(format_rate(12.3149e6, "msgs/s"), "12.31 M msgs/s");
  EXPECT_EQ(format_rate(2500, "hops/s"), "2.50 k hops/s");
  EXPECT_EQ(format_rate(12, "agents/s"), "12.00 agents/s");
}

}  // namespace
}  // namespace swarm::bench
