// The timer wheel alone: ordering, rounding up, cancel, periodic re-arming.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <vector>

#include "base/mutex.hpp"
#include "runtime/detail/timer_wheel.hpp"
#include "runtime/test_util.hpp"

namespace swarm::detail {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Records what fired and when; `fire` is the wheel's callback.
struct Fired {
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
      at.push_back(Clock::now());
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

TEST(TimerWheel, FiresInDueOrderAndNeverEarly) {
  Fired fired;
  TimerWheel wheel(1ms, fired.fire());
  auto t0 = Clock::now();
  wheel.add(entry(3), 30ms);
  wheel.add(entry(1), 10ms);
  wheel.add(entry(2), 20ms);
  ASSERT_TRUE(test::eventually([&] { return fired.count() == 3; }));
  MutexLock l(fired.mu);
  EXPECT_EQ(fired.kinds, (std::vector<std::uint32_t>{1, 2, 3}));
  EXPECT_GE(fired.at[0] - t0, 10ms);
  EXPECT_GE(fired.at[2] - t0, 30ms);
}

TEST(TimerWheel, DelaysBeyondOneRevolutionWaitTheirTurn) {
  Fired fired;
  // 4096 slots of 100us: one revolution is ~410 ms; 500 ms wraps around once.
  TimerWheel wheel(100us, fired.fire());
  auto t0 = Clock::now();
  wheel.add(entry(7), 500ms);
  ASSERT_TRUE(test::eventually([&] { return fired.count() == 1; }));
  MutexLock l(fired.mu);
  EXPECT_GE(fired.at[0] - t0, 500ms);
}

TEST(TimerWheel, CancelPreventsFiringAndReportsWhetherItWasPending) {
  std::atomic<int> fired{0};
  TimerWheel wheel(1ms, [&](const TimerEntry&) {
    fired.fetch_add(1);
    return true;
  });
  TimerId id = wheel.add(entry(1), 50ms);
  EXPECT_EQ(wheel.pending(), 1u);
  EXPECT_TRUE(wheel.cancel(id));
  EXPECT_FALSE(wheel.cancel(id));
  EXPECT_FALSE(wheel.cancel(12345));
  EXPECT_EQ(wheel.pending(), 0u);
  TimerId marker = wheel.add(entry(2), 80ms);
  (void)marker;
  ASSERT_TRUE(test::eventually([&] { return fired.load() == 1; }));
  EXPECT_EQ(fired.load(), 1);  // only the marker
}

TEST(TimerWheel, PeriodicRearmsUntilFireReportsTheTargetGone) {
  std::atomic<int> fired{0};
  TimerWheel wheel(1ms, [&](const TimerEntry&) { return fired.fetch_add(1) + 1 < 5; });
  wheel.add(entry(1, 2ms), 2ms);
  ASSERT_TRUE(test::eventually([&] { return fired.load() == 5; }));
  ASSERT_TRUE(test::eventually([&] { return wheel.pending() == 0; }));
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(fired.load(), 5);
}

TEST(TimerWheel, CancelAllDropsEverything) {
  std::atomic<int> fired{0};
  TimerWheel wheel(1ms, [&](const TimerEntry&) {
    fired.fetch_add(1);
    return true;
  });
  for (int i = 0; i < 100; ++i) wheel.add(entry(1), 30ms);
  wheel.cancel_all();
  EXPECT_EQ(wheel.pending(), 0u);
  std::this_thread::sleep_for(60ms);
  EXPECT_EQ(fired.load(), 0);
}

}  // namespace
}  // namespace swarm::detail
