#pragma once
// What the runtime keeps per agent type (made at a type's first spawn in a
// runtime, from the AgentTypeSpec that spawn<T> passes), read by the runtime
// and its telemetry.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "metrics/instruments.hpp"
#include "runtime/config.hpp"

namespace swarm {

class Agent;

namespace detail {
class ObjectPool;

/// Agent type ids (AgentTypeSpec::id) are below this.
inline constexpr unsigned kMaxAgentTypes = 1024;
}  // namespace detail

/// What the runtime knows of one agent type. Constant once created.
struct AgentTypeInfo {
  unsigned id = 0;
  std::string name;
  MailboxOptions mailbox;
  bool has_on_start = true;
  std::size_t align = 0;
  detail::ObjectPool* pool = nullptr;  // nullptr: plain new/delete
  void* (*destroy)(Agent*) noexcept = nullptr;  // runs the destructor, returns the block
  // Telemetry (disabled handles when telemetry is off).
  metrics::Histogram handler_time;
  metrics::Counter crashes;
  // Drop (bit = DropReason) and refusal (bit = 8 + RefuseReason) reasons
  // already logged for this type: each is logged once.
  mutable std::atomic<std::uint32_t> logged{0};

  /// Destroys `agent` (of this type) and frees its block.
  void release(Agent* agent) const noexcept;
};

}  // namespace swarm
