#include "runtime/detail/scheduler.hpp"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <iterator>
#include <string>
#include <thread>

#include "runtime/detail/runtime_core.hpp"

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
// The spin window's first step when it grows (see "Spinning before parking").
constexpr std::uint64_t kSpinGrowStartNs = 20'000;
// The watcher: first sleep, longest sleep (doubling in between) while another
// worker is awake, and how long an agent must sit in a busy worker's next slot,
// its owner still in the same activation, before the watcher takes it.
constexpr std::uint64_t kWatchFirstNs = 50'000;
constexpr std::uint64_t kWatchMaxNs = 1'000'000;
constexpr std::uint64_t kStaleNextNs = 10'000;

thread_local Worker* tls_worker = nullptr;

// SharedFanout::claims (see "Shared fan-out").
constexpr std::uint64_t kFrontPart = 1;
constexpr std::uint64_t kBackPart = 1 << 16;
constexpr std::size_t kMaxSharedParts = 0xffff;
std::size_t claims_front(std::uint64_t c) { return c & 0xffff; }
std::size_t claims_back(std::uint64_t c) { return (c >> 16) & 0xffff; }

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

// Raw futex calls on a worker's wake word: std::atomic::wait has no timeout,
// and libstdc++'s notify_one skips the system call when it has seen no
// std::atomic::wait, so both sides use the system call directly.
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
              std::atomic<std::uint32_t>::is_always_lock_free);

// Sleeps while `word` == 0, for at most `timeout_ns` (0: no limit). May return early.
void futex_wait(std::atomic<std::uint32_t>& word, std::uint64_t timeout_ns) noexcept {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, 0u,
          timeout_ns != 0 ? &ts : nullptr, nullptr, 0);
}

// The watcher's answer when its CAS on a next slot failed.
char not_taken_tag;
Agent* const kNotTaken = reinterpret_cast<Agent*>(&not_taken_tag);

// Registers the process for membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
// false when the kernel lacks it. Not under ThreadSanitizer, which does not
// know that a system call orders other threads' memory accesses.
bool register_membarrier() noexcept {
#if defined(__SANITIZE_THREAD__)
  return false;
#else
  static const bool ok = [] {
    const long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
    return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  }();
  return ok;
#endif
}

void wake(Worker& w) noexcept {
  w.wake.store(1, std::memory_order_release);
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w.wake), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

}  // namespace

Worker* Scheduler::current() noexcept { return tls_worker; }

Scheduler::Scheduler(RuntimeCore& runtime, unsigned workers, std::chrono::nanoseconds idle_spin)
    : runtime_(runtime),
      asymmetric_(register_membarrier()),
      idle_spin_ns_(static_cast<std::uint64_t>(std::max<std::int64_t>(0, idle_spin.count()))) {
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
  for (auto& w : workers_) wake(*w);
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
  if (w->batching) [[unlikely]] {
    w->batch[w->batch_size++] = agent;
    if (w->batch_size == std::size(w->batch)) flush_batch(*w);
    return;
  }
  if (w->claim.load(std::memory_order_relaxed) != nullptr) [[unlikely]] settle_claim(*w, nullptr);
  Agent* displaced = w->next.load(std::memory_order_relaxed);
  if (displaced == nullptr) {
    w->next.store(agent, std::memory_order_release);  // only the owner fills the slot
  } else {
    displaced = w->next.exchange(agent, std::memory_order_acq_rel);  // the watcher may have taken it
    if (displaced != nullptr) push_local(*w, displaced);
  }
  // If this handler runs on, someone idle must be able to take `agent` over.
  // (seq_cst: pairs with the watcher's resignation, see wake_watcher.)
  if (watcher_.load(std::memory_order_seq_cst) == nullptr && sleepers_.load(std::memory_order_relaxed) != 0)
      [[unlikely]] {
    wake_watcher();
  }
}

void Scheduler::yield(Agent* agent) noexcept {
  Worker* w = tls_worker;
  if (w == nullptr || w->scheduler != this) {
    inject(agent);
    return;
  }
  push_local(*w, agent);
}

bool Scheduler::begin_fanout() noexcept {
  Worker* w = tls_worker;
  if (w == nullptr || w->scheduler != this || w->batching) return false;
  w->batching = true;
  return true;
}

void Scheduler::end_fanout() noexcept {
  Worker& w = *tls_worker;
  w.batching = false;
  if (w.batch_size == 1) {
    w.batch_size = 0;
    schedule(w.batch[0]);  // one agent: the next slot, as without batching
  } else if (w.batch_size != 0) {
    flush_batch(w);
  }
}

void Scheduler::run_parts(std::size_t parts, Part part, void* context) noexcept {
  Worker* w = tls_worker;
  if (w == nullptr || w->scheduler != this || w->sharing || workers_.size() < 2 || parts < 2 ||
      parts > kMaxSharedParts) {
    for (std::size_t i = 0; i < parts; ++i) part(context, i);
    return;
  }
  w->sharing = true;
  SharedFanout& job = w->shared;
  job.part = part;
  job.context = context;
  job.helped.store(0, std::memory_order_relaxed);
  const std::uint64_t generation = (job.claims.load(std::memory_order_relaxed) >> 32) + 1;
  std::uint64_t c = generation << 32 | parts * kBackPart;
  job.claims.store(c, std::memory_order_release);
  shared_open_.fetch_add(1, std::memory_order_relaxed);
  std::size_t mine = 0;
  while (claims_front(c) < claims_back(c)) {
    if (job.claims.compare_exchange_weak(c, c + kFrontPart, std::memory_order_relaxed)) {
      part(context, claims_front(c));
      ++mine;
      c = job.claims.load(std::memory_order_relaxed);
    }
  }
  shared_open_.fetch_sub(1, std::memory_order_relaxed);
  // Every part is claimed; a helper finishes the ones it took.
  const std::size_t theirs = parts - mine;
  for (unsigned spins = 0; job.helped.load(std::memory_order_acquire) != theirs; ++spins) {
    if (spins < 4096) {
      cpu_relax();
    } else {
      std::this_thread::yield();  // the helper was descheduled mid-part
    }
  }
  w->sharing = false;
}

// Takes parts of other workers' shared publishes from the back until none is
// left, queueing the agents they wake here. True if it took any.
bool Scheduler::help(Worker& w) noexcept {
  if (shared_open_.load(std::memory_order_relaxed) == 0) [[likely]] return false;
  bool helped = false;
  for (const auto& owner : workers_) {
    if (owner.get() == &w) continue;
    SharedFanout& job = owner->shared;
    std::uint64_t c = job.claims.load(std::memory_order_acquire);
    while (claims_front(c) < claims_back(c)) {
      if (!job.claims.compare_exchange_weak(c, c - kBackPart, std::memory_order_acq_rel, std::memory_order_acquire)) {
        continue;
      }
      // What the part wakes goes to this worker's queue, never its next slot,
      // which look_once does not look at.
      w.batching = true;
      job.part(job.context, claims_back(c) - 1);
      w.batching = false;
      if (w.batch_size != 0) flush_batch(w);
      job.helped.fetch_add(1, std::memory_order_release);
      w.stats.add(w.stats.shared_parts);
      helped = true;
      c = job.claims.load(std::memory_order_acquire);
    }
  }
  return helped;
}

// Queues the held agents in the order they became runnable, then looks for
// sleepers once.
void Scheduler::flush_batch(Worker& w) noexcept {
  unsigned i = 0;
  while (i < w.batch_size && w.queue.push_back(w.batch[i])) ++i;
  if (i < w.batch_size) {  // the local queue is full: the rest to the injector, under one lock
    w.stats.add(w.stats.overflows);
    MutexLock lock(injector_mu_);
    for (; i < w.batch_size; ++i) injector_.push_back(w.batch[i]);
    injector_size_.store(injector_.size(), std::memory_order_release);
  }
  w.batch_size = 0;
  notify_work();
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
    // The watcher last: woken for work it stops watching.
    auto it = idle_.end() - 1;
    if (*it == watcher_.load(std::memory_order_relaxed) && idle_.size() > 1) --it;
    w = *it;
    idle_.erase(it);
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
  }
  wake(*w);
}

// -- worker loop ---

void Scheduler::run_worker(Worker& w) {
  tls_worker = &w;
  // Named for profiles, top -H and debuggers.
  pthread_setname_np(pthread_self(), ("swarm-worker-" + std::to_string(w.index)).c_str());
  for (;;) {
    Agent* a = find_work(w);
    if (a == nullptr) a = search(w);
    if (a == nullptr) {
      const std::uint64_t idle_since = idle_spin_ns_ != 0 ? now_ns() : 0;  // for adapt_spin
      a = spin(w);
      if (a == nullptr) {
        const Unpark u = park(w, a);
        if (u == Unpark::stopping) break;
        if (idle_since != 0) adapt_spin(w, now_ns() - idle_since);
        if (a == nullptr) continue;
      }
    }
    if (w.watching) [[unlikely]] resign_watch(w);  // busy now: someone else watches
    if (runtime_.activate(a, w)) {
      push_local(w, a);  // budget used up with messages left: back of the line
    }
  }
  tls_worker = nullptr;
}

Agent* Scheduler::find_work(Worker& w) noexcept {
  const std::uint64_t tick = w.tick.load(std::memory_order_relaxed) + 1;
  w.tick.store(tick, std::memory_order_relaxed);  // the watcher sees: the last activation ended
  if (tick % kInjectorEvery == 0) {
    if (Agent* a = take_injected(w)) return a;
  }
  if (w.next.load(std::memory_order_relaxed) != nullptr) {
    // Keep a message exchange on this core, unless others are waiting here.
    bool others_wait = w.queue.size() != 0 || injector_size_.load(std::memory_order_relaxed) != 0;
    if (w.next_streak < kNextStreakMax || !others_wait) {
      if (Agent* a = take_next(w)) {
        ++w.next_streak;
        return a;
      }
    } else if (Agent* a = take_next(w)) {
      push_local(w, a);
    }
  }
  w.next_streak = 0;
  if (Agent* a = w.queue.pop_front()) return a;
  return take_injected(w);
}

// The owner's side of "Taking from a next slot" (scheduler.hpp): a store and a
// load, ordered by the watcher's membarrier (or by a fence without it).
Agent* Scheduler::take_next(Worker& w) noexcept {
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer models neither fences nor membarrier: seq_cst operations
  // on both sides order the same store-load pair, in a way it understands.
  Agent* a = w.next.exchange(nullptr, std::memory_order_seq_cst);
  if (w.claim.load(std::memory_order_seq_cst) != nullptr) [[unlikely]] return settle_claim(w, a);
#else
  Agent* a = w.next.load(std::memory_order_relaxed);
  w.next.store(nullptr, std::memory_order_relaxed);
  if (asymmetric_) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  if (w.claim.load(std::memory_order_relaxed) != nullptr) [[unlikely]] return settle_claim(w, a);
#endif
  return a;
}

// The watcher claimed an agent of w's next slot: waits for its verdict, clears
// the claim, and returns `taken` unless the watcher got it (then nullptr).
Agent* Scheduler::settle_claim(Worker& w, Agent* taken) noexcept {
  Agent* verdict = nullptr;
  for (unsigned spins = 0; (verdict = w.verdict.load(std::memory_order_acquire)) == nullptr; ++spins) {
    if (spins < 1024) {
      cpu_relax();
    } else {
      std::this_thread::yield();  // the watcher was descheduled between claim and verdict
    }
  }
  w.verdict.store(nullptr, std::memory_order_relaxed);
  w.claim.store(nullptr, std::memory_order_release);  // the watcher may claim again
  return verdict == taken ? nullptr : taken;
}

// The watcher's side: true when it took `agent` out of victim's next slot.
bool Scheduler::try_take_from(Worker& victim, Agent* agent) noexcept {
  if (victim.claim.load(std::memory_order_acquire) != nullptr) return false;  // not settled yet
#if defined(__SANITIZE_THREAD__)
  victim.claim.store(agent, std::memory_order_seq_cst);  // see take_next
  Agent* expected = agent;
  const bool took =
      victim.next.compare_exchange_strong(expected, nullptr, std::memory_order_seq_cst, std::memory_order_seq_cst);
#else
  victim.claim.store(agent, std::memory_order_relaxed);
  if (asymmetric_) {
    // A full fence on every running thread of the process: after it, the
    // owner's store of nullptr is visible here or its next read sees the claim.
    syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  Agent* expected = agent;
  const bool took =
      victim.next.compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel, std::memory_order_relaxed);
#endif
  victim.verdict.store(took ? agent : kNotTaken, std::memory_order_release);
  return took;
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

Agent* Scheduler::look_once(Worker& w) noexcept {
  if (Agent* a = take_injected(w)) return a;
  // Helping first keeps the receivers a helper delivers to on its core; what
  // it wakes goes to its own queue, so it never runs far ahead of them.
  if (help(w)) {
    if (Agent* a = w.queue.pop_front()) return a;
  }
  if (Agent* a = steal(w)) return a;
  return w.queue.pop_front();
}

Agent* Scheduler::search(Worker& w) noexcept {
  for (unsigned round = 0; round < kSearchRounds; ++round) {
    if (Agent* a = look_once(w)) return a;
    if (stopping_.load(std::memory_order_relaxed)) return nullptr;
    for (int i = 0; i < 16; ++i) cpu_relax();
  }
  return nullptr;
}

// Keeps looking for work for the worker's spin window, unless another worker
// already spins (see "Spinning before parking").
Agent* Scheduler::spin(Worker& w) noexcept {
  if (w.spin_window_ns == 0) return nullptr;
  unsigned none = 0;
  if (!spinners_.compare_exchange_strong(none, 1, std::memory_order_relaxed)) return nullptr;
  const std::uint64_t start = now_ns();
  std::uint64_t now = start;
  Agent* found = nullptr;
  while (now - start < w.spin_window_ns && !stopping_.load(std::memory_order_relaxed)) {
    if ((found = look_once(w)) != nullptr) break;
    for (int i = 0; i < 16; ++i) cpu_relax();
    now = now_ns();
  }
  spinners_.store(0, std::memory_order_relaxed);
  w.stats.add(w.stats.spin_ns, now_ns() - start);
  return found;
}

// After a park: `idle_ns` is how long the worker had no work (spin + park).
// Work that came back within idle_spin could have been caught by spinning
// longer: grow; otherwise the spin was wasted: shrink.
void Scheduler::adapt_spin(Worker& w, std::uint64_t idle_ns) noexcept {
  std::uint64_t& window = w.spin_window_ns;
  if (idle_ns <= idle_spin_ns_) {
    window = std::min(idle_spin_ns_, std::max(window * 2, kSpinGrowStartNs));
  } else {
    window /= 2;
    if (window < kSpinGrowStartNs) window = 0;
  }
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

// -- step mode ---

Agent* Scheduler::take_for_step() noexcept {
  MutexLock lock(injector_mu_);
  if (injector_.empty()) return nullptr;
  Agent* a = injector_.front();
  injector_.pop_front();
  injector_size_.store(injector_.size(), std::memory_order_release);
  return a;
}

// -- parking and the watcher ---

// Parks until woken. Returns stopping when the scheduler stops (and no queue
// holds work), stolen when the watcher took an agent from a busy worker's next
// slot (in `stolen`; nullptr when the owner got it first), else woken.
Scheduler::Unpark Scheduler::park(Worker& w, Agent*& stolen) {
  const int n = static_cast<int>(workers_.size());
  {
    MutexLock lock(idle_mu_);
    idle_.push_back(&w);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
  }
  SWARM_STORE_LOAD_BARRIER(sleepers_);
  if (has_stealable_work() || stopping_.load(std::memory_order_seq_cst)) {
    leave_idle(w);
    const bool run_on = !stopping_.load(std::memory_order_acquire) || has_stealable_work();
    return run_on ? Unpark::woken : Unpark::stopping;
  }
  {
    // Someone is awake and may fill its next slot: watch it, unless another does.
    MutexLock lock(idle_mu_);
    if (watcher_.load(std::memory_order_relaxed) == nullptr && sleepers_.load(std::memory_order_relaxed) < n) {
      watcher_.store(&w, std::memory_order_seq_cst);
    }
    w.watching = watcher_.load(std::memory_order_relaxed) == &w;  // maybe handed over earlier
  }
  w.stats.add(w.stats.parks);
  const std::uint64_t t0 = now_ns();
  w.stats.parked_since.store(t0, std::memory_order_relaxed);
  Unpark result = Unpark::woken;
  std::uint64_t period = kWatchFirstNs;
  while (w.wake.load(std::memory_order_acquire) == 0) {
    if (!w.watching) {
      futex_wait(w.wake, 0);
      continue;
    }
    Agent* agent = nullptr;
    if (Worker* victim = stale_next(w, agent)) {
      leave_idle(w);  // awake from here on; consumes a wake-up that raced with us
      if (try_take_from(*victim, agent)) {
        w.stats.add(w.stats.steals);
        stolen = agent;
      }
      result = Unpark::stolen;
      break;
    }
    futex_wait(w.wake, period);
    period = std::min(period * 2, kWatchMaxNs);
    // Every worker parked: no next slot can fill before one is woken, and
    // whoever fills one then finds no watcher and wakes a sleeper.
    if (sleepers_.load(std::memory_order_seq_cst) == n) {
      MutexLock lock(idle_mu_);
      if (sleepers_.load(std::memory_order_relaxed) == n && watcher_.load(std::memory_order_relaxed) == &w) {
        watcher_.store(nullptr, std::memory_order_seq_cst);
        w.watching = false;
      }
    }
  }
  if (result != Unpark::stolen) {
    w.wake.store(0, std::memory_order_relaxed);
    // A wake-up may hand the watcher role over (wake_watcher, resign_watch).
    w.watching = watcher_.load(std::memory_order_relaxed) == &w;
  }
  w.stats.add(w.stats.parked_ns, now_ns() - t0);
  w.stats.parked_since.store(0, std::memory_order_relaxed);
  if (result == Unpark::stolen) return result;
  return stopping_.load(std::memory_order_acquire) ? Unpark::stopping : Unpark::woken;
}

// Takes a parked worker off the idle list. If a producer popped it first, that
// producer is about to set its wake word: wait for it and consume it.
void Scheduler::leave_idle(Worker& w) {
  bool removed = false;
  {
    MutexLock lock(idle_mu_);
    auto it = std::find(idle_.begin(), idle_.end(), &w);
    if (it != idle_.end()) {
      idle_.erase(it);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      removed = true;
    }
  }
  if (!removed) {
    while (w.wake.load(std::memory_order_acquire) == 0) cpu_relax();
  }
  w.wake.store(0, std::memory_order_relaxed);
  // The wake-up may have handed us the watcher role (wake_watcher, resign_watch).
  w.watching = watcher_.load(std::memory_order_seq_cst) == &w;
}

// A busy worker just filled its next slot and saw no watcher: wake a sleeper
// to be one. Ordering: the role is released (resign_watch, park) and taken
// only under idle_mu_, as sleepers_ changes; a worker that filled its slot
// has left the idle list under idle_mu_ after any resignation it must see.
void Scheduler::wake_watcher() noexcept {
  Worker* w = nullptr;
  {
    MutexLock lock(idle_mu_);
    if (watcher_.load(std::memory_order_relaxed) != nullptr || idle_.empty()) return;
    w = idle_.back();
    idle_.pop_back();
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    watcher_.store(w, std::memory_order_seq_cst);
  }
  wake(*w);
}

// The watcher found work. A busy worker may still hold a next slot it filled
// while we watched (it saw a watcher, so it woke nobody): hand the role to a
// sleeper, if any.
void Scheduler::resign_watch(Worker& w) noexcept {
  w.watching = false;
  Worker* heir = nullptr;
  {
    MutexLock lock(idle_mu_);
    if (watcher_.load(std::memory_order_relaxed) != &w) return;
    if (!idle_.empty()) {
      heir = idle_.back();
      idle_.pop_back();
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    }
    watcher_.store(heir, std::memory_order_seq_cst);
  }
  if (heir != nullptr) wake(*heir);
}

// The watcher's look: a busy worker whose next slot holds the same agent for
// kStaleNextNs while its tick stands still (one handler still running).
// Returns that worker and the agent, or nullptr (also when we are woken).
Worker* Scheduler::stale_next(Worker& w, Agent*& agent) noexcept {
  for (const auto& victim : workers_) {
    if (victim.get() == &w) continue;
    Agent* a = victim->next.load(std::memory_order_relaxed);
    if (a == nullptr) continue;
    const std::uint64_t tick = victim->tick.load(std::memory_order_relaxed);
    const std::uint64_t since = now_ns();
    for (;;) {
      if (victim->tick.load(std::memory_order_relaxed) != tick ||
          victim->next.load(std::memory_order_relaxed) != a) {
        break;  // the owner moved on: a short handler
      }
      if (w.wake.load(std::memory_order_relaxed) != 0) return nullptr;
      if (now_ns() - since >= kStaleNextNs) {
        agent = a;
        return victim.get();
      }
      for (int i = 0; i < 16; ++i) cpu_relax();
    }
  }
  return nullptr;
}

}  // namespace swarm::detail
