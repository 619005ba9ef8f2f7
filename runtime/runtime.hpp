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
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <future>
#include <unordered_map>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "base/mutex.hpp"
#include "metrics/flamegraph.hpp"
#include "metrics/instruments.hpp"
#include "router/router.hpp"
#include "runtime/agent.hpp"
#include "runtime/config.hpp"
#include "runtime/detail/agent_table.hpp"
#include "runtime/detail/envelope_pool.hpp"
#include "runtime/detail/object_pool.hpp"

namespace swarm {

namespace metrics {
class Registry;
}

namespace detail {
struct RuntimeLink;
/// Spawns on this thread while one is alive are journaled as `restarted`
/// (the supervisor restarting a child).
struct RestartScope {
  RestartScope() noexcept;
  ~RestartScope();
  RestartScope(const RestartScope&) = delete;
  RestartScope& operator=(const RestartScope&) = delete;
};
extern thread_local bool t_restarting;
class Scheduler;
class Telemetry;
class TimerWheel;
struct Worker;
struct TimerEntry;
}  // namespace detail

/// What the runtime knows of one agent type. Constant once created.
struct AgentTypeInfo {
  unsigned id = 0;
  std::string name;
  MailboxOptions mailbox;
  bool has_on_start = true;
  detail::ObjectPool* pool = nullptr;  // nullptr: plain new/delete
  void (*destroy)(Agent*, const AgentTypeInfo&) = nullptr;
  // Telemetry (disabled handles when telemetry is off).
  metrics::Histogram handler_time;
  metrics::Counter crashes;
  // Drop (bit = DropReason) and refusal (bit = 8 + RefuseReason) reasons
  // already logged for this type: each is logged once.
  mutable std::atomic<std::uint32_t> logged{0};
};

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
  std::uint64_t live = 0;
  std::uint64_t messages = 0;     // handled
  std::uint64_t activations = 0;
  std::uint64_t steals = 0;
  std::uint64_t parks = 0;
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

class Runtime {
  friend class Agent;
  friend class detail::Telemetry;

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
    return spawn_with_parent<T>(AgentRef{}, std::forward<Args>(args)...);
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

  // -- names ---

  /// Registers `agent` under `name`; released when it exits. Errors: the name
  /// is held by another live agent, the agent is gone, or the name is invalid
  /// (empty, over 255 bytes, spaces or control characters).
  Result<void> register_name(AgentRef agent, std::string_view name);
  /// Releases `name`. False if nobody held it.
  bool unregister_name(std::string_view name);
  /// The agent registered under `name`, or an invalid ref.
  AgentRef whereis(std::string_view name) const;

  // -- topics (see router/) ---

  /// The topic router: intern topics, stats, subscriptions of non-agents.
  router::Router& router() noexcept { return router_; }
  /// Subscribes `agent` to `pattern` (wildcards allowed), optionally in a queue
  /// group. Removed when the agent exits. Errors: a bad pattern (the message
  /// says what and where) or an agent that is gone.
  Result<router::SubscriptionId> subscribe(AgentRef agent, std::string_view pattern,
                                           std::string_view queue_group = {});
  bool unsubscribe(router::SubscriptionId id) { return router_.unsubscribe(id); }
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
  bool stopping() const noexcept { return !accepting_.load(std::memory_order_acquire); }

  /// Waits until no agent has a message to handle. False on timeout.
  bool wait_idle(std::chrono::milliseconds timeout = std::chrono::milliseconds(30000)) const;

  // -- diagnostics ---

  const RuntimeConfig& config() const noexcept { return config_; }
  unsigned worker_count() const noexcept { return workers_; }
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
  /// Handler time since start by "supervisor path;agent type;topic", in ns
  /// (sampled 1 in telemetry.sample_every, scaled up).
  metrics::FoldedStacks logical_profile() const;
  void note_restart() noexcept { restarts_.fetch_add(1, std::memory_order_relaxed); }

  // -- internal: used by Agent and the scheduler ---

  /// Takes ownership of `e` and queues it for `to`; never throws.
  SendResult deliver(AgentRef to, detail::Envelope* e) noexcept;
  /// Queues a runtime message that bypasses the mailbox bound.
  bool deliver_system(AgentRef to, SystemKind kind, AgentRef sender = {}, Payload payload = {},
                      std::uint32_t tag = 0) noexcept;
  TimerId add_timer(detail::TimerEntry entry, std::chrono::nanoseconds delay);
  /// REQUIRES: called from `agent`'s own handler.
  void ask_from(Agent& agent, AgentRef to, Payload payload, std::uint32_t kind, std::chrono::nanoseconds timeout,
                AskCallback done);
  template <class T, class... Args>
  AgentRef spawn_with_parent(AgentRef parent, Args&&... args);
  /// Runs one activation of `agent`; true if it still has messages (yield it).
  bool activate(Agent* agent, detail::Worker& worker) noexcept;
  /// Spawn timing: a clock reading for 1 in sample_every spawns, else 0.
  std::uint64_t spawn_clock() noexcept;

 private:
  static constexpr unsigned kMaxTypes = 1024;

  template <class T>
  const AgentTypeInfo& type_info();
  const AgentTypeInfo& make_type_info(unsigned id, std::string name, bool has_on_start, std::size_t size,
                                      std::size_t align, void (*destroy)(Agent*, const AgentTypeInfo&),
                                      detail::ObjectPool* pool);
  AgentRef attach(Agent* agent, const AgentTypeInfo& type, AgentRef parent, std::uint64_t clock);
  // Counting what was not delivered: `to` names the receiver when known (its
  // type is logged once per reason: the setting to change).
  void count_drop(DropReason r, AgentRef to) noexcept;
  void count_refusal(SendResult r, AgentRef to) noexcept;
  void log_first(unsigned bit, AgentRef to, std::string_view what) noexcept;
  static DropReason drop_reason(SendResult r) noexcept;
  static AskStatus request_status(const router::PublishResult& r) noexcept;
  SendResult send_envelope(AgentRef to, detail::Envelope* e) noexcept;
  bool deliver_reply(AgentRef to, std::uint64_t correlation_id, AskStatus status) noexcept;
  // Callers outside the agents (Runtime::ask, request, wait_for_room).
  SendResult deliver_off_node(AgentRef to, detail::Envelope* e) noexcept;
  std::pair<AgentRef, std::future<Reply>> add_caller();
  void complete_caller(std::uint64_t id, AskStatus status, Message* reply) noexcept;
  void arm_caller_timeout(AgentRef caller, std::chrono::nanoseconds timeout);
  // Flow control and names.
  void add_room_waiter(AgentRef receiver, AgentRef waiter);
  void tell_room(AgentRef receiver) noexcept;
  void release_names(AgentRef agent, const std::vector<std::string>& names) noexcept;
  void warn_near_miss_locked(const std::string& type_name) SWARM_REQUIRES(mu_);
  void warn_unmatched_type_keys() const;
  SendResult evict_oldest_and_push(detail::Slot& slot, std::uint64_t reserved, detail::Envelope* e) noexcept;
  detail::Envelope* pop(detail::AgentCore& core, bool locking) noexcept;
  void dispatch(Agent* agent, detail::Envelope* e) noexcept;
  void dispatch_sampled(Agent* agent, detail::Envelope* e, detail::Slot& slot, detail::Worker& worker) noexcept;
  void begin_exit(Agent* agent, ExitReason reason) noexcept;
  void finish_exit(Agent* agent, std::uint32_t processed) noexcept;
  void complete_ask(Agent* agent, Message& msg);
  bool fire_timer(const detail::TimerEntry& t) noexcept;
  router::PublishResult publish_from(AgentRef sender, router::TopicId topic, const Payload& payload,
                                     std::uint32_t kind, std::uint64_t correlation_id) noexcept;
  void request_from(Agent& agent, router::TopicId topic, Payload payload, std::uint32_t kind,
                    std::chrono::nanoseconds timeout, AskCallback done);
  void await_reply(detail::AgentCore& core, std::uint64_t id, std::chrono::nanoseconds timeout, AskCallback done);
  void unsubscribe_exited(AgentRef agent) noexcept;
  void drop_undelivered(detail::Envelope* e, DropReason reason, AgentRef receiver) noexcept;
  void record(LifecycleEvent::Kind kind, AgentRef agent, std::string_view type, std::string_view detail,
              std::string_view payload = {}) noexcept;
  // Persistence (Agent::persist_as).
  void load_state(AgentRef agent, std::string key);
  void hold(Agent* agent, detail::Envelope* e) noexcept;
  void finish_restore(Agent* agent, Message& m);
  void save_state(Agent* agent) noexcept;
  void flush_storage();

  // Delivers published messages to agents' mailboxes; addresses are AgentRef bits.
  class AgentEndpoint final : public router::Endpoint {
   public:
    explicit AgentEndpoint(Runtime& rt) : rt_(rt) {}
    router::DeliverStatus deliver(const router::Delivery& d) noexcept override;
    std::size_t depth(std::uint64_t address) const noexcept override;

   private:
    Runtime& rt_;
  };
  // Takes messages published on RuntimeConfig::audit_topics to the lifecycle sink.
  class AuditEndpoint final : public router::Endpoint {
   public:
    explicit AuditEndpoint(Runtime& rt) : rt_(rt) {}
    router::DeliverStatus deliver(const router::Delivery& d) noexcept override;

   private:
    Runtime& rt_;
  };
  bool wait_for(std::chrono::milliseconds timeout, const std::function<bool()>& done) const;

  // -- constant after construction ---
  const RuntimeConfig config_;
  const unsigned workers_;

  // -- own synchronization ---
  detail::AgentTable table_;
  std::atomic<bool> accepting_{true};
  std::atomic<bool> shut_down_{false};
  std::atomic<std::uint64_t> spawned_{0}, exited_{0}, crashed_{0}, restarts_{0}, live_{0};
  std::array<std::atomic<std::uint64_t>, kDropReasonCount> drops_{};
  std::array<std::atomic<std::uint64_t>, kRefuseReasonCount> refusals_{};
  std::array<std::atomic<AgentTypeInfo*>, kMaxTypes> types_{};

  mutable Mutex mu_;  // types_ creation and the crash log
  std::vector<std::unique_ptr<AgentTypeInfo>> type_owner_ SWARM_GUARDED_BY(mu_);
  std::deque<CrashRecord> crashes_ SWARM_GUARDED_BY(mu_);

  mutable Mutex names_mu_;
  std::map<std::string, AgentRef, std::less<>> names_ SWARM_GUARDED_BY(names_mu_);

  // Callers outside the agents waiting for a reply or for room, by id.
  struct Caller {
    std::promise<Reply> reply;
    TimerId timer = 0;
  };
  Mutex callers_mu_;
  std::unordered_map<std::uint64_t, Caller> callers_ SWARM_GUARDED_BY(callers_mu_);
  std::uint64_t next_caller_ SWARM_GUARDED_BY(callers_mu_) = 0;

  // Senders to tell when a receiver (by table index) has room; see Slot::room_waiters.
  Mutex room_mu_;
  std::unordered_map<std::uint32_t, std::vector<AgentRef>> room_waiters_ SWARM_GUARDED_BY(room_mu_);

  AgentEndpoint endpoint_{*this};
  AuditEndpoint audit_endpoint_{*this};
  std::shared_ptr<detail::RuntimeLink> link_;  // for storage callbacks; cleared at shutdown
  router::Router router_;

  std::unique_ptr<detail::Telemetry> telemetry_;
  std::unique_ptr<detail::TimerWheel> timers_;
  std::unique_ptr<detail::Scheduler> scheduler_;  // last: its threads use everything above
};

// -- templates ---

namespace detail {
unsigned next_type_id();
template <class T>
unsigned type_id() {
  static const unsigned id = next_type_id();
  return id;
}
std::string demangle(const char* mangled);
}  // namespace detail

template <class T>
const AgentTypeInfo& Runtime::type_info() {
  const unsigned id = detail::type_id<T>();
  SWARM_CHECK(id < kMaxTypes);
  if (AgentTypeInfo* info = types_[id].load(std::memory_order_acquire)) return *info;
  std::string name;
  if constexpr (requires { T::kTypeName; }) {
    name = std::string(T::kTypeName);
  } else {
    name = detail::demangle(typeid(T).name());
  }
  bool has_on_start = true;
  if constexpr (requires { &T::on_start; }) {
    has_on_start = !std::is_same_v<decltype(&T::on_start), void (Agent::*)()>;
  }
  auto destroy = [](Agent* a, const AgentTypeInfo& info) {
    T* t = static_cast<T*>(a);
    t->~T();
    if (info.pool != nullptr) {
      info.pool->deallocate(t);
    } else {
      ::operator delete(static_cast<void*>(t), std::align_val_t(alignof(T)));
    }
  };
  detail::ObjectPool* pool = config_.pooling ? &detail::pool_for<T>() : nullptr;
  return make_type_info(id, std::move(name), has_on_start, sizeof(T), alignof(T), destroy, pool);
}

template <class T, class... Args>
AgentRef Runtime::spawn_with_parent(AgentRef parent, Args&&... args) {
  static_assert(std::is_base_of_v<Agent, T>, "spawn<T>: T must derive from swarm::Agent");
  const AgentTypeInfo& info = type_info<T>();
  const std::uint64_t clock = spawn_clock();
  void* mem = info.pool != nullptr ? info.pool->allocate() : ::operator new(sizeof(T), std::align_val_t(alignof(T)));
  T* agent;
  try {
    agent = new (mem) T(std::forward<Args>(args)...);
  } catch (...) {
    if (info.pool != nullptr) {
      info.pool->deallocate(mem);
    } else {
      ::operator delete(mem, std::align_val_t(alignof(T)));
    }
    throw;
  }
  return attach(agent, info, parent, clock);
}

template <class T, class... Args>
AgentRef Agent::spawn(Args&&... args) {
  return runtime().spawn_with_parent<T>(core_.supervises ? core_.self : AgentRef{}, std::forward<Args>(args)...);
}

}  // namespace swarm
