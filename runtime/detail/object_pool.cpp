#include "runtime/detail/object_pool.hpp"

#include <algorithm>
#include <atomic>
#include <new>

namespace swarm::detail {
namespace {
constexpr unsigned kBlocksPerSlab = 256;
constexpr unsigned kCacheMax = 512;  // per thread and pool
constexpr unsigned kMoveBatch = 256;
std::atomic<unsigned> next_pool_id{0};
}  // namespace

// Per-thread free lists of every pool, indexed by pool id. Owner-only. At thread
// exit the blocks go back to their pools. Pools are statics that outlive every
// thread the runtime starts.
struct ObjectPool::ThreadCaches {
  std::vector<std::pair<ObjectPool*, Chain>> by_id;
  ~ThreadCaches() {
    for (auto& [pool, chain] : by_id) {
      if (pool != nullptr) pool->spill(chain, 0);
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

ObjectPool::Chain& ObjectPool::local_chain() {
  thread_local ThreadCaches caches;
  if (caches.by_id.size() <= id_) caches.by_id.resize(id_ + 1, {nullptr, Chain{}});
  auto& entry = caches.by_id[id_];
  entry.first = this;
  return entry.second;
}

void* ObjectPool::allocate() {
  Chain& local = local_chain();
  if (local.head == nullptr) refill(local);
  FreeNode* n = local.head;
  local.head = n->next;
  --local.count;
  return n;
}

void ObjectPool::deallocate(void* p) noexcept {
  Chain& local = local_chain();
  auto* n = static_cast<FreeNode*>(p);
  n->next = local.head;
  local.head = n;
  if (++local.count > kCacheMax) spill(local, kCacheMax - kMoveBatch);
}

void ObjectPool::refill(Chain& local) {
  MutexLock lock(mu_);
  if (!shared_.empty()) {
    local = shared_.back();
    shared_.pop_back();
    return;
  }
  auto* slab = static_cast<std::byte*>(
      ::operator new(block_size_ * kBlocksPerSlab, std::align_val_t(align_)));
  slabs_.push_back(slab);
  for (unsigned i = kBlocksPerSlab; i-- > 0;) {
    auto* n = reinterpret_cast<FreeNode*>(slab + i * block_size_);
    n->next = local.head;
    local.head = n;
  }
  local.count = kBlocksPerSlab;
}

// Moves all but `keep` blocks of `local` to the shared list.
void ObjectPool::spill(Chain& local, unsigned keep) noexcept {
  if (local.count <= keep) return;
  Chain moved;
  while (local.count > keep) {
    FreeNode* n = local.head;
    local.head = n->next;
    --local.count;
    n->next = moved.head;
    moved.head = n;
    ++moved.count;
  }
  MutexLock lock(mu_);
  shared_.push_back(moved);
}

}  // namespace swarm::detail
