#include "runtime/detail/timer_wheel.hpp"

#include <pthread.h>

#include <limits>

namespace swarm::detail {

namespace {
constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
}

TimerWheel::TimerWheel(std::chrono::nanoseconds tick, FireFn fire, metrics::Histogram lag)
    : tick_(tick),
      epoch_(std::chrono::steady_clock::now()),
      fire_(std::move(fire)),
      lag_(lag),
      slots_(kSlots, nullptr) {
  thread_ = std::thread([this] { run(); });
}

TimerWheel::~TimerWheel() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  cancel_all();
}

std::uint64_t TimerWheel::tick_of(std::chrono::steady_clock::time_point t) const {
  return static_cast<std::uint64_t>((t - epoch_) / tick_);
}

TimerId TimerWheel::add(TimerEntry entry, std::chrono::nanoseconds delay) {
  auto* e = new TimerEntry(std::move(entry));
  std::uint64_t ticks = static_cast<std::uint64_t>((delay + tick_ - std::chrono::nanoseconds(1)) / tick_);
  // +1: the current tick has partly elapsed, and a timer must never fire early.
  std::uint64_t due = tick_of(std::chrono::steady_clock::now()) + ticks + 1;
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

void TimerWheel::run() {
  pthread_setname_np(pthread_self(), "swarm-timers");
  MutexLock lock(mu_);
  while (!stop_) {
    std::uint64_t now = tick_of(std::chrono::steady_clock::now());
    std::vector<TimerEntry*> due;
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
    if (!due.empty()) {
      // Deliver without the lock: fire() may schedule agents that add timers.
      mu_.unlock();
      std::vector<bool> alive(due.size());
      const auto fired_at = std::chrono::steady_clock::now();
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
      continue;
    }
    sleeping_until_ = live_.empty() ? kNever : current_tick_ + 1;
    if (sleeping_until_ == kNever) {
      cv_.wait(mu_, [&]() SWARM_REQUIRES(mu_) { return stop_ || !live_.empty(); });
    } else {
      cv_.wait_until(mu_, epoch_ + tick_ * sleeping_until_, [&]() SWARM_REQUIRES(mu_) { return stop_; });
    }
    sleeping_until_ = 0;
  }
}

}  // namespace swarm::detail
