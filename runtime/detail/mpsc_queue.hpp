#pragma once
// Intrusive multi-producer single-consumer FIFO (Dmitry Vyukov's design).
//
// Producers: any thread; push is one atomic exchange plus one store, wait-free.
// Consumer: one thread at a time (the agent's current worker, or a sender
// holding the agent's pop lock for drop_oldest).
// Invariant: head_ is the newest node, tail_ the oldest not yet popped; stub_
// keeps the list non-empty so producers never touch tail_.
// A push is visible to pop only once the producer linked prev->next; between
// its exchange and that store, pop() returns nullptr although the queue is not
// empty ("in flight"): callers decide emptiness from their own count.

#include <atomic>

#include "runtime/message.hpp"

namespace swarm::detail {

class MpscQueue {
 public:
  MpscQueue() noexcept : head_(&stub_), tail_(&stub_) {}
  MpscQueue(const MpscQueue&) = delete;
  MpscQueue& operator=(const MpscQueue&) = delete;

  void push(Node* n) noexcept {
    n->next.store(nullptr, std::memory_order_relaxed);
    Node* prev = head_.exchange(n, std::memory_order_acq_rel);
    prev->next.store(n, std::memory_order_release);
  }

  /// The oldest node, or nullptr if empty or the next push is still in flight.
  Node* pop() noexcept {
    Node* tail = tail_;
    Node* next = tail->next.load(std::memory_order_acquire);
    if (tail == &stub_) {
      if (next == nullptr) return nullptr;
      tail_ = next;
      tail = next;
      next = next->next.load(std::memory_order_acquire);
    }
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    if (tail != head_.load(std::memory_order_acquire)) return nullptr;  // in flight
    push(&stub_);
    next = tail->next.load(std::memory_order_acquire);
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    return nullptr;
  }

 private:
  std::atomic<Node*> head_;  // producers
  Node* tail_;               // consumer only
  Node stub_;
};

}  // namespace swarm::detail
