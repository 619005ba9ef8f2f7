// Waiting for quiet (wait_idle) and shutting down: stop intake, drain, stop
// the agents top-down, kill what is left, join the threads, answer waiting
// callers, flush storage. And step mode (RuntimeConfig::step_mode): running
// agents and timers on the caller's thread.

#include <cstdint>
#include <cstdio>
#include <thread>

#include "runtime/detail/runtime_core.hpp"
#include "runtime/detail/scheduler.hpp"
#include "runtime/detail/telemetry.hpp"
#include "runtime/detail/timer_wheel.hpp"

namespace swarm {

using detail::RuntimeCore;

bool RuntimeCore::wait_for(std::chrono::milliseconds timeout, const std::function<bool()>& done) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

bool RuntimeCore::wait_idle(std::chrono::milliseconds timeout) const {
  // Step mode: nothing runs unless the caller runs it, so there is nothing to wait for.
  if (step_mode_) return !scheduler_->runnable_for_step();
  // Two quiet observations in a row: a timer or an outside send may land between.
  return wait_for(timeout, [this] {
    if (!scheduler_->quiescent()) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    return scheduler_->quiescent();
  });
}

// -- step mode ---

bool RuntimeCore::run_once() {
  SWARM_CHECK(step_mode_);
  Agent* a = scheduler_->take_for_step();
  if (a == nullptr) return false;
  // No worker thread: yield() puts the agent at the back of the injector.
  if (activate(a, scheduler_->step_worker())) scheduler_->yield(a);
  return true;
}

std::size_t RuntimeCore::run_until_idle(std::size_t max) {
  std::size_t ran = 0;
  while (ran < max && run_once()) ++ran;
  return ran;
}

std::size_t RuntimeCore::fire_due_timers() { return timers_->fire_due(); }

std::optional<Clock::time_point> RuntimeCore::next_timer_due() const { return timers_->next_due(); }

bool RuntimeCore::step_until(Clock::time_point deadline, const std::function<bool()>& done) {
  SWARM_CHECK(step_mode_);
  for (;;) {
    run_until_idle(SIZE_MAX);
    if (done()) return true;
    const std::optional<Clock::time_point> due = timers_->next_due();
    if (!due || *due > deadline) break;
    manual_clock_->advance_to(*due);
    timers_->fire_due();
  }
  manual_clock_->advance_to(deadline);
  timers_->fire_due();
  run_until_idle(SIZE_MAX);
  return done();
}

// -- shutdown ---

void RuntimeCore::shutdown(ShutdownPolicy policy) {
  if (shut_down_.exchange(true)) return;
  accepting_.store(false, std::memory_order_release);
  const auto budget = config_.shutdown_timeout;
  auto no_agents = [this] { return live_.load(std::memory_order_acquire) == 0; };
  // Threads: the budget is real time (the caller is blocked; nobody moves a
  // manual clock meanwhile). Step mode: the manual clock's, moved here from
  // timer to timer, so a supervisor's stop timeouts play out exactly.
  auto wait_until_gone = [&](std::chrono::milliseconds within) {
    return step_mode_ ? step_until(manual_clock_->now() + within, no_agents) : wait_for(within, no_agents);
  };
  if (policy == ShutdownPolicy::drain) {
    if (step_mode_) {
      run_until_idle(SIZE_MAX);
    } else {
      wait_idle(budget);
    }
    // Top-level agents first; supervisors stop their children in order.
    table_.for_each_open([this](Agent* a, AgentRef ref) {
      if (!a->core_.parent.valid()) stop(ref);
    });
    if (!wait_until_gone(budget)) {
      std::fprintf(stderr, "swarm: shutdown: %llu agents still running after %lld ms; killing them\n",
                   static_cast<unsigned long long>(live_.load()), static_cast<long long>(budget.count()));
    }
  }
  // Whatever is left (everything, for discard) is killed; kills are final.
  for (;;) {
    table_.for_each_open([this](Agent*, AgentRef ref) { kill(ref); });
    if (wait_until_gone(step_mode_ ? std::chrono::milliseconds(0) : std::chrono::milliseconds(1000))) break;
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
void RuntimeCore::flush_storage() {
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

}  // namespace swarm
