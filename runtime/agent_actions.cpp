// Agent actions that forward to the runtime (only from the agent's own
// handlers). Elsewhere by concern: send and reply in delivery.cpp (hot path),
// ask and request in ask.cpp, notify_when_room in flow_control.cpp,
// register_name in names.cpp.

#include <stdexcept>

#include "runtime/detail/runtime_core.hpp"
#include "runtime/detail/timer_wheel.hpp"

namespace swarm {

using detail::RuntimeCore;

Runtime& Agent::runtime() const noexcept { return core_.rt->owner(); }

std::string_view Agent::type_name() const noexcept { return core_.type->name; }

void Agent::stop(ExitReason reason) { core_.rt->begin_exit(this, std::move(reason)); }

void Agent::persist_as(std::string key) {
  if (key.empty()) throw std::invalid_argument("swarm: persist_as: the state key is empty");
  if (!core_.extras) core_.extras = std::make_unique<detail::AgentExtras>();
  core_.extras->state_key = std::move(key);
}

Result<router::SubscriptionId> Agent::subscribe(std::string_view pattern, std::string_view queue_group) {
  return core_.rt->subscribe(core_.self, pattern, queue_group);
}

bool Agent::unsubscribe(router::SubscriptionId id) { return core_.rt->unsubscribe(id); }

router::PublishResult Agent::publish(router::TopicId topic, const Payload& payload, std::uint32_t kind) noexcept {
  return core_.rt->publish_from(core_.self, topic, payload, kind, 0);
}

Result<router::PublishResult> Agent::publish(std::string_view topic, const Payload& payload, std::uint32_t kind) {
  auto id = core_.rt->router().intern(topic);
  if (!id) return unexpected(id.error());
  return publish(*id, payload, kind);
}
TimerId Agent::send_after(std::chrono::nanoseconds delay, Payload payload, std::uint32_t kind) {
  detail::TimerEntry t;
  t.target = core_.self;
  t.sender = core_.self;
  t.kind = kind;
  t.payload = std::move(payload);
  return core_.rt->add_timer(std::move(t), delay);
}

TimerId Agent::send_periodic(std::chrono::nanoseconds interval, Payload payload, std::uint32_t kind) {
  detail::TimerEntry t;
  t.target = core_.self;
  t.sender = core_.self;
  t.kind = kind;
  t.payload = std::move(payload);
  t.period = interval;
  return core_.rt->add_timer(std::move(t), interval);
}

bool Agent::cancel_timer(TimerId id) { return core_.rt->cancel_timer(id); }

}  // namespace swarm
