#include "runtime/testing.hpp"

#include "runtime/detail/runtime_core.hpp"

namespace swarm::test {

namespace {
std::shared_ptr<ManualClock> manual_clock_of(const RuntimeConfig& config) {
  if (auto manual = std::dynamic_pointer_cast<ManualClock>(config.clock)) return manual;
  return std::make_shared<ManualClock>();
}

RuntimeConfig in_step_mode(RuntimeConfig config, std::shared_ptr<ManualClock> clock) {
  config.clock = std::move(clock);
  config.step_mode = true;
  return config;
}
}  // namespace

DeterministicRuntime::DeterministicRuntime(RuntimeConfig config)
    : clock_(manual_clock_of(config)),
      start_(clock_->now()),
      rt_(std::make_unique<Runtime>(in_step_mode(std::move(config), clock_))) {}

DeterministicRuntime::~DeterministicRuntime() { rt_.reset(); }

bool DeterministicRuntime::run_once() { return detail::core_of(*rt_).run_once(); }

std::size_t DeterministicRuntime::run_until_idle(std::size_t max) {
  return detail::core_of(*rt_).run_until_idle(max);
}

bool DeterministicRuntime::idle() const { return rt_->wait_idle(std::chrono::milliseconds(0)); }

std::size_t DeterministicRuntime::advance(std::chrono::nanoseconds d) {
  detail::RuntimeCore& core = detail::core_of(*rt_);
  const Clock::time_point target = clock_->now() + d;
  std::size_t fired = 0;
  // Timer by timer, so each fires at its own time (a periodic one once per period).
  while (auto due = core.next_timer_due()) {
    if (*due > target) break;
    clock_->advance_to(*due);
    fired += core.fire_due_timers();
  }
  clock_->advance_to(target);
  return fired + core.fire_due_timers();
}

std::size_t DeterministicRuntime::trigger_timeouts() { return detail::core_of(*rt_).fire_due_timers(); }

void DeterministicRuntime::run_for(std::chrono::nanoseconds d) {
  (void)detail::core_of(*rt_).step_until(clock_->now() + d, [] { return false; });
}

std::optional<Clock::time_point> DeterministicRuntime::next_timeout() const {
  return detail::core_of(*rt_).next_timer_due();
}

}  // namespace swarm::test
