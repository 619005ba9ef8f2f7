#pragma once
// Timers: a hashed timing wheel driven by one timer thread, so workers never
// sleep. Workers add and cancel timers through a short critical section; the
// wheel itself belongs to the timer thread. When a timer fires, the thread
// calls `fire(entry)`, which delivers the message; a periodic timer is
// re-armed unless fire() returns false (its target is gone). Thread-safe.
//
// Time comes from a swarm::Clock (nullptr: the real steady clock). Without a
// thread (Drive::manual, the runtime's step mode) nothing fires until the
// owner calls fire_due() after moving its clock.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/mutex.hpp"
#include "metrics/instruments.hpp"
#include "runtime/clock.hpp"
#include "runtime/message.hpp"

namespace swarm::detail {

using TimerId = std::uint64_t;

struct TimerEntry {
  TimerId id = 0;
  AgentRef target;
  AgentRef sender;
  std::uint32_t kind = 0;
  SystemKind system = SystemKind::user;
  std::uint64_t correlation_id = 0;  // ask timeouts: the request's
  Payload payload;
  std::chrono::nanoseconds period{0};  // 0 = one-shot
  // -- owned by the timer thread ---
  std::uint64_t due_tick = 0;
  TimerEntry* next = nullptr;
  bool firing = false;  // out of its slot while fire() runs
};

class TimerWheel {
 public:
  /// fire: delivers one timer's message; returns false if the target is gone.
  using FireFn = std::function<bool(const TimerEntry&)>;

  /// Who makes timers fire: the wheel's own thread, or the owner's fire_due().
  enum class Drive : std::uint8_t { thread, manual };

  /// lag: how late each timer fired (a disabled histogram records nothing).
  /// clock: where time is read (nullptr: std::chrono::steady_clock); it must
  /// outlive the wheel. With a clock other than the real one and Drive::thread,
  /// the thread looks at the clock once per tick of real time.
  TimerWheel(std::chrono::nanoseconds tick, FireFn fire, metrics::Histogram lag = {}, const Clock* clock = nullptr,
             Drive drive = Drive::thread);
  ~TimerWheel();  // stops the thread; pending timers are dropped
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  /// Arms a timer that fires after `delay` (rounded up to the tick).
  TimerId add(TimerEntry entry, std::chrono::nanoseconds delay);
  /// Cancels a timer. Returns false if it already fired or never existed.
  /// A one-shot timer that is firing concurrently may still deliver once.
  bool cancel(TimerId id);
  /// Drops every pending timer (used at shutdown).
  void cancel_all();

  std::size_t pending() const;  // armed timers

  // -- Drive::manual ---

  /// Fires every timer due by the clock's now (re-arming periodic ones after
  /// it), on the calling thread; returns how many fired. REQUIRES: Drive::manual.
  std::size_t fire_due();
  /// When the earliest armed timer is due, or nullopt when none is armed.
  std::optional<Clock::time_point> next_due() const;

 private:
  static constexpr unsigned kSlots = 4096;
  void run();
  // Takes the timers due up to tick `now` out of their slots (marked firing).
  void collect_due_locked(std::uint64_t now, std::vector<TimerEntry*>& due) SWARM_REQUIRES(mu_);
  // Calls fire() for `due` without the lock, then re-arms or deletes each.
  void fire_locked(std::vector<TimerEntry*>& due) SWARM_REQUIRES(mu_);
  void place_locked(TimerEntry* e) SWARM_REQUIRES(mu_);
  std::uint64_t tick_of(Clock::time_point t) const;

  // -- constant after construction ---
  const std::chrono::nanoseconds tick_;
  const Clock* const clock_;  // nullptr: the real steady clock
  const Clock::time_point epoch_;
  const FireFn fire_;
  const metrics::Histogram lag_;

  mutable Mutex mu_;
  CondVar cv_;
  bool stop_ SWARM_GUARDED_BY(mu_) = false;
  TimerId next_id_ SWARM_GUARDED_BY(mu_) = 1;
  std::uint64_t current_tick_ SWARM_GUARDED_BY(mu_) = 0;
  std::uint64_t sleeping_until_ SWARM_GUARDED_BY(mu_) = 0;  // tick the thread waits for
  std::vector<TimerEntry*> slots_ SWARM_GUARDED_BY(mu_);
  std::unordered_map<TimerId, TimerEntry*> live_ SWARM_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace swarm::detail
