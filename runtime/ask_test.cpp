// From outside the agents: Runtime::ask / request from any thread, answered
// through a future with a timeout; and deadlines on messages.

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "runtime/json.hpp"
#include "runtime/runtime.hpp"
#include "runtime/test_util.hpp"
#include "runtime/testing.hpp"

namespace swarm {
namespace {

using namespace std::chrono_literals;
using test::DeterministicRuntime;
using test::eventually;

bool ready(const std::future<Reply>& f) { return f.wait_for(0s) == std::future_status::ready; }

RuntimeConfig two_workers() {
  RuntimeConfig c;
  c.workers = 2;
  return c;
}

// Answers "hello, <name>" to a string, and a JSON object with the length.
class Greeter : public Agent {
 public:
  void on_message(Message& m) override {
    if (m.content_type() == ContentType::json) {
      const nlohmann::json j = m.as<nlohmann::json>();
      (void)reply(m, nlohmann::json{{"length", j["name"].get<std::string>().size()}});
      return;
    }
    (void)reply(m, "hello, " + m.as<std::string>());
  }
};

// Never answers.
class Silent : public Agent {
 public:
  void on_message(Message&) override {}
};

// Blocks in its handler until the test opens it (at the latest when the test ends).
struct GateState {
  std::atomic<bool> open{false};
  std::atomic<int> entered{0};
  std::atomic<int> handled{0};
};
class Gate : public Agent {
 public:
  explicit Gate(GateState& s) : s_(s) {}
  void on_message(Message&) override {
    ++s_.entered;
    while (!s_.open.load()) std::this_thread::yield();
    ++s_.handled;
  }

 private:
  GateState& s_;
};
// Declared after the Runtime: opens the gate before the runtime drains.
struct OpenAtExit {
  GateState& s;
  ~OpenAtExit() { s.open = true; }
};

// Most tests here run on the deterministic runtime: the test's thread runs
// the agents (run_until_idle) and moves time (advance), so a future is ready
// or not at an exact point.

TEST(Ask, FromMainTheAnswerComesBackThroughAFuture) {
  DeterministicRuntime rt;
  const AgentRef g = rt->spawn<Greeter>();
  std::future<Reply> f = rt->ask(g, std::string("world"), 5s);
  EXPECT_FALSE(ready(f));  // nobody ran yet
  rt.run_until_idle();
  ASSERT_TRUE(ready(f));
  const Reply r = f.get();
  ASSERT_TRUE(r.ok()) << to_string(r.status);
  EXPECT_EQ(r.message.as<std::string>(), "hello, world");
  EXPECT_EQ(r.message.sender, g);

  std::future<Reply> fj = rt->ask(g, nlohmann::json{{"name", "swarm"}}, 5s);
  rt.run_until_idle();
  ASSERT_TRUE(ready(fj));
  Reply j = fj.get();
  ASSERT_TRUE(j.ok()) << to_string(j.status);
  EXPECT_EQ(j.message.as<nlohmann::json>()["length"], 5);
  EXPECT_FALSE(rt.next_timeout().has_value());  // answered: both timeouts are cancelled
}

TEST(Ask, ManyThreadsAskAtOnceAndEachGetsItsOwnAnswer) {
  Runtime rt(two_workers());
  const AgentRef g = rt.spawn<Greeter>();
  std::atomic<int> right{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string name = std::to_string(t) + "/" + std::to_string(i);
        Reply r = rt.ask(g, name, 10s).get();
        if (r.ok() && r.message.as<std::string>() == "hello, " + name) ++right;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(right.load(), 800);
}

TEST(Ask, NoAnswerInTimeIsATimeoutExactlyAtTheDeadline) {
  DeterministicRuntime rt;
  const AgentRef s = rt->spawn<Silent>();
  std::future<Reply> f = rt->ask(s, 1, 20ms);
  rt.run_until_idle();  // Silent got the request and said nothing
  rt.advance(19ms);
  rt.run_until_idle();
  EXPECT_FALSE(ready(f)) << "timed out before the deadline";
  EXPECT_EQ(rt.advance(1ms), 1u);
  ASSERT_TRUE(ready(f));
  EXPECT_EQ(f.get().status, AskStatus::timeout);
  EXPECT_EQ(rt.elapsed(), 20ms);
}

TEST(Ask, NoAnswerInTimeIsATimeoutOnWorkerThreads) {
  Runtime rt(two_workers());
  const AgentRef s = rt.spawn<Silent>();
  std::future<Reply> f = rt.ask(s, 1, 20ms);
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get().status, AskStatus::timeout);
}

TEST(Ask, AGoneAgentAnswersAtOnceWithDeadAgent) {
  DeterministicRuntime rt;
  const AgentRef g = rt->spawn<Greeter>();
  ASSERT_TRUE(rt->stop(g));
  rt.run_until_idle();
  ASSERT_FALSE(rt->alive(g));
  std::future<Reply> f = rt->ask(g, std::string("anyone?"), 1h);
  ASSERT_TRUE(ready(f));  // at once: nothing ran, no time passed
  EXPECT_EQ(f.get().status, AskStatus::dead_agent);
}

TEST(Ask, AnAgentThatExitsWithTheRequestQueuedAnswersDeadAgent) {
  DeterministicRuntime rt;
  const AgentRef g = rt->spawn<Greeter>();
  ASSERT_EQ(rt->send(g, std::string("first")), SendResult::ok);
  std::future<Reply> f = rt->ask(g, std::string("queued"), 1h);
  ASSERT_TRUE(rt->kill(g));
  EXPECT_FALSE(ready(f));
  rt.run_until_idle();
  ASSERT_TRUE(ready(f));
  EXPECT_EQ(f.get().status, AskStatus::dead_agent);
  EXPECT_EQ(rt.elapsed(), 0ms);  // not after the hour
}

TEST(Ask, AfterShutdownTheAnswerIsShuttingDown) {
  DeterministicRuntime rt;
  const AgentRef g = rt->spawn<Greeter>();
  rt->shutdown();
  std::future<Reply> f = rt->ask(g, std::string("late"), 1h);
  ASSERT_TRUE(ready(f));
  EXPECT_EQ(f.get().status, AskStatus::shutting_down);
}

TEST(Ask, ACallerStillWaitingAtShutdownIsToldShuttingDown) {
  DeterministicRuntime rt;
  const AgentRef s = rt->spawn<Silent>();
  std::future<Reply> f = rt->ask(s, 1, 1h);
  rt->shutdown();
  ASSERT_TRUE(ready(f));
  EXPECT_EQ(f.get().status, AskStatus::shutting_down);
  EXPECT_LT(rt.elapsed(), 1h);  // its timeout was not waited for
}

TEST(Request, OnATopicTheFirstSubscriberAnswers) {
  DeterministicRuntime rt;
  const AgentRef g = rt->spawn<Greeter>();
  ASSERT_TRUE(rt->subscribe(g, "greet.*", "greeters"));
  std::future<Reply> f = rt->request("greet.en", Payload::of(std::string("topic")), 5s);
  rt.run_until_idle();
  ASSERT_TRUE(ready(f));
  Reply r = f.get();
  ASSERT_TRUE(r.ok()) << to_string(r.status);
  EXPECT_EQ(r.message.as<std::string>(), "hello, topic");
}

TEST(Request, NobodySubscribedIsNoResponderAtOnce) {
  DeterministicRuntime rt;
  std::future<Reply> f = rt->request("nobody.here", Payload::of(1), 1h);
  ASSERT_TRUE(ready(f));
  EXPECT_EQ(f.get().status, AskStatus::no_responder);
  EXPECT_THROW((void)rt->request("bad..topic", Payload::of(1), 1s), std::invalid_argument);
}

TEST(Deadline, AMessageNotHandledBeforeItsDeadlineIsCountedExpired) {
  GateState gs;
  Runtime rt(two_workers());
  OpenAtExit opener{gs};
  const AgentRef gate = rt.spawn<Gate>(gs);
  ASSERT_EQ(rt.send(gate, 0), SendResult::ok);  // holds the handler
  ASSERT_TRUE(eventually([&] { return gs.entered == 1; }));
  ASSERT_EQ(rt.send(gate, 1, SendOptions{0, 1ms}), SendResult::ok);   // expires while queued
  ASSERT_EQ(rt.send(gate, 2, SendOptions{0, 1h}), SendResult::ok);    // does not
  ASSERT_EQ(rt.send(gate, 3), SendResult::ok);                         // no deadline
  const auto queued_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return std::chrono::steady_clock::now() - queued_at > 5ms; }));
  gs.open = true;
  ASSERT_TRUE(eventually([&] { return gs.handled == 3; }));
  ASSERT_TRUE(rt.wait_idle());
  EXPECT_EQ(gs.handled.load(), 3);
  EXPECT_EQ(rt.stats().dropped[static_cast<int>(DropReason::expired)], 1u);
}

TEST(Deadline, ASendWhoseDeadlineHasPassedIsRefused) {
  Runtime rt(two_workers());
  const AgentRef s = rt.spawn<Silent>();
  EXPECT_EQ(rt.send(s, 1, SendOptions{0, std::chrono::nanoseconds(-1)}), SendResult::expired);
  EXPECT_EQ(rt.stats().refused[static_cast<int>(RefuseReason::expired)], 1u);
  EXPECT_EQ(rt.stats().dropped_total(), 0u);
}

TEST(Address, ARefToAnotherNodeIsUnreachableUntilAGatewayIsAttached) {
  Runtime rt(two_workers());
  const AgentRef elsewhere{1, 1, 7};
  EXPECT_FALSE(elsewhere.local());
  EXPECT_EQ(rt.send(elsewhere, 1), SendResult::unreachable);
  EXPECT_EQ(rt.ask(elsewhere, 1, 1h).get().status, AskStatus::unreachable);
  EXPECT_EQ(rt.stats().refused[static_cast<int>(RefuseReason::unreachable)], 2u);
}

}  // namespace
}  // namespace swarm
