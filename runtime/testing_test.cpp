// The deterministic runtime itself: nothing runs until the test runs it,
// agents run in the order they became runnable, and time moves only when the
// test moves it.

#include "runtime/testing.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace swarm {
namespace {

using namespace std::chrono_literals;
using test::DeterministicRuntime;

// Appends "<name>:<int>" to a shared trace for each message.
class Tracer : public Agent {
 public:
  Tracer(std::string name, std::vector<std::string>& trace) : name_(std::move(name)), trace_(trace) {}
  void on_message(Message& m) override { trace_.push_back(name_ + ":" + std::to_string(m.as<int>())); }

 private:
  std::string name_;
  std::vector<std::string>& trace_;
};

TEST(DeterministicRuntime, NothingRunsUntilTheTestRunsIt) {
  DeterministicRuntime rt;
  std::vector<std::string> trace;
  AgentRef a = rt->spawn<Tracer>("a", trace);
  ASSERT_EQ(rt->send(a, 1), SendResult::ok);
  EXPECT_TRUE(trace.empty());
  EXPECT_FALSE(rt.idle());
  EXPECT_TRUE(rt.run_once());
  EXPECT_EQ(trace, (std::vector<std::string>{"a:1"}));
  EXPECT_TRUE(rt.idle());
  EXPECT_FALSE(rt.run_once());
}

TEST(DeterministicRuntime, AgentsRunInTheOrderTheyBecameRunnableOneActivationAtATime) {
  RuntimeConfig c;
  c.throughput_budget = 2;
  DeterministicRuntime rt(c);
  std::vector<std::string> trace;
  AgentRef a = rt->spawn<Tracer>("a", trace);
  AgentRef b = rt->spawn<Tracer>("b", trace);
  for (int i = 1; i <= 3; ++i) ASSERT_EQ(rt->send(b, i), SendResult::ok);
  ASSERT_EQ(rt->send(a, 1), SendResult::ok);
  EXPECT_TRUE(rt.run_once());  // b first (runnable first), two messages: its budget
  EXPECT_EQ(trace, (std::vector<std::string>{"b:1", "b:2"}));
  EXPECT_EQ(rt.run_until_idle(), 2u);  // then a, then b again from the back of the line
  EXPECT_EQ(trace, (std::vector<std::string>{"b:1", "b:2", "a:1", "b:3"}));
  EXPECT_EQ(rt->stats().activations, 3u);
}

TEST(DeterministicRuntime, RunUntilIdleStopsAfterMaxActivations) {
  RuntimeConfig c;
  c.throughput_budget = 1;
  DeterministicRuntime rt(c);
  std::vector<std::string> trace;
  AgentRef a = rt->spawn<Tracer>("a", trace);
  for (int i = 1; i <= 5; ++i) ASSERT_EQ(rt->send(a, i), SendResult::ok);
  EXPECT_EQ(rt.run_until_idle(3), 3u);
  EXPECT_EQ(trace.size(), 3u);
  EXPECT_EQ(rt.run_until_idle(), 2u);
}

TEST(DeterministicRuntime, AdvanceFiresTimersInDueOrderAtTheirTimesAndRunsNothing) {
  DeterministicRuntime rt;
  std::vector<std::string> trace;
  AgentRef a = rt->spawn<Tracer>("a", trace);
  AgentRef b = rt->spawn<Tracer>("b", trace);
  rt->send_after(a, 30ms, Payload::of(3));
  rt->send_after(b, 10ms, Payload::of(1));
  rt->send_after(a, 20ms, Payload::of(2));
  EXPECT_EQ(rt.next_timeout(), rt.clock().now() + 10ms);
  EXPECT_EQ(rt.advance(25ms), 2u);
  EXPECT_TRUE(trace.empty());  // fired, queued, not run
  EXPECT_EQ(rt.elapsed(), 25ms);
  rt.run_until_idle();
  EXPECT_EQ(trace, (std::vector<std::string>{"b:1", "a:2"}));
  EXPECT_EQ(rt.advance(5ms), 1u);
  rt.run_until_idle();
  EXPECT_EQ(trace.back(), "a:3");
  EXPECT_FALSE(rt.next_timeout().has_value());
}

TEST(DeterministicRuntime, TriggerTimeoutsFiresWhatIsDueAfterTheClockWasMovedDirectly) {
  DeterministicRuntime rt;
  std::vector<std::string> trace;
  AgentRef a = rt->spawn<Tracer>("a", trace);
  rt->send_after(a, 10ms, Payload::of(1));
  rt.clock().advance(10ms);
  EXPECT_EQ(rt.trigger_timeouts(), 1u);
  rt.run_until_idle();
  EXPECT_EQ(trace, (std::vector<std::string>{"a:1"}));
}

// Re-arms a 10 ms timer from each handler, a chain only run_for can follow.
class Chain : public Agent {
 public:
  explicit Chain(std::vector<std::string>& trace) : trace_(trace) {}
  void on_start() override { send_after(10ms, Payload::of(1)); }
  void on_message(Message& m) override {
    trace_.push_back(std::to_string(m.as<int>()));
    send_after(10ms, Payload::of(m.as<int>() + 1));
  }

 private:
  std::vector<std::string>& trace_;
};

TEST(DeterministicRuntime, RunForRunsWhatEachTimerMakesRunnableBeforeTheClockMovesOn) {
  DeterministicRuntime rt;
  std::vector<std::string> trace;
  rt->spawn<Chain>(trace);
  rt.run_for(35ms);
  EXPECT_EQ(trace, (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(rt.elapsed(), 35ms);
  EXPECT_EQ(rt.next_timeout(), rt.clock().now() + 5ms);
}

TEST(DeterministicRuntime, StepModeWithoutAManualClockIsAConfigError) {
  RuntimeConfig c;
  c.step_mode = true;
  auto r = c.validate();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("step_mode needs clock to be a test::ManualClock"), std::string::npos) << r.error();
  EXPECT_THROW(Runtime{c}, std::invalid_argument);
}

TEST(DeterministicRuntime, AManualClockGivenInTheConfigIsTheOneUsed) {
  auto clock = std::make_shared<test::ManualClock>();
  RuntimeConfig c;
  c.clock = clock;
  DeterministicRuntime rt(c);
  EXPECT_EQ(&rt.clock(), clock.get());
  clock->advance(1s);
  EXPECT_EQ(rt.elapsed(), 1s);
}

}  // namespace
}  // namespace swarm
