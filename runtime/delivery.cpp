// The hot path both ways: sending (RuntimeCore::send, Agent::send, deliver: a
// reservation in the slot's control word, then a push onto the agent's MPSC
// mailbox) and running agents (activate: pop, dispatch to the handler, up to
// the throughput budget). Agent::send and Agent::reply live here, beside
// deliver(), so the compiler can inline the whole send.

#include <thread>

#include "runtime/detail/runtime_core.hpp"
#include "runtime/detail/scheduler.hpp"
#include "runtime/detail/telemetry.hpp"

namespace swarm {

using detail::RuntimeCore;

using detail::Envelope;
using detail::Slot;
namespace ctl = detail::ctl;

namespace {
void lock_pops(detail::AgentCore& core) noexcept {
  while (core.pop_lock.exchange(true, std::memory_order_acquire)) {
    while (core.pop_lock.load(std::memory_order_relaxed)) std::this_thread::yield();
  }
}
void unlock_pops(detail::AgentCore& core) noexcept { core.pop_lock.store(false, std::memory_order_release); }

// A negative ttl is already past: the send is refused as expired.
std::uint64_t deadline_after(std::chrono::nanoseconds ttl) noexcept {
  return ttl.count() < 0 ? 1 : detail::now_ns() + static_cast<std::uint64_t>(ttl.count());
}

[[gnu::always_inline]] inline Envelope* make_user_envelope(AgentRef sender, Payload&& payload,
                                                           const SendOptions& options) noexcept {
  Envelope* e = detail::make_envelope();
  e->msg.kind = options.kind;
  e->msg.sender = sender;
  e->msg.payload = std::move(payload);
  if (options.ttl.count() != 0) [[unlikely]] e->msg.deadline_ns = deadline_after(options.ttl);
  return e;
}
}  // namespace

// -- sending ---

SendResult RuntimeCore::send(AgentRef to, Payload payload, const SendOptions& options) noexcept {
  if (!accepting_.load(std::memory_order_acquire)) {
    count_refusal(SendResult::shutting_down, to);
    return SendResult::shutting_down;
  }
  return send_envelope(to, make_user_envelope({}, std::move(payload), options));
}

SendResult RuntimeCore::forward(AgentRef to, Payload payload, const ForwardOptions& options) noexcept {
  if (!accepting_.load(std::memory_order_acquire)) {
    count_refusal(SendResult::shutting_down, to);
    return SendResult::shutting_down;
  }
  Envelope* e = make_user_envelope(options.sender, std::move(payload), options.send);
  if (options.correlation_id != 0) {
    e->msg.correlation_id = options.correlation_id;
    e->msg.reply_to = options.sender;
  }
  return send_envelope(to, e);
}

router::PublishResult RuntimeCore::forward_publish(router::TopicId topic, const Payload& payload,
                                                   const ForwardOptions& options) noexcept {
  if (!accepting_.load(std::memory_order_acquire)) {
    count_drop(DropReason::shutting_down, {});
    return {};
  }
  const std::uint64_t deadline = options.send.ttl.count() != 0 ? deadline_after(options.send.ttl) : 0;
  return publish_from(options.sender, topic, payload, options.send.kind, options.correlation_id, deadline, &options);
}

SendResult Agent::send(AgentRef to, Payload payload, const SendOptions& options) noexcept {
  return core_.rt->send_envelope(to, make_user_envelope(core_.self, std::move(payload), options));
}

SendResult RuntimeCore::send_envelope(AgentRef to, Envelope* e) noexcept {
  const SendResult r = deliver(to, e);
  if (r != SendResult::ok && r != SendResult::dropped) [[unlikely]] count_refusal(r, to);
  return r;
}

SendResult Agent::reply(const Message& request, Payload payload, std::uint32_t kind) noexcept {
  return answer(request, std::move(payload), kind, false);
}

SendResult Agent::reply_partial(const Message& request, Payload payload, std::uint32_t kind) noexcept {
  return answer(request, std::move(payload), kind, true);
}

SendResult Agent::answer(const Message& request, Payload payload, std::uint32_t kind, bool partial) noexcept {
  if (!request.is_request()) return send(request.sender, std::move(payload), kind);
  Envelope* e = detail::make_envelope();
  e->msg.kind = kind;
  e->msg.sender = core_.self;
  e->msg.correlation_id = request.correlation_id;
  e->msg.system = SystemKind::reply;
  e->msg.partial = partial;
  e->msg.payload = std::move(payload);
  return core_.rt->deliver(request.reply_to, e);
}

// Counts nothing but losses (drop_newest, drop_oldest): a refusal is counted
// by the caller, as refused when the sender is told, as dropped when not.
SendResult RuntimeCore::deliver(AgentRef to, Envelope* e, bool may_sample) noexcept {
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
  if (may_sample && telemetry_->sample()) [[unlikely]] e->enqueued_ns = detail::now_ns();
  enqueue(*slot, agent, e, c);
  return SendResult::ok;
}

void RuntimeCore::enqueue(Slot& slot, Agent* agent, Envelope* e, std::uint64_t before) noexcept {
  detail::AgentCore& core = agent->core_;
  if (ctl::count(before) != 0) {
    core.mailbox.push(e);
    return;
  }
  // The count was 0: the agent is neither running nor scheduled, and nothing
  // pops its messages until the schedule below, so its front list is ours.
  if (hands_off(slot)) {
    e->next.store(nullptr, std::memory_order_relaxed);
    core.front = e;
  } else {
    core.mailbox.push(e);
  }
  scheduler_->schedule(agent);
}

bool RuntimeCore::hand_off(AgentRef to, detail::SharedMessage* m) noexcept {
  Slot* slot = to.local() && to.valid() ? table_.find(to.index) : nullptr;
  if (slot == nullptr) return false;
  std::uint64_t c = slot->ctl.load(std::memory_order_acquire);
  // Nothing queued: a capacity of at least 1 has room, and the front list is
  // free once the count is ours (see enqueue).
  if (c != ctl::make(to.generation, 0) || !hands_off(*slot) ||
      !slot->ctl.compare_exchange_strong(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
    return false;
  }
  Agent* agent = slot->agent.load(std::memory_order_acquire);
  agent->core_.front = detail::front_of(m);
  scheduler_->schedule(agent);
  return true;
}

// drop_oldest with a full mailbox: we hold a reservation (so the agent stays
// alive); take the pop lock, drop the oldest user message, queue ours.
SendResult RuntimeCore::evict_oldest_and_push(Slot& slot, std::uint64_t reserved, Envelope* e) noexcept {
  Agent* agent = slot.agent.load(std::memory_order_acquire);
  detail::AgentCore& core = agent->core_;
  lock_pops(core);
  bool evicted = false;
  while (detail::Node* n = core.mailbox.pop()) {
    auto* old = static_cast<Envelope*>(n);
    if (old->msg.system != SystemKind::user) {  // keep runtime messages, in the front list
      old->next.store(core.front, std::memory_order_relaxed);
      core.front = old;
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

bool RuntimeCore::deliver_system(AgentRef to, SystemKind kind, AgentRef sender, Payload payload,
                             std::uint32_t tag) noexcept {
  Envelope* e = detail::make_envelope();
  e->msg.system = kind;
  e->msg.sender = sender;
  e->msg.payload = std::move(payload);
  e->msg.kind = tag;
  return deliver(to, e) == SendResult::ok;
}

bool RuntimeCore::deliver_reply(AgentRef to, std::uint64_t correlation_id, AskStatus status) noexcept {
  Envelope* e = detail::make_envelope();
  e->msg.system = SystemKind::reply;
  e->msg.correlation_id = correlation_id;
  e->msg.status = static_cast<std::uint8_t>(status);
  return deliver(to, e) == SendResult::ok;
}
// -- running agents ---

Envelope* RuntimeCore::pop_locked(detail::AgentCore& core) noexcept {
  lock_pops(core);
  detail::Node* n = core.front;
  if (n != nullptr) {
    core.front = n->next.load(std::memory_order_relaxed);
  } else {
    n = core.mailbox.pop();
  }
  unlock_pops(core);
  return static_cast<Envelope*>(n);
}

bool RuntimeCore::activate(Agent* agent, detail::Worker& worker) noexcept {
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

void RuntimeCore::dispatch_sampled(Agent* agent, Envelope* e, Slot& slot, detail::Worker& worker) noexcept {
  const std::uint64_t enqueued = e->enqueued_ns;
  const std::uint32_t topic = e->msg.topic;
  const std::uint64_t start = detail::now_ns();
  dispatch(agent, e);  // frees e
  const std::uint64_t end = detail::now_ns();
  // The agent object lives until finish_exit, even if this handler decided to exit.
  telemetry_->record_handler(slot, *agent->core_.type, worker.index, agent->core_.path, topic, enqueued, start, end);
}

void RuntimeCore::dispatch(Agent* agent, Envelope* e) noexcept {
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
        detail::decode_child_exit(m.payload, child, reason);
        agent->on_child_exit(child, reason);
        break;
      }
      case SystemKind::reply:
      case SystemKind::ask_timeout: complete_ask(agent, m); break;
      case SystemKind::control: agent->on_control(m); break;
      case SystemKind::restore: finish_restore(agent, m); break;
      case SystemKind::room: agent->on_room(m.sender); break;
      case SystemKind::snapshot:
        if (agent->core_.restoring) {  // its state is on the way: snapshot what it restores
          hold(agent, e);
          return;
        }
        if (agent->core_.extras && !agent->core_.extras->state_key.empty()) agent->core_.dirty = true;
        break;
    }
  } catch (const std::exception& ex) {
    begin_exit(agent, {ExitKind::crashed, ex.what()});
  } catch (...) {
    begin_exit(agent, {ExitKind::crashed, "unknown exception"});
  }
  detail::free_envelope(e);
}

}  // namespace swarm
