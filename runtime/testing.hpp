#pragma once
// A deterministic runtime for tests, after CAF's test coordinator: no worker
// and no timer thread, a manual clock, and agents that run on the test's
// thread only when the test says so. Every run replays exactly.
//
//   swarm::test::DeterministicRuntime rt;
//   swarm::AgentRef a = rt->spawn<Echo>();
//   auto answer = rt->ask(a, std::string("hi"), std::chrono::milliseconds(50));
//   rt.run_until_idle();                                  // Echo answers
//   ASSERT_EQ(answer.wait_for(0s), std::future_status::ready);
//   rt.advance(std::chrono::milliseconds(50));           // fires timers due by then
//
// What runs when: spawn, send, kill and timers only queue work; run_once()
// runs one activation (up to throughput_budget messages of one agent) of the
// agent made runnable first; agents run in the order they became runnable.
// advance() moves the clock and fires the timers it passes, each at its due
// time and in order, without running agents; run_for() also runs what each
// timer makes runnable before moving on. Shutdown (and the destructor) drains
// on the test's thread, moving the clock through stop timeouts as needed.
//
// Owner-only: one thread (the test's) uses it; agents' handlers must not
// call run_once, run_until_idle, advance or run_for. Runtime members that
// block waiting for agents (Runtime::wait_for_room, std::future::get on an
// answer not given yet) would wait forever: run first, then look.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "runtime/clock.hpp"
#include "runtime/runtime.hpp"

namespace swarm::test {

class DeterministicRuntime {
 public:
  /// Makes a runtime in step mode from `config`: its clock is `config.clock`
  /// if that is a ManualClock, else a new ManualClock. Throws as Runtime's
  /// constructor does.
  explicit DeterministicRuntime(RuntimeConfig config = {});
  /// Shuts the runtime down (drain) on this thread.
  ~DeterministicRuntime();
  DeterministicRuntime(const DeterministicRuntime&) = delete;
  DeterministicRuntime& operator=(const DeterministicRuntime&) = delete;

  // -- the runtime and its clock ---

  Runtime& runtime() noexcept { return *rt_; }
  Runtime* operator->() noexcept { return rt_.get(); }
  Runtime& operator*() noexcept { return *rt_; }
  ManualClock& clock() noexcept { return *clock_; }
  /// Manual time since this runtime was made.
  std::chrono::nanoseconds elapsed() const noexcept { return clock_->now() - start_; }

  // -- running agents ---

  /// Runs one activation of the agent made runnable first; false when no
  /// agent is runnable.
  bool run_once();
  /// Runs activations until no agent is runnable or `max` ran; returns how
  /// many ran (an agent that keeps sending itself messages never idles: pass max).
  std::size_t run_until_idle(std::size_t max = SIZE_MAX);
  /// True when no agent is runnable.
  bool idle() const;

  // -- time ---

  /// Moves the clock by `d`, firing each timer it passes at its due time, in
  /// due order; runs no agent. Returns how many timers fired.
  std::size_t advance(std::chrono::nanoseconds d);
  /// Fires the timers due now (after clock().advance()); returns how many fired.
  std::size_t trigger_timeouts();
  /// Runs agents and fires timers in time order until `d` has passed: each
  /// timer fires at its due time and what it makes runnable runs before the
  /// clock moves on. The clock ends `d` later.
  void run_for(std::chrono::nanoseconds d);
  /// When the next armed timer is due (on clock()), or nullopt.
  std::optional<Clock::time_point> next_timeout() const;

 private:
  std::shared_ptr<ManualClock> clock_;
  Clock::time_point start_;
  std::unique_ptr<Runtime> rt_;  // last: destroyed (shut down) first
};

}  // namespace swarm::test
