#pragma once
// Where the runtime reads time for what time means to it: timers
// (send_after, send_periodic), ask and request timeouts, supervisors'
// restart-intensity windows and child stop timeouts, and, in step mode, the
// shutdown deadline. Latency measurement (telemetry), the scheduler's spin and
// park timings and message TTLs (SendOptions::ttl, which cross nodes) always
// use the real steady clock.
//
//   auto clock = std::make_shared<swarm::test::ManualClock>();
//   swarm::RuntimeConfig cfg;
//   cfg.clock = clock;                   // unset: std::chrono::steady_clock
//   ...
//   clock->advance(std::chrono::milliseconds(50));  // time moves only here
//
// A runtime reads its clock on timer and supervision paths only, never per
// message, so the virtual call costs the hot path nothing.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace swarm {

/// A source of steady time. Implementations are thread-safe: the timer thread,
/// workers and callers read it at once.
class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  /// Never goes backwards.
  virtual time_point now() const noexcept = 0;
};

namespace detail {
/// `clock`'s time, or the real steady clock's when `clock` is nullptr (the
/// default: no virtual call).
inline Clock::time_point now(const Clock* clock) noexcept {
  return clock != nullptr ? clock->now() : std::chrono::steady_clock::now();
}
}  // namespace detail

namespace test {

/// A clock that moves only when told to. It starts at a fixed point (one hour
/// after the steady clock's epoch), so every run sees the same times. Thread-safe.
class ManualClock final : public Clock {
 public:
  ManualClock() = default;
  explicit ManualClock(time_point start) : ns_(start.time_since_epoch().count()) {}

  time_point now() const noexcept override {
    return time_point(std::chrono::nanoseconds(ns_.load(std::memory_order_acquire)));
  }
  /// Moves the clock forward by `d`. REQUIRES: d >= 0.
  void advance(std::chrono::nanoseconds d) noexcept { ns_.fetch_add(d.count(), std::memory_order_acq_rel); }
  /// Moves the clock to `t` if that is later; never backwards.
  void advance_to(time_point t) noexcept {
    const std::int64_t target = t.time_since_epoch().count();
    std::int64_t cur = ns_.load(std::memory_order_acquire);
    while (cur < target && !ns_.compare_exchange_weak(cur, target, std::memory_order_acq_rel)) {
    }
  }

 private:
  std::atomic<std::int64_t> ns_{std::chrono::nanoseconds(std::chrono::hours(1)).count()};
};

}  // namespace test
}  // namespace swarm
