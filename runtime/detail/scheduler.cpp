#include "runtime/detail/scheduler.hpp"

#include <pthread.h>

#include <chrono>
#include <string>

#include "runtime/runtime.hpp"

namespace swarm::detail {
namespace {

// The store-load barrier of the wake-up protocol (a worker publishes work then
// reads sleepers_; a parking worker bumps sleepers_ then looks for work).
// ThreadSanitizer does not model fences, so under it the barrier is a seq_cst
// read-modify-write of sleepers_, which orders the same way and which TSan
// understands; elsewhere a fence, which does not write a shared cache line.
#if defined(__SANITIZE_THREAD__)
#define SWARM_STORE_LOAD_BARRIER(counter) (void)(counter).fetch_add(0, std::memory_order_seq_cst)
#else
#define SWARM_STORE_LOAD_BARRIER(counter) std::atomic_thread_fence(std::memory_order_seq_cst)
#endif

constexpr unsigned kNextStreakMax = 64;  // then others waiting locally get a turn
constexpr unsigned kInjectorEvery = 61;  // check external work even when busy
constexpr unsigned kSearchRounds = 64;   // spin this long before parking
constexpr unsigned kStealBatch = 128;

thread_local Worker* tls_worker = nullptr;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace

Worker* Scheduler::current() noexcept { return tls_worker; }

Scheduler::Scheduler(Runtime& runtime, unsigned workers) : runtime_(runtime) {
  workers_.reserve(workers);
  for (unsigned i = 0; i < workers; ++i) {
    auto w = std::make_unique<Worker>();
    w->scheduler = this;
    w->index = i;
    w->rng = 0x9e3779b9u * (i + 1);
    workers_.push_back(std::move(w));
  }
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::start() {
  for (auto& w : workers_) {
    Worker* raw = w.get();
    raw->thread = std::thread([this, raw] { run_worker(*raw); });
  }
}

void Scheduler::stop() {
  stopping_.store(true, std::memory_order_seq_cst);
  for (auto& w : workers_) {
    w->wake.store(1, std::memory_order_release);
    w->wake.notify_one();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

// -- hand-over ---

void Scheduler::schedule(Agent* agent) noexcept {
  Worker* w = tls_worker;
  if (w == nullptr || w->scheduler != this) {
    inject(agent);
    return;
  }
  Agent* displaced = w->next;
  w->next = agent;
  if (displaced != nullptr) push_local(*w, displaced);
}

void Scheduler::yield(Agent* agent) noexcept {
  Worker* w = tls_worker;
  if (w == nullptr || w->scheduler != this) {
    inject(agent);
    return;
  }
  push_local(*w, agent);
}

void Scheduler::push_local(Worker& w, Agent* a) noexcept {
  if (!w.queue.push_back(a)) {
    w.stats.add(w.stats.overflows);
    inject(a);  // local queue full: overflow to the shared injector
    return;
  }
  notify_work();
}

void Scheduler::inject(Agent* a) noexcept {
  {
    MutexLock lock(injector_mu_);
    injector_.push_back(a);
    injector_size_.store(injector_.size(), std::memory_order_release);
  }
  notify_work();
}

void Scheduler::notify_work() noexcept {
  SWARM_STORE_LOAD_BARRIER(sleepers_);
  if (sleepers_.load(std::memory_order_relaxed) == 0) return;
  Worker* w = nullptr;
  {
    MutexLock lock(idle_mu_);
    if (idle_.empty()) return;
    w = idle_.back();
    idle_.pop_back();
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
  }
  w->wake.store(1, std::memory_order_release);
  w->wake.notify_one();
}

// -- worker loop ---

void Scheduler::run_worker(Worker& w) {
  tls_worker = &w;
  // Named for profiles, top -H and debuggers.
  pthread_setname_np(pthread_self(), ("swarm-worker-" + std::to_string(w.index)).c_str());
  for (;;) {
    Agent* a = find_work(w);
    if (a == nullptr) a = search(w);
    if (a != nullptr) {
      if (runtime_.activate(a, w)) {
        push_local(w, a);  // budget used up with messages left: back of the line
      }
      continue;
    }
    if (!park(w)) break;
  }
  tls_worker = nullptr;
}

Agent* Scheduler::find_work(Worker& w) noexcept {
  ++w.tick;
  if (w.tick % kInjectorEvery == 0) {
    if (Agent* a = take_injected(w)) return a;
  }
  if (w.next != nullptr) {
    // Keep a message exchange on this core, unless others are waiting here.
    bool others_wait = w.queue.size() != 0 || injector_size_.load(std::memory_order_relaxed) != 0;
    if (w.next_streak < kNextStreakMax || !others_wait) {
      Agent* a = w.next;
      w.next = nullptr;
      ++w.next_streak;
      return a;
    }
    push_local(w, w.next);
    w.next = nullptr;
  }
  w.next_streak = 0;
  if (Agent* a = w.queue.pop_front()) return a;
  return take_injected(w);
}

Agent* Scheduler::take_injected(Worker& w) noexcept {
  if (injector_size_.load(std::memory_order_acquire) == 0) return nullptr;
  MutexLock lock(injector_mu_);
  if (injector_.empty()) return nullptr;
  Agent* first = injector_.front();
  injector_.pop_front();
  // Take a fair share along, so external bursts spread without one lock each.
  std::size_t share = injector_.size() / workers_.size();
  for (std::size_t i = 0; i < share && i < kStealBatch; ++i) {
    if (!w.queue.push_back(injector_.front())) break;
    injector_.pop_front();
  }
  injector_size_.store(injector_.size(), std::memory_order_release);
  return first;
}

Agent* Scheduler::steal(Worker& w) noexcept {
  const unsigned n = worker_count();
  if (n < 2) return nullptr;
  w.rng ^= w.rng << 13;
  w.rng ^= w.rng >> 17;
  w.rng ^= w.rng << 5;
  unsigned start = w.rng % n;
  Agent* batch[kStealBatch];
  for (unsigned k = 0; k < n; ++k) {
    Worker& victim = *workers_[(start + k) % n];
    if (&victim == &w) continue;
    unsigned got = victim.queue.steal_half(batch, kStealBatch);
    if (got == 0) continue;
    w.stats.add(w.stats.steals);
    for (unsigned i = 1; i < got; ++i) {
      if (!w.queue.push_back(batch[i])) inject(batch[i]);
    }
    if (got > 1) notify_work();
    return batch[0];
  }
  return nullptr;
}

Agent* Scheduler::search(Worker& w) noexcept {
  for (unsigned round = 0; round < kSearchRounds; ++round) {
    if (Agent* a = take_injected(w)) return a;
    if (Agent* a = steal(w)) return a;
    if (Agent* a = w.queue.pop_front()) return a;
    if (stopping_.load(std::memory_order_relaxed)) return nullptr;
    for (int i = 0; i < 16; ++i) cpu_relax();
  }
  return nullptr;
}

bool Scheduler::has_stealable_work() const noexcept {
  if (injector_size_.load(std::memory_order_acquire) != 0) return true;
  for (const auto& w : workers_) {
    if (w->queue.size() != 0) return true;
  }
  return false;
}

bool Scheduler::quiescent() const noexcept {
  return sleepers_.load(std::memory_order_seq_cst) == static_cast<int>(workers_.size()) &&
         !has_stealable_work();
}

// Returns false when the scheduler is stopping.
bool Scheduler::park(Worker& w) {
  {
    MutexLock lock(idle_mu_);
    idle_.push_back(&w);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
  }
  SWARM_STORE_LOAD_BARRIER(sleepers_);
  if (has_stealable_work() || stopping_.load(std::memory_order_seq_cst)) {
    bool removed = false;
    {
      MutexLock lock(idle_mu_);
      for (auto it = idle_.begin(); it != idle_.end(); ++it) {
        if (*it == &w) {
          idle_.erase(it);
          sleepers_.fetch_sub(1, std::memory_order_seq_cst);
          removed = true;
          break;
        }
      }
    }
    if (!removed) {  // a producer popped us and is setting wake: consume it
      while (w.wake.load(std::memory_order_acquire) == 0) cpu_relax();
    }
    w.wake.store(0, std::memory_order_relaxed);
    return !stopping_.load(std::memory_order_acquire) || has_stealable_work();
  }
  w.stats.add(w.stats.parks);
  std::uint64_t t0 = now_ns();
  w.stats.parked_since.store(t0, std::memory_order_relaxed);
  while (w.wake.load(std::memory_order_acquire) == 0) w.wake.wait(0, std::memory_order_acquire);
  w.wake.store(0, std::memory_order_relaxed);
  w.stats.add(w.stats.parked_ns, now_ns() - t0);
  w.stats.parked_since.store(0, std::memory_order_relaxed);
  return !stopping_.load(std::memory_order_acquire);
}

}  // namespace swarm::detail
