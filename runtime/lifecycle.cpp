// Spawn, stop, kill and exit: attach() registers a constructed agent,
// begin_exit() marks the reason, finish_exit() runs on_stop, closes the slot,
// drops what was queued, tells the parent and destroys the agent.

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "runtime/detail/runtime_core.hpp"
#include "runtime/detail/scheduler.hpp"
#include "runtime/detail/telemetry.hpp"
#include "runtime/detail/timer_wheel.hpp"

namespace swarm {

using detail::RuntimeCore;

using detail::Envelope;
using detail::Slot;
namespace ctl = detail::ctl;

namespace detail {
thread_local bool t_restarting = false;

RestartScope::RestartScope() noexcept { t_restarting = true; }
RestartScope::~RestartScope() { t_restarting = false; }

namespace {
struct ChildExitHeader {
  AgentRef child;
  ExitKind kind;
};
}  // namespace

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
}  // namespace detail

namespace {
constexpr std::size_t kCrashLogSize = 64;
}  // namespace

// -- spawn ---

// Beside RuntimeCore::spawn, which it inlines: spawn<T>'s one call.
AgentRef detail::spawn_agent(RuntimeCore& rt, AgentRef parent, const AgentTypeSpec& spec, ConstructAgent construct,
                             void* args) {
  return rt.spawn(parent, spec, construct, args);
}

detail::IndexCache* RuntimeCore::local_indices() noexcept {
  detail::Worker* w = detail::Scheduler::current();
  return w != nullptr && w->scheduler == scheduler_.get() ? &w->indices : nullptr;
}

std::uint64_t RuntimeCore::spawn_clock() noexcept { return telemetry_->sample() ? detail::now_ns() : 0; }

AgentRef RuntimeCore::spawn(AgentRef parent, const AgentTypeSpec& spec, ConstructAgent construct, void* args) {
  const AgentTypeInfo& info = type_info(spec);
  const std::uint64_t clock = spawn_clock();
  void* mem = info.pool != nullptr ? info.pool->allocate() : ::operator new(spec.size, std::align_val_t(spec.align));
  Agent* agent;
  try {
    agent = construct(mem, args);
  } catch (...) {
    if (info.pool != nullptr) {
      info.pool->deallocate(mem);
    } else {
      ::operator delete(mem, std::align_val_t(spec.align));
    }
    throw;
  }
  return attach(agent, info, parent, clock);
}

void AgentTypeInfo::release(Agent* agent) const noexcept {
  void* mem = destroy(agent);
  if (pool != nullptr) {
    pool->deallocate(mem);
  } else {
    ::operator delete(mem, std::align_val_t(align));
  }
}

AgentRef RuntimeCore::attach(Agent* agent, const AgentTypeInfo& type, AgentRef parent, std::uint64_t clock) {
  detail::AgentCore& core = agent->core_;
  core.rt = this;
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
    type.release(agent);
    throw std::logic_error("swarm: " + type.name + " persists as '" + key +
                           "' but RuntimeConfig::state_store is not set");
  }
  AgentRef ref;
  try {
    ref = table_.reserve(agent, type.mailbox, local_indices());
  } catch (...) {
    type.release(agent);
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
// -- stop, kill ---

bool RuntimeCore::stop(AgentRef agent) noexcept { return deliver_system(agent, SystemKind::stop); }

bool RuntimeCore::kill(AgentRef agent) noexcept {
  Slot* slot = table_.find(agent.index);
  if (slot == nullptr || !agent.valid()) return false;
  std::uint64_t c = slot->ctl.load(std::memory_order_acquire);
  do {
    if (ctl::generation(c) != agent.generation || (c & ctl::kClosed) != 0) return false;
  } while (!slot->ctl.compare_exchange_weak(c, (c + 1) | ctl::kKill, std::memory_order_acq_rel,
                                            std::memory_order_acquire));
  Envelope* e = detail::make_envelope();
  e->msg.system = SystemKind::kill;
  enqueue(*slot, slot->agent.load(std::memory_order_acquire), e, c);
  return true;
}

bool RuntimeCore::alive(AgentRef agent) const noexcept {
  if (!agent.local()) return remote_alive(agent);
  Slot* slot = table_.find(agent.index);
  if (slot == nullptr || !agent.valid()) return false;
  std::uint64_t c = slot->ctl.load(std::memory_order_acquire);
  return ctl::generation(c) == agent.generation && (c & ctl::kClosed) == 0;
}
// -- exit ---

void RuntimeCore::begin_exit(Agent* agent, ExitReason reason) noexcept {
  detail::AgentCore& core = agent->core_;
  if (core.exiting) return;  // the first reason wins
  core.exiting = true;
  if (!core.extras) core.extras = std::make_unique<detail::AgentExtras>();
  core.extras->exit = std::move(reason);
}

// Runs on the agent's worker after the handler that decided the exit.
void RuntimeCore::finish_exit(Agent* agent, std::uint32_t processed) noexcept {
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
  Slot& slot = table_.at(self.index);
  // Subscriptions go before the close too, so that once alive() is false a
  // publish finds no subscriber (no_subscriber, not dead_agent). The flag stays
  // set: unsubscribe_exited after the close must still see a subscribe that
  // raced with this one (clearing it here would leak that subscription).
  if (slot.subscribed.load(std::memory_order_relaxed)) router_.unsubscribe_all({&endpoint_, self.bits()});
  // Close: no reservation succeeds from here on; drain what was reserved.
  // seq_cst, like Slot::subscribed: pairs with the checks in subscribe().
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
  if (core.parent.valid()) {
    deliver_system(core.parent, SystemKind::child_exit, self, detail::encode_child_exit(self, reason));
  }
  const AgentTypeInfo& type = *core.type;
  type.release(agent);
  table_.recycle(self.index, local_indices());
  exited_.fetch_add(1, std::memory_order_relaxed);
  live_.fetch_sub(1, std::memory_order_release);
}

// Frees a message nobody will handle: a user message is counted, an ask answered.
void RuntimeCore::drop_undelivered(Envelope* e, DropReason reason, AgentRef receiver) noexcept {
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

void RuntimeCore::record(LifecycleEvent::Kind kind, AgentRef agent, std::string_view type,
                     std::string_view detail, std::string_view payload) noexcept {
  config_.lifecycle->record({kind, agent.bits(), type, detail, payload});
}

}  // namespace swarm
