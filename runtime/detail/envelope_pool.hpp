#pragma once
// Envelope allocation without a heap allocation per message: each thread keeps
// a free list; surplus moves to a shared list in batches, so envelopes freed on
// the consumer's thread come back to producers. Thread-safe.

#include "runtime/message.hpp"

namespace swarm::detail {

/// A default-constructed envelope. Never returns nullptr (throws bad_alloc).
Envelope* make_envelope();
/// Destroys the message and keeps the memory for reuse.
void free_envelope(Envelope* e) noexcept;

/// One publish's message, handed to each idle subscriber the publish wakes
/// instead of an envelope per subscriber (RuntimeConfig::fanout_handoff): the
/// receiver copies it into an envelope of its own worker's. The publisher
/// holds kPublisherRefs until the publish ends and then gives back all but
/// the receivers' one each, so the count is written once per receiver and
/// once by the publisher, not twice per receiver.
struct SharedMessage {
  static constexpr std::uint64_t kPublisherRefs = std::uint64_t{1} << 48;
  Message msg;
  alignas(64) std::atomic<std::uint64_t> refs{kPublisherRefs};  // its own line: receivers write it
};
/// Drops `n` references; the last frees the message.
void release(SharedMessage* m, std::uint64_t n) noexcept;
/// An envelope holding a copy of m's message; drops the receiver's reference.
Envelope* copy_shared(SharedMessage* m);

/// An agent's front list (AgentCore::front) holds envelopes, or one shared
/// message alone, marked in the pointer's lowest bit.
inline Node* front_of(SharedMessage* m) noexcept {
  return reinterpret_cast<Node*>(reinterpret_cast<std::uintptr_t>(m) | 1);
}
inline SharedMessage* shared_in(Node* front) noexcept {
  const auto bits = reinterpret_cast<std::uintptr_t>(front);
  return (bits & 1) != 0 ? reinterpret_cast<SharedMessage*>(bits & ~std::uintptr_t{1}) : nullptr;
}

}  // namespace swarm::detail
