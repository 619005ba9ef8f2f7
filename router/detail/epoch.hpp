#pragma once
// Epoch-based reclamation for the router's read path.
//
// Readers wrap each access in a Guard: it announces the global epoch in the
// thread's slot (one store) and clears it on exit. Writers unlink an object,
// then retire() it with the current epoch; it is freed once every reader that
// could have seen it has left (every announced epoch is newer, or idle).
// Readers never block and never write shared cache lines.
//
// The announcement must be visible before the reader loads a pointer (a
// store-load order). Where the kernel offers membarrier(2), readers use a
// plain store and writers pay instead: collect() makes every thread of the
// process execute a full barrier before it scans (an asymmetric fence, as in
// liburcu). Elsewhere, and under ThreadSanitizer, readers use seq_cst stores.
//
// Thread-safe. A domain is shared by every router of the process; a thread
// takes a slot on first use and returns it when it exits.

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "base/mutex.hpp"

namespace swarm::router::detail {

class EpochDomain {
 public:
  static constexpr unsigned kMaxThreads = 1024;

  static EpochDomain& global();

  class Guard {
   public:
    explicit Guard(EpochDomain& d) noexcept;
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    /// The calling thread's slot, unique among live threads (< kMaxThreads):
    /// callers may key per-thread data on it for as long as the guard lives.
    unsigned slot_index() const noexcept { return index_; }

   private:
    std::atomic<std::uint64_t>* slot_;
    unsigned index_;
    bool outer_;  // nested guards on one thread: only the outermost announces
  };

  /// Frees `free` later, when no reader can still hold what it frees.
  void retire(std::function<void()> free);
  /// Frees what can be freed now; returns how many are still waiting.
  std::size_t collect();

  EpochDomain();
  ~EpochDomain();
  /// True when readers use the asymmetric (membarrier) protocol.
  bool asymmetric() const noexcept { return asymmetric_; }

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> epoch{0};  // 0: not reading
    std::atomic<bool> taken{false};
  };
  struct Retired {
    std::uint64_t epoch;
    std::function<void()> free;
  };
  friend struct ThreadSlot;

  unsigned acquire_slot();
  void release_slot(unsigned index) noexcept;
  std::uint64_t oldest_reader() const noexcept;

  const bool asymmetric_;
  std::atomic<std::uint64_t> epoch_{1};
  std::atomic<unsigned> slots_used_{0};  // high-water mark of slots_
  Slot slots_[kMaxThreads];

  Mutex mu_;
  std::vector<Retired> retired_ SWARM_GUARDED_BY(mu_);
};

}  // namespace swarm::router::detail
