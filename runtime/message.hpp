#pragma once
// Messages: what agents send each other.
//
// A message carries a user `kind` tag and an immutable byte payload. Payloads
// up to Payload::kInlineBytes live inside the envelope; larger ones sit in one
// refcounted heap buffer shared by every copy (fan-out costs one allocation).
//
//   send(peer, Payload::of(Order{42, 1.5}), kOrder);   // trivially copyable
//   void on_message(Message& m) override { auto o = m.as<Order>(); }

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "base/check.hpp"
#include "base/payload.hpp"

namespace swarm {

/// Names a live agent: a table index plus the generation the slot had when the
/// agent was spawned. A ref to an agent that exited (even if its slot was
/// reused) never reaches the new occupant: sends to it report dead_agent.
struct AgentRef {
  std::uint32_t index = 0;
  std::uint32_t generation = 0;  // 0 = no agent

  bool valid() const noexcept { return generation != 0; }
  explicit operator bool() const noexcept { return valid(); }
  friend bool operator==(AgentRef, AgentRef) = default;
  std::uint64_t bits() const noexcept { return (std::uint64_t{generation} << 32) | index; }
  static AgentRef from_bits(std::uint64_t b) noexcept {
    return {static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(b >> 32)};
  }
};

std::string to_string(AgentRef ref);  // "<index.generation>"

/// Why a message was not delivered. Values equal their metric label.
enum class DropReason : std::uint8_t {
  mailbox_full,
  no_subscriber,
  dead_agent,
  expired,
  remote_unreachable,
  shutting_down,
};
inline constexpr int kDropReasonCount = 6;
std::string_view to_string(DropReason r);

/// Outcome of a send. `try_`/`send` never throw; they say what happened.
enum class SendResult : std::uint8_t {
  ok,
  mailbox_full,   // refused (policy reject): the message was not queued, the sender decides
  dropped,        // full mailbox with policy drop_newest: the message was dropped and counted
  dead_agent,     // the target exited or never existed
  shutting_down,  // the runtime stopped taking messages from outside
};
std::string_view to_string(SendResult r);

/// Internal message kinds; user messages are `user`.
enum class SystemKind : std::uint8_t {
  user,
  start,         // run on_start in the agent's context
  stop,          // exit with reason shutdown
  kill,          // exit at once (the kill bit is already set)
  child_exit,    // to a supervisor: a child exited
  reply,         // answer to an ask
  ask_timeout,   // an ask's timer fired
  control,       // addressed to a runtime-internal handler (supervisor commands)
  restore,       // a persistent agent's stored state arrived (status: RestoreStatus)
};

/// What a handler receives. Owned by the runtime; valid during the handler.
/// Message::topic of a message that was not published on a topic.
inline constexpr std::uint32_t kNoTopic = ~std::uint32_t{0};

struct Message {
  std::uint32_t kind = 0;      // user tag
  std::uint32_t topic = kNoTopic;  // the router::TopicId it was published on
  AgentRef sender;             // who sent it (invalid from outside the runtime)
  std::uint64_t request_id = 0;  // non-zero: an ask waiting for reply()
  Payload payload;

  template <class T>
  T as() const noexcept { return payload.as<T>(); }
  std::string_view text() const noexcept { return payload.text(); }
  bool is_request() const noexcept { return request_id != 0 && system == SystemKind::user; }

  SystemKind system = SystemKind::user;
  std::uint8_t status = 0;  // replies: an AskStatus
};

namespace detail {
/// Link of the intrusive mailbox queue.
struct Node {
  std::atomic<Node*> next{nullptr};
};

/// A message in flight: a queue node plus the message.
struct Envelope : Node {
  Message msg;
  std::uint64_t enqueued_ns = 0;  // set on the 1-in-N envelopes whose latency is measured
};
}  // namespace detail

}  // namespace swarm
