#pragma once
// Per-agent-type object pools: slabs carved into fixed-size blocks, a free list
// per thread in front of a shared one, so spawn is a pop and exit a push.
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
  };
  struct Chain {  // a run of free blocks moved as one
    FreeNode* head = nullptr;
    unsigned count = 0;
  };
  struct ThreadCaches;
  friend struct ThreadCaches;

  Chain& local_chain();
  void refill(Chain& local);
  void spill(Chain& local, unsigned keep) noexcept;

  // -- constant after construction ---
  const std::size_t block_size_;
  const std::size_t align_;
  const unsigned id_;  // index into each thread's cache table

  // -- guarded by mu_ ---
  Mutex mu_;
  std::vector<Chain> shared_ SWARM_GUARDED_BY(mu_);
  std::vector<void*> slabs_ SWARM_GUARDED_BY(mu_);
};

/// The pool for blocks of this size and alignment (one per agent type).
template <class T>
ObjectPool& pool_for() {
  static ObjectPool pool(sizeof(T), alignof(T));
  return pool;
}

}  // namespace swarm::detail
