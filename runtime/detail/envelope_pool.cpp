#include "runtime/detail/envelope_pool.hpp"

#include <vector>

#include "base/mutex.hpp"

namespace swarm::detail {
namespace {

constexpr unsigned kCacheMax = 2048;  // per thread
constexpr unsigned kBatch = 512;      // moved to/from the shared list at once

struct FreeNode {
  FreeNode* next;
};

struct Batch {
  FreeNode* head;
  unsigned count;
};

// Shared surplus, in batches so each transfer is one lock.
class SharedList {
 public:
  ~SharedList() {
    for (Batch& b : batches_) free_all(b.head);
  }
  void put(Batch b) {
    MutexLock lock(mu_);
    batches_.push_back(b);
  }
  bool take(Batch& out) {
    MutexLock lock(mu_);
    if (batches_.empty()) return false;
    out = batches_.back();
    batches_.pop_back();
    return true;
  }
  static void free_all(FreeNode* n) {
    while (n != nullptr) {
      FreeNode* next = n->next;
      ::operator delete(static_cast<void*>(n));
      n = next;
    }
  }

 private:
  Mutex mu_;
  std::vector<Batch> batches_ SWARM_GUARDED_BY(mu_);
};

SharedList& shared_list() {
  static SharedList list;
  return list;
}

// Owner-only: one per thread.
struct ThreadCache {
  FreeNode* head = nullptr;
  unsigned count = 0;
  ~ThreadCache() {
    while (count >= kBatch) spill();
    SharedList::free_all(head);
  }
  void spill() {
    Batch b{head, 0};
    FreeNode* last = head;
    for (unsigned i = 1; i < kBatch; ++i) last = last->next;
    head = last->next;
    last->next = nullptr;
    b.count = kBatch;
    count -= kBatch;
    shared_list().put(b);
  }
};

thread_local ThreadCache tls_cache;

}  // namespace

Envelope* make_envelope() {
  ThreadCache& c = tls_cache;
  if (c.head == nullptr) {
    Batch b;
    if (shared_list().take(b)) {
      c.head = b.head;
      c.count = b.count;
    }
  }
  void* mem;
  if (c.head != nullptr) {
    mem = c.head;
    c.head = c.head->next;
    --c.count;
  } else {
    mem = ::operator new(sizeof(Envelope));
  }
  // Default-initialized: each member from its own initializer. Value-
  // initialization (Envelope()) zeroed all 112 bytes first, a rep stos whose
  // stores the next reads of the envelope could not forward from.
  return new (mem) Envelope;
}

void release(SharedMessage* m, std::uint64_t n) noexcept {
  if (m->refs.fetch_sub(n, std::memory_order_acq_rel) == n) delete m;
}

Envelope* copy_shared(SharedMessage* m) {
  Envelope* e = make_envelope();
  e->msg = m->msg;
  release(m, 1);
  return e;
}

void free_envelope(Envelope* e) noexcept {
  e->~Envelope();
  ThreadCache& c = tls_cache;
  auto* n = reinterpret_cast<FreeNode*>(e);
  n->next = c.head;
  c.head = n;
  if (++c.count > kCacheMax) c.spill();
}

}  // namespace swarm::detail
