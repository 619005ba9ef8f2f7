#pragma once
// Work-stealing scheduler: a fixed set of worker threads that run agents.
//
// Each worker owns a FIFO run queue that others may steal half of, plus a
// one-agent "next" slot for the agent it just made runnable: a message
// exchange between two agents stays on one core with no wake-up. External
// threads hand agents over through a shared injector. A worker with nothing
// to do spins briefly, then parks on a futex; a producer wakes one sleeper
// when it makes stealable work. Thread-safe.
//
// Spinning before parking (RuntimeConfig::idle_spin). Waking a parked worker
// takes a system call on the producer's side and, on a VM whose vCPU halted,
// 50 us to milliseconds before the worker runs; at a steady light load that
// is every message's latency. So after its brief search a worker may keep
// looking for a while: its window starts at 0, is doubled (from
// kSpinGrowStartNs, up to idle_spin) after a park that work ended sooner than
// idle_spin after the worker went idle, and halved (to 0 below
// kSpinGrowStartNs) after a longer one; work found while spinning keeps it.
// This is the kernel's guest halt polling (cpuidle-haltpoll) in user space:
// a steady 10k msgs/s keeps one worker spinning, 1k msgs/s or an idle runtime
// does not spin at all. One worker spins at a time (spinners_), so a burst of
// idleness never takes every core.
//
// The next slot is not announced to sleepers (that would cost a wake-up per
// message), so a handler that makes an agent runnable and then keeps running
// (a burst of sends) would hold that agent back. Hence one parked worker at a
// time is the *watcher*: while another worker is awake it sleeps with a
// timeout (kWatchFirstNs, doubling to kWatchMaxNs) instead of for good, and
// on each timeout looks at the busy workers' next slots; an agent that stays
// in one for kStaleNextNs while its owner's tick does not move (one activation
// still running) is taken over. A worker that fills its next slot wakes a
// sleeper to be the watcher when there is none; the watcher gives the role up
// when it finds work (handing it to a sleeper, if any) or when every worker is
// parked (then it sleeps for good: an idle runtime costs no CPU).
//
// Taking from a next slot (asymmetric Dekker). The owner takes its `next` on
// every hand-off, so that path has no atomic read-modify-write and no fence:
// it stores nullptr, then reads `claim`. The rare watcher stores `claim`, runs
// a heavy barrier (membarrier(2), which makes every running thread of the
// process execute a full fence), then CASes `next` to nullptr and publishes
// `verdict`. Either the owner's store is visible to the CAS (which then fails)
// or the owner's read sees the claim and waits for the verdict. The owner
// settles (clears) a claim before it fills or takes the slot again, so a
// verdict always speaks of the current occupant. Without membarrier (old
// kernels, ThreadSanitizer) both sides use seq_cst fences instead.
//
// Fan-out wake-ups (RuntimeConfig::batch_fanout). A publish to many agents
// makes many of them runnable at once; scheduling each as it comes (next
// slot, a push, a store-load fence to look for sleepers) costs more than the
// delivery itself. During a publish on a worker they are collected instead
// (up to 64) and queued together with one look for sleepers. One agent alone
// still goes to the next slot. Nothing waits longer than the publish.
//
// Shared fan-out (RuntimeConfig::shared_fanout, off by default). A publish to
// hundreds of agents keeps one worker busy making every delivery (an
// envelope, a reservation, a push, per receiver) while the others have little
// to do but steal the woken agents, whose slots and mailboxes that worker has
// just written. The router can hand such a publish over in parts
// (run_parts): the publisher's worker takes parts from the front; a worker
// whose own queue and the injector are empty takes them from the back (help)
// before it steals, queueing the agents it wakes on itself, so the receivers
// it delivered to also run there and it never runs far ahead of them. (A
// worker that helped before running its own agents let a 1,000-publish
// handler fill every mailbox: W3 made 20 k activations for 1 M deliveries, at
// half the speed.) The publish returns once every part is done, as before
// (its result, the order per sender and receiver, and the payload's lifetime
// are unchanged). A worker waiting for its helpers' last parts does not help
// others, so waits never form a cycle. The claims are one word per worker
// (generation, next part from the front, end from the back): a stale
// helper's CAS fails.
//
// Step mode (RuntimeConfig::step_mode, for deterministic tests): start() is
// never called, so no worker thread exists and every schedule() and yield()
// goes to the injector, a FIFO; the test's thread takes agents from it one at
// a time (take_for_step) and runs them on worker 0. No hot-path branch.
//
// Parking protocol (Dekker-style, both sides seq_cst): a producer publishes
// work, then reads sleepers_; a parking worker increments sleepers_, then
// re-checks every queue. One of them must see the other. The watcher role
// changes hands only under idle_mu_, as does every decrement of sleepers_, so
// a worker that leaves the idle list sees whether a watcher was left behind.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "base/mutex.hpp"
#include "router/router.hpp"
#include "runtime/detail/agent_table.hpp"
#include "runtime/detail/run_queue.hpp"

namespace swarm {
class Agent;
}  // namespace swarm

namespace swarm::detail {

class RuntimeCore;
class Scheduler;

/// Per-worker counters: written by the worker alone, read by anyone.
struct WorkerStats {
  std::atomic<std::uint64_t> activations{0};
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> steals{0};
  std::atomic<std::uint64_t> parks{0};
  std::atomic<std::uint64_t> parked_ns{0};
  std::atomic<std::uint64_t> parked_since{0};  // steady-clock ns while parked, else 0
  std::atomic<std::uint64_t> spin_ns{0};       // spent spinning for work after the brief search
  std::atomic<std::uint64_t> overflows{0};  // pushes that found the local run queue full
  std::atomic<std::uint64_t> shared_parts{0};  // parts of other workers' publishes delivered here

  void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

// A worker's publish being shared out (see "Shared fan-out"). `claims` packs
// generation << 32 | back << 16 | front: parts [front, back) are unclaimed.
struct alignas(64) SharedFanout {
  std::atomic<std::uint64_t> claims{0};
  std::atomic<std::uint32_t> helped{0};  // parts of this generation finished by others
  // Set by the owner before it publishes a generation in `claims`; read by
  // helpers only after a successful claim.
  router::FanoutHelper::Part part = nullptr;
  void* context = nullptr;
};

struct alignas(64) Worker {
  // -- constant after construction ---
  Scheduler* scheduler = nullptr;
  unsigned index = 0;
  // -- owner only ---
  unsigned next_streak = 0;     // consecutive runs taken from `next`
  std::uint32_t rng = 0;
  bool watching = false;        // holds the watcher role (mirrors Scheduler::watcher_)
  std::uint64_t spin_window_ns = 0;  // how long to spin before parking (see "Spinning before parking")
  IndexCache indices;  // free agent-table slots for spawns on this worker
  // Agents made runnable during a fan-out (see "Fan-out wake-ups"); owner only.
  bool batching = false;
  unsigned batch_size = 0;
  Agent* batch[64];
  bool sharing = false;  // inside run_parts: this worker's publish is shared out
  // -- owner and helpers (see "Shared fan-out") ---
  SharedFanout shared;
  // -- the next slot: owner and watcher (see "Taking from a next slot") ---
  // Made runnable by the agent that runs (ran) last. Only the owner stores a
  // non-null value; the watcher only CASes it to nullptr.
  std::atomic<Agent*> next{nullptr};
  // Bumped each time the owner looks for work: unchanged = still in one activation.
  std::atomic<std::uint64_t> tick{0};
  // The agent the watcher is trying to take from `next`; set by the watcher,
  // cleared by the owner when it has read `verdict`.
  std::atomic<Agent*> claim{nullptr};
  // The watcher's result for `claim`: the agent if it took it, else kNotTaken.
  std::atomic<Agent*> verdict{nullptr};
  // -- own synchronization ---
  RunQueue<Agent> queue;
  std::atomic<std::uint32_t> wake{0};
  WorkerStats stats;
  // The agent of the current (or last) activation, as AgentRef bits; with
  // telemetry on. Read by the slow-handler watchdog and /debug/agents.
  std::atomic<std::uint64_t> running_agent{0};
  std::thread thread;
};

class Scheduler final : public router::FanoutHelper {
 public:
  Scheduler(RuntimeCore& runtime, unsigned workers, std::chrono::nanoseconds idle_spin);
  ~Scheduler();  // stops and joins
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void start();
  /// Wakes every worker and joins them. REQUIRES: no agent left to run.
  void stop();
  /// stop() has begun: workers finish and exit (they are then neither parked nor running).
  bool stopped() const noexcept { return stopping_.load(std::memory_order_acquire); }

  /// Makes `agent` runnable. Called by whoever moved its reservations from 0 to 1.
  void schedule(Agent* agent) noexcept;
  /// Puts an agent that used its budget back in line behind the others.
  void yield(Agent* agent) noexcept;
  /// On a worker: agents made runnable until end_fanout() are held back and
  /// then queued together, with one wake-up (see "Fan-out wake-ups"). Returns
  /// false (and does nothing) off the workers or when already batching.
  bool begin_fanout() noexcept;
  void end_fanout() noexcept;
  /// On a worker with others: runs the parts of a publish here and on workers
  /// that help (see "Shared fan-out"); elsewhere one after another.
  void run_parts(std::size_t parts, Part part, void* context) noexcept override;

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

  // -- step mode: no threads (see the overview) ---

  /// The agent made runnable first and not run since, or nullptr. REQUIRES:
  /// start() was never called.
  Agent* take_for_step() noexcept;
  /// True when take_for_step() would return an agent.
  bool runnable_for_step() const noexcept { return injector_size_.load(std::memory_order_acquire) != 0; }
  /// The worker whose counters step-mode activations use.
  Worker& step_worker() noexcept { return *workers_[0]; }

 private:
  void run_worker(Worker& w);
  Agent* find_work(Worker& w) noexcept;
  Agent* search(Worker& w) noexcept;
  Agent* look_once(Worker& w) noexcept;
  Agent* spin(Worker& w) noexcept;
  void adapt_spin(Worker& w, std::uint64_t idle_ns) noexcept;
  Agent* steal(Worker& w) noexcept;
  bool help(Worker& w) noexcept;
  Agent* take_injected(Worker& w) noexcept;
  Agent* take_next(Worker& w) noexcept;
  Agent* settle_claim(Worker& w, Agent* taken) noexcept;
  bool try_take_from(Worker& victim, Agent* agent) noexcept;
  void push_local(Worker& w, Agent* a) noexcept;
  void flush_batch(Worker& w) noexcept;
  void inject(Agent* a) noexcept;
  void notify_work() noexcept;
  bool has_stealable_work() const noexcept;
  // -- parking and the watcher ---
  enum class Unpark { woken, stopping, stolen };
  Unpark park(Worker& w, Agent*& stolen);
  void leave_idle(Worker& w);
  void wake_watcher() noexcept;
  void resign_watch(Worker& w) noexcept;
  Worker* stale_next(Worker& w, Agent*& agent) noexcept;

  RuntimeCore& runtime_;
  std::vector<std::unique_ptr<Worker>> workers_;  // constant after construction
  bool asymmetric_ = false;  // membarrier(2) available; constant after construction
  std::uint64_t idle_spin_ns_ = 0;  // RuntimeConfig::idle_spin; constant
  std::atomic<bool> stopping_{false};
  // Read on the hot path (every push and next-slot fill), written only on
  // park and wake-up: kept on a line of their own.
  alignas(64) std::atomic<int> sleepers_{0};
  // The watcher (see the overview), or nullptr. Written under idle_mu_; read
  // without the lock, where a stale read costs a wake-up or one watch period.
  std::atomic<Worker*> watcher_{nullptr};
  // Workers spinning past the brief search (0 or 1).
  std::atomic<unsigned> spinners_{0};
  // Publishes being shared out (see "Shared fan-out"): looked at in every
  // idle look for work, so on a line of its own.
  alignas(64) std::atomic<unsigned> shared_open_{0};

  alignas(64) Mutex injector_mu_;
  std::deque<Agent*> injector_ SWARM_GUARDED_BY(injector_mu_);
  std::atomic<std::size_t> injector_size_{0};

  Mutex idle_mu_;
  std::vector<Worker*> idle_ SWARM_GUARDED_BY(idle_mu_);
};

}  // namespace swarm::detail
