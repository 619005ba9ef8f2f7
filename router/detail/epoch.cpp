#include "router/detail/epoch.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <stdexcept>

namespace swarm::router::detail {

// The calling thread's slot in the global domain; returned at thread exit.
struct ThreadSlot {
  static constexpr unsigned kNone = ~0u;
  unsigned index = kNone;
  unsigned depth = 0;
  ~ThreadSlot() {
    if (index != kNone) EpochDomain::global().release_slot(index);
  }
};

namespace {
thread_local ThreadSlot tls_slot;
}

EpochDomain& EpochDomain::global() {
  static EpochDomain* domain = new EpochDomain();  // never destroyed: threads may exit after main
  return *domain;
}

namespace {
bool register_membarrier() {
#if defined(__SANITIZE_THREAD__)
  return false;  // TSan cannot see the barriers the kernel forces on readers
#else
  return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#endif
}
}  // namespace

EpochDomain::EpochDomain() : asymmetric_(register_membarrier()) {}

EpochDomain::~EpochDomain() {
  MutexLock lock(mu_);
  for (Retired& r : retired_) r.free();
}

unsigned EpochDomain::acquire_slot() {
  for (unsigned i = 0; i < kMaxThreads; ++i) {
    bool expected = false;
    if (!slots_[i].taken.load(std::memory_order_relaxed) &&
        slots_[i].taken.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
      unsigned used = slots_used_.load(std::memory_order_relaxed);
      while (used < i + 1 && !slots_used_.compare_exchange_weak(used, i + 1, std::memory_order_acq_rel)) {
      }
      return i;
    }
  }
  throw std::runtime_error("router: more than 1024 threads reading topics at once");
}

void EpochDomain::release_slot(unsigned index) noexcept {
  slots_[index].epoch.store(0, std::memory_order_release);
  // Release: whatever the old owner wrote under this index happens before the
  // next owner's acquire_slot() (its CAS is acq_rel).
  slots_[index].taken.store(false, std::memory_order_release);
}

EpochDomain::Guard::Guard(EpochDomain& d) noexcept {
  ThreadSlot& t = tls_slot;
  if (t.index == ThreadSlot::kNone) t.index = d.acquire_slot();
  index_ = t.index;
  slot_ = &d.slots_[index_].epoch;
  outer_ = t.depth++ == 0;
  if (!outer_) return;
  const std::uint64_t e = d.epoch_.load(std::memory_order_acquire);
  if (d.asymmetric_) {
    slot_->store(e, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the compiler keeps the order; collect() the CPU
  } else {
    slot_->store(e, std::memory_order_seq_cst);
  }
}

EpochDomain::Guard::~Guard() {
  --tls_slot.depth;
  if (outer_) slot_->store(0, std::memory_order_release);
}

void EpochDomain::retire(std::function<void()> free) {
  {
    MutexLock lock(mu_);
    // The object was unlinked before this point: a reader that still holds it
    // announced an epoch <= the one recorded here.
    retired_.push_back({epoch_.fetch_add(1, std::memory_order_seq_cst), std::move(free)});
  }
  collect();
}

std::uint64_t EpochDomain::oldest_reader() const noexcept {
  std::uint64_t oldest = UINT64_MAX;
  unsigned used = slots_used_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < used; ++i) {
    std::uint64_t e = slots_[i].epoch.load(std::memory_order_seq_cst);
    if (e != 0 && e < oldest) oldest = e;
  }
  return oldest;
}

std::size_t EpochDomain::collect() {
  std::vector<std::function<void()>> ready;
  std::size_t waiting;
  {
    MutexLock lock(mu_);
    if (retired_.empty()) return 0;
    // Every reader's announcement made before this point is now visible, and
    // every pointer it loads after it is the new one.
    if (asymmetric_) syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
    const std::uint64_t oldest = oldest_reader();
    std::size_t kept = 0;
    for (Retired& r : retired_) {
      if (r.epoch < oldest) {
        ready.push_back(std::move(r.free));
      } else {
        retired_[kept++] = std::move(r);
      }
    }
    retired_.resize(kept);
    waiting = kept;
  }
  for (auto& f : ready) f();
  return waiting;
}

}  // namespace swarm::router::detail
