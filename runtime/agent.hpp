#pragma once
// Agent: the unit of concurrency. An agent owns its state and handles one
// message at a time on some worker thread; it talks to others only by
// messages. Subclass it, override on_message, and spawn it on a Runtime.
//
//   class Counter : public swarm::Agent {
//    public:
//     void on_message(swarm::Message& m) override { total_ += m.as<int>(); }
//    private:
//     long total_ = 0;
//   };
//   swarm::AgentRef c = runtime.spawn<Counter>();
//
// Thread model: handlers of one agent never run concurrently; the "actions"
// below may be called only from the agent's own handlers. Owner-only.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "base/result.hpp"
#include "router/router.hpp"
#include "runtime/detail/mpsc_queue.hpp"
#include "runtime/message.hpp"

namespace swarm {

class Runtime;
struct AgentTypeInfo;

namespace detail {
class RuntimeCore;
}  // namespace detail

/// How an agent ended. Values equal their metric label.
enum class ExitKind : std::uint8_t {
  normal,    // stop() without a reason, or returned from its job
  shutdown,  // asked to stop by its supervisor or the runtime
  crashed,   // a handler threw; detail holds what()
  killed,    // killed without waiting for it
};
std::string_view to_string(ExitKind k);

struct ExitReason {
  ExitKind kind = ExitKind::normal;
  std::string detail;

  /// Crashes and kills; transient children are restarted only after these.
  bool abnormal() const noexcept { return kind == ExitKind::crashed || kind == ExitKind::killed; }
};

/// Outcome of an ask, passed to its callback.
enum class AskStatus : std::uint8_t {
  ok,
  timeout,        // no reply within the timeout
  dead_agent,     // the target exited (or never existed) before answering
  mailbox_full,   // the request was refused or dropped for a full mailbox
  shutting_down,  // the runtime stopped
  no_responder,   // a request on a topic nobody subscribes to
  expired,        // the request's deadline passed before a handler took it
  unreachable,    // the target's node cannot be reached
};
std::string_view to_string(AskStatus s);
/// The answer a request gets when its send came back with `r` (ok for ok).
AskStatus ask_status(SendResult r) noexcept;
/// The answer a request published on a topic gets when nobody took it:
/// no_responder, mailbox_full or dead_agent.
AskStatus ask_status(const router::PublishResult& r) noexcept;

/// Called once per ask, on the asking agent's worker: with the reply (status
/// ok) or nullptr and the reason it will never come. A streamed reply calls
/// it once per part, reply->partial set on all but the last.
using AskCallback = std::function<void(AskStatus, Message* reply)>;

using TimerId = std::uint64_t;

/// Anything Payload::of accepts (values, strings, byte vectors, JSON types),
/// passed to send/reply/publish as it is; a Payload is passed as a Payload.
template <class T>
concept PayloadValue = !std::is_same_v<std::remove_cvref_t<T>, Payload> && !std::is_pointer_v<std::decay_t<T>>;

namespace detail {
// Rarely used per-agent state, allocated on first use.
struct AgentExtras {
  struct PendingAsk {
    AskCallback callback;
    TimerId timer;
    std::uint64_t started_ns = 0;  // for the ask round-trip histogram
  };
  ExitReason exit;
  std::unordered_map<std::uint64_t, PendingAsk> asks;
  // Persistence (Agent::persist_as).
  std::string state_key;
  std::uint64_t state_version = 0;  // of the last snapshot stored or restored
  std::vector<Node*> held;          // user messages that arrived before the restore
  std::vector<std::string> names;   // registered names, released at exit
};

// Runtime-owned fields of every agent.
struct AgentCore {
  MpscQueue mailbox;
  RuntimeCore* rt = nullptr;  // its runtime
  const AgentTypeInfo* type = nullptr;
  AgentRef self;
  AgentRef parent;             // the supervisor told of this agent's exit
  // Messages popped before the mailbox's, a list through next. drop_oldest:
  // system messages an evicting sender set aside (under pop_lock). Otherwise
  // the message that made the agent runnable (RuntimeConfig::wake_handoff),
  // or a publish's shared copy of it (fanout_handoff, see SharedMessage): the
  // sender that raised its count from 0 puts it here before scheduling it.
  Node* front = nullptr;
  std::atomic<bool> pop_lock{false};  // drop_oldest only: serializes pops with evicting senders
  bool supervises = false;     // agents it spawns get it as parent
  bool exiting = false;
  bool restoring = false;      // persistent: waiting for its stored state (user messages are held)
  bool dirty = false;          // persistent: snapshot after the current activation
  std::uint32_t path = 0;      // telemetry: supervisor-path id (0: top level)
  std::uint64_t next_request_id = 0;
  std::unique_ptr<AgentExtras> extras;
};
}  // namespace detail

class Agent {
 public:
  Agent() = default;
  virtual ~Agent() = default;
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  AgentRef self() const noexcept { return core_.self; }
  AgentRef parent() const noexcept { return core_.parent; }
  Runtime& runtime() const noexcept;
  std::string_view type_name() const noexcept;

  // -- handlers: run on a worker, one at a time for a given agent ---

  /// After spawn, before any message. Spawning skips it when not overridden.
  virtual void on_start() {}
  virtual void on_message(Message& msg) = 0;
  /// Before the agent is destroyed, whatever the reason (not after a kill).
  virtual void on_stop(const ExitReason& reason) { (void)reason; }
  /// A child spawned by this agent (when it supervises) exited.
  virtual void on_child_exit(AgentRef child, const ExitReason& reason) {
    (void)child;
    (void)reason;
  }
  /// Its supervisor or the runtime asks it to stop. The default exits with
  /// reason shutdown at once; supervisors first stop their children in order.
  virtual void on_shutdown_request() { stop({ExitKind::shutdown, {}}); }
  /// Runtime-internal requests addressed to this agent (supervisor commands).
  virtual void on_control(Message& msg) { (void)msg; }
  /// `receiver`, which this agent asked about with notify_when_room(), has
  /// room in its mailbox again (or has exited).
  virtual void on_room(AgentRef receiver) { (void)receiver; }

  // -- persistence: only for agents that call persist_as() ---

  /// The state to store. Called on this agent's worker after an activation
  /// that called mark_dirty(), and when it exits normally or shuts down
  /// while dirty (not after a crash or kill: the last stored state stands).
  virtual std::string snapshot() const { return {}; }
  /// The last stored state of this agent's key, before on_start and before
  /// any message; not called when the key has none. Throwing crashes the agent
  /// once: the bytes are kept under "<key>.unreadable.<unix ms>" and, when it
  /// is restarted, it starts fresh (restore() is not called for that version).
  virtual void restore(std::string_view state, std::uint64_t version) {
    (void)state;
    (void)version;
  }

 protected:
  // -- actions: only from this agent's own handlers ---

  /// Queues a message for `to`. Never throws; a refusal (see SendResult) is
  /// counted as refused, never as lost.
  SendResult send(AgentRef to, Payload payload, std::uint32_t kind = 0) noexcept {
    return send(to, std::move(payload), SendOptions{kind, {}});
  }
  SendResult send(AgentRef to, Payload payload, const SendOptions& options) noexcept;
  /// send(to, Payload::of(value), ...): values, strings, byte vectors, JSON types.
  template <PayloadValue T>
  SendResult send(AgentRef to, const T& value, std::uint32_t kind = 0) {
    return send(to, Payload::of(value), SendOptions{kind, {}});
  }
  template <PayloadValue T>
  SendResult send(AgentRef to, const T& value, const SendOptions& options) {
    return send(to, Payload::of(value), options);
  }

  /// Answers a request (to its reply_to: an agent, or a caller outside the
  /// agents). A message that is not a request is answered by a plain send.
  SendResult reply(const Message& request, Payload payload, std::uint32_t kind = 0) noexcept;
  template <PayloadValue T>
  SendResult reply(const Message& request, const T& value, std::uint32_t kind = 0) {
    return reply(request, Payload::of(value), kind);
  }

  /// Streams an answer: a partial reply now, more to follow; end the stream
  /// with reply(). The asker's callback runs once per part (reply->partial
  /// set on all but the last). Requesters waiting on a future see the final
  /// reply only. A message that is not a request is answered by a plain send.
  SendResult reply_partial(const Message& request, Payload payload, std::uint32_t kind = 0) noexcept;
  template <PayloadValue T>
  SendResult reply_partial(const Message& request, const T& value, std::uint32_t kind = 0) {
    return reply_partial(request, Payload::of(value), kind);
  }

  /// Flow control: after `to` refused a send with mailbox_full, asks to be
  /// told when it has room again. on_room(to) then runs on this agent once
  /// (at once if it already has room or is gone: the next send says which).
  /// Never blocks.
  void notify_when_room(AgentRef to);

  /// Sends a request; `done` runs later on this agent with the reply, or with
  /// the reason none will come (timeout, dead_agent, ...). If the request cannot
  /// be sent at all, `done` runs before ask returns.
  void ask(AgentRef to, Payload payload, std::uint32_t kind, std::chrono::nanoseconds timeout, AskCallback done);

  // -- topics ---
  /// Subscribes this agent to `pattern` (`*` one token, `>` the rest), in a
  /// queue group if named; subscriptions end when the agent exits.
  Result<router::SubscriptionId> subscribe(std::string_view pattern, std::string_view queue_group = {});
  bool unsubscribe(router::SubscriptionId id);
  /// Publishes to every subscriber of `topic` (one member per queue group).
  /// By id (from runtime().router().intern()) skips hashing the name.
  router::PublishResult publish(router::TopicId topic, const Payload& payload, std::uint32_t kind = 0) noexcept;
  template <PayloadValue T>
  router::PublishResult publish(router::TopicId topic, const T& value, std::uint32_t kind = 0) {
    return publish(topic, Payload::of(value), kind);
  }
  Result<router::PublishResult> publish(std::string_view topic, const Payload& payload, std::uint32_t kind = 0);
  /// Publishes a request; `done` runs later on this agent with the first reply
  /// (responders answer with reply()), or with timeout / no_responder.
  void request(router::TopicId topic, Payload payload, std::uint32_t kind, std::chrono::nanoseconds timeout,
               AskCallback done);

  /// Registers this agent under `name` (e.g. "billing"), so others find it
  /// with Runtime::whereis; released when it exits. An agent may hold several
  /// names. Errors: a name held by another live agent, or an invalid name
  /// (empty, longer than 255 bytes, or with spaces or control characters).
  Result<void> register_name(std::string_view name);

  /// Spawns an agent; if this agent supervises, it becomes the parent.
  template <class T, class... Args>
  AgentRef spawn(Args&&... args);

  /// Sends `payload` to this agent (or `to`) once after `delay` / every `interval`.
  TimerId send_after(std::chrono::nanoseconds delay, Payload payload, std::uint32_t kind = 0);
  TimerId send_periodic(std::chrono::nanoseconds interval, Payload payload, std::uint32_t kind = 0);
  bool cancel_timer(TimerId id);

  /// Exits once the current handler returns.
  void stop(ExitReason reason = {});
  bool exiting() const noexcept { return core_.exiting; }

  /// Agents whose spawned children report their exits here (supervisors).
  void set_supervising(bool on) noexcept { core_.supervises = on; }

  /// Makes this agent persistent under `key` (stable across restarts and
  /// processes, e.g. "order-42"). Call it from the constructor. The runtime
  /// then loads the key's state from RuntimeConfig::state_store and calls
  /// restore() before on_start and before any message; messages that arrive
  /// meanwhile wait (up to the mailbox capacity, then dropped as mailbox_full).
  /// Spawning throws std::logic_error when no state_store is configured.
  void persist_as(std::string key);
  /// Schedules a write-behind snapshot once the current activation ends
  /// (many marks, one snapshot). Only for persistent agents.
  void mark_dirty() noexcept { core_.dirty = true; }

 private:
  friend class detail::RuntimeCore;
  SendResult answer(const Message& request, Payload payload, std::uint32_t kind, bool partial) noexcept;
  detail::AgentCore core_;
};

}  // namespace swarm
