// Request/reply: Agent::ask and Agent::request (callbacks on the asking
// agent), RuntimeCore::ask and RuntimeCore::request (futures for callers outside the
// agents), RuntimeCore::wait_for_room, and where a message to another node goes.
//
// A caller is an AgentRef on AgentRef::kCallerNode whose index is its waiter
// id: replies, ask timeouts and room notices addressed to it go through
// deliver() like any other, and end here in complete_caller().

#include <stdexcept>

#include "runtime/detail/runtime_core.hpp"
#include "runtime/detail/scheduler.hpp"
#include "runtime/detail/telemetry.hpp"
#include "runtime/detail/timer_wheel.hpp"

namespace swarm {

using detail::Envelope;
using detail::RuntimeCore;

AskStatus ask_status(SendResult r) noexcept {
  switch (r) {
    case SendResult::ok: return AskStatus::ok;
    case SendResult::mailbox_full:
    case SendResult::dropped: return AskStatus::mailbox_full;
    case SendResult::dead_agent: return AskStatus::dead_agent;
    case SendResult::shutting_down: return AskStatus::shutting_down;
    case SendResult::expired: return AskStatus::expired;
    case SendResult::unreachable: return AskStatus::unreachable;
  }
  return AskStatus::dead_agent;
}

AskStatus ask_status(const router::PublishResult& r) noexcept {
  return r.no_subscriber ? AskStatus::no_responder : r.mailbox_full != 0 ? AskStatus::mailbox_full : AskStatus::dead_agent;
}

// -- agents asking ---

void Agent::ask(AgentRef to, Payload payload, std::uint32_t kind, std::chrono::nanoseconds timeout,
                AskCallback done) {
  core_.rt->ask_from(*this, to, std::move(payload), kind, timeout, std::move(done));
}

void RuntimeCore::ask_from(Agent& agent, AgentRef to, Payload payload, std::uint32_t kind,
                       std::chrono::nanoseconds timeout, AskCallback done) {
  detail::AgentCore& core = agent.core_;
  const std::uint64_t id = ++core.next_request_id;
  Envelope* e = detail::make_envelope();
  e->msg.kind = kind;
  e->msg.sender = core.self;
  e->msg.reply_to = core.self;
  e->msg.correlation_id = id;
  e->msg.payload = std::move(payload);
  SendResult r = send_envelope(to, e);
  if (r != SendResult::ok) {
    done(ask_status(r), nullptr);
    return;
  }
  await_reply(core, id, timeout, std::move(done));
}

void RuntimeCore::request_from(Agent& agent, router::TopicId topic, Payload payload, std::uint32_t kind,
                           std::chrono::nanoseconds timeout, AskCallback done) {
  detail::AgentCore& core = agent.core_;
  const std::uint64_t id = ++core.next_request_id;
  router::PublishResult r = publish_from(core.self, topic, payload, kind, id);
  if (r.delivered == 0) {
    done(ask_status(r), nullptr);
    return;
  }
  await_reply(core, id, timeout, std::move(done));
}

// The reply (or the timeout) is handled by this same agent later, so
// registering after the request went out cannot miss it.
void RuntimeCore::await_reply(detail::AgentCore& core, std::uint64_t id, std::chrono::nanoseconds timeout,
                          AskCallback done) {
  detail::TimerEntry t;
  t.target = core.self;
  t.system = SystemKind::ask_timeout;
  t.correlation_id = id;
  TimerId timer = add_timer(std::move(t), timeout);
  if (!core.extras) core.extras = std::make_unique<detail::AgentExtras>();
  core.extras->asks.emplace(
      id, detail::AgentExtras::PendingAsk{std::move(done), timer, telemetry_->on() ? detail::now_ns() : 0});
}

void Agent::request(router::TopicId topic, Payload payload, std::uint32_t kind, std::chrono::nanoseconds timeout,
                    AskCallback done) {
  core_.rt->request_from(*this, topic, std::move(payload), kind, timeout, std::move(done));
}

void RuntimeCore::complete_ask(Agent* agent, Message& msg) {
  detail::AgentCore& core = agent->core_;
  if (!core.extras) return;
  auto it = core.extras->asks.find(msg.correlation_id);
  if (it == core.extras->asks.end()) {
    if (msg.system == SystemKind::reply) count_drop(DropReason::expired, core.self);  // came after its timeout
    return;
  }
  if (msg.partial && msg.system == SystemKind::reply && msg.status == 0) {
    it->second.callback(AskStatus::ok, &msg);  // a part of a stream: the ask stays pending
    return;
  }
  AskCallback done = std::move(it->second.callback);
  if (msg.system == SystemKind::reply) {
    timers_->cancel(it->second.timer);
    if (it->second.started_ns != 0) telemetry_->ask_time.observe_ns(detail::now_ns() - it->second.started_ns);
  }
  core.extras->asks.erase(it);
  if (msg.system == SystemKind::ask_timeout) {
    done(AskStatus::timeout, nullptr);
  } else if (msg.status != static_cast<std::uint8_t>(AskStatus::ok)) {
    done(static_cast<AskStatus>(msg.status), nullptr);
  } else {
    done(AskStatus::ok, &msg);
  }
}

// -- callers outside the agents ---

std::pair<AgentRef, std::future<Reply>> RuntimeCore::add_caller() {
  MutexLock lock(callers_mu_);
  // Ids start at 1 and wrap within 32 bits; a live id is never reused.
  std::uint64_t id;
  do {
    id = (++next_caller_ & 0xffffffffu);
  } while (id == 0 || callers_.count(id) != 0);
  Caller& c = callers_[id];
  return {AgentRef{static_cast<std::uint32_t>(id), 1, AgentRef::kCallerNode}, c.reply.get_future()};
}

void RuntimeCore::arm_caller_timeout(AgentRef caller, std::chrono::nanoseconds timeout) {
  detail::TimerEntry t;
  t.target = caller;
  t.system = SystemKind::ask_timeout;
  const TimerId timer = add_timer(std::move(t), timeout);
  MutexLock lock(callers_mu_);
  if (auto it = callers_.find(caller.index); it != callers_.end()) {
    it->second.timer = timer;
  } else {
    timers_->cancel(timer);  // answered already
  }
}

void RuntimeCore::complete_caller(std::uint64_t id, AskStatus status, Message* reply) noexcept {
  Caller c;
  {
    MutexLock lock(callers_mu_);
    auto it = callers_.find(id);
    if (it == callers_.end()) {
      if (reply != nullptr) count_drop(DropReason::expired, {});  // a reply after its timeout
      return;
    }
    c = std::move(it->second);
    callers_.erase(it);
  }
  if (c.timer != 0 && status != AskStatus::timeout) timers_->cancel(c.timer);
  Reply r;
  r.status = status;
  if (reply != nullptr) r.message = std::move(*reply);
  c.reply.set_value(std::move(r));
}

SendResult RuntimeCore::deliver_off_node(AgentRef to, Envelope* e) noexcept {
  if (to.node != AgentRef::kCallerNode) return deliver_remote(to, e);  // another process or machine
  Message& m = e->msg;
  switch (m.system) {
    case SystemKind::reply:
      if (m.partial) break;  // a future holds the final reply only
      complete_caller(to.index, static_cast<AskStatus>(m.status), m.status == 0 ? &m : nullptr);
      break;
    case SystemKind::ask_timeout: complete_caller(to.index, AskStatus::timeout, nullptr); break;
    case SystemKind::room: complete_caller(to.index, AskStatus::ok, nullptr); break;
    default:  // a caller takes no other message (e.g. a plain send to a reply_to)
      detail::free_envelope(e);
      return SendResult::dead_agent;
  }
  detail::free_envelope(e);
  return SendResult::ok;
}

std::future<Reply> RuntimeCore::ask(AgentRef to, Payload payload, std::chrono::nanoseconds timeout, std::uint32_t kind) {
  auto [caller, future] = add_caller();
  if (!accepting_.load(std::memory_order_acquire)) {
    count_refusal(SendResult::shutting_down, to);
    complete_caller(caller.index, AskStatus::shutting_down, nullptr);
    return std::move(future);
  }
  Envelope* e = detail::make_envelope();
  e->msg.kind = kind;
  e->msg.reply_to = caller;
  e->msg.correlation_id = caller.index;
  e->msg.payload = std::move(payload);
  const SendResult r = send_envelope(to, e);
  if (r != SendResult::ok) {
    complete_caller(caller.index, ask_status(r), nullptr);
  } else {
    arm_caller_timeout(caller, timeout);
  }
  return std::move(future);
}

std::future<Reply> RuntimeCore::request(std::string_view topic, Payload payload, std::chrono::nanoseconds timeout,
                                    std::uint32_t kind) {
  auto id = router_.intern(topic);
  if (!id) throw std::invalid_argument(id.error());
  auto [caller, future] = add_caller();
  if (!accepting_.load(std::memory_order_acquire)) {
    complete_caller(caller.index, AskStatus::shutting_down, nullptr);
    return std::move(future);
  }
  const router::PublishResult r = publish_from(caller, *id, payload, kind, caller.index);
  if (r.delivered == 0) {
    complete_caller(caller.index, ask_status(r), nullptr);
  } else {
    arm_caller_timeout(caller, timeout);
  }
  return std::move(future);
}

bool RuntimeCore::wait_for_room(AgentRef to, std::chrono::milliseconds timeout) {
  if (detail::Scheduler::current() != nullptr) return false;  // a worker never blocks
  auto [caller, future] = add_caller();
  add_room_waiter(to, caller);
  if (future.wait_for(timeout) != std::future_status::ready) {
    complete_caller(caller.index, AskStatus::timeout, nullptr);  // withdraw, unless the notice just came
  }
  return future.get().ok();
}

}  // namespace swarm
