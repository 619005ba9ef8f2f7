#include "apps/swarm-load/capacity.hpp"

#include <gtest/gtest.h>

#include <map>

#include <nlohmann/json.hpp>

namespace swarm::load {
namespace {

// A fake system whose p99 stays at 100 us up to `limit` msgs/s and jumps to
// 5 ms beyond it.
TrialRunner fake_system(double limit, std::map<double, int>* runs = nullptr) {
  return [limit, runs](double rate) -> Result<Trial> {
    if (runs != nullptr) ++(*runs)[rate];
    Trial t;
    t.rate = rate;
    t.throughput = rate;
    t.p99 = rate <= limit ? 100e-6 : 5e-3;
    t.pass = rate <= limit;
    return t;
  };
}

TEST(Capacity, FindsTheLimitWithinThePrecision) {
  CapacityOptions o;
  o.start_rate = 10'000;
  o.precision = 0.05;
  o.retries = 0;
  auto c = find_capacity(o, fake_system(123'456));
  ASSERT_TRUE(c) << c.error();
  EXPECT_LE(c->sustainable_rate, 123'456);
  EXPECT_GE(c->sustainable_rate, 123'456 / 1.05);
  EXPECT_FALSE(c->hit_max_rate);
  EXPECT_LE(c->trials.size(), 15u);
  // The answer passed every time it ran (it was confirmed once).
  int runs_of_answer = 0;
  for (const Trial& t : c->trials) {
    if (t.rate == c->sustainable_rate) {
      EXPECT_TRUE(t.pass);
      ++runs_of_answer;
    }
  }
  EXPECT_GE(runs_of_answer, 2);
}

TEST(Capacity, SearchesDownwardWhenTheFirstRateFails) {
  CapacityOptions o;
  o.start_rate = 1'000'000;
  auto c = find_capacity(o, fake_system(3'000));
  ASSERT_TRUE(c) << c.error();
  EXPECT_LE(c->sustainable_rate, 3'000);
  EXPECT_GE(c->sustainable_rate, 3'000 / 1.05);
}

TEST(Capacity, StopsAtTheMaximumRate) {
  CapacityOptions o;
  o.max_rate = 50'000;
  auto c = find_capacity(o, fake_system(1e12));
  ASSERT_TRUE(c) << c.error();
  EXPECT_TRUE(c->hit_max_rate);
  EXPECT_EQ(c->sustainable_rate, 50'000);
}

TEST(Capacity, NothingPassingGivesZero) {
  CapacityOptions o;
  o.min_rate = 100;
  auto c = find_capacity(o, fake_system(1));
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->sustainable_rate, 0);
}

TEST(Capacity, ARateThatFailsItsConfirmationIsNotTheAnswer) {
  // 80k passes the first time and fails the second: noise near the limit.
  std::map<double, int> runs;
  auto base = fake_system(100'000);
  TrialRunner flaky = [&](double rate) -> Result<Trial> {
    auto t = base(rate);
    if (rate >= 80'000 && ++runs[rate] >= 2) {
      t->pass = false;
      t->why = "flaky";
    }
    return t;
  };
  CapacityOptions o;
  o.start_rate = 10'000;
  auto c = find_capacity(o, flaky);
  ASSERT_TRUE(c) << c.error();
  EXPECT_LT(c->sustainable_rate, 80'000);
  EXPECT_GT(c->sustainable_rate, 0);
  for (const Trial& t : c->trials) {
    if (t.rate == c->sustainable_rate) {
      EXPECT_TRUE(t.pass);
    }
  }
}

TEST(Capacity, ABurstOfNoiseIsRetriedNotBelieved) {
  // The 3rd trial fails whatever its rate (the machine was busy); the limit is 100k.
  auto base = fake_system(100'000);
  int n = 0;
  TrialRunner noisy = [&](double rate) -> Result<Trial> {
    auto t = base(rate);
    if (++n == 3) {
      t->pass = false;
      t->why = "noise";
    }
    return t;
  };
  CapacityOptions o;
  o.start_rate = 10'000;
  auto c = find_capacity(o, noisy);
  ASSERT_TRUE(c) << c.error();
  EXPECT_GE(c->sustainable_rate, 100'000 / 1.05);
  EXPECT_FALSE(c->trials[2].pass);
  EXPECT_EQ(c->trials[3].rate, c->trials[2].rate);  // the retry
  EXPECT_TRUE(c->trials[3].pass);

  // Without retries the same burst ends the search below the noise.
  n = 0;
  o.retries = 0;
  c = find_capacity(o, noisy);
  ASSERT_TRUE(c) << c.error();
  EXPECT_LT(c->sustainable_rate, 40'000);
}

TEST(Capacity, ErrorsOfARunStopTheSearch) {
  auto c = find_capacity({}, [](double) -> Result<Trial> { return unexpected(std::string("runtime: port taken")); });
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), "runtime: port taken");
}

TEST(Capacity, MaxTrialsBoundsTheSearch) {
  CapacityOptions o;
  o.max_trials = 4;
  auto c = find_capacity(o, fake_system(1e9));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->trials.size(), 4u);
}

RunResult run_with(double p99_ns, double throughput, std::uint64_t dropped) {
  RunResult r;
  r.latency.record(static_cast<std::uint64_t>(p99_ns));
  r.throughput = throughput;
  r.sent = 10'000;
  r.dropped["total"] = dropped;
  return r;
}

TEST(CapacityJudge, EachFailureSaysWhy) {
  CapacityOptions o;
  o.slo_p99 = 1e-3;
  Trial ok = judge(run_with(500'000, 10'000, 0), 10'000, o);
  EXPECT_TRUE(ok.pass);
  EXPECT_EQ(ok.why, "");
  Trial slow = judge(run_with(2'000'000, 10'000, 0), 10'000, o);
  EXPECT_FALSE(slow.pass);
  EXPECT_EQ(slow.why, "p99 2.00 ms > 1.00 ms");
  Trial behind = judge(run_with(500'000, 9'000, 0), 10'000, o);
  EXPECT_FALSE(behind.pass);
  EXPECT_NE(behind.why.find("throughput 9,000/s < 95% of target"), std::string::npos) << behind.why;
  Trial drops = judge(run_with(500'000, 10'000, 3), 10'000, o);
  EXPECT_FALSE(drops.pass);
  EXPECT_EQ(drops.why, "3 dropped");
  o.max_drop_fraction = 0.001;
  EXPECT_TRUE(judge(run_with(500'000, 10'000, 3), 10'000, o).pass);
}

TEST(Capacity, JsonListsEveryTrial) {
  CapacityOptions o;
  auto c = find_capacity(o, fake_system(50'000));
  ASSERT_TRUE(c);
  const nlohmann::json j = to_json(*c, o, "pipeline");
  EXPECT_EQ(j["scenario"], "pipeline");
  EXPECT_EQ(j["trials"].size(), c->trials.size());
  EXPECT_EQ(j["sustainable_rate"], c->sustainable_rate);
}

}  // namespace
}  // namespace swarm::load
