// Smoke runs of every built-in scenario with small numbers, through the
// library. They check counts (which the schedule fixes), never timing.

#include "apps/swarm-load/driver.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <thread>

#include "tests/support/free_port.hpp"

namespace swarm::load {
namespace {

// A built-in scenario shrunk to run in a fraction of a second, even under sanitizers.
Scenario small(const std::string& name) {
  Scenario s = *builtin_scenario(name);
  s.rate = 2000;
  s.warmup = 0.1;
  s.seconds = 0.3;
  s.workers = 2;
  s.topics = 20;
  s.subscribers = std::min<std::uint32_t>(s.subscribers, 6);
  s.drain_timeout = 30;
  return s;
}

void expect_everything_accounted(const Scenario& s, const RunResult& r) {
  const auto expected = static_cast<std::uint64_t>(s.rate * s.seconds + 0.5);
  EXPECT_EQ(r.sent, expected) << s.name;
  EXPECT_EQ(r.completed, r.sent) << s.name;
  EXPECT_EQ(r.dropped_total(), 0u) << s.name;
  EXPECT_TRUE(r.drained) << s.name;
  EXPECT_EQ(r.latency.count(), r.observations);
  EXPECT_GT(r.latency.min(), 0u);
  EXPECT_LT(r.latency.max(), 60'000'000'000u);  // sanity: under a minute
  EXPECT_GT(r.throughput, 0);
  EXPECT_DOUBLE_EQ(r.target_rate, s.rate);
  ASSERT_FALSE(r.timeline.empty());
  EXPECT_TRUE(r.timeline.front().warmup);
  EXPECT_FALSE(r.timeline.back().warmup);
  std::uint64_t sent = 0;
  for (const IntervalStats& p : r.timeline) sent += p.sent;
  EXPECT_EQ(sent, expected + static_cast<std::uint64_t>(s.rate * s.warmup + 0.5));  // warm-up included
  double intended = 0;  // the target over time adds up to what the schedule sends
  for (const IntervalStats& p : r.timeline) intended += p.target_rate * p.seconds;
  EXPECT_NEAR(intended, static_cast<double>(sent), 0.01 * static_cast<double>(sent));
  EXPECT_GT(r.generator_ns_per_message, 0);
  EXPECT_GT(r.peak_rss_bytes, 0u);
  EXPECT_EQ(r.dropped.size(), kDropReasons.size() + 1);
}

class BuiltInScenario : public testing::TestWithParam<std::string> {};

TEST_P(BuiltInScenario, RunsAndAccountsForEveryMessage) {
  const Scenario s = small(GetParam());
  auto r = run_scenario(s);
  ASSERT_TRUE(r) << r.error();
  expect_everything_accounted(s, *r);
  // Each receiver at the end of a path records one observation.
  if (s.topology == Topology::fanout) {
    EXPECT_EQ(r->observations, r->completed * s.subscribers);
  }
  if (s.topology == Topology::pipeline || s.topology == Topology::request_reply || s.topology == Topology::topics) {
    EXPECT_EQ(r->observations, r->completed);
  }
  if (s.topology == Topology::mixed) {
    EXPECT_GE(r->observations, r->completed);
  }
}

INSTANTIATE_TEST_SUITE_P(Smoke, BuiltInScenario,
                         testing::Values("pipeline", "fanout", "topics", "request-reply", "mixed"),
                         [](const testing::TestParamInfo<std::string>& p) {
                           std::string n = p.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(Driver, QueueGroupsDeliverOncePerGroup) {
  Scenario s = small("fanout");
  s.subscribers = 6;
  s.queue_groups = 2;
  auto r = run_scenario(s);
  ASSERT_TRUE(r) << r.error();
  expect_everything_accounted(s, *r);
  EXPECT_EQ(r->observations, r->completed * 2);
}

TEST(Driver, ClosedLoopSendsTheCountAskedFor) {
  Scenario s = small("pipeline");
  s.mode = LoadMode::closed;
  s.seconds = 0;
  s.messages = 3000;
  s.in_flight = 16;
  auto r = run_scenario(s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->sent, 3000u);
  EXPECT_EQ(r->completed, 3000u);
  EXPECT_EQ(r->target_rate, 0);
  EXPECT_EQ(r->mode, "closed");
  EXPECT_TRUE(r->drained);
}

TEST(Driver, OpenLoopCanRunForAMessageCount) {
  Scenario s = small("topics");
  s.seconds = 0;
  s.messages = 700;
  auto r = run_scenario(s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->sent, 700u);
  EXPECT_EQ(r->completed, 700u);
}

TEST(Driver, AStepScheduleSendsItsIntegral) {
  Scenario s = small("pipeline");
  s.seconds = 0;
  s.schedule = {{0.2, 1000, 1000}, {0.2, 3000, 3000}};
  s.generators = 2;
  auto r = run_scenario(s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->sent, 200u + 600);
  EXPECT_EQ(r->completed, r->sent);
  EXPECT_DOUBLE_EQ(r->target_rate, 2000);  // the mean over the measured window
}

TEST(Driver, PersistentAgentsRunWithMemoryStorage) {
  Scenario s = small("pipeline");
  s.storage = StorageKind::memory;
  auto r = run_scenario(s);
  ASSERT_TRUE(r) << r.error();
  expect_everything_accounted(s, *r);
}

// drop_newest drops in the runtime; reject refuses the generator, which lets
// the message go: the load counts both as lost to a full mailbox.
TEST(Driver, FullMailboxesDropAndTheDropsAreCountedByReason) {
  for (OverflowPolicy policy : {OverflowPolicy::drop_newest, OverflowPolicy::reject}) {
    Scenario s = small("pipeline");
    s.lanes = 1;
    s.stages = 1;
    s.mailbox_capacity = 1;
    s.overflow = policy;
    s.work_ns = 2'000'000;  // 2 ms per message at 2000/s: the mailbox overflows
    auto r = run_scenario(s);
    ASSERT_TRUE(r) << r.error();
    EXPECT_GT(r->dropped.at("mailbox_full"), 0u) << to_string(policy);
    EXPECT_EQ(r->dropped_total(), r->dropped.at("mailbox_full")) << to_string(policy);
    EXPECT_LT(r->completed, r->sent) << to_string(policy);
    EXPECT_TRUE(r->drained) << to_string(policy);  // every message completed or dropped
  }
}

TEST(Driver, TimedOutRequestsCountAsTimeouts) {
  Scenario s = small("request-reply");
  s.servers = 1;
  s.clients = 1;
  s.work_ns = 3'000'000;        // servers take 3 ms per request
  s.request_timeout = 0.001;    // clients wait 1 ms
  s.seconds = 0.1;
  auto r = run_scenario(s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_GT(r->dropped.at("timeout"), 0u);
  EXPECT_TRUE(r->drained);
}

TEST(Driver, ProgressIsReportedForEachInterval) {
  Scenario s = small("pipeline");
  int calls = 0;
  RunOptions o;
  o.interval = 0.1;
  o.progress = [&](const IntervalStats& p, const LiveTotals&) {
    ++calls;
    EXPECT_GT(p.seconds, 0);
  };
  auto r = run_scenario(s, o);
  ASSERT_TRUE(r) << r.error();
  EXPECT_GE(calls, 3);
  EXPECT_EQ(static_cast<std::size_t>(calls), r->timeline.size());
}

TEST(Driver, AStopRequestEndsTheRunEarly) {
  Scenario s = small("pipeline");
  s.seconds = 600;
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop.store(true);
  });
  RunOptions o;
  o.stop = &stop;
  auto r = run_scenario(s, o);
  stopper.join();
  ASSERT_TRUE(r) << r.error();
  EXPECT_LT(r->sent, 2000u * 600);
  EXPECT_EQ(r->notes.back(), "stopped early (interrupted)");
}

TEST(Driver, ABadAdminAddressIsAnErrorFromTheRuntime) {
  Scenario s = small("pipeline");
  s.admin = "127.0.0.1:notaport";
  auto r = run_scenario(s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("telemetry.admin"), std::string::npos) << r.error();
}

TEST(Driver, TheAdminPortServesTheRunsMetricsWhileItRuns) {
  Scenario s = small("pipeline");
  const int port = test::free_port();
  ASSERT_NE(port, 0);
  s.admin = "127.0.0.1:" + std::to_string(port);
  std::string scraped;
  RunOptions options;
  options.progress = [&](const IntervalStats&, const LiveTotals&) {
    if (!scraped.empty()) return;
    httplib::Client http("127.0.0.1", port);
    if (auto res = http.Get("/metrics"); res && res->status == 200) scraped = res->body;
  };
  auto r = run_scenario(s, options);
  ASSERT_TRUE(r) << r.error();
  EXPECT_NE(scraped.find("swarm_worker_busy"), std::string::npos) << scraped.substr(0, 2000);
  EXPECT_NE(scraped.find("swarm_messages_dropped_total"), std::string::npos) << scraped.substr(0, 2000);
}

TEST(Driver, ByDefaultTheGeneratorsKeepCoresOfTheirOwn) {
  Scenario s = small("pipeline");
  s.workers = 0;
  auto r = run_scenario(s);
  ASSERT_TRUE(r) << r.error();
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  EXPECT_EQ(r->workers, cores > 1 ? cores - 1 : 1u);
  s.workers = 3;
  r = run_scenario(s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->workers, 3u);
}

TEST(Driver, ASamplerStarvedPastTheWarmUpStillMarksItsEnd) {
  const Scenario s = small("pipeline");
  RunOptions options;
  options.interval = 0.05;  // a tick inside the warm-up (0.1 s)
  bool slept = false;
  options.progress = [&](const IntervalStats&, const LiveTotals&) {
    if (!slept) std::this_thread::sleep_for(std::chrono::milliseconds(600));  // past the whole schedule (0.4 s)
    slept = true;
  };
  auto r = run_scenario(s, options);
  ASSERT_TRUE(r) << r.error();
  expect_everything_accounted(s, *r);
}

}  // namespace
}  // namespace swarm::load
