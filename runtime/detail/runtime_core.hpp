#pragma once
// The runtime behind swarm::Runtime: its state (agent table, counters, type
// records, callers, names), its endpoints in the router, its telemetry, timer
// wheel and scheduler. runtime/runtime.hpp shows users the API only and holds
// a RuntimeCore; its members forward here. Agents hold a pointer to their
// runtime's core (AgentCore::rt), so a send from a handler reaches deliver()
// without passing through Runtime.
//
// Included only by runtime/'s own .cpp files. The members are split by concern:
// runtime.cpp (construction, types, diagnostics), delivery.cpp (sending,
// running agents), lifecycle.cpp (spawn, stop, exit), ask.cpp, topics.cpp,
// timers.cpp, flow_control.cpp, names.cpp, persistence.cpp, shutdown.cpp.
//
// Thread-safe, as Runtime: what is not says who may call it.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/mutex.hpp"
#include "router/router.hpp"
#include "runtime/detail/agent_table.hpp"
#include "runtime/detail/agent_type.hpp"
#include "runtime/detail/envelope_pool.hpp"
#include "runtime/detail/object_pool.hpp"
#include "runtime/detail/runtime_view.hpp"
#include "runtime/runtime.hpp"

namespace swarm {

namespace metrics {
class Registry;
class AdminServer;
}

namespace detail {

class Scheduler;
class Telemetry;
class TimerWheel;
struct TimerEntry;
struct Worker;

std::string demangle(const char* mangled);

/// Spawns on this thread while one is alive are journaled as `restarted`
/// (the supervisor restarting a child).
struct RestartScope {
  RestartScope() noexcept;
  ~RestartScope();
  RestartScope(const RestartScope&) = delete;
  RestartScope& operator=(const RestartScope&) = delete;
};
extern thread_local bool t_restarting;

// Child-exit notices (SystemKind::child_exit) carry the child, the exit kind
// and the detail text; made by finish_exit, read by dispatch (lifecycle.cpp).
Payload encode_child_exit(AgentRef child, const ExitReason& r);
void decode_child_exit(const Payload& p, AgentRef& child, ExitReason& r);

class RuntimeCore;

// Lets a storage thread answer a load after the runtime is gone.
struct RuntimeLink {
  Mutex mu;
  RuntimeCore* rt SWARM_GUARDED_BY(mu) = nullptr;
};

class RuntimeCore final : public RuntimeView {
 public:
  /// Starts the workers, the timer thread and telemetry. Throws
  /// std::invalid_argument naming the bad field when `config` does not validate.
  RuntimeCore(Runtime& owner, RuntimeConfig config);
  RuntimeCore(const RuntimeCore&) = delete;
  RuntimeCore& operator=(const RuntimeCore&) = delete;
  ~RuntimeCore();

  /// The Runtime that owns this core (Agent::runtime()).
  Runtime& owner() noexcept { return owner_; }

  // -- Runtime's API (documented in runtime/runtime.hpp) ---

  AgentRef spawn(AgentRef parent, const AgentTypeSpec& spec, ConstructAgent construct, void* args);
  bool stop(AgentRef agent) noexcept;
  bool kill(AgentRef agent) noexcept;
  bool alive(AgentRef agent) const noexcept;
  SendResult send(AgentRef to, Payload payload, const SendOptions& options) noexcept;
  std::future<Reply> ask(AgentRef to, Payload payload, std::chrono::nanoseconds timeout, std::uint32_t kind);
  std::future<Reply> request(std::string_view topic, Payload payload, std::chrono::nanoseconds timeout,
                             std::uint32_t kind);
  bool wait_for_room(AgentRef to, std::chrono::milliseconds timeout);
  Result<void> register_name(AgentRef agent, std::string_view name);
  bool unregister_name(std::string_view name);
  bool unregister_name(std::string_view name, AgentRef holder);
  std::uint32_t attach_node(RemoteNode& node);
  void detach_node(std::uint32_t node) noexcept;
  SendResult forward(AgentRef to, Payload payload, const ForwardOptions& options) noexcept;
  router::PublishResult forward_publish(router::TopicId topic, const Payload& payload,
                                        const ForwardOptions& options) noexcept;
  SendResult forward_reply(AgentRef to, std::uint64_t correlation_id, AskStatus status, bool partial,
                           Payload payload) noexcept;
  AgentRef whereis(std::string_view name) const;
  void set_name_directory(NameDirectory* directory);
  router::Router& router() noexcept { return router_; }
  Result<router::SubscriptionId> subscribe(AgentRef agent, std::string_view pattern, std::string_view queue_group);
  bool unsubscribe(router::SubscriptionId id) { return router_.unsubscribe(id); }
  router::PublishResult publish(router::TopicId topic, const Payload& payload, std::uint32_t kind) noexcept;
  Result<router::PublishResult> publish(std::string_view topic, const Payload& payload, std::uint32_t kind);
  TimerId send_after(AgentRef to, std::chrono::nanoseconds delay, Payload payload, std::uint32_t kind);
  TimerId send_periodic(AgentRef to, std::chrono::nanoseconds interval, Payload payload, std::uint32_t kind);
  bool cancel_timer(TimerId id);
  void shutdown(ShutdownPolicy policy);
  bool stopping() const noexcept override { return !accepting_.load(std::memory_order_acquire); }
  bool wait_idle(std::chrono::milliseconds timeout) const;
  const RuntimeConfig& config() const noexcept override { return config_; }
  unsigned worker_count() const noexcept { return workers_; }
  RuntimeStats stats() const override;
  std::vector<CrashRecord> recent_crashes() const;
  std::vector<std::string> unmatched_type_keys() const;
  metrics::Registry& metrics() noexcept;
  std::uint16_t admin_port() const noexcept;
  metrics::AdminServer* admin() noexcept;
  void set_debug_page(std::string path, std::function<std::string()> render);
  void remove_debug_page(const std::string& path);
  metrics::FoldedStacks logical_profile() const;
  void note_restart() noexcept { restarts_.fetch_add(1, std::memory_order_relaxed); }
  void note_supervisor_gave_up(AgentRef supervisor, const std::string& why);
  Result<void> supervision() const override;

  // -- RuntimeView: what telemetry reads (also config, stopping, stats above) ---

  const Scheduler& scheduler() const noexcept override { return *scheduler_; }
  const AgentTable& agents() const noexcept override { return table_; }
  const std::string* type_name(unsigned id) const noexcept override;
  const router::Router& router() const noexcept override { return router_; }
  std::size_t pending_timers() const override;

  // -- for Agent's actions, the scheduler and supervisors ---

  /// Takes ownership of `e` and queues it for `to`; never throws. Counts
  /// losses only (a refusal is the caller's to count). `may_sample` false:
  /// the caller made the latency-sampling draw.
  SendResult deliver(AgentRef to, Envelope* e, bool may_sample = true) noexcept;
  /// deliver(), then counts a refusal as refused.
  SendResult send_envelope(AgentRef to, Envelope* e) noexcept;
  /// Queues a runtime message that bypasses the mailbox bound.
  bool deliver_system(AgentRef to, SystemKind kind, AgentRef sender = {}, Payload payload = {},
                      std::uint32_t tag = 0) noexcept;
  TimerId add_timer(TimerEntry entry, std::chrono::nanoseconds delay);
  /// REQUIRES: called from `agent`'s own handler (so are the next three).
  void ask_from(Agent& agent, AgentRef to, Payload payload, std::uint32_t kind, std::chrono::nanoseconds timeout,
                AskCallback done);
  void request_from(Agent& agent, router::TopicId topic, Payload payload, std::uint32_t kind,
                    std::chrono::nanoseconds timeout, AskCallback done);
  void begin_exit(Agent* agent, ExitReason reason) noexcept;
  void add_room_waiter(AgentRef receiver, AgentRef waiter);
  router::PublishResult publish_from(AgentRef sender, router::TopicId topic, const Payload& payload,
                                     std::uint32_t kind, std::uint64_t correlation_id,
                                     std::uint64_t deadline_ns = 0, const ForwardOptions* relay = nullptr) noexcept;
  /// Runs one activation of `agent` on `worker`; true if it still has
  /// messages (yield it). Worker threads only (in step mode: run_once).
  bool activate(Agent* agent, Worker& worker) noexcept;
  /// Where timers and supervisors read time; nullptr: the real steady clock.
  const Clock* clock() const noexcept { return clock_; }

  // -- step mode (RuntimeConfig::step_mode): the caller's thread runs agents ---
  // REQUIRES for each: step mode, and not called from a handler.

  bool step_mode() const noexcept { return step_mode_; }
  /// Runs one activation of the agent made runnable first; false if none is.
  bool run_once();
  /// Runs activations until none is runnable or `max` ran; returns how many ran.
  std::size_t run_until_idle(std::size_t max);
  /// Fires the timers due by the clock's now; returns how many fired.
  std::size_t fire_due_timers();
  /// When the earliest armed timer is due, or nullopt.
  std::optional<Clock::time_point> next_timer_due() const;
  /// Runs agents; when none is runnable, moves the manual clock to the next
  /// timer (never past `deadline`) and fires it; until done() or nothing is
  /// left to do before `deadline`. The clock ends at `deadline` unless done()
  /// came first. Returns done().
  bool step_until(Clock::time_point deadline, const std::function<bool()>& done);

 private:
  // The type's record in this runtime, made at its first spawn here.
  const AgentTypeInfo& type_info(const AgentTypeSpec& spec) {
    SWARM_CHECK(spec.id < kMaxAgentTypes);
    if (AgentTypeInfo* info = types_[spec.id].load(std::memory_order_acquire)) return *info;
    return make_type_info(spec);
  }
  const AgentTypeInfo& make_type_info(const AgentTypeSpec& spec);
  std::uint64_t spawn_clock() noexcept;
  // The calling worker's cache of free table slots, or nullptr off this runtime's workers.
  detail::IndexCache* local_indices() noexcept;
  AgentRef attach(Agent* agent, const AgentTypeInfo& type, AgentRef parent, std::uint64_t clock);
  // Counting what was not delivered: `to` names the receiver when known (its
  // type is logged once per reason: the setting to change).
  void count_drop(DropReason r, AgentRef to) noexcept;
  void count_refusal(SendResult r, AgentRef to) noexcept;
  void log_first(unsigned bit, AgentRef to, std::string_view what) noexcept;
  static DropReason drop_reason(SendResult r) noexcept;
  bool deliver_reply(AgentRef to, std::uint64_t correlation_id, AskStatus status) noexcept;
  // Callers outside the agents (Runtime::ask, request, wait_for_room).
  SendResult deliver_off_node(AgentRef to, Envelope* e) noexcept;
  // Remote nodes (remote.cpp): refs on node n go to remotes_[n - 1].
  SendResult deliver_remote(AgentRef to, Envelope* e) noexcept;
  bool remote_alive(AgentRef ref) const noexcept;
  std::pair<AgentRef, std::future<Reply>> add_caller();
  void complete_caller(std::uint64_t id, AskStatus status, Message* reply) noexcept;
  void arm_caller_timeout(AgentRef caller, std::chrono::nanoseconds timeout);
  // Flow control and names.
  void tell_room(AgentRef receiver) noexcept;
  void release_names(AgentRef agent, const std::vector<std::string>& names) noexcept;
  void warn_near_miss_locked(const std::string& type_name) SWARM_REQUIRES(mu_);
  void warn_unmatched_type_keys() const;
  SendResult evict_oldest_and_push(Slot& slot, std::uint64_t reserved, Envelope* e) noexcept;
  // The next message for `core`: its front list first, then its mailbox;
  // `locking` (drop_oldest) under the pop lock. Inline: activate() pops every message.
  Envelope* pop(AgentCore& core, bool locking) noexcept {
    if (locking) return pop_locked(core);
    if (Node* n = core.front) {
      if (SharedMessage* m = shared_in(n)) {
        core.front = nullptr;
        return copy_shared(m);
      }
      core.front = n->next.load(std::memory_order_relaxed);
      return static_cast<Envelope*>(n);
    }
    return static_cast<Envelope*>(core.mailbox.pop());
  }
  Envelope* pop_locked(AgentCore& core) noexcept;
  // Whether the message that wakes the occupant of `slot` goes to its front
  // slot (drop_oldest keeps that list for evicting senders).
  bool hands_off(const Slot& slot) const noexcept {
    return config_.wake_handoff && slot.overflow.load(std::memory_order_relaxed) != OverflowPolicy::drop_oldest;
  }
  // Queues `e` for `agent`, whose count the caller raised from `before`, and
  // schedules the agent if that made it runnable.
  void enqueue(Slot& slot, Agent* agent, Envelope* e, std::uint64_t before) noexcept;
  // A publish's delivery to `to` as the shared `m` (fanout_handoff): only if
  // `to` is a local agent with nothing queued, else false and nothing done.
  bool hand_off(AgentRef to, SharedMessage* m) noexcept;
  void dispatch(Agent* agent, Envelope* e) noexcept;
  void dispatch_sampled(Agent* agent, Envelope* e, Slot& slot, Worker& worker) noexcept;
  void finish_exit(Agent* agent, std::uint32_t processed) noexcept;
  void complete_ask(Agent* agent, Message& msg);
  bool fire_timer(const TimerEntry& t) noexcept;
  void await_reply(AgentCore& core, std::uint64_t id, std::chrono::nanoseconds timeout, AskCallback done);
  void unsubscribe_exited(AgentRef agent) noexcept;
  void drop_undelivered(Envelope* e, DropReason reason, AgentRef receiver) noexcept;
  void record(LifecycleEvent::Kind kind, AgentRef agent, std::string_view type, std::string_view detail,
              std::string_view payload = {}) noexcept;
  // Persistence (Agent::persist_as).
  void load_state(AgentRef agent, std::string key);
  void hold(Agent* agent, Envelope* e) noexcept;
  void finish_restore(Agent* agent, Message& m);
  void restore_or_skip(Agent* agent, std::string_view state, std::uint64_t version);
  void save_state(Agent* agent) noexcept;
  void watch_state_store();
  void snapshot_all() noexcept;
  void flush_storage();

  // Delivers published messages to agents' mailboxes; addresses are AgentRef bits.
  class AgentEndpoint final : public router::Endpoint {
   public:
    explicit AgentEndpoint(RuntimeCore& rt) : rt_(rt) {}
    router::DeliverStatus deliver(const router::Delivery& d) noexcept override;
    std::size_t depth(std::uint64_t address) const noexcept override;

   private:
    RuntimeCore& rt_;
  };
  // Takes messages published on RuntimeConfig::audit_topics to the lifecycle sink.
  class AuditEndpoint final : public router::Endpoint {
   public:
    explicit AuditEndpoint(RuntimeCore& rt) : rt_(rt) {}
    router::DeliverStatus deliver(const router::Delivery& d) noexcept override;

   private:
    RuntimeCore& rt_;
  };
  bool wait_for(std::chrono::milliseconds timeout, const std::function<bool()>& done) const;

  // -- constant after construction ---
  Runtime& owner_;
  const RuntimeConfig config_;
  const unsigned workers_;  // 1 in step mode

  // -- own synchronization ---
  AgentTable table_;
  std::atomic<bool> accepting_{true};
  std::atomic<bool> shut_down_{false};
  std::atomic<std::uint64_t> spawned_{0}, exited_{0}, crashed_{0}, restarts_{0}, live_{0};
  std::atomic<std::uint64_t> supervisors_gave_up_{0};
  std::atomic<std::uint64_t> restores_failed_{0};
  std::array<std::atomic<std::uint64_t>, kDropReasonCount> drops_{};
  std::array<std::atomic<std::uint64_t>, kRefuseReasonCount> refusals_{};
  std::array<std::atomic<AgentTypeInfo*>, kMaxAgentTypes> types_{};

  mutable Mutex mu_;  // types_ creation and the crash log
  std::string gave_up_ SWARM_GUARDED_BY(mu_);  // the first root supervisor that gave up, and why
  std::vector<std::unique_ptr<AgentTypeInfo>> type_owner_ SWARM_GUARDED_BY(mu_);
  std::deque<CrashRecord> crashes_ SWARM_GUARDED_BY(mu_);
  // Persistent keys whose stored state restore() threw on, and that version:
  // the agent's restart skips it (starts fresh) instead of crashing again.
  std::unordered_map<std::string, std::uint64_t> unrestorable_ SWARM_GUARDED_BY(mu_);

  mutable Mutex names_mu_;
  std::map<std::string, AgentRef, std::less<>> names_ SWARM_GUARDED_BY(names_mu_);
  NameDirectory* directory_ SWARM_GUARDED_BY(names_mu_) = nullptr;  // names on other nodes

  // Callers outside the agents waiting for a reply or for room, by id.
  struct Caller {
    std::promise<Reply> reply;
    TimerId timer = 0;
  };
  Mutex callers_mu_;
  std::unordered_map<std::uint64_t, Caller> callers_ SWARM_GUARDED_BY(callers_mu_);
  std::uint64_t next_caller_ SWARM_GUARDED_BY(callers_mu_) = 0;

  // Attached transports. A delivery holds `inflight` while it uses `node`, so
  // detach_node can wait until nobody does.
  struct RemoteSlot {
    std::atomic<RemoteNode*> node{nullptr};
    mutable std::atomic<std::uint32_t> inflight{0};
  };
  std::array<RemoteSlot, kMaxRemoteNodes> remotes_;
  Mutex remotes_mu_;  // attach and detach

  // Senders to tell when a receiver (by table index) has room; see Slot::room_waiters.
  Mutex room_mu_;
  std::unordered_map<std::uint32_t, std::vector<AgentRef>> room_waiters_ SWARM_GUARDED_BY(room_mu_);

  AgentEndpoint endpoint_{*this};
  AuditEndpoint audit_endpoint_{*this};
  std::shared_ptr<RuntimeLink> link_;  // for storage callbacks; cleared at shutdown
  router::Router router_;

  std::unique_ptr<Telemetry> telemetry_;
  std::unique_ptr<TimerWheel> timers_;
  std::unique_ptr<Scheduler> scheduler_;  // its threads use everything above

  // -- constant after construction; off the hot path, so kept behind it (the
  // members above keep their offsets) ---
  const bool step_mode_;
  const Clock* const clock_;  // config_.clock, which owns it; nullptr: the real steady clock
  test::ManualClock* const manual_clock_;  // in step mode, the same clock; else nullptr
};

}  // namespace detail
}  // namespace swarm
