#pragma once
// An annotated std::mutex, so `-Wthread-safety` can check GUARDED_BY/REQUIRES.

#include <condition_variable>
#include <mutex>

#include "base/thread_annotations.hpp"

namespace swarm {

class SWARM_CAPABILITY("mutex") Mutex {
 public:
  void lock() SWARM_ACQUIRE() { mu_.lock(); }
  void unlock() SWARM_RELEASE() { mu_.unlock(); }
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

class SWARM_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) SWARM_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() SWARM_RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

// Waits on a Mutex held through MutexLock.
class CondVar {
 public:
  template <class Pred>
  void wait(Mutex& mu, Pred pred) {
    std::unique_lock<std::mutex> lk(mu.native(), std::adopt_lock);
    cv_.wait(lk, pred);
    lk.release();
  }
  template <class Clock, class Duration, class Pred>
  bool wait_until(Mutex& mu, std::chrono::time_point<Clock, Duration> t, Pred pred) {
    std::unique_lock<std::mutex> lk(mu.native(), std::adopt_lock);
    bool ok = cv_.wait_until(lk, t, pred);
    lk.release();
    return ok;
  }
  void notify_one() { cv_.notify_one(); }
  void notify_all() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace swarm
