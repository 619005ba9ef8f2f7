#pragma once
// A worker's local run queue: bounded ring, FIFO for fairness.
//
// Writer: only the owning worker pushes (push_back). Readers: the owner and
// thieves take from the front with a CAS on head_. A reader may read a slot
// that the owner is overwriting (its head_ is stale); the CAS then fails and
// the value is discarded, so slots are relaxed atomics. head_ and tail_ only
// grow (64-bit, no ABA). Memory orders: the owner's release store of tail_
// publishes the slot; readers acquire tail_. Thread-safe as described.

#include <array>
#include <atomic>
#include <cstdint>

namespace swarm::detail {

template <class T, unsigned Capacity = 256>
class RunQueue {
  static_assert((Capacity & (Capacity - 1)) == 0, "capacity must be a power of two");

 public:
  /// Owner only. False when full.
  bool push_back(T* item) noexcept {
    std::uint64_t t = tail_.load(std::memory_order_relaxed);
    std::uint64_t h = head_.load(std::memory_order_acquire);
    if (t - h >= Capacity) return false;
    slots_[t & (Capacity - 1)].store(item, std::memory_order_relaxed);
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }

  /// Any thread. nullptr when empty.
  T* pop_front() noexcept {
    std::uint64_t h = head_.load(std::memory_order_acquire);
    for (;;) {
      std::uint64_t t = tail_.load(std::memory_order_acquire);
      if (h >= t) return nullptr;
      T* item = slots_[h & (Capacity - 1)].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        return item;
      }
    }
  }

  /// Thief: moves up to half of this queue into `out` (at most `max`); returns how many.
  unsigned steal_half(T** out, unsigned max) noexcept {
    std::uint64_t h = head_.load(std::memory_order_acquire);
    for (;;) {
      std::uint64_t t = tail_.load(std::memory_order_acquire);
      if (h >= t) return 0;
      std::uint64_t n = (t - h + 1) / 2;
      if (n > max) n = max;
      for (std::uint64_t i = 0; i < n; ++i) {
        out[i] = slots_[(h + i) & (Capacity - 1)].load(std::memory_order_relaxed);
      }
      if (head_.compare_exchange_weak(h, h + n, std::memory_order_acq_rel, std::memory_order_acquire)) {
        return static_cast<unsigned>(n);
      }
    }
  }

  /// Approximate; for parking decisions and diagnostics.
  std::uint64_t size() const noexcept {
    std::uint64_t t = tail_.load(std::memory_order_acquire);
    std::uint64_t h = head_.load(std::memory_order_acquire);
    return t > h ? t - h : 0;
  }

 private:
  alignas(64) std::atomic<std::uint64_t> head_{0};
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  alignas(64) std::array<std::atomic<T*>, Capacity> slots_{};
};

}  // namespace swarm::detail
