#include "runtime/detail/timer_wheel.hpp"

#include <pthread.h>

#include <algorithm>
#include <limits>

#include "base/check.hpp"

namespace swarm::detail {

namespace {
constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
}

TimerWheel::TimerWheel(std::chrono::nanoseconds tick, FireFn fire, metrics::Histogram lag, const Clock* clock,
                       Drive drive)
    : tick_(tick),
      clock_(clock),
      epoch_(detail::now(clock)),
      fire_(std::move(fire)),
      lag_(lag),
      slots_(kSlots, nullptr) {
  if (drive == Drive::thread) thread_ = std::thread([this] { run(); });
}

TimerWheel::~TimerWheel() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  cancel_all();
}

std::uint64_t TimerWheel::tick_of(Clock::time_point t) const {
  return static_cast<std::uint64_t>((t - epoch_) / tick_);
}

TimerId TimerWheel::add(TimerEntry entry, std::chrono::nanoseconds delay) {
  auto* e = new TimerEntry(std::move(entry));
  // The first tick boundary at or after now + delay: never early, and exact
  // when now + delay falls on a boundary (as it does with a manual clock).
  const std::chrono::nanoseconds at = (detail::now(clock_) - epoch_) + std::max(delay, std::chrono::nanoseconds(0));
  const std::uint64_t due = static_cast<std::uint64_t>((at + tick_ - std::chrono::nanoseconds(1)) / tick_);
  bool wake;
  TimerId id;
  {
    MutexLock lock(mu_);
    id = e->id = next_id_++;
    e->due_tick = due;
    live_.emplace(e->id, e);
    place_locked(e);
    wake = due < sleeping_until_;
  }
  if (wake) cv_.notify_one();
  return id;  // not e->id: e may have fired and been deleted already
}

void TimerWheel::place_locked(TimerEntry* e) {
  if (e->due_tick <= current_tick_) e->due_tick = current_tick_ + 1;
  TimerEntry*& head = slots_[e->due_tick % kSlots];
  e->next = head;
  head = e;
}

bool TimerWheel::cancel(TimerId id) {
  MutexLock lock(mu_);
  auto it = live_.find(id);
  if (it == live_.end()) return false;
  TimerEntry* e = it->second;
  live_.erase(it);
  if (e->firing) return true;  // run() deletes it once fire() returns
  TimerEntry** link = &slots_[e->due_tick % kSlots];
  while (*link != e) link = &(*link)->next;
  *link = e->next;
  delete e;
  return true;
}

void TimerWheel::cancel_all() {
  MutexLock lock(mu_);
  for (auto& [id, e] : live_) {
    if (!e->firing) delete e;  // run() deletes those being fired
  }
  live_.clear();
  for (auto& s : slots_) s = nullptr;
}

std::size_t TimerWheel::pending() const {
  MutexLock lock(mu_);
  return live_.size();
}

std::size_t TimerWheel::fire_due() {
  SWARM_DCHECK(!thread_.joinable());
  MutexLock lock(mu_);
  std::size_t fired = 0;
  for (;;) {
    std::vector<TimerEntry*> due;
    collect_due_locked(tick_of(detail::now(clock_)), due);
    if (due.empty()) return fired;  // re-armed and newly added timers are due after the current tick
    fired += due.size();
    fire_locked(due);
  }
}

std::optional<Clock::time_point> TimerWheel::next_due() const {
  MutexLock lock(mu_);
  std::optional<std::uint64_t> first;
  for (const auto& [id, e] : live_) {
    if (!e->firing && (!first || e->due_tick < *first)) first = e->due_tick;
  }
  if (!first) return std::nullopt;
  return epoch_ + tick_ * static_cast<std::int64_t>(*first);
}

void TimerWheel::run() {
  pthread_setname_np(pthread_self(), "swarm-timers");
  MutexLock lock(mu_);
  while (!stop_) {
    std::vector<TimerEntry*> due;
    collect_due_locked(tick_of(detail::now(clock_)), due);
    if (!due.empty()) {
      fire_locked(due);
      continue;
    }
    sleeping_until_ = live_.empty() ? kNever : current_tick_ + 1;
    if (sleeping_until_ == kNever) {
      cv_.wait(mu_, [&]() SWARM_REQUIRES(mu_) { return stop_ || !live_.empty(); });
    } else if (clock_ == nullptr) {
      cv_.wait_until(mu_, epoch_ + tick_ * sleeping_until_, [&]() SWARM_REQUIRES(mu_) { return stop_; });
    } else {
      // Another clock moves on its own terms: look at it once per tick of real time.
      cv_.wait_until(mu_, std::chrono::steady_clock::now() + tick_, [&]() SWARM_REQUIRES(mu_) { return stop_; });
    }
    sleeping_until_ = 0;
  }
}

void TimerWheel::collect_due_locked(std::uint64_t now, std::vector<TimerEntry*>& due) {
  while (current_tick_ < now) {
    ++current_tick_;
    TimerEntry** link = &slots_[current_tick_ % kSlots];
    while (*link != nullptr) {
      TimerEntry* e = *link;
      if (e->due_tick <= current_tick_) {
        *link = e->next;
        e->firing = true;
        due.push_back(e);
      } else {
        link = &e->next;
      }
    }
  }
}

void TimerWheel::fire_locked(std::vector<TimerEntry*>& due) {
  // Deliver without the lock: fire() may schedule agents that add timers.
  mu_.unlock();
  std::vector<bool> alive(due.size());
  const auto fired_at = detail::now(clock_);
  for (std::size_t i = 0; i < due.size(); ++i) {
    if (lag_) {
      const auto due_at = epoch_ + tick_ * static_cast<std::int64_t>(due[i]->due_tick);
      const auto late = std::chrono::duration_cast<std::chrono::nanoseconds>(fired_at - due_at).count();
      lag_.observe_ns(late > 0 ? static_cast<std::uint64_t>(late) : 0);
    }
    alive[i] = fire_(*due[i]);
  }
  mu_.lock();
  for (std::size_t i = 0; i < due.size(); ++i) {
    TimerEntry* e = due[i];
    e->firing = false;
    auto it = live_.find(e->id);
    if (it == live_.end()) {  // cancelled meanwhile
      delete e;
      continue;
    }
    if (e->period.count() > 0 && alive[i]) {
      e->due_tick = current_tick_ + static_cast<std::uint64_t>(std::max<std::int64_t>(1, e->period / tick_));
      place_locked(e);
    } else {
      live_.erase(it);
      delete e;
    }
  }
}

}  // namespace swarm::detail
