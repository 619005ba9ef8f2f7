#pragma once
// Work-stealing scheduler: a fixed set of worker threads that run agents.
//
// Each worker owns a FIFO run queue that others may steal half of, plus a
// one-agent "next" slot (not stealable) for the agent it just made runnable:
// a message exchange between two agents stays on one core with no wake-up.
// External threads hand agents over through a shared injector. A worker with
// nothing to do spins briefly, then parks on a futex; a producer wakes one
// sleeper when it makes stealable work. Thread-safe.
//
// Parking protocol (Dekker-style, both sides seq_cst): a producer publishes
// work, then reads sleepers_; a parking worker increments sleepers_, then
// re-checks every queue. One of them must see the other.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "base/mutex.hpp"
#include "runtime/detail/run_queue.hpp"

namespace swarm {
class Agent;
class Runtime;
}  // namespace swarm

namespace swarm::detail {

class Scheduler;

/// Per-worker counters: written by the worker alone, read by anyone.
struct WorkerStats {
  std::atomic<std::uint64_t> activations{0};
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> steals{0};
  std::atomic<std::uint64_t> parks{0};
  std::atomic<std::uint64_t> parked_ns{0};
  std::atomic<std::uint64_t> parked_since{0};  // steady-clock ns while parked, else 0
  std::atomic<std::uint64_t> overflows{0};  // pushes that found the local run queue full

  void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

struct alignas(64) Worker {
  // -- constant after construction ---
  Scheduler* scheduler = nullptr;
  unsigned index = 0;
  // -- owner only ---
  Agent* next = nullptr;        // made runnable by the agent that ran last
  unsigned next_streak = 0;     // consecutive runs taken from `next`
  std::uint64_t tick = 0;
  std::uint32_t rng = 0;
  // -- own synchronization ---
  RunQueue<Agent> queue;
  std::atomic<std::uint32_t> wake{0};
  WorkerStats stats;
  // The agent of the current (or last) activation, as AgentRef bits; with
  // telemetry on. Read by the slow-handler watchdog and /debug/agents.
  std::atomic<std::uint64_t> running_agent{0};
  std::thread thread;
};

class Scheduler {
 public:
  Scheduler(Runtime& runtime, unsigned workers);
  ~Scheduler();  // stops and joins
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void start();
  /// Wakes every worker and joins them. REQUIRES: no agent left to run.
  void stop();

  /// Makes `agent` runnable. Called by whoever moved its reservations from 0 to 1.
  void schedule(Agent* agent) noexcept;
  /// Puts an agent that used its budget back in line behind the others.
  void yield(Agent* agent) noexcept;

  /// True when every worker is parked and no queue holds an agent.
  bool quiescent() const noexcept;

  unsigned worker_count() const { return static_cast<unsigned>(workers_.size()); }
  const WorkerStats& stats(unsigned i) const { return workers_[i]->stats; }
  const Worker& worker(unsigned i) const { return *workers_[i]; }
  /// Agents in worker i's run queue (racy snapshot).
  std::size_t queue_depth(unsigned i) const noexcept { return workers_[i]->queue.size(); }
  std::size_t injector_depth() const noexcept { return injector_size_.load(std::memory_order_relaxed); }
  /// The worker running on this thread, or nullptr outside the workers.
  static Worker* current() noexcept;

 private:
  void run_worker(Worker& w);
  Agent* find_work(Worker& w) noexcept;
  Agent* search(Worker& w) noexcept;
  Agent* steal(Worker& w) noexcept;
  Agent* take_injected(Worker& w) noexcept;
  void push_local(Worker& w, Agent* a) noexcept;
  void inject(Agent* a) noexcept;
  void notify_work() noexcept;
  bool has_stealable_work() const noexcept;
  bool park(Worker& w);

  Runtime& runtime_;
  std::vector<std::unique_ptr<Worker>> workers_;  // constant after construction
  std::atomic<bool> stopping_{false};
  std::atomic<int> sleepers_{0};

  Mutex injector_mu_;
  std::deque<Agent*> injector_ SWARM_GUARDED_BY(injector_mu_);
  std::atomic<std::size_t> injector_size_{0};

  Mutex idle_mu_;
  std::vector<Worker*> idle_ SWARM_GUARDED_BY(idle_mu_);
};

}  // namespace swarm::detail
