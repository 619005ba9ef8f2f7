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
#include <chrono>
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

/// Names an agent: a table index plus the generation the slot had when the
/// agent was spawned, and the node it lives on. A ref to an agent that exited
/// (even if its slot was reused) never reaches the new occupant: sends to it
/// report dead_agent.
///
/// `node` 0 is this process. kCallerNode names a caller outside the agents of
/// this process (a thread waiting in Runtime::ask; index = its waiter). Any
/// other node is another process or machine, reached through the gateway or
/// the cluster when they are attached; until then a send to it reports
/// `unreachable` (docs/runtime.md, "Addresses").
struct AgentRef {
  static constexpr std::uint32_t kCallerNode = ~std::uint32_t{0};

  std::uint32_t index = 0;
  std::uint32_t generation = 0;  // 0 = no agent
  std::uint32_t node = 0;

  bool valid() const noexcept { return generation != 0; }
  explicit operator bool() const noexcept { return valid(); }
  bool local() const noexcept { return node == 0; }
  friend bool operator==(AgentRef, AgentRef) = default;
  /// Index and generation in one word (the node is not included).
  std::uint64_t bits() const noexcept { return (std::uint64_t{generation} << 32) | index; }
  static AgentRef from_bits(std::uint64_t b, std::uint32_t node = 0) noexcept {
    return {static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(b >> 32), node};
  }
};

std::string to_string(AgentRef ref);  // "<index.generation>", "<node:index.generation>" off this node

/// Why a message that was accepted was then lost. Values equal their metric label.
enum class DropReason : std::uint8_t {
  mailbox_full,        // overflow drop_newest / drop_oldest, or a publish to a full mailbox
  no_subscriber,       // published on a topic nobody subscribes to
  dead_agent,          // its receiver exited with it queued
  expired,             // its deadline passed before a handler took it
  remote_unreachable,  // its node could not be reached
  shutting_down,       // the runtime stopped before it was handled
};
inline constexpr int kDropReasonCount = 6;
std::string_view to_string(DropReason r);

/// Outcome of a send. Senders never throw; they are told what happened. A
/// result other than ok and dropped is a refusal: nothing was queued and
/// nothing is lost, the sender decides (retry after notify_when_room, give up).
enum class [[nodiscard]] SendResult : std::uint8_t {
  ok,
  mailbox_full,   // refused (policy reject): the message was not queued
  dropped,        // full mailbox with policy drop_newest: the message was dropped and counted
  dead_agent,     // the target exited or never existed
  shutting_down,  // the runtime stopped taking messages from outside
  expired,        // its deadline had already passed
  unreachable,    // the target's node (another process or machine) cannot be reached
};
std::string_view to_string(SendResult r);

/// Why a send was refused (the sender was told; nothing lost). Metric labels.
enum class RefuseReason : std::uint8_t { mailbox_full, dead_agent, shutting_down, expired, unreachable };
inline constexpr int kRefuseReasonCount = 5;
std::string_view to_string(RefuseReason r);

/// Internal message kinds; user messages are `user`.
enum class SystemKind : std::uint8_t {
  user,
  start,         // run on_start in the agent's context
  stop,          // exit with reason shutdown
  kill,          // exit at once (the kill bit is already set)
  child_exit,    // to a supervisor: a child exited
  reply,         // answer to a request: status says how it ended
  ask_timeout,   // a request's timer fired
  control,       // to a runtime-internal handler (supervisor commands): kind is the command
  restore,       // a persistent agent's stored state arrived: kind is how the load went
  room,          // the agent it asked about has room in its mailbox again (sender: that agent)
  snapshot,      // the state store lost what it wrote: a persistent agent stores its state again
};

/// Message::topic of a message that was not published on a topic.
inline constexpr std::uint32_t kNoTopic = ~std::uint32_t{0};

/// What a handler receives. Owned by the runtime; valid during the handler.
/// Each field has one meaning:
struct Message {
  std::uint32_t kind = 0;          // the sender's tag (user messages); the command/outcome of system ones
  std::uint32_t topic = kNoTopic;  // the router::TopicId it was published on
  AgentRef sender;                 // who sent it (invalid from outside the agents)
  AgentRef reply_to;               // where reply() goes: set on requests (the asker, or a caller outside)
  std::uint64_t correlation_id = 0;  // non-zero on a request and on its replies
  std::uint64_t deadline_ns = 0;     // steady clock; 0 = none. Not handled after it: counted `expired`
  Payload payload;                 // the content; payload.content_type() says what it is
  SystemKind system = SystemKind::user;
  std::uint8_t status = 0;         // replies only: an AskStatus
  bool partial = false;            // replies only: more replies to the same request follow (a stream)

  /// The payload as a T; throws PayloadTypeError naming both types if it is not one.
  template <class T>
  T as() const { return payload.as<T>(); }
  std::string_view text() const noexcept { return payload.text(); }
  ContentType content_type() const noexcept { return payload.content_type(); }
  /// A request: someone waits for reply().
  bool is_request() const noexcept { return correlation_id != 0 && system == SystemKind::user; }
};

/// Optional envelope fields of a send.
struct SendOptions {
  std::uint32_t kind = 0;
  /// Not handled after this long from now: dropped and counted as expired
  /// (0: no deadline; negative: already past, the send is refused as expired).
  /// A request answered so gets AskStatus::expired.
  std::chrono::nanoseconds ttl{0};
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
