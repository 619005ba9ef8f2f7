#pragma once
// The agent table: slot index -> (control word, agent pointer).
//
// Slots live in segments that are allocated on demand and never freed while
// the table lives, so reading any slot is always memory-safe, even through a
// stale AgentRef. The control word packs, in one atomic:
//   bits 63..32  generation of the current occupant (0 is never used)
//   bit  31      closed: no more messages are accepted
//   bit  30      kill requested: exit before the next message
//   bits 29..0   reservations: messages queued or being queued (the run token)
// A sender reserves (count+1) with a CAS that also checks generation, closed
// and capacity; whoever moves the count from 0 to 1 schedules the agent, and
// only the agent's own activation moves it back to 0. Thread-safe.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/mutex.hpp"
#include "runtime/config.hpp"
#include "runtime/message.hpp"

namespace swarm {
class Agent;
}

namespace swarm::detail {

namespace ctl {
inline constexpr std::uint64_t kClosed = 1ull << 31;
inline constexpr std::uint64_t kKill = 1ull << 30;
inline constexpr std::uint64_t kCountMask = (1ull << 30) - 1;
inline std::uint32_t generation(std::uint64_t c) { return static_cast<std::uint32_t>(c >> 32); }
inline std::uint32_t count(std::uint64_t c) { return static_cast<std::uint32_t>(c & kCountMask); }
inline std::uint64_t make(std::uint32_t gen, std::uint64_t bits) { return (std::uint64_t{gen} << 32) | bits; }
}  // namespace ctl

struct Slot {
  std::atomic<std::uint64_t> ctl{ctl::make(1, ctl::kClosed)};
  std::atomic<Agent*> agent{nullptr};
  // Mailbox bound of the occupant; written before ctl opens the slot.
  std::atomic<std::uint32_t> capacity{0};
  // Messages the running activation has handled but not yet subtracted from
  // ctl's count (it subtracts once, at the end): senders leave them out when
  // checking capacity, so an agent that sends to itself is not refused.
  std::atomic<std::uint32_t> handled{0};
  std::atomic<OverflowPolicy> overflow{OverflowPolicy::reject};
  // Set when the occupant may hold topic subscriptions, so an exit without
  // any skips the router. Stays in the slot (stable memory) across reuse.
  std::atomic<bool> subscribed{false};
  // Set while senders wait to be told the occupant has room (notify_when_room);
  // checked (seq_cst) after each activation subtracts what it handled.
  std::atomic<bool> room_waiters{false};
  // Telemetry, read by scans of the table (memory-safe, unlike the agent):
  std::atomic<std::uint16_t> type_id{0};            // the occupant's agent type
  std::atomic<std::uint32_t> queueing_delay_us{0};  // moving average of sampled delays
};

/// Free slot indices kept by one worker, so that agents spawning and exiting
/// on workers seldom take the table's lock (W6: the lock and its contention
/// were an eighth of the time). Owner-only.
struct IndexCache {
  static constexpr unsigned kCapacity = 64;
  std::uint32_t items[kCapacity];
  unsigned count = 0;
};

class AgentTable {
 public:
  static constexpr unsigned kSegmentBits = 12;
  static constexpr unsigned kSegmentSize = 1u << kSegmentBits;
  static constexpr unsigned kMaxSegments = 1u << 16;  // 268M agents

  AgentTable();
  ~AgentTable();

  /// The slot of `index`, or nullptr if it was never allocated.
  Slot* find(std::uint32_t index) const noexcept {
    auto* seg = segments_[index >> kSegmentBits].load(std::memory_order_acquire);
    return seg == nullptr ? nullptr : &seg[index & (kSegmentSize - 1)];
  }
  Slot& at(std::uint32_t index) const noexcept { return *find(index); }

  /// Takes a free slot for `agent` (still closed); returns its future ref.
  /// Throws std::length_error when the table is full. `cache`: the calling
  /// worker's, or nullptr.
  AgentRef reserve(Agent* agent, MailboxOptions mailbox, IndexCache* cache = nullptr);
  /// Opens a reserved slot to messages.
  void open(AgentRef ref) noexcept {
    at(ref.index).ctl.store(ctl::make(ref.generation, 0), std::memory_order_release);
  }
  /// Closes the slot for good (bumping its generation) and recycles it.
  /// REQUIRES: the agent exited and its mailbox was drained.
  void recycle(std::uint32_t index, IndexCache* cache = nullptr) noexcept;

  /// Calls f(Agent*, AgentRef) for every open slot. Racy by nature: for
  /// shutdown and diagnostics only.
  template <class F>
  void for_each_open(F&& f) const {
    std::uint32_t n = high_water();
    for (std::uint32_t i = 0; i < n; ++i) {
      Slot* s = find(i);
      if (s == nullptr) continue;
      std::uint64_t c = s->ctl.load(std::memory_order_acquire);
      if ((c & ctl::kClosed) == 0) {
        if (Agent* a = s->agent.load(std::memory_order_acquire)) f(a, AgentRef{i, ctl::generation(c)});
      }
    }
  }
  std::uint32_t high_water() const noexcept { return high_water_.load(std::memory_order_acquire); }

 private:
  std::uint32_t take_index(IndexCache* cache);

  std::unique_ptr<std::atomic<Slot*>[]> segments_;  // own synchronization
  std::atomic<std::uint32_t> high_water_{0};         // slots ever handed out
  Mutex mu_;
  std::vector<std::uint32_t> free_ SWARM_GUARDED_BY(mu_);
};

}  // namespace swarm::detail
