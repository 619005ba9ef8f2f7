#include "apps/swarm-load/schedule.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

namespace swarm::load {
namespace {

TEST(Schedule, ConstantRateSpacesMessagesExactly) {
  const Schedule s = Schedule::constant(1000, 2);
  EXPECT_EQ(s.message_count(), 2000u);
  EXPECT_DOUBLE_EQ(s.duration(), 2.0);
  for (std::uint64_t i : {0ull, 1ull, 7ull, 999ull, 1999ull}) EXPECT_EQ(s.intended_ns(i), i * 1'000'000) << i;
  EXPECT_DOUBLE_EQ(s.rate_at(0.5), 1000);
}

TEST(Schedule, StepsChangeRateAtTheBoundary) {
  const Schedule s = Schedule::steps({{1, 100}, {1, 1000}});
  EXPECT_EQ(s.message_count(), 1100u);
  EXPECT_EQ(s.intended_ns(99), 990'000'000u);     // last of the first step
  EXPECT_EQ(s.intended_ns(100), 1'000'000'000u);  // first of the second, at the boundary
  EXPECT_EQ(s.intended_ns(101), 1'001'000'000u);
  EXPECT_DOUBLE_EQ(s.mean_rate(0, 2), 550);
}

TEST(Schedule, RampSendsTheIntegralOfItsRate) {
  const Schedule s = Schedule::ramp(1000, 3000, 4);  // mean 2000/s over 4 s
  EXPECT_EQ(s.message_count(), 8000u);
  // Monotone, and the local rate follows the ramp.
  for (double t : {0.5, 1.5, 2.5, 3.5}) {
    std::uint64_t i = 0;
    while (s.intended_ns(i) < static_cast<std::uint64_t>(t * 1e9)) ++i;
    const double gap = static_cast<double>(s.intended_ns(i + 1) - s.intended_ns(i)) / 1e9;
    EXPECT_NEAR(1 / gap, s.rate_at(t), s.rate_at(t) * 0.01) << t;
  }
  for (std::uint64_t i = 1; i < s.message_count(); ++i) ASSERT_GT(s.intended_ns(i), s.intended_ns(i - 1));
}

TEST(Schedule, RampFromZeroStartsSlowly) {
  const Schedule s = Schedule::ramp(0, 2000, 2);  // N(t) = 500 t^2
  EXPECT_EQ(s.message_count(), 2000u);
  EXPECT_EQ(s.intended_ns(0), 0u);
  EXPECT_NEAR(static_cast<double>(s.intended_ns(500)), 1e9, 1);  // 500 * 1^2 = 500
}

TEST(Schedule, ZeroRateStepIsAPause) {
  const Schedule s = Schedule::steps({{1, 10}, {2, 0}, {1, 10}});
  EXPECT_EQ(s.message_count(), 20u);
  EXPECT_EQ(s.intended_ns(9), 900'000'000u);
  EXPECT_EQ(s.intended_ns(10), 3'000'000'000u);  // nothing during the pause
}

TEST(Schedule, BeyondTheEndTheLastRateHolds) {
  const Schedule s = Schedule::constant(100, 1);
  EXPECT_EQ(s.intended_ns(150), 1'500'000'000u);
}

TEST(Schedule, WarmupAndDurationReshapeTheSchedule) {
  const Schedule s = Schedule::steps({{2, 100}, {2, 200}});
  const Schedule w = s.with_warmup(1);
  EXPECT_DOUBLE_EQ(w.duration(), 5);
  EXPECT_EQ(w.message_count(), 100u + 200 + 400);
  EXPECT_EQ(s.with_duration(3).message_count(), 400u);   // 2 s at 100 + 1 s at 200
  EXPECT_EQ(s.with_duration(6).message_count(), 1000u);  // the last rate held 2 s more
  EXPECT_DOUBLE_EQ(Schedule::ramp(0, 100, 10).with_duration(5).segments().back().to, 50);
}

TEST(Schedule, BadSegmentsAreRejectedNamingTheSegment) {
  auto r = Schedule::validate({{1, 100, 100}, {0, 100, 100}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "schedule: segment 2: seconds = 0 is out of range (allowed: > 0)");
  r = Schedule::validate({{1, -5, -5}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("rate = -5 is out of range"), std::string::npos) << r.error();
  EXPECT_THROW(Schedule({{1, NAN, 1}}), std::invalid_argument);
}

TEST(Schedule, StepsParseFromText) {
  auto s = parse_steps("1000:2,2000:1.5");
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->message_count(), 5000u);
  auto bad = parse_steps("1000-2");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("is not RATE:SECONDS"), std::string::npos) << bad.error();
  EXPECT_FALSE(parse_steps("1000:0"));
}

TEST(Schedule, DescribeSaysWhatItDoes) {
  EXPECT_EQ(Schedule::constant(200000, 10).describe(), "200000/s");
  EXPECT_EQ(Schedule::steps({{5, 1000}, {5, 2000}}).describe(), "1000/s over 5s, then 2000/s over 5s");
  EXPECT_EQ(Schedule::ramp(1000, 50000, 30).describe(), "ramp 1000/s -> 50000/s over 30s");
}

// Drives a controller with a fake clock that advances by uneven steps and
// sends whatever is due; returns the clock reading at which each message left.
std::vector<std::uint64_t> pace(RateController& rc, std::uint64_t max_step_ns, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint64_t> sent_at;
  std::uint64_t now = 0;
  while (!rc.done()) {
    const std::uint64_t due = rc.due_count(now);
    for (std::uint64_t k = 0; k < due; ++k) {
      EXPECT_LE(rc.next_due_ns(), now);  // never early
      sent_at.push_back(now);
      rc.advance();
    }
    if (!rc.done()) {
      EXPECT_GT(rc.next_due_ns(), now);  // nothing due is left behind
    }
    now += 1 + rng() % max_step_ns;
  }
  return sent_at;
}

TEST(RateController, OnAFakeClockSendsEachMessageAtItsFirstTickAfterItsIntendedTime) {
  const Schedule s = Schedule::steps({{1, 5000}, {1, 20000}}).with_warmup(0.5);
  RateController rc(s);
  const auto sent_at = pace(rc, 50'000, 1);
  ASSERT_EQ(sent_at.size(), s.message_count());
  for (std::size_t i = 0; i < sent_at.size(); ++i) {
    ASSERT_GE(sent_at[i], s.intended_ns(i));
    ASSERT_LE(sent_at[i] - s.intended_ns(i), 50'000u) << i;  // late by less than one clock step
  }
}

TEST(RateController, MessagesPerSecondMatchTheScheduleWithinOne) {
  const Schedule s = Schedule::ramp(1000, 9000, 4);
  RateController rc(s);
  const auto sent_at = pace(rc, 20'000, 2);
  std::vector<double> per_second(4, 0);
  for (std::uint64_t t : sent_at) per_second[std::min<std::size_t>(3, t / 1'000'000'000)] += 1;
  for (int sec = 0; sec < 4; ++sec) {
    EXPECT_NEAR(per_second[sec], s.mean_rate(sec, sec + 1), 1.0 + 20'000 * 1e-9 * s.rate_at(sec + 1)) << sec;
  }
}

TEST(RateController, GeneratorsSplittingAScheduleSendEveryMessageOnce) {
  const Schedule s = Schedule::constant(10'000, 0.5);
  std::set<std::uint64_t> seen;
  for (std::uint64_t g = 0; g < 3; ++g) {
    RateController rc(s, 0, g, 3);
    while (!rc.done()) {
      EXPECT_EQ(rc.next_index() % 3, g);
      EXPECT_EQ(rc.next_due_ns(), s.intended_ns(rc.next_index()));
      EXPECT_TRUE(seen.insert(rc.next_index()).second);
      rc.advance();
    }
  }
  EXPECT_EQ(seen.size(), s.message_count());
}

TEST(RateController, AnEndBeyondTheScheduleKeepsTheLastRate) {
  RateController rc(Schedule::constant(1000, 1), 1500);
  std::uint64_t last = 0, n = 0;
  while (!rc.done()) {
    last = rc.next_due_ns();
    ++n;
    rc.advance();
  }
  EXPECT_EQ(n, 1500u);
  EXPECT_EQ(last, 1'499'000'000u);
}

}  // namespace
}  // namespace swarm::load
