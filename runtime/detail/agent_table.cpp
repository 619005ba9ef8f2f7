#include "runtime/detail/agent_table.hpp"

#include <stdexcept>

namespace swarm::detail {

AgentTable::AgentTable() : segments_(new std::atomic<Slot*>[kMaxSegments]) {
  for (unsigned i = 0; i < kMaxSegments; ++i) segments_[i].store(nullptr, std::memory_order_relaxed);
}

AgentTable::~AgentTable() {
  for (unsigned i = 0; i < kMaxSegments; ++i) delete[] segments_[i].load(std::memory_order_relaxed);
}

std::uint32_t AgentTable::take_index(IndexCache* cache) {
  if (cache != nullptr && cache->count != 0) return cache->items[--cache->count];
  MutexLock lock(mu_);
  if (cache != nullptr) {  // a worker: half a cache at once
    while (cache->count < IndexCache::kCapacity / 2 && !free_.empty()) {
      cache->items[cache->count++] = free_.back();
      free_.pop_back();
    }
    if (cache->count != 0) return cache->items[--cache->count];
  } else if (!free_.empty()) {
    std::uint32_t i = free_.back();
    free_.pop_back();
    return i;
  }
  std::uint32_t i = high_water_.load(std::memory_order_relaxed);
  unsigned seg = i >> kSegmentBits;
  if (seg >= kMaxSegments) throw std::length_error("runtime: agent table is full");
  if (segments_[seg].load(std::memory_order_relaxed) == nullptr) {
    segments_[seg].store(new Slot[kSegmentSize], std::memory_order_release);
  }
  high_water_.store(i + 1, std::memory_order_release);
  return i;
}

AgentRef AgentTable::reserve(Agent* agent, MailboxOptions mailbox, IndexCache* cache) {
  std::uint32_t i = take_index(cache);
  Slot& s = at(i);
  std::uint32_t gen = ctl::generation(s.ctl.load(std::memory_order_relaxed));
  s.agent.store(agent, std::memory_order_relaxed);  // published by open()'s release
  s.capacity.store(mailbox.capacity, std::memory_order_relaxed);
  s.overflow.store(mailbox.overflow, std::memory_order_relaxed);
  return AgentRef{i, gen};
}

void AgentTable::recycle(std::uint32_t index, IndexCache* cache) noexcept {
  Slot& s = at(index);
  std::uint32_t gen = ctl::generation(s.ctl.load(std::memory_order_relaxed)) + 1;
  if (gen == 0) gen = 1;  // 0 means "no agent"
  s.ctl.store(ctl::make(gen, ctl::kClosed), std::memory_order_release);
  s.agent.store(nullptr, std::memory_order_relaxed);
  if (cache != nullptr) {
    if (cache->count == IndexCache::kCapacity) {  // full: half of it to the shared list
      MutexLock lock(mu_);
      for (unsigned k = 0; k < IndexCache::kCapacity / 2; ++k) free_.push_back(cache->items[--cache->count]);
    }
    cache->items[cache->count++] = index;
    return;
  }
  MutexLock lock(mu_);
  free_.push_back(index);
}

}  // namespace swarm::detail
