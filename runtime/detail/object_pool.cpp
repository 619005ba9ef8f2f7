#include "runtime/detail/object_pool.hpp"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <new>

namespace swarm::detail {
namespace {
constexpr unsigned kChainSize = 256;  // blocks per slab and per transfer
std::atomic<unsigned> next_pool_id{0};
}  // namespace

// Per-thread caches of every pool, indexed by pool id. Owner-only. At thread
// exit the blocks go back to their pools. Pools are statics that outlive every
// thread the runtime starts.
struct ObjectPool::ThreadCaches {
  std::vector<std::pair<ObjectPool*, Cache>> by_id;
  ~ThreadCaches() {
    for (auto& [pool, cache] : by_id) {
      if (pool == nullptr) continue;
      if (cache.current.count != 0) pool->give_chain(cache.current);
      if (cache.spare.count != 0) pool->give_chain(cache.spare);
    }
  }
};

ObjectPool::ObjectPool(std::size_t size, std::size_t align)
    : block_size_((std::max(size, sizeof(FreeNode)) + align - 1) / align * align),
      align_(std::max(align, alignof(FreeNode))),
      id_(next_pool_id.fetch_add(1)) {}

ObjectPool::~ObjectPool() {
  MutexLock lock(mu_);
  for (void* slab : slabs_) ::operator delete(slab, std::align_val_t(align_));
}

ObjectPool::Cache& ObjectPool::local_cache() {
  thread_local ThreadCaches caches;
  if (caches.by_id.size() <= id_) caches.by_id.resize(id_ + 1, {nullptr, Cache{}});
  auto& entry = caches.by_id[id_];
  entry.first = this;
  return entry.second;
}

void* ObjectPool::allocate() {
  Cache& c = local_cache();
  if (c.current.head == nullptr) {
    if (c.spare.head != nullptr) {
      c.current = c.spare;
      c.spare = Chain{};
    } else {
      c.current = take_chain();
    }
  }
  FreeNode* n = c.current.head;
  c.current.head = n->next;
  --c.current.count;
  return n;
}

void ObjectPool::deallocate(void* p) noexcept {
  Cache& c = local_cache();
  if (c.current.count == kChainSize) {
    if (c.spare.head != nullptr) give_chain(c.spare);
    c.spare = c.current;
    c.current = Chain{};
  }
  auto* n = static_cast<FreeNode*>(p);
  n->next = c.current.head;
  c.current.head = n;
  ++c.current.count;
}

// A chain from the shared list, or a new slab carved into one.
ObjectPool::Chain ObjectPool::take_chain() {
  MutexLock lock(mu_);
  if (shared_ != nullptr) {
    Chain c{shared_, shared_->chain_count};
    shared_ = shared_->next_chain;
    return c;
  }
  auto* slab = static_cast<std::byte*>(::operator new(block_size_ * kChainSize, std::align_val_t(align_)));
  slabs_.push_back(slab);
  Chain c;
  for (unsigned i = kChainSize; i-- > 0;) {
    auto* n = reinterpret_cast<FreeNode*>(slab + i * block_size_);
    n->next = c.head;
    c.head = n;
  }
  c.count = kChainSize;
  return c;
}

// REQUIRES: chain is not empty.
void ObjectPool::give_chain(Chain chain) noexcept {
  MutexLock lock(mu_);
  chain.head->next_chain = shared_;
  chain.head->chain_count = chain.count;
  shared_ = chain.head;
}

ObjectPool& pool_for_type(unsigned type_id, std::size_t size, std::size_t align) {
  static Mutex mu;
  static std::map<unsigned, std::unique_ptr<ObjectPool>> pools;  // guarded by mu
  MutexLock lock(mu);
  std::unique_ptr<ObjectPool>& pool = pools[type_id];
  if (!pool) pool = std::make_unique<ObjectPool>(size, align);
  return *pool;
}

}  // namespace swarm::detail
