// Timers: send_after / send_periodic on the timer wheel, and what a timer
// that fires delivers.

#include "runtime/detail/runtime_core.hpp"
#include "runtime/detail/telemetry.hpp"
#include "runtime/detail/timer_wheel.hpp"

namespace swarm {

using detail::RuntimeCore;

using detail::Envelope;

TimerId RuntimeCore::add_timer(detail::TimerEntry entry, std::chrono::nanoseconds delay) {
  return timers_->add(std::move(entry), delay);
}

TimerId RuntimeCore::send_after(AgentRef to, std::chrono::nanoseconds delay, Payload payload, std::uint32_t kind) {
  detail::TimerEntry t;
  t.target = to;
  t.kind = kind;
  t.payload = std::move(payload);
  return add_timer(std::move(t), delay);
}

TimerId RuntimeCore::send_periodic(AgentRef to, std::chrono::nanoseconds interval, Payload payload,
                               std::uint32_t kind) {
  detail::TimerEntry t;
  t.target = to;
  t.kind = kind;
  t.payload = std::move(payload);
  t.period = interval;
  return add_timer(std::move(t), interval);
}

bool RuntimeCore::cancel_timer(TimerId id) { return timers_->cancel(id); }

bool RuntimeCore::fire_timer(const detail::TimerEntry& t) noexcept {
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

}  // namespace swarm
