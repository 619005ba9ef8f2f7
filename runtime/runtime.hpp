#pragma once
// swarm::Runtime hosts agents: a fixed pool of worker threads with work
// stealing, bounded mailboxes, per-type object pools, a timer wheel and
// supervision. Every message that is not delivered is counted with a reason.
//
//   swarm::RuntimeConfig cfg;
//   cfg.workers = 4;
//   swarm::Runtime rt(cfg);                    // throws std::invalid_argument on bad config
//   swarm::AgentRef echo = rt.spawn<Echo>();
//   std::future<swarm::Reply> answer = rt.ask(echo, std::string("hello"), std::chrono::seconds(1));
//   swarm::Reply r = answer.get();             // r.status == AskStatus::ok: r.message.as<std::string>()
//   rt.shutdown();                             // drains, stops agents, joins threads
//
// Thread-safe: every public member may be called from any thread.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "metrics/flamegraph.hpp"
#include "router/router.hpp"
#include "runtime/agent.hpp"
#include "runtime/config.hpp"
#include "runtime/remote.hpp"

namespace swarm {

namespace metrics {
class Registry;
class AdminServer;
}

namespace detail {
class RuntimeCore;  // runtime/detail/runtime_core.hpp: the state behind a Runtime
/// The core of `rt`, for the runtime's own files (supervisor.cpp, ...).
RuntimeCore& core_of(Runtime& rt) noexcept;
}  // namespace detail

/// A crash as recorded for diagnostics.
struct CrashRecord {
  AgentRef agent;
  std::string type;
  ExitReason reason;
  std::chrono::system_clock::time_point when;
};

/// Counters since start. A snapshot: each figure is read on its own.
struct RuntimeStats {
  std::uint64_t spawned = 0;
  std::uint64_t exited = 0;
  std::uint64_t crashed = 0;
  std::uint64_t restarts = 0;
  std::uint64_t supervisors_gave_up = 0;  // root supervisors that reached their restart intensity (their tree is gone)
  std::uint64_t restores_failed = 0;  // stored states restore() threw on (kept aside; the agent restarts fresh)
  std::uint64_t live = 0;
  std::uint64_t messages = 0;     // handled
  std::uint64_t activations = 0;
  std::uint64_t steals = 0;
  std::uint64_t parks = 0;
  std::uint64_t spin_ns = 0;      // workers spinning for work before parking (RuntimeConfig::idle_spin)
  std::uint64_t shared_parts = 0;  // parts of large publishes delivered by a worker that helped (shared_fanout)
  std::array<std::uint64_t, kDropReasonCount> dropped{};    // accepted, then lost: by DropReason
  std::array<std::uint64_t, kRefuseReasonCount> refused{};  // the sender was told; nothing lost: by RefuseReason
  std::uint64_t dropped_total() const;
  std::uint64_t refused_total() const;
};

/// The answer to Runtime::ask / Runtime::request.
struct Reply {
  AskStatus status = AskStatus::ok;
  Message message;  // the reply, when status is ok

  bool ok() const noexcept { return status == AskStatus::ok; }
};

// -- spawning, behind Runtime::spawn<T> and Agent::spawn<T> ---

namespace detail {
unsigned next_type_id();

/// What spawn<T> tells the runtime of T: one per type, made at its first spawn.
struct AgentTypeSpec {
  unsigned id = 0;  // process-wide
  std::size_t size = 0;
  std::size_t align = 0;
  bool has_on_start = true;  // false when T keeps Agent::on_start: spawning skips it
  std::string_view name;     // T::kTypeName, or empty: the demangled name of `type`
  const std::type_info* type = nullptr;
  /// Runs T's destructor; returns the block the agent was built in.
  void* (*destroy)(Agent* agent) noexcept = nullptr;
};

template <class T>
const AgentTypeSpec& type_spec() {
  static const AgentTypeSpec spec = [] {
    AgentTypeSpec s;
    s.id = next_type_id();
    s.size = sizeof(T);
    s.align = alignof(T);
    if constexpr (requires { &T::on_start; }) {
      s.has_on_start = !std::is_same_v<decltype(&T::on_start), void (Agent::*)()>;
    }
    if constexpr (requires { T::kTypeName; }) s.name = std::string_view(T::kTypeName);
    s.type = &typeid(T);
    s.destroy = [](Agent* agent) noexcept -> void* {
      T* t = static_cast<T*>(agent);
      t->~T();
      return t;
    };
    return s;
  }();
  return spec;
}

/// Builds an agent in `mem` (spec.size bytes, spec.align aligned) from `args`.
using ConstructAgent = Agent* (*)(void* mem, void* args);
/// Allocates a block for the type, calls `construct` in it and registers the
/// agent under `parent`. Rethrows what the constructor throws (the block is
/// freed); throws std::length_error when the agent table is full.
AgentRef spawn_agent(RuntimeCore& rt, AgentRef parent, const AgentTypeSpec& spec, ConstructAgent construct,
                     void* args);

template <class T, class... Args>
AgentRef spawn_agent(RuntimeCore& rt, AgentRef parent, Args&&... args) {
  static_assert(std::is_base_of_v<Agent, T>, "spawn<T>: T must derive from swarm::Agent");
  auto construct = [&](void* mem) -> Agent* { return new (mem) T(std::forward<Args>(args)...); };
  using Construct = decltype(construct);
  return spawn_agent(
      rt, parent, type_spec<T>(),
      [](void* mem, void* c) -> Agent* { return (*static_cast<Construct*>(c))(mem); }, &construct);
}
}  // namespace detail

class Runtime {
 public:
  /// Starts the workers and the timer thread. Throws std::invalid_argument
  /// naming the bad field when `config` does not validate.
  explicit Runtime(RuntimeConfig config = {});
  /// Shuts down (drain) if shutdown() was not called.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // -- agents ---

  /// Constructs a T from args and registers it. Throws what T's constructor
  /// throws, or std::length_error when the agent table is full.
  template <class T, class... Args>
  AgentRef spawn(Args&&... args) {
    return detail::spawn_agent<T>(*core_.get(), AgentRef{}, std::forward<Args>(args)...);
  }

  /// Asks an agent to stop (it exits with reason shutdown after the messages
  /// queued before this request). False if it is already gone.
  bool stop(AgentRef agent) noexcept;
  /// Makes an agent exit before its next message; queued messages are dropped
  /// (dead_agent). A handler that is running finishes first.
  bool kill(AgentRef agent) noexcept;
  /// True while the agent has not exited.
  bool alive(AgentRef agent) const noexcept;

  // -- messages from outside the agents ---

  /// Queues a message for `to`. Never throws; a refusal is counted as
  /// refused (stats().refused), never as lost.
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

  /// Asks `to` and returns the answer's future: ready with the reply (status
  /// ok) or with why none will come (timeout, dead_agent, mailbox_full, ...),
  /// at the latest after `timeout`. From any thread but a worker's (an agent
  /// uses Agent::ask, which never blocks); the responder answers with reply().
  std::future<Reply> ask(AgentRef to, Payload payload, std::chrono::nanoseconds timeout, std::uint32_t kind = 0);
  template <PayloadValue T>
  std::future<Reply> ask(AgentRef to, const T& value, std::chrono::nanoseconds timeout, std::uint32_t kind = 0) {
    return ask(to, Payload::of(value), timeout, kind);
  }
  /// Publishes a request on `topic` (one subscriber per queue group answers);
  /// the future holds the first reply, or no_responder / timeout. Throws
  /// std::invalid_argument for a bad topic name.
  std::future<Reply> request(std::string_view topic, Payload payload, std::chrono::nanoseconds timeout,
                             std::uint32_t kind = 0);

  /// Flow control from outside the agents: after a send to `to` was refused
  /// with mailbox_full, waits until it has room again (or is gone). False on
  /// timeout, or when called on a worker thread (a worker never blocks: an
  /// agent uses notify_when_room()).
  bool wait_for_room(AgentRef to, std::chrono::milliseconds timeout);

  // -- remote nodes: transports (see runtime/remote.hpp) ---

  /// Attaches a transport; returns the node number its refs carry. Throws
  /// std::length_error when kMaxRemoteNodes are attached.
  std::uint32_t attach_node(RemoteNode& node);
  /// Detaches it: refs on `node` are unreachable again. Waits for deliveries
  /// to it that are running on other threads.
  void detach_node(std::uint32_t node) noexcept;
  /// Sends on behalf of options.sender (a request if options.correlation_id
  /// is set: the reply goes to the sender with that id). As send() otherwise.
  SendResult forward(AgentRef to, Payload payload, const ForwardOptions& options) noexcept;
  /// Publishes on behalf of options.sender (a request if correlation_id is
  /// set). As publish() otherwise: undelivered messages are counted.
  router::PublishResult forward_publish(router::TopicId topic, const Payload& payload,
                                        const ForwardOptions& options) noexcept;
  /// Answers a request that reached a remote participant: `to` and
  /// `correlation_id` are the request's reply_to and correlation_id. `partial`:
  /// more parts follow. A status other than ok ends the request.
  SendResult forward_reply(AgentRef to, std::uint64_t correlation_id, AskStatus status, bool partial,
                           Payload payload) noexcept;

  // -- names ---

  /// Registers `agent` under `name`; released when it exits. Errors: the name
  /// is held by another live agent, the agent is gone, or the name is invalid
  /// (empty, over 255 bytes, spaces or control characters).
  Result<void> register_name(AgentRef agent, std::string_view name);
  /// Releases `name`. False if nobody held it.
  bool unregister_name(std::string_view name);
  /// Releases `name` if `holder` holds it (a transport's participant leaving).
  bool unregister_name(std::string_view name, AgentRef holder);
  /// The agent registered under `name` (here, or on another node when a
  /// name directory is set), or an invalid ref.
  AgentRef whereis(std::string_view name) const;
  /// Shares names with other nodes (cluster/ sets it; nullptr removes it).
  /// Names already registered are reported to it at once.
  void set_name_directory(NameDirectory* directory);

  // -- topics (see router/) ---

  /// The topic router: intern topics, stats, subscriptions of non-agents.
  router::Router& router() noexcept;
  /// Subscribes `agent` to `pattern` (wildcards allowed), optionally in a queue
  /// group. Removed when the agent exits. Errors: a bad pattern (the message
  /// says what and where) or an agent that is gone.
  Result<router::SubscriptionId> subscribe(AgentRef agent, std::string_view pattern,
                                           std::string_view queue_group = {});
  bool unsubscribe(router::SubscriptionId id);
  /// Publishes to every subscriber (one per queue group). Messages nobody took
  /// are counted (no_subscriber, mailbox_full, dead_agent).
  router::PublishResult publish(router::TopicId topic, const Payload& payload, std::uint32_t kind = 0) noexcept;
  Result<router::PublishResult> publish(std::string_view topic, const Payload& payload, std::uint32_t kind = 0);

  TimerId send_after(AgentRef to, std::chrono::nanoseconds delay, Payload payload, std::uint32_t kind = 0);
  TimerId send_periodic(AgentRef to, std::chrono::nanoseconds interval, Payload payload, std::uint32_t kind = 0);
  bool cancel_timer(TimerId id);

  // -- lifecycle ---

  /// Stops intake from outside, then (drain) lets queued messages be handled,
  /// stops every agent (supervisors stop their children in order), waits up to
  /// shutdown_timeout, kills what is left, and joins every thread. Idempotent.
  void shutdown(ShutdownPolicy policy = ShutdownPolicy::drain);
  bool stopping() const noexcept;

  /// Waits until no agent has a message to handle. False on timeout.
  bool wait_idle(std::chrono::milliseconds timeout = std::chrono::milliseconds(30000)) const;

  // -- diagnostics ---

  const RuntimeConfig& config() const noexcept;
  unsigned worker_count() const noexcept;
  RuntimeStats stats() const;
  std::vector<CrashRecord> recent_crashes() const;
  /// RuntimeConfig::mailbox_by_type keys that match no agent type spawned so
  /// far (shutdown() also prints them as a warning).
  std::vector<std::string> unmatched_type_keys() const;

  // -- telemetry (see docs/metrics.md) ---

  /// The registry behind /metrics; programs may add series of their own.
  metrics::Registry& metrics() noexcept;
  /// The admin HTTP port bound (telemetry.admin), 0 without one.
  std::uint16_t admin_port() const noexcept;
  /// The admin server itself (to add control pages, set the control token),
  /// nullptr without an admin port.
  metrics::AdminServer* admin() noexcept;
  /// Serves `path` (under /debug/) on the admin port as the JSON `render`
  /// returns, until removed (e.g. a gateway's /debug/gateway). Nothing
  /// without an admin port. Any thread; `render` runs on the admin server's.
  void set_debug_page(std::string path, std::function<std::string()> render);
  void remove_debug_page(const std::string& path);
  /// Handler time since start by "supervisor path;agent type;topic", in ns
  /// (sampled 1 in telemetry.sample_every, scaled up).
  metrics::FoldedStacks logical_profile() const;
  /// Counts a restart in stats().restarts (supervisors call it).
  void note_restart() noexcept;
  /// A root supervisor gave up (supervisors call it): logged, counted in
  /// stats().supervisors_gave_up, and /readyz says so from then on.
  void note_supervisor_gave_up(AgentRef supervisor, const std::string& why);

 private:
  friend detail::RuntimeCore& detail::core_of(Runtime& rt) noexcept;

  // Everything behind the API: agents, mailboxes, workers, timers, telemetry.
  std::unique_ptr<detail::RuntimeCore> core_;
};

// -- templates ---

template <class T, class... Args>
AgentRef Agent::spawn(Args&&... args) {
  return detail::spawn_agent<T>(*core_.rt, core_.supervises ? core_.self : AgentRef{}, std::forward<Args>(args)...);
}

}  // namespace swarm
