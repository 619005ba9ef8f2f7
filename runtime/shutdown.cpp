// Waiting for quiet (wait_idle) and shutting down: stop intake, drain, stop
// the agents top-down, kill what is left, join the threads, answer waiting
// callers, flush storage.

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
  // Two quiet observations in a row: a timer or an outside send may land between.
  return wait_for(timeout, [this] {
    if (!scheduler_->quiescent()) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    return scheduler_->quiescent();
  });
}

void RuntimeCore::shutdown(ShutdownPolicy policy) {
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
