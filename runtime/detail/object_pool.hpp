#pragma once
// Per-agent-type object pools: slabs carved into fixed-size blocks, free lists
// per thread in front of a shared one, so spawn is a pop and exit a push.
// Blocks move between a thread and the shared list in whole chains of
// kChainSize, so a transfer is O(1) and never walks a list (like tcmalloc's
// transfer cache): an agent spawned on one thread and exiting on another costs
// one lock per chain, not one cache miss per block.
// Memory stays in the pool for the life of the process (reused, never
// returned to the OS). Thread-safe.

#include <cstddef>
#include <vector>

#include "base/mutex.hpp"

namespace swarm::detail {

class ObjectPool {
 public:
  ObjectPool(std::size_t size, std::size_t align);
  ~ObjectPool();
  ObjectPool(const ObjectPool&) = delete;
  ObjectPool& operator=(const ObjectPool&) = delete;

  /// A block of size() bytes. Throws bad_alloc when memory runs out.
  void* allocate();
  /// REQUIRES: p came from allocate() of this pool.
  void deallocate(void* p) noexcept;

  std::size_t block_size() const { return block_size_; }

 private:
  struct FreeNode {
    FreeNode* next;
    // Set on a chain's first block while the chain sits on the shared list,
    // so that list is intrusive and giving a chain back never allocates.
    FreeNode* next_chain;
    unsigned chain_count;
  };
  struct Chain {  // a run of free blocks moved as one
    FreeNode* head = nullptr;
    unsigned count = 0;
  };
  struct ThreadCaches;
  friend struct ThreadCaches;

  struct Cache {  // one thread's blocks of this pool: filling `current`, one full `spare`
    Chain current;
    Chain spare;
  };

  Cache& local_cache();
  Chain take_chain();
  void give_chain(Chain chain) noexcept;

  // -- constant after construction ---
  const std::size_t block_size_;
  const std::size_t align_;
  const unsigned id_;  // index into each thread's cache table

  // -- guarded by mu_ ---
  Mutex mu_;
  FreeNode* shared_ SWARM_GUARDED_BY(mu_) = nullptr;  // stack of full or partial chains
  std::vector<void*> slabs_ SWARM_GUARDED_BY(mu_);
};

/// The pool of an agent type (AgentTypeSpec::id), made at the first call with
/// blocks of `size` bytes aligned to `align`. Pools live as long as the
/// process and are shared by every runtime in it. Thread-safe.
ObjectPool& pool_for_type(unsigned type_id, std::size_t size, std::size_t align);

}  // namespace swarm::detail
