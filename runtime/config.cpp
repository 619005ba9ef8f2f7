#include "runtime/config.hpp"

#include <algorithm>
#include <thread>

#include "metrics/admin_server.hpp"

namespace swarm {

std::string_view to_string(OverflowPolicy p) {
  switch (p) {
    case OverflowPolicy::reject: return "reject";
    case OverflowPolicy::drop_oldest: return "drop_oldest";
    case OverflowPolicy::drop_newest: return "drop_newest";
  }
  return "unknown";
}

Result<OverflowPolicy> parse_overflow_policy(std::string_view text, std::string_view field) {
  for (auto p : {OverflowPolicy::reject, OverflowPolicy::drop_oldest, OverflowPolicy::drop_newest}) {
    if (text == to_string(p)) return p;
  }
  return unexpected("runtime: " + std::string(field) + ": unknown overflow policy \"" +
                    std::string(text) + "\" (allowed: reject, drop_oldest, drop_newest)");
}

namespace {
Result<void> validate_mailbox(const MailboxOptions& m, const std::string& field) {
  if (m.capacity == 0 || m.capacity > RuntimeConfig::kMaxMailboxCapacity) {
    return unexpected("runtime: " + field + ".capacity = " + std::to_string(m.capacity) +
                      " is out of range (allowed: 1.." +
                      std::to_string(RuntimeConfig::kMaxMailboxCapacity) + ")");
  }
  auto p = static_cast<unsigned>(m.overflow);
  if (p > static_cast<unsigned>(OverflowPolicy::drop_newest)) {
    return unexpected("runtime: " + field + ".overflow = " + std::to_string(p) +
                      " is not a policy (allowed: reject, drop_oldest, drop_newest)");
  }
  return {};
}
}  // namespace

Result<void> RuntimeConfig::validate() const {
  if (workers == 0 || workers > kMaxWorkers) {
    return unexpected("runtime: workers = " + std::to_string(workers) + " is out of range (allowed: 1.." +
                      std::to_string(kMaxWorkers) + "; the default is the number of cores)");
  }
  if (throughput_budget == 0) {
    return unexpected(std::string("runtime: throughput_budget = 0 (allowed: 1 or more messages per activation)"));
  }
  if (auto r = validate_mailbox(default_mailbox, "default_mailbox"); !r) return r;
  for (const auto& [type, m] : mailbox_by_type) {
    if (type.empty()) return unexpected(std::string("runtime: mailbox_by_type has an empty agent type name"));
    if (auto r = validate_mailbox(m, "mailbox_by_type[" + type + "]"); !r) return r;
  }
  if (idle_spin.count() < 0 || idle_spin.count() > 10'000) {
    return unexpected("runtime: idle_spin = " + std::to_string(idle_spin.count()) +
                      " us is out of range (allowed: 0..10000 us)");
  }
  if (timer_tick.count() < 1 || timer_tick.count() > 1000) {
    return unexpected("runtime: timer_tick = " + std::to_string(timer_tick.count()) +
                      "ms (allowed: 1..1000 ms)");
  }
  if (shutdown_timeout.count() < 0) {
    return unexpected(std::string("runtime: shutdown_timeout is negative (allowed: 0 ms or more)"));
  }
  if (auto r = router.validate(); !r) return unexpected("runtime: " + r.error());
  const TelemetryConfig& t = telemetry;
  if (t.sample_every == 0 || t.sample_every > 65536) {
    return unexpected("runtime: telemetry.sample_every = " + std::to_string(t.sample_every) +
                      " is out of range (allowed: 1..65536; 1 times every message)");
  }
  if (t.slow_consumers > 1000) {
    return unexpected("runtime: telemetry.slow_consumers = " + std::to_string(t.slow_consumers) +
                      " is out of range (allowed: 0..1000)");
  }
  if (t.max_series < 100) {
    return unexpected("runtime: telemetry.max_series = " + std::to_string(t.max_series) +
                      " is too small (allowed: 100 or more)");
  }
  if (t.slow_handler_threshold.count() < 0) {
    return unexpected(std::string("runtime: telemetry.slow_handler_threshold is negative (allowed: 0 = off, or more)"));
  }
  if (!t.admin.empty()) {
    if (auto a = metrics::parse_admin_address(t.admin); !a) return unexpected("runtime: telemetry.admin: " + a.error());
  }
  if (!audit_topics.empty() && !lifecycle) {
    return unexpected(std::string("runtime: audit_topics needs a lifecycle sink (set lifecycle, e.g. a journal)"));
  }
  for (const std::string& pattern : audit_topics) {
    if (auto r = router::validate_pattern(pattern, {router.max_topic_bytes, router.max_tokens}); !r) {
      return unexpected("runtime: audit_topics: '" + pattern + "': " + r.error());
    }
  }
  if (step_mode && dynamic_cast<const test::ManualClock*>(clock.get()) == nullptr) {
    return unexpected(std::string("runtime: step_mode needs clock to be a test::ManualClock (nothing else moves "
                                  "time while agents run on the caller's thread)"));
  }
  return {};
}

unsigned RuntimeConfig::default_workers() {
  return std::clamp(std::thread::hardware_concurrency(), 1u, kMaxWorkers);
}

}  // namespace swarm
