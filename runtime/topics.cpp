// Topics: agents' subscriptions (undone when they exit), publishing, and the
// router endpoints through which published messages reach agents' mailboxes
// and the audit log.

#include "runtime/detail/runtime_core.hpp"
#include "runtime/detail/scheduler.hpp"
#include "runtime/detail/telemetry.hpp"

namespace swarm {

using detail::RuntimeCore;

using detail::Envelope;
using detail::Slot;
namespace ctl = detail::ctl;

namespace {
// The message `d` carries, into `m`.
[[gnu::always_inline]] inline void fill(Message& m, const router::Delivery& d) {
  m.kind = d.kind;
  m.topic = d.topic;
  m.sender = AgentRef::from_bits(d.sender, d.sender_node);
  m.correlation_id = d.correlation_id;
  if (d.correlation_id != 0) m.reply_to = m.sender;
  m.deadline_ns = d.deadline_ns;
  m.payload = d.payload;
}

// The publish this thread is making (fanout_handoff): its deliveries to idle
// agents share one message from the second on (a publish to one agent makes
// none). Deliveries of something else meanwhile (a dead letter's) do not match.
struct PublishShare {
  router::TopicId topic;
  const Payload* payload;
  bool first = true;
  detail::SharedMessage* message = nullptr;
  std::uint64_t handed = 0;  // receivers' references

  detail::SharedMessage* message_for(const router::Delivery& d) {
    if (d.topic != topic || &d.payload != payload) return nullptr;
    if (message == nullptr) {
      if (first) {
        first = false;
        return nullptr;
      }
      message = new detail::SharedMessage;
      fill(message->msg, d);
    }
    return message;
  }
};
thread_local PublishShare* t_publish = nullptr;
}  // namespace

Result<router::SubscriptionId> RuntimeCore::subscribe(AgentRef agent, std::string_view pattern,
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

void RuntimeCore::unsubscribe_exited(AgentRef agent) noexcept {
  Slot& slot = table_.at(agent.index);
  if (slot.subscribed.exchange(false, std::memory_order_seq_cst)) router_.unsubscribe_all({&endpoint_, agent.bits()});
}

router::PublishResult RuntimeCore::publish(router::TopicId topic, const Payload& payload, std::uint32_t kind) noexcept {
  if (!accepting_.load(std::memory_order_acquire)) {
    count_drop(DropReason::shutting_down, {});
    return {};
  }
  return publish_from(AgentRef{}, topic, payload, kind, 0);
}

Result<router::PublishResult> RuntimeCore::publish(std::string_view topic, const Payload& payload, std::uint32_t kind) {
  auto id = router_.intern(topic);
  if (!id) return unexpected(id.error());
  return publish(*id, payload, kind);
}

router::PublishResult RuntimeCore::publish_from(AgentRef sender, router::TopicId topic, const Payload& payload,
                                            std::uint32_t kind, std::uint64_t correlation_id,
                                            std::uint64_t deadline_ns, const ForwardOptions* relay) noexcept {
  const std::uint64_t start = telemetry_->sample() ? detail::now_ns() : 0;
  router::PublishOptions o;
  o.kind = kind;
  o.sender = sender.bits();
  o.sender_node = sender.node;
  o.correlation_id = correlation_id;
  o.deadline_ns = deadline_ns;
  if (relay != nullptr) {
    o.relayed_by = relay->relayed_by;
    o.relay_group = relay->relay_group;
  }
  if (config_.shared_fanout) o.helper = scheduler_.get();
  const bool batched = config_.batch_fanout && scheduler_->begin_fanout();
  PublishShare share{topic, &payload};
  // Set or cleared for this publish either way: a publish of another runtime
  // made inside it (an endpoint's) must not take this one's share.
  PublishShare* outer = t_publish;
  t_publish = config_.wake_handoff && config_.fanout_handoff ? &share : nullptr;
  router::PublishResult r = router_.publish(topic, payload, o);
  t_publish = outer;
  if (share.message != nullptr) detail::release(share.message, detail::SharedMessage::kPublisherRefs - share.handed);
  if (batched) scheduler_->end_fanout();
  if (start != 0) telemetry_->fanout_time.observe_ns(detail::now_ns() - start);
  if (r.no_subscriber) count_drop(DropReason::no_subscriber, {});
  return r;  // full mailboxes and dead agents were counted by the endpoint
}

router::DeliverStatus RuntimeCore::AgentEndpoint::deliver(const router::Delivery& d) noexcept {
  const AgentRef to = AgentRef::from_bits(d.address);
  // Sampled here, once: a sampled delivery gets an envelope of its own, which
  // carries its time. One with a deadline too (deliver checks it).
  const bool sampled = rt_.telemetry_->sample();
  if (PublishShare* share = t_publish; share != nullptr && !sampled && d.deadline_ns == 0) {
    if (detail::SharedMessage* m = share->message_for(d); m != nullptr && rt_.hand_off(to, m)) {
      ++share->handed;
      return router::DeliverStatus::ok;
    }
  }
  Envelope* e = detail::make_envelope();
  if (sampled) [[unlikely]] e->enqueued_ns = detail::now_ns();
  fill(e->msg, d);
  // The publisher learns only totals, so what is not queued here is lost: dropped.
  switch (rt_.deliver(to, e, /*may_sample=*/false)) {
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

router::DeliverStatus RuntimeCore::AuditEndpoint::deliver(const router::Delivery& d) noexcept {
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

std::size_t RuntimeCore::AgentEndpoint::depth(std::uint64_t address) const noexcept {
  AgentRef ref = AgentRef::from_bits(address);
  const Slot* slot = rt_.table_.find(ref.index);
  if (slot == nullptr) return 0;
  std::uint64_t c = slot->ctl.load(std::memory_order_relaxed);
  return ctl::generation(c) == ref.generation ? ctl::count(c) : 0;
}

}  // namespace swarm
