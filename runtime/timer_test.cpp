// The timer wheel alone: ordering, rounding up, cancel, periodic re-arming.
// On a manual clock with no thread (Drive::manual), so every time is exact;
// one test drives the wheel with its thread on the real clock.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <vector>

#include "base/mutex.hpp"
#include "runtime/clock.hpp"
#include "runtime/detail/timer_wheel.hpp"
#include "runtime/test_util.hpp"

namespace swarm::detail {
namespace {

using namespace std::chrono_literals;
using test::ManualClock;

// Records what fired and when (on the clock it was given); `fire` is the wheel's callback.
struct Fired {
  explicit Fired(const Clock* c = nullptr) : clock(c) {}
  const Clock* clock;
  Mutex mu;
  std::vector<std::uint32_t> kinds SWARM_GUARDED_BY(mu);
  std::vector<Clock::time_point> at SWARM_GUARDED_BY(mu);
  std::size_t count() {
    MutexLock l(mu);
    return kinds.size();
  }
  TimerWheel::FireFn fire() {
    return [this](const TimerEntry& e) {
      MutexLock l(mu);
      kinds.push_back(e.kind);
      at.push_back(detail::now(clock));
      return true;
    };
  }
};

TimerEntry entry(std::uint32_t kind, std::chrono::nanoseconds period = 0ns) {
  TimerEntry e;
  e.kind = kind;
  e.period = period;
  return e;
}

// A wheel without a thread on `clock`: it fires only in fire_due().
TimerWheel manual_wheel(ManualClock& clock, TimerWheel::FireFn fire, std::chrono::nanoseconds tick = 1ms) {
  return TimerWheel(tick, std::move(fire), {}, &clock, TimerWheel::Drive::manual);
}

TEST(TimerWheel, FiresInDueOrderAndNeverEarly) {
  ManualClock clock;
  Fired fired(&clock);
  TimerWheel wheel = manual_wheel(clock, fired.fire());
  const auto t0 = clock.now();
  wheel.add(entry(3), 30ms);
  wheel.add(entry(1), 10ms);
  wheel.add(entry(2), 20ms);
  for (auto step : {9ms, 1ms, 10ms, 10ms}) {
    clock.advance(step);
    wheel.fire_due();
  }
  MutexLock l(fired.mu);
  EXPECT_EQ(fired.kinds, (std::vector<std::uint32_t>{1, 2, 3}));
  ASSERT_EQ(fired.at.size(), 3u);
  EXPECT_EQ(fired.at[0] - t0, 10ms);  // not at 9 ms: never early; at 10 ms: exactly on time
  EXPECT_EQ(fired.at[1] - t0, 20ms);
  EXPECT_EQ(fired.at[2] - t0, 30ms);
}

TEST(TimerWheel, ADelayBetweenTicksIsRoundedUpToTheNextTick) {
  ManualClock clock;
  Fired fired(&clock);
  TimerWheel wheel = manual_wheel(clock, fired.fire());
  clock.advance(300us);  // mid-tick
  wheel.add(entry(1), 1ms);  // due at 1.3 ms: fires at the 2 ms boundary, never at 1 ms
  clock.advance(1ms - 300us);
  EXPECT_EQ(wheel.fire_due(), 0u);
  clock.advance(999us);
  EXPECT_EQ(wheel.fire_due(), 0u);
  clock.advance(1us);
  EXPECT_EQ(wheel.fire_due(), 1u);
}

TEST(TimerWheel, DelaysBeyondOneRevolutionWaitTheirTurn) {
  ManualClock clock;
  Fired fired(&clock);
  // 4096 slots of 100us: one revolution is ~410 ms; 500 ms wraps around once.
  TimerWheel wheel = manual_wheel(clock, fired.fire(), 100us);
  wheel.add(entry(7), 500ms);
  clock.advance(410ms);  // the timer's slot comes round once before it is due
  EXPECT_EQ(wheel.fire_due(), 0u);
  clock.advance(90ms - 1us);
  EXPECT_EQ(wheel.fire_due(), 0u);
  clock.advance(1us);
  EXPECT_EQ(wheel.fire_due(), 1u);
}

TEST(TimerWheel, CancelPreventsFiringAndReportsWhetherItWasPending) {
  ManualClock clock;
  std::atomic<int> fired{0};
  TimerWheel wheel = manual_wheel(clock, [&](const TimerEntry& e) {
    EXPECT_EQ(e.kind, 2u) << "a cancelled timer fired";
    fired.fetch_add(1);
    return true;
  });
  TimerId id = wheel.add(entry(1), 50ms);
  EXPECT_EQ(wheel.pending(), 1u);
  EXPECT_TRUE(wheel.cancel(id));
  EXPECT_FALSE(wheel.cancel(id));
  EXPECT_FALSE(wheel.cancel(12345));
  EXPECT_EQ(wheel.pending(), 0u);
  wheel.add(entry(2), 80ms);  // a marker: the wheel does fire what is not cancelled
  for (int i = 0; i < 1000; ++i) {  // tick by tick for a second, past the cancelled timer's slot
    clock.advance(1ms);
    wheel.fire_due();
  }
  clock.advance(1h);  // and far past it, over many revolutions
  wheel.fire_due();
  EXPECT_EQ(fired.load(), 1);  // only the marker
  EXPECT_EQ(wheel.pending(), 0u);
}

TEST(TimerWheel, PeriodicRearmsUntilFireReportsTheTargetGone) {
  ManualClock clock;
  std::atomic<int> fired{0};
  TimerWheel wheel = manual_wheel(clock, [&](const TimerEntry&) { return fired.fetch_add(1) + 1 < 5; });
  wheel.add(entry(1, 2ms), 2ms);
  for (int i = 1; i <= 5; ++i) {
    clock.advance(1ms);
    EXPECT_EQ(wheel.fire_due(), 0u) << "period " << i << " fired early";
    clock.advance(1ms);
    EXPECT_EQ(wheel.fire_due(), 1u) << "period " << i;
  }
  EXPECT_EQ(fired.load(), 5);
  EXPECT_EQ(wheel.pending(), 0u);  // the fifth fire said the target is gone
  clock.advance(1h);
  EXPECT_EQ(wheel.fire_due(), 0u);
  EXPECT_EQ(fired.load(), 5);
}

TEST(TimerWheel, NextDueNamesTheEarliestArmedTimer) {
  ManualClock clock;
  TimerWheel wheel = manual_wheel(clock, [](const TimerEntry&) { return true; });
  EXPECT_FALSE(wheel.next_due().has_value());
  const auto t0 = clock.now();
  wheel.add(entry(1), 30ms);
  TimerId first = wheel.add(entry(2), 10ms);
  EXPECT_EQ(wheel.next_due(), t0 + 10ms);
  wheel.cancel(first);
  EXPECT_EQ(wheel.next_due(), t0 + 30ms);
}

TEST(TimerWheel, CancelAllDropsEverything) {
  ManualClock clock;
  std::atomic<int> fired{0};
  TimerWheel wheel = manual_wheel(clock, [&](const TimerEntry&) {
    fired.fetch_add(1);
    return true;
  });
  for (int i = 0; i < 100; ++i) wheel.add(entry(1), 30ms);
  wheel.cancel_all();
  EXPECT_EQ(wheel.pending(), 0u);
  clock.advance(1h);
  EXPECT_EQ(wheel.fire_due(), 0u);
  EXPECT_EQ(fired.load(), 0);
}

// The thread and the real clock: what the runtime uses outside tests.
TEST(TimerWheel, ItsThreadFiresInDueOrderOnTheRealClockAndNeverEarly) {
  using Real = std::chrono::steady_clock;
  Fired fired;
  TimerWheel wheel(1ms, fired.fire());
  auto t0 = Real::now();
  wheel.add(entry(3), 30ms);
  wheel.add(entry(1), 10ms);
  wheel.add(entry(2), 20ms);
  ASSERT_TRUE(test::eventually([&] { return fired.count() == 3; }));
  MutexLock l(fired.mu);
  EXPECT_EQ(fired.kinds, (std::vector<std::uint32_t>{1, 2, 3}));
  EXPECT_GE(fired.at[0] - t0, 10ms);
  EXPECT_GE(fired.at[2] - t0, 30ms);
}

// A manual clock with the wheel's thread: the thread looks at the clock each tick.
TEST(TimerWheel, ItsThreadFollowsAManualClock) {
  ManualClock clock;
  std::atomic<int> fired{0};
  TimerWheel wheel(1ms, [&](const TimerEntry&) {
    fired.fetch_add(1);
    return true;
  }, {}, &clock, TimerWheel::Drive::thread);
  wheel.add(entry(1), 10s);
  clock.advance(10s - 1ms);
  clock.advance(1ms);
  ASSERT_TRUE(test::eventually([&] { return fired.load() == 1; }));
  EXPECT_EQ(wheel.pending(), 0u);
}

}  // namespace
}  // namespace swarm::detail
