#include "runtime/runtime.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <stdexcept>
#include <thread>

#include "runtime/test_util.hpp"
#include "runtime/testing.hpp"

namespace swarm {
namespace {

using namespace std::chrono_literals;
using test::eventually;
using test::DeterministicRuntime;

RuntimeConfig small(unsigned workers = 2) {
  RuntimeConfig c;
  c.workers = workers;
  return c;
}

// Sums the ints it receives into a shared counter.
class Summer : public Agent {
 public:
  explicit Summer(std::atomic<long>& sum) : sum_(sum) {}
  void on_message(Message& m) override { sum_ += m.as<int>(); }

 private:
  std::atomic<long>& sum_;
};

TEST(Runtime, DeliversMessagesFromOutside) {
  Runtime rt(small());
  std::atomic<long> sum{0};
  AgentRef a = rt.spawn<Summer>(sum);
  for (int i = 1; i <= 100; ++i) ASSERT_EQ(rt.send(a, i), SendResult::ok);
  EXPECT_TRUE(eventually([&] { return sum == 5050; }));
}

// Passes a counter back and forth until it reaches `limit`.
class Pinger : public Agent {
 public:
  Pinger(long limit, std::atomic<bool>& done) : limit_(limit), done_(done) {}
  void on_message(Message& m) override {
    long n = m.as<long>();
    if (n >= limit_) {
      done_ = true;
      return;
    }
    (void)send(m.sender, n + 1);
  }

 private:
  long limit_;
  std::atomic<bool>& done_;
};

class Starter : public Agent {
 public:
  explicit Starter(AgentRef peer) : peer_(peer) {}
  void on_start() override { (void)send(peer_, 0L); }
  void on_message(Message& m) override { (void)send(m.sender, m.as<long>() + 1); }

 private:
  AgentRef peer_;
};

TEST(Runtime, PingPongBetweenTwoAgentsCompletes) {
  Runtime rt(small());
  std::atomic<bool> done{false};
  AgentRef p = rt.spawn<Pinger>(100000, done);
  rt.spawn<Starter>(p);
  EXPECT_TRUE(eventually([&] { return done.load(); }));
  EXPECT_GE(rt.stats().messages, 100000u);
}

// Records the order in which it receives messages.
class Recorder : public Agent {
 public:
  explicit Recorder(std::vector<int>& seen) : seen_(seen) {}
  void on_message(Message& m) override { seen_.push_back(m.as<int>()); }

 private:
  std::vector<int>& seen_;
};

TEST(Runtime, MessagesFromOneSenderArriveInOrder) {
  Runtime rt(small());
  std::vector<int> seen;
  AgentRef r = rt.spawn<Recorder>(seen);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(rt.send(r, i), SendResult::ok);
  ASSERT_TRUE(rt.wait_idle());
  ASSERT_EQ(seen.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(seen[i], i);
}

class Blocker : public Agent {
 public:
  static constexpr std::string_view kTypeName = "blocker";
  Blocker(std::atomic<bool>& release, std::atomic<int>& handled, std::atomic<int>* entered = nullptr)
      : release_(release), handled_(handled), entered_(entered) {}
  void on_message(Message&) override {
    if (entered_ != nullptr) ++*entered_;
    while (!release_) std::this_thread::yield();
    ++handled_;
  }

 private:
  std::atomic<bool>& release_;
  std::atomic<int>& handled_;
  std::atomic<int>* entered_;
};

RuntimeConfig with_blocker_mailbox(OverflowPolicy p) {
  RuntimeConfig c = small();
  c.mailbox_by_type["blocker"] = MailboxOptions{4, p};
  return c;
}

TEST(Mailbox, RejectPolicyTellsTheSenderAndCountsARefusalNotALoss) {
  Runtime rt(with_blocker_mailbox(OverflowPolicy::reject));
  std::atomic<bool> release{false};
  std::atomic<int> handled{0};
  AgentRef b = rt.spawn<Blocker>(release, handled);
  int ok = 0, full = 0;
  for (int i = 0; i < 10; ++i) {
    SendResult r = rt.send(b, i);
    (r == SendResult::ok ? ok : full) += 1;
    if (r != SendResult::ok) {
      EXPECT_EQ(r, SendResult::mailbox_full);
    }
  }
  EXPECT_EQ(ok, 4);  // the bound is exact: the first message is being handled but still counts
  EXPECT_EQ(full, 6);
  EXPECT_EQ(rt.stats().refused[static_cast<int>(RefuseReason::mailbox_full)], 6u);
  EXPECT_EQ(rt.stats().dropped_total(), 0u);  // the sender was told: nothing was lost
  release = true;
  EXPECT_TRUE(eventually([&] { return handled == 4; }));
}

// Sends itself the next step from each handler: never more than one queued.
class Looper : public Agent {
 public:
  Looper(int steps, std::atomic<int>& refused, std::atomic<bool>& done) : steps_(steps), refused_(refused), done_(done) {}
  void on_message(Message& m) override {
    int step = m.as<int>();
    if (step == steps_) {
      done_ = true;
      return;
    }
    if (send(self(), step + 1) != SendResult::ok) refused_.fetch_add(1);
  }

 private:
  int steps_;
  std::atomic<int>& refused_;
  std::atomic<bool>& done_;
};

TEST(Mailbox, MessagesAlreadyHandledInAnActivationDoNotCountAgainstCapacity) {
  RuntimeConfig c;
  c.default_mailbox.capacity = 4;  // far below the throughput budget (64)
  Runtime rt(c);
  std::atomic<int> refused{0};
  std::atomic<bool> done{false};
  EXPECT_EQ(rt.send(rt.spawn<Looper>(1000, refused, done), 0), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return done.load() || refused.load() != 0; }));
  EXPECT_EQ(refused.load(), 0);
  EXPECT_TRUE(done.load());
}

TEST(Mailbox, DropNewestDropsTheNewMessage) {
  Runtime rt(with_blocker_mailbox(OverflowPolicy::drop_newest));
  std::atomic<bool> release{false};
  std::atomic<int> handled{0};
  AgentRef b = rt.spawn<Blocker>(release, handled);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rt.send(b, i), SendResult::ok);
  EXPECT_EQ(rt.send(b, 99), SendResult::dropped);
  EXPECT_EQ(rt.stats().dropped[static_cast<int>(DropReason::mailbox_full)], 1u);
  release = true;
  EXPECT_TRUE(eventually([&] { return handled == 4; }));
}

class SlowRecorder : public Agent {
 public:
  static constexpr std::string_view kTypeName = "slow_recorder";
  SlowRecorder(std::atomic<bool>& release, std::atomic<int>& entered, std::vector<int>& seen)
      : release_(release), entered_(entered), seen_(seen) {}
  void on_message(Message& m) override {
    ++entered_;
    while (!release_) std::this_thread::yield();
    seen_.push_back(m.as<int>());
  }

 private:
  std::atomic<bool>& release_;
  std::atomic<int>& entered_;
  std::vector<int>& seen_;
};

TEST(Mailbox, DropOldestKeepsTheNewestMessages) {
  RuntimeConfig c = small();
  c.mailbox_by_type["slow_recorder"] = MailboxOptions{3, OverflowPolicy::drop_oldest};
  Runtime rt(c);
  std::atomic<bool> release{false};
  std::atomic<int> entered{0};
  std::vector<int> seen;
  AgentRef r = rt.spawn<SlowRecorder>(release, entered, seen);
  ASSERT_EQ(rt.send(r, 0), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return entered == 1; }));  // message 0 is in the handler (it blocks there)
  for (int i = 1; i <= 10; ++i) EXPECT_EQ(rt.send(r, i), SendResult::ok);
  release = true;
  ASSERT_TRUE(rt.wait_idle());
  // 0 was in the handler; of 1..10 only the newest two fit beside it.
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], 0);
  EXPECT_EQ(seen[1], 9);
  EXPECT_EQ(seen[2], 10);
  EXPECT_EQ(rt.stats().dropped[static_cast<int>(DropReason::mailbox_full)], 8u);
}

TEST(AgentRef, SendToAnExitedAgentIsReportedEvenAfterSlotReuse) {
  // Step mode: the exit is on this thread, whose freed slot the next spawn
  // here takes (a worker keeps freed slots for its own spawns first).
  DeterministicRuntime rt;
  std::atomic<long> sum{0};
  AgentRef old = rt->spawn<Summer>(sum);
  ASSERT_TRUE(rt->stop(old));
  rt.run_until_idle();
  ASSERT_EQ(rt->stats().live, 0u);  // not only closed but gone: its slot is free again
  AgentRef fresh = rt->spawn<Summer>(sum);
  EXPECT_EQ(fresh.index, old.index);  // the slot was recycled...
  EXPECT_NE(fresh.generation, old.generation);
  EXPECT_EQ(rt->send(old, 5), SendResult::dead_agent);  // ...but the old ref never reaches it
  EXPECT_EQ(rt->send(fresh, 7), SendResult::ok);
  rt.run_until_idle();
  EXPECT_EQ(sum, 7);
  EXPECT_EQ(rt->stats().refused[static_cast<int>(RefuseReason::dead_agent)], 1u);
  EXPECT_EQ(rt->stats().dropped_total(), 0u);
  EXPECT_EQ(rt->send(AgentRef{123456, 9}, 1), SendResult::dead_agent);  // never existed
}

class Thrower : public Agent {
 public:
  void on_message(Message&) override { throw std::runtime_error("bad input 42"); }
};

TEST(Runtime, AThrowingHandlerCrashesItsAgentAndTheReasonIsRecorded) {
  Runtime rt(small());
  AgentRef t = rt.spawn<Thrower>();
  ASSERT_EQ(rt.send(t, 1), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return !rt.alive(t); }));
  auto crashes = rt.recent_crashes();
  ASSERT_EQ(crashes.size(), 1u);
  EXPECT_EQ(crashes[0].agent, t);
  EXPECT_EQ(crashes[0].reason.kind, ExitKind::crashed);
  EXPECT_EQ(crashes[0].reason.detail, "bad input 42");
  EXPECT_NE(crashes[0].type.find("Thrower"), std::string::npos);
  EXPECT_EQ(rt.stats().crashed, 1u);
}

// Counts the messages it handles; runs `during` inside its first handler.
class Hooked : public Agent {
 public:
  Hooked(int& handled, std::function<void()> during) : handled_(handled), during_(std::move(during)) {}
  void on_message(Message&) override {
    ++handled_;
    if (during_) std::exchange(during_, nullptr)();
  }

 private:
  int& handled_;
  std::function<void()> during_;
};

std::uint64_t dead_agent_drops(Runtime& rt) { return rt.stats().dropped[static_cast<int>(DropReason::dead_agent)]; }

TEST(Runtime, KillStopsAnAgentBeforeItsQueuedMessages) {
  DeterministicRuntime rt;
  int handled = 0;
  bool killed = false, alive_in_handler = false;
  AgentRef b;
  // The kill comes while the first message's handler runs.
  b = rt->spawn<Hooked>(handled, [&] {
    killed = rt->kill(b);
    alive_in_handler = rt->alive(b);
  });
  for (int i = 0; i < 5; ++i) ASSERT_EQ(rt->send(b, i), SendResult::ok);
  rt.run_until_idle();
  EXPECT_TRUE(killed);
  EXPECT_TRUE(alive_in_handler);  // a handler that is running finishes first
  EXPECT_EQ(handled, 1);          // only the one already running
  EXPECT_FALSE(rt->alive(b));
  EXPECT_EQ(dead_agent_drops(*rt), 4u);  // the other four, each counted
  EXPECT_FALSE(rt->kill(b));
}

TEST(Runtime, KillBeforeAnAgentRunsDropsEveryQueuedMessage) {
  DeterministicRuntime rt;
  int handled = 0;
  AgentRef b = rt->spawn<Hooked>(handled, nullptr);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(rt->send(b, i), SendResult::ok);
  ASSERT_TRUE(rt->kill(b));
  EXPECT_TRUE(rt->alive(b));  // until it runs: the kill is queued, not done
  rt.run_until_idle();
  EXPECT_EQ(handled, 0);
  EXPECT_FALSE(rt->alive(b));
  EXPECT_EQ(dead_agent_drops(*rt), 5u);
  EXPECT_EQ(rt->stats().live, 0u);
}

// Answers an int request with its square.
class Squarer : public Agent {
 public:
  void on_message(Message& m) override {
    int v = m.as<int>();
    (void)reply(m, v * v);
  }
};

class Asker : public Agent {
 public:
  Asker(AgentRef target, std::chrono::milliseconds timeout, std::atomic<int>& status, std::atomic<int>& value)
      : target_(target), timeout_(timeout), status_(status), value_(value) {}
  void on_start() override {
    ask(target_, Payload::of(12), 0, timeout_, [this](AskStatus s, Message* reply) {
      if (reply != nullptr) value_ = reply->as<int>();
      status_ = static_cast<int>(s);
    });
  }
  void on_message(Message&) override {}

 private:
  AgentRef target_;
  std::chrono::milliseconds timeout_;
  std::atomic<int>& status_;
  std::atomic<int>& value_;
};

TEST(Ask, ReplyCompletesTheCallback) {
  DeterministicRuntime rt;
  std::atomic<int> status{-1}, value{0};
  AgentRef sq = rt->spawn<Squarer>();
  rt->spawn<Asker>(sq, 5000ms, status, value);
  rt.run_until_idle();
  EXPECT_EQ(status, static_cast<int>(AskStatus::ok));
  EXPECT_EQ(value, 144);
  EXPECT_EQ(rt.elapsed(), 0ms);
  EXPECT_FALSE(rt.next_timeout().has_value());  // the answer cancelled the ask's timer
}

TEST(Ask, ReplyCompletesTheCallbackOnWorkerThreads) {
  Runtime rt(small());
  std::atomic<int> status{-1}, value{0};
  AgentRef sq = rt.spawn<Squarer>();
  rt.spawn<Asker>(sq, 5000ms, status, value);
  ASSERT_TRUE(eventually([&] { return status != -1; }));
  EXPECT_EQ(status, static_cast<int>(AskStatus::ok));
  EXPECT_EQ(value, 144);
}

class Silent : public Agent {
 public:
  void on_message(Message&) override {}
};

TEST(Ask, NoReplyTimesOutExactlyAtTheDeadline) {
  DeterministicRuntime rt;
  std::atomic<int> status{-1}, value{0};
  AgentRef s = rt->spawn<Silent>();
  rt->spawn<Asker>(s, 50ms, status, value);
  rt.run_until_idle();  // asked; Silent got the request and said nothing
  rt.advance(49ms);
  rt.run_until_idle();
  EXPECT_EQ(status, -1) << "timed out before the deadline";
  EXPECT_EQ(rt.advance(1ms), 1u);
  rt.run_until_idle();
  EXPECT_EQ(status, static_cast<int>(AskStatus::timeout));
  EXPECT_EQ(rt.elapsed(), 50ms);
}

TEST(Ask, ADeadTargetFailsAtOnce) {
  DeterministicRuntime rt;
  std::atomic<int> status{-1}, value{0};
  rt->spawn<Asker>(AgentRef{999999, 3}, 60000ms, status, value);
  rt.run_until_idle();
  EXPECT_EQ(status, static_cast<int>(AskStatus::dead_agent));
  EXPECT_EQ(rt.elapsed(), 0ms);  // not after the timeout
}

TEST(Ask, ATargetThatDiesWithTheRequestQueuedAnswersDeadAgent) {
  DeterministicRuntime rt;
  std::atomic<int> status{-1}, value{0};
  AgentRef s = rt->spawn<Silent>();
  rt->spawn<Asker>(s, 60000ms, status, value);
  ASSERT_TRUE(rt.run_once());  // the asker's on_start: the request is queued for s
  EXPECT_EQ(status, -1);
  ASSERT_TRUE(rt->kill(s));
  rt.run_until_idle();
  EXPECT_EQ(status, static_cast<int>(AskStatus::dead_agent));
  EXPECT_EQ(rt.elapsed(), 0ms);  // at once, not after the 60 s timeout
  EXPECT_FALSE(rt.next_timeout().has_value());  // and the ask's timer is gone
}

// Counts timer messages; stops a periodic timer after 3.
class Ticker : public Agent {
 public:
  explicit Ticker(std::atomic<int>& ticks) : ticks_(ticks) {}
  void on_start() override { timer_ = send_periodic(2ms, Payload::of(1)); }
  void on_message(Message&) override {
    if (++ticks_ == 3) cancel_timer(timer_);
  }

 private:
  std::atomic<int>& ticks_;
  TimerId timer_ = 0;
};

TEST(Timers, PeriodicTimerFiresUntilCancelled) {
  DeterministicRuntime rt;
  std::atomic<int> ticks{0};
  rt->spawn<Ticker>(ticks);
  rt.run_until_idle();  // on_start arms the 2 ms timer
  for (int i = 1; i <= 3; ++i) {
    rt.advance(1ms);
    rt.run_until_idle();
    EXPECT_EQ(ticks, i - 1) << "tick " << i << " came early";
    rt.advance(1ms);
    rt.run_until_idle();
    EXPECT_EQ(ticks, i) << "tick " << i;
  }
  // The third tick's handler cancelled the timer: none after it, however long.
  EXPECT_EQ(rt.advance(1h), 0u) << "the periodic timer kept firing after cancel";
  rt.run_until_idle();
  EXPECT_EQ(ticks, 3);
}

TEST(Timers, FiresQueuedBeforeTheHandlerCancelledAreStillHandledAndNoneAfter) {
  DeterministicRuntime rt;
  std::atomic<int> ticks{0};
  rt->spawn<Ticker>(ticks);
  rt.run_until_idle();
  EXPECT_EQ(rt.advance(10ms), 5u);  // five periods pass before the agent runs
  rt.run_until_idle();              // the third cancels; the fourth and fifth are queued already
  EXPECT_EQ(ticks, 5);
  EXPECT_EQ(rt.advance(1h), 0u);
  rt.run_until_idle();
  EXPECT_EQ(ticks, 5);
}

TEST(Timers, SendAfterDeliversOnceAfterTheDelay) {
  DeterministicRuntime rt;
  std::atomic<long> sum{0};
  AgentRef a = rt->spawn<Summer>(sum);
  rt->send_after(a, 20ms, Payload::of(9));
  rt.advance(19ms);
  rt.run_until_idle();
  EXPECT_EQ(sum, 0) << "delivered before the delay";
  EXPECT_EQ(rt.advance(1ms), 1u);
  rt.run_until_idle();
  EXPECT_EQ(sum, 9);
  EXPECT_EQ(rt.advance(1h), 0u);  // once
  rt.run_until_idle();
  EXPECT_EQ(sum, 9);
}

TEST(Timers, SendAfterDeliversOnWorkerThreadsOnTheRealClock) {
  Runtime rt(small());
  std::atomic<long> sum{0};
  AgentRef a = rt.spawn<Summer>(sum);
  auto t0 = std::chrono::steady_clock::now();
  rt.send_after(a, 20ms, Payload::of(9));
  ASSERT_TRUE(eventually([&] { return sum == 9; }));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
}

TEST(Timers, CancelledTimerNeverFires) {
  DeterministicRuntime rt;
  std::atomic<long> sum{0};
  AgentRef a = rt->spawn<Summer>(sum);
  TimerId id = rt->send_after(a, 30ms, Payload::of(1));
  rt->send_after(a, 40ms, Payload::of(100));  // a marker: time did pass the cancelled timer
  EXPECT_TRUE(rt->cancel_timer(id));
  EXPECT_FALSE(rt->cancel_timer(id));
  rt.advance(30ms);
  rt.run_until_idle();
  EXPECT_EQ(sum, 0) << "the cancelled timer fired at its due time";
  rt.advance(1h);  // far past it, over many revolutions of the wheel
  rt.run_until_idle();
  EXPECT_EQ(sum, 100) << "only the marker may have fired";
}

class StopRecorder : public Agent {
 public:
  explicit StopRecorder(std::atomic<int>& stops) : stops_(stops) {}
  void on_message(Message&) override {}
  void on_stop(const ExitReason& r) override {
    if (r.kind == ExitKind::shutdown) ++stops_;
  }

 private:
  std::atomic<int>& stops_;
};

TEST(Shutdown, DrainHandlesQueuedMessagesThenStopsEveryAgent) {
  std::atomic<long> sum{0};
  std::atomic<int> stops{0};
  RuntimeConfig c;
  c.default_mailbox.capacity = 1 << 16;
  DeterministicRuntime rt(c);
  AgentRef a = rt->spawn<Summer>(sum);
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(rt->send(a, 1), SendResult::ok);
  for (int i = 0; i < 10; ++i) rt->spawn<StopRecorder>(stops);
  EXPECT_EQ(sum, 0);  // nothing ran yet
  rt->shutdown(ShutdownPolicy::drain);
  EXPECT_EQ(rt->stats().live, 0u);
  EXPECT_EQ(rt->send(a, 1), SendResult::shutting_down);
  EXPECT_EQ(sum, 10000);
  EXPECT_EQ(stops, 10);
  EXPECT_EQ(rt->stats().dropped_total(), 0u);
  EXPECT_EQ(rt.elapsed(), 0ms);  // nobody needed the shutdown budget
}

TEST(Shutdown, DrainOnWorkerThreadsHandlesQueuedMessagesThenStopsEveryAgent) {
  std::atomic<long> sum{0};
  std::atomic<int> stops{0};
  {
    RuntimeConfig c = small();
    c.default_mailbox.capacity = 1 << 16;
    Runtime rt(c);
    AgentRef a = rt.spawn<Summer>(sum);
    for (int i = 0; i < 10000; ++i) ASSERT_EQ(rt.send(a, 1), SendResult::ok);
    for (int i = 0; i < 10; ++i) rt.spawn<StopRecorder>(stops);
    rt.shutdown(ShutdownPolicy::drain);
    EXPECT_EQ(rt.stats().live, 0u);
    EXPECT_EQ(rt.send(a, 1), SendResult::shutting_down);
  }
  EXPECT_EQ(sum, 10000);
  EXPECT_EQ(stops, 10);
}

TEST(Shutdown, DiscardDropsQueuedMessagesAndCountsThem) {
  RuntimeConfig c;
  c.throughput_budget = 1;  // one activation handles one message
  DeterministicRuntime rt(c);
  int handled = 0;
  AgentRef b = rt->spawn<Hooked>(handled, nullptr);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(rt->send(b, i), SendResult::ok);
  ASSERT_TRUE(rt.run_once());  // message 0 is handled; 1..3 stay queued
  rt->shutdown(ShutdownPolicy::discard);
  EXPECT_EQ(handled, 1);
  EXPECT_EQ(dead_agent_drops(*rt), 3u);
  EXPECT_EQ(rt->stats().live, 0u);
}

// On threads: discard waits for a handler that is still running.
TEST(Shutdown, DiscardWaitsForARunningHandlerAndCountsWhatItDrops) {
  Runtime rt(small(1));
  std::atomic<bool> release{false};
  std::atomic<int> handled{0}, entered{0};
  AgentRef b = rt.spawn<Blocker>(release, handled, &entered);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(rt.send(b, i), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return entered == 1; }));  // message 0 is in the handler
  std::thread releaser([&] {
    (void)eventually([&] { return rt.stopping(); });
    release = true;
  });
  rt.shutdown(ShutdownPolicy::discard);
  releaser.join();
  EXPECT_EQ(rt.stats().live, 0u);
  // The release can come before the kill reaches the agent: then one more is handled.
  EXPECT_GE(handled, 1);
  EXPECT_EQ(handled + dead_agent_drops(rt), 4u);
}

TEST(Pooling, SpawnWorksWithPoolingOnAndOff) {
  for (bool pooling : {true, false}) {
    RuntimeConfig c = small();
    c.pooling = pooling;
    Runtime rt(c);
    std::atomic<long> sum{0};
    std::vector<AgentRef> refs;
    for (int i = 0; i < 1000; ++i) refs.push_back(rt.spawn<Summer>(sum));
    for (AgentRef r : refs) ASSERT_EQ(rt.send(r, 1), SendResult::ok);
    EXPECT_TRUE(eventually([&] { return sum == 1000; })) << "pooling=" << pooling;
    for (AgentRef r : refs) rt.stop(r);
    EXPECT_TRUE(eventually([&] { return rt.stats().live == 0; }));
  }
}

class ThrowingCtor : public Agent {
 public:
  ThrowingCtor() { throw std::runtime_error("no"); }
  void on_message(Message&) override {}
};

TEST(Runtime, SpawnPropagatesConstructorErrorsAndLeaksNothing) {
  Runtime rt(small());
  EXPECT_THROW(rt.spawn<ThrowingCtor>(), std::runtime_error);
  EXPECT_EQ(rt.stats().live, 0u);
}

TEST(Scheduler, IdleWorkersPark) {
  Runtime rt(small(2));
  std::atomic<long> sum{0};
  AgentRef a = rt.spawn<Summer>(sum);
  EXPECT_EQ(rt.send(a, 1), SendResult::ok);
  ASSERT_TRUE(rt.wait_idle());
  EXPECT_GE(rt.stats().parks, 1u);
}

// Spinning before parking (RuntimeConfig::idle_spin): one message at a time
// from outside, each sent `gap` after the last was handled.
struct Paced {
  explicit Paced(std::chrono::microseconds idle_spin) : rt(with_spin(idle_spin)), a(rt.spawn<Summer>(sum)) {}
  static RuntimeConfig with_spin(std::chrono::microseconds idle_spin) {
    RuntimeConfig c = small(1);
    c.idle_spin = idle_spin;
    return c;
  }
  // Sends one message after `gap` (waited on the clock) and waits until it was handled.
  void one(std::chrono::nanoseconds gap) {
    const auto due = std::chrono::steady_clock::now() + gap;
    if (gap >= std::chrono::milliseconds(1)) std::this_thread::sleep_until(due);
    while (std::chrono::steady_clock::now() < due) {
    }
    const long want = sum.load() + 1;
    ASSERT_EQ(rt.send(a, 1), SendResult::ok);
    // Polled without sleeping: a poll interval would lengthen the gap.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (sum.load() != want) ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "message not handled";
  }
  std::atomic<long> sum{0};
  Runtime rt;
  AgentRef a;
};

TEST(Scheduler, SpinsWhileWorkComesBackSoonAfterAPark) {
  Paced p(std::chrono::microseconds(5000));
  // Every gap is far below idle_spin, so each park grows the window; the
  // deadline covers a machine that stalls the sender now and then.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (p.rt.stats().spin_ns == 0 && std::chrono::steady_clock::now() < deadline) {
    p.one(std::chrono::microseconds(50));
  }
  EXPECT_GT(p.rt.stats().spin_ns, 0u);
  EXPECT_GE(p.rt.stats().parks, 1u);
}

TEST(Scheduler, ZeroIdleSpinNeverSpins) {
  Paced p(std::chrono::microseconds(0));
  for (int i = 0; i < 200; ++i) p.one(std::chrono::microseconds(50));
  EXPECT_EQ(p.rt.stats().spin_ns, 0u);
}

TEST(Scheduler, LongGapsShrinkTheSpinToNothing) {
  Paced p(std::chrono::microseconds(200));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (p.rt.stats().spin_ns == 0 && std::chrono::steady_clock::now() < deadline) {
    p.one(std::chrono::microseconds(20));
  }
  ASSERT_GT(p.rt.stats().spin_ns, 0u);  // the window grew
  // Gaps of 20 ms: each halves the window (200 us, at most 4 halvings to 0).
  for (int i = 0; i < 8; ++i) p.one(std::chrono::milliseconds(20));
  const std::uint64_t spun = p.rt.stats().spin_ns;
  for (int i = 0; i < 5; ++i) p.one(std::chrono::milliseconds(20));
  EXPECT_EQ(p.rt.stats().spin_ns, spun);  // an idle runtime does not spin
}

}  // namespace
}  // namespace swarm
