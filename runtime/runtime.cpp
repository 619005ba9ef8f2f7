#include "runtime/runtime.hpp"

#include <cxxabi.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <thread>

#include "runtime/detail/scheduler.hpp"
#include "runtime/detail/telemetry.hpp"
#include "runtime/detail/timer_wheel.hpp"

namespace swarm {

namespace detail {
// Lets a storage thread answer a load after the runtime is gone.
struct RuntimeLink {
  Mutex mu;
  Runtime* rt SWARM_GUARDED_BY(mu) = nullptr;
};

unsigned next_type_id() {
  static std::atomic<unsigned> next{0};
  return next.fetch_add(1, std::memory_order_relaxed);
}

std::string demangle(const char* mangled) { return readable_type_name(mangled); }
}  // namespace detail

using detail::Envelope;
using detail::Slot;
namespace ctl = detail::ctl;

namespace {
constexpr std::size_t kCrashLogSize = 64;

// Child-exit notices carry the child, the exit kind and the detail text.
struct ChildExitHeader {
  AgentRef child;
  ExitKind kind;
};

Payload encode_child_exit(AgentRef child, const ExitReason& r) {
  std::string bytes(sizeof(ChildExitHeader) + r.detail.size(), '\0');
  ChildExitHeader h{child, r.kind};
  std::memcpy(bytes.data(), &h, sizeof(h));
  std::memcpy(bytes.data() + sizeof(h), r.detail.data(), r.detail.size());
  return Payload(std::string_view(bytes));
}

void decode_child_exit(const Payload& p, AgentRef& child, ExitReason& r) {
  auto b = p.bytes();
  ChildExitHeader h{};
  std::memcpy(&h, b.data(), sizeof(h));
  child = h.child;
  r.kind = h.kind;
  r.detail.assign(reinterpret_cast<const char*>(b.data()) + sizeof(h), b.size() - sizeof(h));
}

void lock_pops(detail::AgentCore& core) noexcept {
  while (core.pop_lock.exchange(true, std::memory_order_acquire)) {
    while (core.pop_lock.load(std::memory_order_relaxed)) std::this_thread::yield();
  }
}
void unlock_pops(detail::AgentCore& core) noexcept { core.pop_lock.store(false, std::memory_order_release); }

}  // namespace

// -- names ---

std::string_view to_string(ExitKind k) {
  switch (k) {
    case ExitKind::normal: return "normal";
    case ExitKind::shutdown: return "shutdown";
    case ExitKind::crashed: return "crashed";
    case ExitKind::killed: return "killed";
  }
  return "unknown";
}

std::string_view to_string(AskStatus s) {
  switch (s) {
    case AskStatus::ok: return "ok";
    case AskStatus::timeout: return "timeout";
    case AskStatus::dead_agent: return "dead_agent";
    case AskStatus::no_responder: return "no_responder";
    case AskStatus::mailbox_full: return "mailbox_full";
    case AskStatus::shutting_down: return "shutting_down";
    case AskStatus::expired: return "expired";
    case AskStatus::unreachable: return "unreachable";
  }
  return "unknown";
}

std::uint64_t RuntimeStats::dropped_total() const {
  std::uint64_t n = 0;
  for (auto d : dropped) n += d;
  return n;
}

std::uint64_t RuntimeStats::refused_total() const {
  std::uint64_t n = 0;
  for (auto r : refused) n += r;
  return n;
}

// -- construction ---

namespace {
const RuntimeConfig& validated(const RuntimeConfig& c) {
  if (auto r = c.validate(); !r) throw std::invalid_argument(r.error());
  return c;
}
}  // namespace

Runtime::Runtime(RuntimeConfig config)
    : config_(validated(config)), workers_(config_.workers), router_(config_.router) {
  link_ = std::make_shared<detail::RuntimeLink>();
  {
    MutexLock lock(link_->mu);
    link_->rt = this;
  }
  for (const std::string& pattern : config_.audit_topics) {
    if (auto r = router_.subscribe(pattern, {&audit_endpoint_, 0}); !r) {
      throw std::invalid_argument("runtime: audit_topics: '" + pattern + "': " + r.error());
    }
  }
  telemetry_ = std::make_unique<detail::Telemetry>(*this, config_.telemetry);
  timers_ = std::make_unique<detail::TimerWheel>(
      config_.timer_tick, [this](const detail::TimerEntry& t) { return fire_timer(t); }, telemetry_->timer_lag);
  scheduler_ = std::make_unique<detail::Scheduler>(*this, workers_);
  scheduler_->start();
  try {
    telemetry_->start();
  } catch (...) {  // the admin port could not be bound: undo the start
    shutdown(ShutdownPolicy::discard);
    throw;
  }
}

Runtime::~Runtime() { shutdown(ShutdownPolicy::drain); }

const AgentTypeInfo& Runtime::make_type_info(unsigned id, std::string name, bool has_on_start, std::size_t,
                                             std::size_t, void (*destroy)(Agent*, const AgentTypeInfo&),
                                             detail::ObjectPool* pool) {
  MutexLock lock(mu_);
  if (AgentTypeInfo* info = types_[id].load(std::memory_order_acquire)) return *info;
  auto info = std::make_unique<AgentTypeInfo>();
  info->mailbox = config_.default_mailbox;
  if (auto it = config_.mailbox_by_type.find(name); it != config_.mailbox_by_type.end()) {
    info->mailbox = it->second;
  } else {
    warn_near_miss_locked(name);
  }
  info->id = id;
  info->name = std::move(name);
  info->has_on_start = has_on_start;
  info->pool = pool;
  info->destroy = destroy;
  telemetry_->init_type(*info);
  types_[id].store(info.get(), std::memory_order_release);
  type_owner_.push_back(std::move(info));
  return *type_owner_.back();
}

// A mailbox_by_type key that is this type's name but for namespaces or case
// was surely meant for it: say so at its first spawn.
void Runtime::warn_near_miss_locked(const std::string& type_name) {
  auto lower = [](std::string_view v) {
    std::string out(v);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  const std::size_t colon = type_name.rfind("::", type_name.find('<'));
  const std::string_view unqualified =
      colon == std::string::npos ? std::string_view(type_name) : std::string_view(type_name).substr(colon + 2);
  for (const auto& [key, options] : config_.mailbox_by_type) {
    if (key == unqualified || lower(key) == lower(type_name) || lower(key) == lower(unqualified)) {
      std::fprintf(stderr,
                   "swarm: warning: RuntimeConfig::mailbox_by_type key \"%s\" does not match agent type \"%s\" "
                   "(type names are exact: namespaces included, \"(anonymous namespace)::\" left out); "
                   "its mailbox settings are not applied\n",
                   key.c_str(), type_name.c_str());
    }
  }
}

std::vector<std::string> Runtime::unmatched_type_keys() const {
  MutexLock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [key, options] : config_.mailbox_by_type) {
    bool matched = false;
    for (const auto& t : type_owner_) matched = matched || t->name == key;
    if (!matched) out.push_back(key);
  }
  return out;
}

std::string_view Agent::type_name() const noexcept { return core_.type->name; }

std::uint64_t Runtime::spawn_clock() noexcept { return telemetry_->sample() ? detail::now_ns() : 0; }

AgentRef Runtime::attach(Agent* agent, const AgentTypeInfo& type, AgentRef parent, std::uint64_t clock) {
  detail::AgentCore& core = agent->core_;
  core.runtime = this;
  core.type = &type;
  core.parent = parent;
  if (telemetry_->on() && parent.valid()) {
    // The parent is the agent calling spawn, so it is alive and its core is stable.
    Slot& p = table_.at(parent.index);
    core.path = telemetry_->child_path(p.agent.load(std::memory_order_acquire)->core_.path,
                                       p.type_id.load(std::memory_order_relaxed));
  }
  const bool persistent = core.extras && !core.extras->state_key.empty();
  if (persistent && !config_.state_store) {
    std::string key = core.extras->state_key;
    type.destroy(agent, type);
    throw std::logic_error("swarm: " + type.name + " persists as '" + key +
                           "' but RuntimeConfig::state_store is not set");
  }
  AgentRef ref;
  try {
    ref = table_.reserve(agent, type.mailbox);
  } catch (...) {
    type.destroy(agent, type);
    throw;
  }
  core.self = ref;
  Slot& slot = table_.at(ref.index);
  slot.type_id.store(static_cast<std::uint16_t>(type.id), std::memory_order_relaxed);
  slot.queueing_delay_us.store(0, std::memory_order_relaxed);
  live_.fetch_add(1, std::memory_order_relaxed);
  spawned_.fetch_add(1, std::memory_order_relaxed);
  std::string key;
  if (persistent) {
    core.restoring = true;  // before open(): a worker must see it with the first message
    key = core.extras->state_key;
  }
  // Recorded before the agent can run, so its own events (children it spawns,
  // a crash in on_start) never precede its spawn in the lifecycle log.
  if (config_.lifecycle) {
    record(detail::t_restarting ? LifecycleEvent::Kind::restarted : LifecycleEvent::Kind::spawned, ref, type.name, {});
  }
  table_.open(ref);
  if (persistent) {
    load_state(ref, std::move(key));  // on_start runs after the restore
  } else if (type.has_on_start) {
    deliver_system(ref, SystemKind::start);
  }
  if (clock != 0) telemetry_->spawn_time.observe_ns(detail::now_ns() - clock);
  return ref;
}

// -- sending ---

namespace {
Envelope* make_user_envelope(AgentRef sender, Payload&& payload, const SendOptions& options) noexcept {
  Envelope* e = detail::make_envelope();
  e->msg.kind = options.kind;
  e->msg.sender = sender;
  e->msg.payload = std::move(payload);
  if (options.ttl.count() > 0) e->msg.deadline_ns = detail::now_ns() + static_cast<std::uint64_t>(options.ttl.count());
  if (options.ttl.count() < 0) e->msg.deadline_ns = 1;  // already past: refused as expired
  return e;
}
}  // namespace

SendResult Runtime::send(AgentRef to, Payload payload, const SendOptions& options) noexcept {
  if (!accepting_.load(std::memory_order_acquire)) {
    count_refusal(SendResult::shutting_down, to);
    return SendResult::shutting_down;
  }
  return send_envelope(to, make_user_envelope({}, std::move(payload), options));
}

SendResult Agent::send(AgentRef to, Payload payload, const SendOptions& options) noexcept {
  return core_.runtime->send_envelope(to, make_user_envelope(core_.self, std::move(payload), options));
}

SendResult Runtime::send_envelope(AgentRef to, Envelope* e) noexcept {
  const SendResult r = deliver(to, e);
  if (r != SendResult::ok && r != SendResult::dropped) [[unlikely]] count_refusal(r, to);
  return r;
}

SendResult Agent::reply(const Message& request, Payload payload, std::uint32_t kind) noexcept {
  if (!request.is_request()) return send(request.sender, std::move(payload), kind);
  Envelope* e = detail::make_envelope();
  e->msg.kind = kind;
  e->msg.sender = core_.self;
  e->msg.correlation_id = request.correlation_id;
  e->msg.system = SystemKind::reply;
  e->msg.payload = std::move(payload);
  return core_.runtime->deliver(request.reply_to, e);
}

// Counts nothing but losses (drop_newest, drop_oldest): a refusal is counted
// by the caller, as refused when the sender is told, as dropped when not.
SendResult Runtime::deliver(AgentRef to, Envelope* e) noexcept {
  if (!to.local()) [[unlikely]] return deliver_off_node(to, e);
  Slot* slot = table_.find(to.index);
  if (slot == nullptr || !to.valid()) {
    detail::free_envelope(e);
    return SendResult::dead_agent;
  }
  if (e->msg.deadline_ns != 0 && detail::now_ns() > e->msg.deadline_ns) [[unlikely]] {
    detail::free_envelope(e);
    return SendResult::expired;
  }
  // Runtime messages (replies, exits, stop) are never refused for capacity.
  const bool bounded = e->msg.system == SystemKind::user;
  std::uint64_t c = slot->ctl.load(std::memory_order_acquire);
  for (;;) {
    if (ctl::generation(c) != to.generation || (c & ctl::kClosed) != 0) {
      detail::free_envelope(e);
      return SendResult::dead_agent;
    }
    const std::uint64_t reserved = ctl::count(c);
    const std::uint64_t queued = reserved - std::min<std::uint64_t>(reserved, slot->handled.load(std::memory_order_relaxed));
    if (bounded && queued >= slot->capacity.load(std::memory_order_relaxed)) {
      const OverflowPolicy policy = slot->overflow.load(std::memory_order_relaxed);
      if (policy != OverflowPolicy::drop_oldest) {
        detail::free_envelope(e);
        if (policy == OverflowPolicy::reject) return SendResult::mailbox_full;
        count_drop(DropReason::mailbox_full, to);
        return SendResult::dropped;
      }
      if (slot->ctl.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        return evict_oldest_and_push(*slot, c, e);
      }
      continue;
    }
    if (slot->ctl.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) break;
  }
  Agent* agent = slot->agent.load(std::memory_order_acquire);
  if (telemetry_->sample()) [[unlikely]] e->enqueued_ns = detail::now_ns();
  agent->core_.mailbox.push(e);
  if (ctl::count(c) == 0) scheduler_->schedule(agent);
  return SendResult::ok;
}

// drop_oldest with a full mailbox: we hold a reservation (so the agent stays
// alive); take the pop lock, drop the oldest user message, queue ours.
SendResult Runtime::evict_oldest_and_push(Slot& slot, std::uint64_t reserved, Envelope* e) noexcept {
  Agent* agent = slot.agent.load(std::memory_order_acquire);
  detail::AgentCore& core = agent->core_;
  lock_pops(core);
  bool evicted = false;
  while (detail::Node* n = core.mailbox.pop()) {
    auto* old = static_cast<Envelope*>(n);
    if (old->msg.system != SystemKind::user) {  // keep runtime messages, in the stash
      old->next.store(core.stash, std::memory_order_relaxed);
      core.stash = old;
      continue;
    }
    detail::free_envelope(old);
    evicted = true;
    break;
  }
  core.mailbox.push(e);
  unlock_pops(core);
  if (evicted) {
    count_drop(DropReason::mailbox_full, core.self);
    slot.ctl.fetch_sub(1, std::memory_order_acq_rel);  // never reaches 0: we hold one
  }
  SWARM_DCHECK(ctl::count(reserved) != 0);
  (void)reserved;
  return SendResult::ok;
}

bool Runtime::deliver_system(AgentRef to, SystemKind kind, AgentRef sender, Payload payload,
                             std::uint32_t tag) noexcept {
  Envelope* e = detail::make_envelope();
  e->msg.system = kind;
  e->msg.sender = sender;
  e->msg.payload = std::move(payload);
  e->msg.kind = tag;
  return deliver(to, e) == SendResult::ok;
}

bool Runtime::deliver_reply(AgentRef to, std::uint64_t correlation_id, AskStatus status) noexcept {
  Envelope* e = detail::make_envelope();
  e->msg.system = SystemKind::reply;
  e->msg.correlation_id = correlation_id;
  e->msg.status = static_cast<std::uint8_t>(status);
  return deliver(to, e) == SendResult::ok;
}

bool Runtime::stop(AgentRef agent) noexcept { return deliver_system(agent, SystemKind::stop); }

bool Runtime::kill(AgentRef agent) noexcept {
  Slot* slot = table_.find(agent.index);
  if (slot == nullptr || !agent.valid()) return false;
  std::uint64_t c = slot->ctl.load(std::memory_order_acquire);
  do {
    if (ctl::generation(c) != agent.generation || (c & ctl::kClosed) != 0) return false;
  } while (!slot->ctl.compare_exchange_weak(c, (c + 1) | ctl::kKill, std::memory_order_acq_rel,
                                            std::memory_order_acquire));
  Envelope* e = detail::make_envelope();
  e->msg.system = SystemKind::kill;
  Agent* a = slot->agent.load(std::memory_order_acquire);
  a->core_.mailbox.push(e);
  if (ctl::count(c) == 0) scheduler_->schedule(a);
  return true;
}

bool Runtime::alive(AgentRef agent) const noexcept {
  Slot* slot = table_.find(agent.index);
  if (slot == nullptr || !agent.valid()) return false;
  std::uint64_t c = slot->ctl.load(std::memory_order_acquire);
  return ctl::generation(c) == agent.generation && (c & ctl::kClosed) == 0;
}

// -- running agents ---

Envelope* Runtime::pop(detail::AgentCore& core, bool locking) noexcept {
  if (!locking) return static_cast<Envelope*>(core.mailbox.pop());
  lock_pops(core);
  detail::Node* n = core.stash;
  if (n != nullptr) {
    core.stash = n->next.load(std::memory_order_relaxed);
  } else {
    n = core.mailbox.pop();
  }
  unlock_pops(core);
  return static_cast<Envelope*>(n);
}

bool Runtime::activate(Agent* agent, detail::Worker& worker) noexcept {
  detail::AgentCore& core = agent->core_;
  Slot& slot = table_.at(core.self.index);
  const bool locking = slot.overflow.load(std::memory_order_relaxed) == OverflowPolicy::drop_oldest;
  const std::uint32_t budget = config_.throughput_budget;
  std::uint32_t processed = 0;
  // For the slow-handler watchdog, which also watches slot.handled and the
  // worker's activation count: no per-message cost.
  if (telemetry_->on()) worker.running_agent.store(core.self.bits(), std::memory_order_relaxed);
  while (processed < budget) {
    if ((slot.ctl.load(std::memory_order_relaxed) & ctl::kKill) != 0) {
      begin_exit(agent, {ExitKind::killed, "killed"});
      break;
    }
    Envelope* e = pop(core, locking);
    if (e == nullptr) break;  // empty, or a sender is mid-push (count says so)
    ++processed;
    if (e->enqueued_ns != 0) [[unlikely]] {
      dispatch_sampled(agent, e, slot, worker);
    } else {
      dispatch(agent, e);
    }
    slot.handled.store(processed, std::memory_order_relaxed);
    if (core.exiting) break;
  }
  worker.stats.add(worker.stats.activations);
  worker.stats.add(worker.stats.messages, processed);
  // Before the subtraction (whose release publishes it): a sender may briefly
  // count handled messages as queued, never the other way round.
  slot.handled.store(0, std::memory_order_relaxed);
  if (core.dirty && !core.exiting) [[unlikely]] save_state(agent);
  if (core.exiting) {
    finish_exit(agent, processed);
    return false;
  }
  // seq_cst, paired with notify_when_room's flag-then-check: one side sees the other.
  std::uint64_t before = slot.ctl.fetch_sub(processed, std::memory_order_seq_cst);
  if (slot.room_waiters.load(std::memory_order_seq_cst)) [[unlikely]] tell_room(core.self);
  return ctl::count(before) > processed;
}

void Runtime::dispatch_sampled(Agent* agent, Envelope* e, Slot& slot, detail::Worker& worker) noexcept {
  const std::uint64_t enqueued = e->enqueued_ns;
  const std::uint32_t topic = e->msg.topic;
  const std::uint64_t start = detail::now_ns();
  dispatch(agent, e);  // frees e
  const std::uint64_t end = detail::now_ns();
  // The agent object lives until finish_exit, even if this handler decided to exit.
  telemetry_->record_handler(slot, *agent->core_.type, worker.index, agent->core_.path, topic, enqueued, start, end);
}

void Runtime::dispatch(Agent* agent, Envelope* e) noexcept {
  Message& m = e->msg;
  try {
    switch (m.system) {
      case SystemKind::user:
        if (m.deadline_ns != 0 && detail::now_ns() > m.deadline_ns) [[unlikely]] {
          drop_undelivered(e, DropReason::expired, agent->core_.self);
          return;
        }
        if (agent->core_.restoring) [[unlikely]] {
          hold(agent, e);
          return;
        }
        agent->on_message(m);
        break;
      case SystemKind::start: agent->on_start(); break;
      case SystemKind::stop: agent->on_shutdown_request(); break;
      case SystemKind::kill: begin_exit(agent, {ExitKind::killed, "killed"}); break;
      case SystemKind::child_exit: {
        AgentRef child;
        ExitReason reason;
        decode_child_exit(m.payload, child, reason);
        agent->on_child_exit(child, reason);
        break;
      }
      case SystemKind::reply:
      case SystemKind::ask_timeout: complete_ask(agent, m); break;
      case SystemKind::control: agent->on_control(m); break;
      case SystemKind::restore: finish_restore(agent, m); break;
      case SystemKind::room: agent->on_room(m.sender); break;
    }
  } catch (const std::exception& ex) {
    begin_exit(agent, {ExitKind::crashed, ex.what()});
  } catch (...) {
    begin_exit(agent, {ExitKind::crashed, "unknown exception"});
  }
  detail::free_envelope(e);
}

void Agent::stop(ExitReason reason) { core_.runtime->begin_exit(this, std::move(reason)); }

void Runtime::begin_exit(Agent* agent, ExitReason reason) noexcept {
  detail::AgentCore& core = agent->core_;
  if (core.exiting) return;  // the first reason wins
  core.exiting = true;
  if (!core.extras) core.extras = std::make_unique<detail::AgentExtras>();
  core.extras->exit = std::move(reason);
}

// Runs on the agent's worker after the handler that decided the exit.
void Runtime::finish_exit(Agent* agent, std::uint32_t processed) noexcept {
  detail::AgentCore& core = agent->core_;
  const AgentRef self = core.self;
  ExitReason reason = std::move(core.extras->exit);
  if (reason.kind != ExitKind::killed) {
    try {
      agent->on_stop(reason);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "swarm: %s %s: on_stop threw: %s\n", core.type->name.c_str(), to_string(self).c_str(),
                   ex.what());
    } catch (...) {
      std::fprintf(stderr, "swarm: %s %s: on_stop threw\n", core.type->name.c_str(), to_string(self).c_str());
    }
  }
  // A clean exit stores the newest state; after a crash the last stored one stands.
  if (core.dirty && !reason.abnormal()) save_state(agent);
  // Recorded before closing, so whoever sees the agent dead also sees why.
  if (config_.lifecycle) {
    if (reason.kind == ExitKind::crashed) {
      record(LifecycleEvent::Kind::crashed, self, core.type->name, reason.detail);
    } else {
      std::string detail(to_string(reason.kind));
      if (!reason.detail.empty() && reason.detail != detail) detail += ": " + reason.detail;
      record(LifecycleEvent::Kind::exited, self, core.type->name, detail);
    }
  }
  if (reason.abnormal()) {
    core.type->crashes.inc();
    crashed_.fetch_add(1, std::memory_order_relaxed);
    MutexLock lock(mu_);
    crashes_.push_back({self, core.type->name, reason, std::chrono::system_clock::now()});
    if (crashes_.size() > kCrashLogSize) crashes_.pop_front();
  }
  // Close: no reservation succeeds from here on; drain what was reserved.
  Slot& slot = table_.at(self.index);
  // seq_cst, like subscribed_: pairs with the checks in subscribe().
  std::uint64_t c = slot.ctl.fetch_or(ctl::kClosed, std::memory_order_seq_cst);
  unsubscribe_exited(self);
  if (!core.extras->names.empty()) release_names(self, core.extras->names);
  if (slot.room_waiters.load(std::memory_order_seq_cst)) tell_room(self);  // their next send says dead_agent
  std::uint32_t left = ctl::count(c) - processed;
  const bool locking = slot.overflow.load(std::memory_order_relaxed) == OverflowPolicy::drop_oldest;
  while (left > 0) {
    Envelope* e = pop(core, locking);
    if (e == nullptr) {  // a sender reserved but has not linked its node yet
      std::this_thread::yield();
      continue;
    }
    --left;
    drop_undelivered(e, DropReason::dead_agent, self);
  }
  // extras exists: begin_exit made it.
  for (detail::Node* n : core.extras->held) drop_undelivered(static_cast<Envelope*>(n), DropReason::dead_agent, self);
  core.extras->held.clear();
  for (auto& [id, pending] : core.extras->asks) timers_->cancel(pending.timer);
  if (core.parent.valid()) deliver_system(core.parent, SystemKind::child_exit, self, encode_child_exit(self, reason));
  const AgentTypeInfo& type = *core.type;
  type.destroy(agent, type);
  table_.recycle(self.index);
  exited_.fetch_add(1, std::memory_order_relaxed);
  live_.fetch_sub(1, std::memory_order_release);
}

// Frees a message nobody will handle: a user message is counted, an ask answered.
void Runtime::drop_undelivered(Envelope* e, DropReason reason, AgentRef receiver) noexcept {
  Message& m = e->msg;
  if (m.system == SystemKind::user) {
    count_drop(reason, receiver);
    if (m.is_request()) {
      const AskStatus status = reason == DropReason::mailbox_full ? AskStatus::mailbox_full
                               : reason == DropReason::expired    ? AskStatus::expired
                                                                  : AskStatus::dead_agent;
      deliver_reply(m.reply_to, m.correlation_id, status);
    }
  }
  detail::free_envelope(e);
}

void Runtime::record(LifecycleEvent::Kind kind, AgentRef agent, std::string_view type,
                     std::string_view detail, std::string_view payload) noexcept {
  config_.lifecycle->record({kind, agent.bits(), type, detail, payload});
}

// -- persistence ---

namespace detail {
thread_local bool t_restarting = false;

}  // namespace detail

void Agent::persist_as(std::string key) {
  if (key.empty()) throw std::invalid_argument("swarm: persist_as: the state key is empty");
  if (!core_.extras) core_.extras = std::make_unique<detail::AgentExtras>();
  core_.extras->state_key = std::move(key);
}

namespace {
enum RestoreStatus : std::uint8_t { kRestoreFound, kRestoreNone, kRestoreFailed };
}  // namespace

void Runtime::load_state(AgentRef agent, std::string key) {
  config_.state_store->load(std::move(key), [link = link_, agent](Result<std::optional<StoredState>> r) {
    // Found: the version (8 bytes) then the state; failed: the error text.
    Payload payload;
    RestoreStatus status = kRestoreNone;
    if (!r) {
      status = kRestoreFailed;
      payload = Payload(std::string_view(r.error()));
    } else if (*r) {
      status = kRestoreFound;
      std::string bytes(sizeof(std::uint64_t) + (*r)->data.size(), '\0');
      std::memcpy(bytes.data(), &(*r)->version, sizeof(std::uint64_t));
      std::memcpy(bytes.data() + sizeof(std::uint64_t), (*r)->data.data(), (*r)->data.size());
      payload = Payload(std::string_view(bytes), ContentType::octet_stream);
    }
    MutexLock lock(link->mu);
    if (link->rt != nullptr) link->rt->deliver_system(agent, SystemKind::restore, {}, std::move(payload), status);
  });
}

void Runtime::hold(Agent* agent, Envelope* e) noexcept {
  auto& held = agent->core_.extras->held;
  if (held.size() >= agent->core_.type->mailbox.capacity) {
    drop_undelivered(e, DropReason::mailbox_full, agent->core_.self);
    return;
  }
  held.push_back(e);
}

// Runs inside dispatch(): what throws here crashes the agent.
void Runtime::finish_restore(Agent* agent, Message& m) {
  detail::AgentCore& core = agent->core_;
  core.restoring = false;
  if (m.kind == kRestoreFailed) throw std::runtime_error("state restore failed: " + std::string(m.payload.text()));
  if (m.kind == kRestoreFound) {
    std::uint64_t version = 0;
    std::memcpy(&version, m.payload.bytes().data(), sizeof(version));
    core.extras->state_version = version;
    agent->restore(m.payload.text().substr(sizeof(version)), version);
  }
  if (core.type->has_on_start) agent->on_start();
  std::vector<detail::Node*> held;
  held.swap(core.extras->held);
  for (detail::Node* n : held) {
    auto* e = static_cast<Envelope*>(n);
    if (core.exiting) {
      drop_undelivered(e, DropReason::dead_agent, core.self);
    } else {
      dispatch(agent, e);
    }
  }
}

void Runtime::save_state(Agent* agent) noexcept {
  detail::AgentCore& core = agent->core_;
  core.dirty = false;
  if (!core.extras || core.extras->state_key.empty() || core.restoring) return;  // not persistent, or not loaded yet
  try {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    config_.state_store->put(core.extras->state_key,
                             {agent->snapshot(), ++core.extras->state_version,
                              std::chrono::duration_cast<std::chrono::milliseconds>(now).count()});
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "swarm: %s %s: snapshot threw: %s\n", core.type->name.c_str(), to_string(core.self).c_str(),
                 ex.what());
    begin_exit(agent, {ExitKind::crashed, std::string("snapshot threw: ") + ex.what()});
  } catch (...) {
    begin_exit(agent, {ExitKind::crashed, "snapshot threw"});
  }
}

detail::RestartScope::RestartScope() noexcept { t_restarting = true; }
detail::RestartScope::~RestartScope() { t_restarting = false; }

// -- topics ---

Result<router::SubscriptionId> Agent::subscribe(std::string_view pattern, std::string_view queue_group) {
  return core_.runtime->subscribe(core_.self, pattern, queue_group);
}

bool Agent::unsubscribe(router::SubscriptionId id) { return core_.runtime->unsubscribe(id); }

router::PublishResult Agent::publish(router::TopicId topic, const Payload& payload, std::uint32_t kind) noexcept {
  return core_.runtime->publish_from(core_.self, topic, payload, kind, 0);
}

Result<router::PublishResult> Agent::publish(std::string_view topic, const Payload& payload, std::uint32_t kind) {
  auto id = core_.runtime->router_.intern(topic);
  if (!id) return unexpected(id.error());
  return publish(*id, payload, kind);
}

Result<router::SubscriptionId> Runtime::subscribe(AgentRef agent, std::string_view pattern,
                                                  std::string_view queue_group) {
  Slot* slot = table_.find(agent.index);
  auto gone = [&] {
    std::uint64_t c = slot->ctl.load(std::memory_order_seq_cst);
    return !agent.valid() || ctl::generation(c) != agent.generation || (c & ctl::kClosed) != 0;
  };
  if (slot == nullptr || gone()) return unexpected("subscribe: agent " + to_string(agent) + " is gone");
  // Flag first, subscribe, then re-check (all seq_cst): an exit racing with us
  // either sees the flag and unsubscribes, or we see the exit and undo it.
  slot->subscribed.store(true, std::memory_order_seq_cst);
  auto id = router_.subscribe(pattern, {&endpoint_, agent.bits()}, queue_group);
  if (id && gone()) {
    router_.unsubscribe(*id);
    return unexpected("subscribe: agent " + to_string(agent) + " is gone");
  }
  return id;
}

void Runtime::unsubscribe_exited(AgentRef agent) noexcept {
  Slot& slot = table_.at(agent.index);
  if (slot.subscribed.exchange(false, std::memory_order_seq_cst)) router_.unsubscribe_all({&endpoint_, agent.bits()});
}

router::PublishResult Runtime::publish(router::TopicId topic, const Payload& payload, std::uint32_t kind) noexcept {
  if (!accepting_.load(std::memory_order_acquire)) {
    count_drop(DropReason::shutting_down, {});
    return {};
  }
  return publish_from(AgentRef{}, topic, payload, kind, 0);
}

Result<router::PublishResult> Runtime::publish(std::string_view topic, const Payload& payload, std::uint32_t kind) {
  auto id = router_.intern(topic);
  if (!id) return unexpected(id.error());
  return publish(*id, payload, kind);
}

router::PublishResult Runtime::publish_from(AgentRef sender, router::TopicId topic, const Payload& payload,
                                            std::uint32_t kind, std::uint64_t correlation_id) noexcept {
  const std::uint64_t start = telemetry_->sample() ? detail::now_ns() : 0;
  router::PublishResult r = router_.publish(topic, payload, {kind, sender.bits(), sender.node, correlation_id});
  if (start != 0) telemetry_->fanout_time.observe_ns(detail::now_ns() - start);
  if (r.no_subscriber) count_drop(DropReason::no_subscriber, {});
  return r;  // full mailboxes and dead agents were counted by the endpoint
}

router::DeliverStatus Runtime::AgentEndpoint::deliver(const router::Delivery& d) noexcept {
  Envelope* e = detail::make_envelope();
  e->msg.kind = d.kind;
  e->msg.topic = d.topic;
  e->msg.sender = AgentRef::from_bits(d.sender, d.sender_node);
  e->msg.correlation_id = d.correlation_id;
  if (d.correlation_id != 0) e->msg.reply_to = e->msg.sender;
  e->msg.payload = d.payload;
  const AgentRef to = AgentRef::from_bits(d.address);
  // The publisher learns only totals, so what is not queued here is lost: dropped.
  switch (rt_.deliver(to, e)) {
    case SendResult::ok: return router::DeliverStatus::ok;
    case SendResult::mailbox_full: rt_.count_drop(DropReason::mailbox_full, to); [[fallthrough]];
    case SendResult::dropped: return router::DeliverStatus::mailbox_full;
    case SendResult::expired: rt_.count_drop(DropReason::expired, to); return router::DeliverStatus::dead;
    case SendResult::dead_agent:
    case SendResult::shutting_down:
    case SendResult::unreachable: break;
  }
  rt_.count_drop(DropReason::dead_agent, to);
  return router::DeliverStatus::dead;
}

router::DeliverStatus Runtime::AuditEndpoint::deliver(const router::Delivery& d) noexcept {
  // The sender's type, from its slot; type records are never freed.
  std::string_view type;
  const AgentRef sender = AgentRef::from_bits(d.sender);
  if (const Slot* slot = sender.valid() ? rt_.table_.find(sender.index) : nullptr) {
    if (const AgentTypeInfo* info = rt_.types_[slot->type_id.load(std::memory_order_relaxed)].load(std::memory_order_acquire)) {
      type = info->name;
    }
  }
  rt_.record(LifecycleEvent::Kind::message, sender, type, rt_.router_.topic_name(d.topic), d.payload.text());
  return router::DeliverStatus::ok;
}

std::size_t Runtime::AgentEndpoint::depth(std::uint64_t address) const noexcept {
  AgentRef ref = AgentRef::from_bits(address);
  const Slot* slot = rt_.table_.find(ref.index);
  if (slot == nullptr) return 0;
  std::uint64_t c = slot->ctl.load(std::memory_order_relaxed);
  return ctl::generation(c) == ref.generation ? ctl::count(c) : 0;
}

// -- timers ---

TimerId Runtime::add_timer(detail::TimerEntry entry, std::chrono::nanoseconds delay) {
  return timers_->add(std::move(entry), delay);
}

TimerId Runtime::send_after(AgentRef to, std::chrono::nanoseconds delay, Payload payload, std::uint32_t kind) {
  detail::TimerEntry t;
  t.target = to;
  t.kind = kind;
  t.payload = std::move(payload);
  return add_timer(std::move(t), delay);
}

TimerId Runtime::send_periodic(AgentRef to, std::chrono::nanoseconds interval, Payload payload,
                               std::uint32_t kind) {
  detail::TimerEntry t;
  t.target = to;
  t.kind = kind;
  t.payload = std::move(payload);
  t.period = interval;
  return add_timer(std::move(t), interval);
}

bool Runtime::cancel_timer(TimerId id) { return timers_->cancel(id); }

TimerId Agent::send_after(std::chrono::nanoseconds delay, Payload payload, std::uint32_t kind) {
  detail::TimerEntry t;
  t.target = core_.self;
  t.sender = core_.self;
  t.kind = kind;
  t.payload = std::move(payload);
  return core_.runtime->add_timer(std::move(t), delay);
}

TimerId Agent::send_periodic(std::chrono::nanoseconds interval, Payload payload, std::uint32_t kind) {
  detail::TimerEntry t;
  t.target = core_.self;
  t.sender = core_.self;
  t.kind = kind;
  t.payload = std::move(payload);
  t.period = interval;
  return core_.runtime->add_timer(std::move(t), interval);
}

bool Agent::cancel_timer(TimerId id) { return core_.runtime->cancel_timer(id); }

bool Runtime::fire_timer(const detail::TimerEntry& t) noexcept {
  Envelope* e = detail::make_envelope();
  e->msg.kind = t.kind;
  e->msg.sender = t.sender;
  e->msg.system = t.system;
  e->msg.correlation_id = t.correlation_id;
  e->msg.payload = t.payload;
  const SendResult r = deliver(t.target, e);
  if (r != SendResult::ok) {
    telemetry_->timer_undeliverable.inc();
    // Nobody is told of a timer message that is not queued: a user one is lost.
    if (t.system == SystemKind::user) count_drop(drop_reason(r), t.target);
  }
  return r != SendResult::dead_agent;
}

// -- lifecycle ---

bool Runtime::wait_for(std::chrono::milliseconds timeout, const std::function<bool()>& done) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

bool Runtime::wait_idle(std::chrono::milliseconds timeout) const {
  // Two quiet observations in a row: a timer or an outside send may land between.
  return wait_for(timeout, [this] {
    if (!scheduler_->quiescent()) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    return scheduler_->quiescent();
  });
}

void Runtime::shutdown(ShutdownPolicy policy) {
  if (shut_down_.exchange(true)) return;
  accepting_.store(false, std::memory_order_release);
  const auto budget = config_.shutdown_timeout;
  auto no_agents = [this] { return live_.load(std::memory_order_acquire) == 0; };
  if (policy == ShutdownPolicy::drain) {
    wait_idle(budget);
    // Top-level agents first; supervisors stop their children in order.
    table_.for_each_open([this](Agent* a, AgentRef ref) {
      if (!a->core_.parent.valid()) stop(ref);
    });
    if (!wait_for(budget, no_agents)) {
      std::fprintf(stderr, "swarm: shutdown: %llu agents still running after %lld ms; killing them\n",
                   static_cast<unsigned long long>(live_.load()), static_cast<long long>(budget.count()));
    }
  }
  // Whatever is left (everything, for discard) is killed; kills are final.
  for (;;) {
    table_.for_each_open([this](Agent*, AgentRef ref) { kill(ref); });
    if (wait_for(std::chrono::milliseconds(1000), no_agents)) break;
    std::fprintf(stderr, "swarm: shutdown: waiting for %llu agents whose handlers have not returned\n",
                 static_cast<unsigned long long>(live_.load()));
  }
  timers_->cancel_all();
  scheduler_->stop();
  // Callers still waiting (their timers are gone) learn the runtime stopped.
  std::vector<std::uint64_t> waiting;
  {
    MutexLock lock(callers_mu_);
    for (const auto& [id, caller] : callers_) waiting.push_back(id);
  }
  for (std::uint64_t id : waiting) complete_caller(id, AskStatus::shutting_down, nullptr);
  warn_unmatched_type_keys();
  flush_storage();
  telemetry_->stop();
}

// Every agent is gone: their last states and events are queued; write them out.
void Runtime::flush_storage() {
  {
    MutexLock lock(link_->mu);  // loads still pending have no agent to restore
    link_->rt = nullptr;
  }
  const auto budget = config_.shutdown_timeout;
  if (config_.state_store) {
    if (auto r = config_.state_store->flush(budget); !r) {
      std::fprintf(stderr, "swarm: shutdown: state store not flushed: %s\n", r.error().c_str());
    }
  }
  if (config_.lifecycle) {
    if (auto r = config_.lifecycle->flush(budget); !r) {
      std::fprintf(stderr, "swarm: shutdown: lifecycle events not flushed: %s\n", r.error().c_str());
    }
  }
}

// -- diagnostics ---

RuntimeStats Runtime::stats() const {
  RuntimeStats s;
  s.spawned = spawned_.load(std::memory_order_relaxed);
  s.exited = exited_.load(std::memory_order_relaxed);
  s.crashed = crashed_.load(std::memory_order_relaxed);
  s.restarts = restarts_.load(std::memory_order_relaxed);
  s.live = live_.load(std::memory_order_relaxed);
  for (unsigned i = 0; i < scheduler_->worker_count(); ++i) {
    const auto& w = scheduler_->stats(i);
    s.messages += w.messages.load(std::memory_order_relaxed);
    s.activations += w.activations.load(std::memory_order_relaxed);
    s.steals += w.steals.load(std::memory_order_relaxed);
    s.parks += w.parks.load(std::memory_order_relaxed);
  }
  for (int i = 0; i < kDropReasonCount; ++i) s.dropped[i] = drops_[i].load(std::memory_order_relaxed);
  for (int i = 0; i < kRefuseReasonCount; ++i) s.refused[i] = refusals_[i].load(std::memory_order_relaxed);
  return s;
}

metrics::Registry& Runtime::metrics() noexcept { return telemetry_->registry(); }
std::uint16_t Runtime::admin_port() const noexcept { return telemetry_->admin_port(); }
metrics::FoldedStacks Runtime::logical_profile() const { return telemetry_->logical_profile(); }

void Runtime::warn_unmatched_type_keys() const {
  const std::vector<std::string> keys = unmatched_type_keys();
  if (keys.empty()) return;
  std::string known;
  {
    MutexLock lock(mu_);
    for (const auto& t : type_owner_) known += (known.empty() ? "" : ", ") + t->name;
  }
  for (const std::string& key : keys) {
    std::fprintf(stderr,
                 "swarm: warning: RuntimeConfig::mailbox_by_type key \"%s\" matched no agent type spawned (types "
                 "spawned: %s)\n",
                 key.c_str(), known.empty() ? "none" : known.c_str());
  }
}

std::vector<CrashRecord> Runtime::recent_crashes() const {
  MutexLock lock(mu_);
  return {crashes_.begin(), crashes_.end()};
}

}  // namespace swarm
