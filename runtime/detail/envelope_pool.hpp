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

}  // namespace swarm::detail
