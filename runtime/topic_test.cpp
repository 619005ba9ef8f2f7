// Agents and the router together: subscribe, publish, request/reply, and
// subscriptions that end with their agent and come back with a restart.

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "runtime/runtime.hpp"
#include "runtime/supervisor.hpp"
#include "runtime/test_util.hpp"

namespace swarm {
namespace {

using namespace std::chrono_literals;
using test::eventually;

constexpr std::uint32_t kCrash = 99;

// Subscribes to `pattern` at start; records what it receives.
class Listener : public Agent {
 public:
  Listener(std::string pattern, std::atomic<int>& received, std::string group = {})
      : pattern_(std::move(pattern)), group_(std::move(group)), received_(received) {}
  void on_start() override {
    if (!pattern_.empty() && !subscribe(pattern_, group_)) throw std::runtime_error("subscribe failed");
  }
  void on_message(Message& m) override {
    if (m.kind == kCrash) throw std::runtime_error("asked to crash");
    last_topic.store(m.topic);
    last_value.store(m.payload.size() == sizeof(int) ? m.as<int>() : -1);
    received_.fetch_add(1);
  }
  inline static std::atomic<std::uint32_t> last_topic{0};
  inline static std::atomic<int> last_value{0};

 private:
  std::string pattern_, group_;
  std::atomic<int>& received_;
};

TEST(Topics, PublishReachesWildcardSubscribersWithTheTopicId) {
  Runtime rt;
  std::atomic<int> got{0};
  rt.spawn<Listener>("orders.*.created", got);
  ASSERT_TRUE(rt.wait_idle());
  auto topic = rt.router().intern("orders.eu.created");
  ASSERT_TRUE(topic);
  auto r = rt.publish(*topic, Payload::of(7));
  EXPECT_EQ(r.delivered, 1u);
  ASSERT_TRUE(eventually([&] { return got.load() == 1; }));
  EXPECT_EQ(Listener::last_topic.load(), *topic);
  EXPECT_EQ(Listener::last_value.load(), 7);
}

TEST(Topics, BadTopicsAreErrorsThatSayWhy) {
  Runtime rt;
  auto r = rt.publish("orders..created", Payload::of(1));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("empty"), std::string::npos) << r.error();
  std::atomic<int> got{0};
  AgentRef a = rt.spawn<Listener>("", got);
  auto s = rt.subscribe(a, "orders.>.x");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find(">"), std::string::npos) << s.error();
}

TEST(Topics, SubscriptionsEndWithTheAgentAndTheMissIsCounted) {
  Runtime rt;
  std::atomic<int> got{0};
  AgentRef a = rt.spawn<Listener>("jobs.>", got);
  ASSERT_TRUE(rt.wait_idle());
  ASSERT_EQ(rt.publish("jobs.a", Payload::of(1))->delivered, 1u);
  rt.stop(a);
  ASSERT_TRUE(eventually([&] { return !rt.alive(a); }));
  auto r = rt.publish("jobs.a", Payload::of(2));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->no_subscriber);
  EXPECT_EQ(r->delivered, 0u);
  EXPECT_EQ(rt.stats().dropped[static_cast<int>(DropReason::no_subscriber)], 1u);
}

TEST(Topics, QueueGroupGivesEachMessageToOneMember) {
  Runtime rt;
  std::atomic<int> a{0}, b{0}, solo{0};
  rt.spawn<Listener>("work", a, "pool");
  rt.spawn<Listener>("work", b, "pool");
  rt.spawn<Listener>("work", solo);
  ASSERT_TRUE(rt.wait_idle());
  for (int i = 0; i < 100; ++i) ASSERT_EQ(rt.publish("work", Payload::of(i))->delivered, 2u);
  ASSERT_TRUE(eventually([&] { return a.load() + b.load() == 100 && solo.load() == 100; }));
  EXPECT_GT(a.load(), 0);
  EXPECT_GT(b.load(), 0);
}

TEST(Topics, FullMailboxIsCountedAsMailboxFull) {
  RuntimeConfig c;
  c.workers = 1;
  c.default_mailbox.capacity = 1;
  Runtime rt(c);
  std::atomic<int> got{0};
  std::atomic<bool> release{false};
  class Blocker : public Agent {
   public:
    explicit Blocker(std::atomic<bool>& r) : r_(r) {}
    void on_message(Message&) override {
      while (!r_.load()) std::this_thread::yield();
    }
    std::atomic<bool>& r_;
  };
  AgentRef blocker = rt.spawn<Blocker>(release);
  AgentRef l = rt.spawn<Listener>("", got);
  ASSERT_TRUE(rt.subscribe(l, "t"));
  ASSERT_TRUE(rt.wait_idle());  // the listener's start is handled: its mailbox is empty
  EXPECT_EQ(rt.send(blocker, 0), SendResult::ok);  // occupies the only worker, so the listener's mailbox fills
  ASSERT_EQ(rt.publish("t", Payload::of(1))->delivered, 1u);
  auto r = rt.publish("t", Payload::of(2));
  EXPECT_EQ(r->mailbox_full, 1u);
  EXPECT_EQ(rt.stats().dropped[static_cast<int>(DropReason::mailbox_full)], 1u);
  release = true;
}

// Answers requests on "math.double".
class Doubler : public Agent {
 public:
  void on_start() override { (void)subscribe("math.double", "doublers"); }
  void on_message(Message& m) override { (void)reply(m, m.as<int>() * 2); }
};

class Asker : public Agent {
 public:
  Asker(std::string topic, std::atomic<int>& answer, std::atomic<int>& status)
      : topic_(std::move(topic)), answer_(answer), status_(status) {}
  void on_message(Message&) override {
    auto id = runtime().router().intern(topic_);
    request(*id, Payload::of(21), 0, 2s, [this](AskStatus s, Message* reply) {
      if (reply != nullptr) answer_.store(reply->as<int>());
      status_.store(static_cast<int>(s));
    });
  }

 private:
  std::string topic_;
  std::atomic<int>& answer_;
  std::atomic<int>& status_;
};

TEST(Topics, RequestGetsTheReplyOfOneResponder) {
  Runtime rt;
  rt.spawn<Doubler>();
  rt.spawn<Doubler>();
  std::atomic<int> answer{0}, status{-1};
  AgentRef asker = rt.spawn<Asker>("math.double", answer, status);
  ASSERT_TRUE(rt.wait_idle());
  EXPECT_EQ(rt.send(asker, 0), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return status.load() != -1; }));
  EXPECT_EQ(status.load(), static_cast<int>(AskStatus::ok));
  EXPECT_EQ(answer.load(), 42);
}

TEST(Topics, RequestWithoutRespondersFailsAtOnce) {
  Runtime rt;
  std::atomic<int> answer{0}, status{-1};
  AgentRef asker = rt.spawn<Asker>("nobody.home", answer, status);
  EXPECT_EQ(rt.send(asker, 0), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return status.load() != -1; }, 1s));
  EXPECT_EQ(status.load(), static_cast<int>(AskStatus::no_responder));
}

TEST(Topics, ARestartedChildIsSubscribedAgainAsItsSpecSays) {
  Runtime rt;
  std::atomic<int> got{0};
  std::atomic<int> starts{0};
  SupervisorSpec spec;
  ChildSpec child{"listener", [&](Supervisor& s, const Payload&) {
                    starts.fetch_add(1);
                    return s.spawn<Listener>("", got);
                  }};
  child.subscriptions.push_back({"alerts.>", ""});
  spec.children.push_back(std::move(child));
  rt.spawn<Supervisor>(std::move(spec));
  ASSERT_TRUE(eventually([&] { return starts.load() == 1; }));
  ASSERT_TRUE(rt.wait_idle());
  ASSERT_EQ(rt.publish("alerts.disk", Payload::of(kCrash), kCrash)->delivered, 1u);
  ASSERT_TRUE(eventually([&] { return starts.load() == 2; }));
  ASSERT_TRUE(rt.wait_idle());
  auto r = rt.publish("alerts.cpu", Payload::of(5));
  EXPECT_EQ(r->delivered, 1u) << "the restarted child must be subscribed, and only once";
  ASSERT_TRUE(eventually([&] { return got.load() == 1; }));
}

TEST(SupervisorSpec, ABadSubscriptionPatternIsRejectedWithTheChild) {
  SupervisorSpec spec;
  ChildSpec child{"c", [](Supervisor& s, const Payload&) { return s.spawn<Doubler>(); }};
  child.subscriptions.push_back({"a..b", ""});
  spec.children.push_back(std::move(child));
  auto r = spec.validate();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("children[0]"), std::string::npos) << r.error();
}

// Agents subscribe, publish and exit from every worker while outside threads
// publish: run under TSan; nothing may crash, every publish is accounted for.
TEST(Topics, StressPublishWhileAgentsSubscribeAndExit) {
  Runtime rt;
  std::atomic<int> got{0};
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> delivered{0}, refused{0}, missed{0}, publishes{0};
  std::atomic<int> steady_got{0};
  AgentRef steady = rt.spawn<Listener>("stress.x", steady_got);  // subscribed the whole time
  ASSERT_TRUE(rt.wait_idle());
  std::vector<std::thread> publishers;
  for (int t = 0; t < 2; ++t) {
    publishers.emplace_back([&] {
      while (!done.load()) {
        auto r = rt.publish("stress.x", Payload::of(1));
        delivered += r->delivered;
        refused += r->mailbox_full + r->dead;
        missed += r->no_subscriber ? 1 : 0;
        publishes.fetch_add(1);
      }
    });
  }
  // At least 200 rounds, and until the publishers have really raced us.
  for (int round = 0; round < 200 || publishes.load() < 2'000; ++round) {
    std::vector<AgentRef> batch;
    for (int i = 0; i < 20; ++i) batch.push_back(rt.spawn<Listener>(i % 2 == 0 ? "stress.*" : "stress.>", got));
    for (AgentRef a : batch) rt.stop(a);
  }
  done = true;
  for (auto& t : publishers) t.join();
  ASSERT_TRUE(rt.wait_idle());
  EXPECT_EQ(missed.load(), 0u) << "the steady subscriber was there for every publish";
  // Each publish reached the steady subscriber or was refused (its mailbox is
  // bounded and the publishers are faster): every one is accounted for.
  EXPECT_GE(delivered.load() + refused.load(), publishes.load());
  ASSERT_TRUE(rt.wait_idle());
  EXPECT_LE(steady_got.load(), static_cast<int>(publishes.load()));
  EXPECT_GT(steady_got.load(), 0);
  rt.stop(steady);
  ASSERT_TRUE(eventually([&] { return rt.stats().live == 0; }));
  auto r = rt.publish("stress.x", Payload::of(1));
  EXPECT_TRUE(r->no_subscriber) << "every subscription ended with its agent";
}

// Subscribes from outside race with the agents' exits: either the subscribe
// fails (the agent is gone) or the exit ends the subscription. None is left.
TEST(Topics, StressSubscribeFromOutsideWhileAgentsExit) {
  Runtime rt;
  std::atomic<int> got{0};
  std::atomic<int> subscribed{0};
  for (int round = 0; round < 200; ++round) {
    std::vector<AgentRef> batch;
    for (int i = 0; i < 10; ++i) batch.push_back(rt.spawn<Listener>("", got));
    std::thread subscriber([&] {
      for (AgentRef a : batch) subscribed += rt.subscribe(a, "late.x") ? 1 : 0;
    });
    for (AgentRef a : batch) rt.stop(a);
    subscriber.join();
  }
  ASSERT_TRUE(eventually([&] { return rt.stats().live == 0; }));
  auto r = rt.publish("late.x", Payload::of(1));
  EXPECT_TRUE(r->no_subscriber) << "a subscription outlived its agent (" << subscribed.load() << " subscribed)";
}

// A publish from a handler queues the subscribers it wakes together
// (RuntimeConfig::batch_fanout) or one by one, and a large one is shared out
// to other workers (shared_fanout) or not; the subscribers it wakes get its
// message handed over (wake_handoff), as one shared message (shared_message:
// fanout_handoff), or through their mailboxes (mailbox_only): every way,
// every subscriber gets every message, in the order published.
enum class FanOutWay { one_by_one, batched, shared, shared_one_by_one, mailbox_only, shared_message };

std::string way_name(FanOutWay way) {
  switch (way) {
    case FanOutWay::one_by_one: return "one_by_one";
    case FanOutWay::batched: return "batched";
    case FanOutWay::shared: return "shared";
    case FanOutWay::shared_one_by_one: return "shared_one_by_one";
    case FanOutWay::mailbox_only: return "mailbox_only";
    case FanOutWay::shared_message: return "shared_message";
  }
  return "unknown";
}

class FanOut : public ::testing::TestWithParam<FanOutWay> {
 protected:
  RuntimeConfig config() const {
    RuntimeConfig c;
    c.batch_fanout = GetParam() == FanOutWay::batched || GetParam() == FanOutWay::shared ||
                     GetParam() == FanOutWay::mailbox_only || GetParam() == FanOutWay::shared_message;
    c.wake_handoff = GetParam() != FanOutWay::mailbox_only;
    c.fanout_handoff = GetParam() == FanOutWay::shared_message;
    c.shared_fanout = GetParam() == FanOutWay::shared || GetParam() == FanOutWay::shared_one_by_one;
    c.default_mailbox.capacity = 1 << 18;  // every message fits: none may be lost
    return c;
  }
};

// Checks that the ints it receives count up from 0.
class InOrder : public Agent {
 public:
  InOrder(std::atomic<int>& done, std::atomic<int>& disorder, int expect)
      : done_(done), disorder_(disorder), expect_(expect) {}
  void on_start() override {
    if (!subscribe("fan.x")) throw std::runtime_error("subscribe failed");
  }
  void on_message(Message& m) override {
    if (m.as<int>() != next_) disorder_.fetch_add(1);
    next_ = m.as<int>() + 1;
    if (next_ == expect_) done_.fetch_add(1);
  }

 private:
  std::atomic<int>& done_;
  std::atomic<int>& disorder_;
  int expect_;
  int next_ = 0;
};

// Publishes 0..n-1 on fan.x from one handler, `chunk` per run.
class ChunkPublisher : public Agent {
 public:
  ChunkPublisher(int n, int chunk) : n_(n), chunk_(chunk) {}
  void on_message(Message&) override {
    const int end = std::min(n_, next_ + chunk_);
    for (; next_ < end; ++next_) (void)publish("fan.x", Payload::of(next_));
    if (next_ < n_) (void)send(self(), 0);
  }

 private:
  int n_, chunk_, next_ = 0;
};

TEST_P(FanOut, EverySubscriberGetsEveryMessageInOrder) {
  for (int subscribers : {1, 2, 200}) {  // alone (the next slot), a few, more than one batch
    Runtime rt(config());
    std::atomic<int> done{0}, disorder{0};
    constexpr int kMessages = 300;
    for (int i = 0; i < subscribers; ++i) rt.spawn<InOrder>(done, disorder, kMessages);
    ASSERT_TRUE(rt.wait_idle());
    AgentRef pub = rt.spawn<ChunkPublisher>(kMessages, 100);
    ASSERT_EQ(rt.send(pub, 0), SendResult::ok);
    ASSERT_TRUE(eventually([&] { return done.load() == subscribers; })) << subscribers << " subscribers";
    EXPECT_EQ(disorder.load(), 0);
    EXPECT_EQ(rt.stats().dropped_total(), 0u);
  }
}

// Agents publish from every worker while subscribers come and go: under
// TSan; every message reaches the steady subscriber or is counted.
TEST_P(FanOut, StressAgentsPublishWhileSubscribersComeAndGo) {
  Runtime rt(config());
  std::atomic<int> steady_done{0}, disorder{0}, churn_got{0};
  constexpr int kMessages = 200'000;
  rt.spawn<InOrder>(steady_done, disorder, kMessages);
  ASSERT_TRUE(rt.wait_idle());
  AgentRef pub = rt.spawn<ChunkPublisher>(kMessages, 50);
  ASSERT_EQ(rt.send(pub, 0), SendResult::ok);
  for (int round = 0; round < 50 || (round < 5000 && steady_done.load() == 0); ++round) {
    std::vector<AgentRef> batch;
    for (int i = 0; i < 20; ++i) batch.push_back(rt.spawn<Listener>("fan.*", churn_got));
    for (AgentRef a : batch) rt.stop(a);
  }
  ASSERT_TRUE(eventually([&] { return steady_done.load() == 1; }));
  EXPECT_EQ(disorder.load(), 0);
  ASSERT_TRUE(rt.wait_idle());
  // Only what was queued to a listener as it stopped may be lost, and counted.
  const RuntimeStats st = rt.stats();
  EXPECT_EQ(st.dropped_total(), st.dropped[static_cast<int>(DropReason::dead_agent)]);
}

// The same with 130 steady subscribers, so that every publish is past the
// shared fan-out's threshold (128) while listeners come and go.
TEST_P(FanOut, StressLargePublishesWhileSubscribersComeAndGo) {
  Runtime rt(config());
  std::atomic<int> steady_done{0}, disorder{0}, churn_got{0};
  constexpr int kSteady = 130, kMessages = 5'000;
  for (int i = 0; i < kSteady; ++i) rt.spawn<InOrder>(steady_done, disorder, kMessages);
  ASSERT_TRUE(rt.wait_idle());
  AgentRef pub = rt.spawn<ChunkPublisher>(kMessages, 50);
  ASSERT_EQ(rt.send(pub, 0), SendResult::ok);
  for (int round = 0; round < 50 || (round < 5000 && steady_done.load() < kSteady); ++round) {
    std::vector<AgentRef> batch;
    for (int i = 0; i < 20; ++i) batch.push_back(rt.spawn<Listener>("fan.*", churn_got));
    for (AgentRef a : batch) rt.stop(a);
  }
  ASSERT_TRUE(eventually([&] { return steady_done.load() == kSteady; }));
  EXPECT_EQ(disorder.load(), 0);
  ASSERT_TRUE(rt.wait_idle());
  const RuntimeStats st = rt.stats();
  EXPECT_EQ(st.dropped_total(), st.dropped[static_cast<int>(DropReason::dead_agent)]);
}

// Publishes 2i on fan.x, then sends 2i+1 to each subscriber directly: a
// receiver sees them in order only if the publish's deliveries, wherever they
// ran, were all made before it returned. Adds up what the publishes report.
class PublishThenSend : public Agent {
 public:
  PublishThenSend(std::vector<AgentRef> to, int n, std::atomic<std::uint64_t>& delivered)
      : to_(std::move(to)), n_(n), delivered_(delivered) {}
  void on_message(Message&) override {
    const int end = std::min(n_, next_ + 10);
    for (; next_ < end; ++next_) {
      auto r = publish("fan.x", Payload::of(2 * next_));
      if (r) delivered_.fetch_add(r->delivered);
      for (AgentRef a : to_) (void)send(a, Payload::of(2 * next_ + 1));
    }
    if (next_ < n_) (void)send(self(), 0);
  }

 private:
  std::vector<AgentRef> to_;
  int n_, next_ = 0;
  std::atomic<std::uint64_t>& delivered_;
};

TEST_P(FanOut, APublishIsCompleteWhenItReturns) {
  Runtime rt(config());
  constexpr int kSubscribers = 300, kRounds = 200;  // past the shared fan-out's threshold (128)
  std::atomic<int> done{0}, disorder{0};
  std::vector<AgentRef> subscribers;
  for (int i = 0; i < kSubscribers; ++i) subscribers.push_back(rt.spawn<InOrder>(done, disorder, 2 * kRounds));
  ASSERT_TRUE(rt.wait_idle());
  std::atomic<std::uint64_t> delivered{0};
  AgentRef pub = rt.spawn<PublishThenSend>(subscribers, kRounds, delivered);
  ASSERT_EQ(rt.send(pub, 0), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return done.load() == kSubscribers; }));
  EXPECT_EQ(disorder.load(), 0);
  EXPECT_EQ(delivered.load(), std::uint64_t{kSubscribers} * kRounds) << "every part counted in the result";
  EXPECT_EQ(rt.stats().dropped_total(), 0u);
}

// Publishes on fan.x until told to stop; adds up in `reached`, if given, the
// deliveries its publishes report made or refused as dead (counted dropped).
class PublishUntil : public Agent {
 public:
  explicit PublishUntil(std::atomic<bool>& stop, std::atomic<std::uint64_t>* reached = nullptr)
      : stop_(stop), reached_(reached) {}
  void on_message(Message&) override {
    for (int i = 0; i < 10; ++i) {
      auto r = publish("fan.x", Payload::of(i));
      if (r && reached_ != nullptr) reached_->fetch_add(r->delivered + r->dead);
    }
    if (!stop_.load()) (void)send(self(), 0);
  }

 private:
  std::atomic<bool>& stop_;
  std::atomic<std::uint64_t>* reached_;
};

// Publishes wake subscribers that are exiting: every delivery a publish
// reports is handled or counted as dropped (dead_agent), whether it went
// through the mailbox or was handed over with the wake-up (wake_handoff,
// fanout_handoff).
TEST_P(FanOut, EveryReportedDeliveryIsHandledOrCounted) {
  Runtime rt(config());
  std::atomic<int> got{0};
  std::atomic<std::uint64_t> reached{0};
  std::atomic<bool> stop{false};
  AgentRef pub = rt.spawn<PublishUntil>(stop, &reached);
  ASSERT_EQ(rt.send(pub, 0), SendResult::ok);
  for (int round = 0; round < 300; ++round) {
    const int before = got.load();
    std::vector<AgentRef> batch;
    for (int i = 0; i < 20; ++i) batch.push_back(rt.spawn<Listener>("fan.*", got));
    ASSERT_TRUE(eventually([&] { return got.load() > before; }));  // publishes reach them: stop them mid-stream
    for (AgentRef a : batch) rt.stop(a);
  }
  stop.store(true);
  ASSERT_TRUE(rt.wait_idle());
  EXPECT_GT(got.load(), 0);
  EXPECT_EQ(reached.load(), got.load() + rt.stats().dropped[static_cast<int>(DropReason::dead_agent)]);
}

// With shared_fanout the other worker takes parts of large publishes; without, never.
TEST(SharedFanOut, AnotherWorkerHelpsOnlyWhenSwitchedOn) {
  for (bool shared : {true, false}) {
    SCOPED_TRACE(shared);
    RuntimeConfig c;
    c.workers = 2;
    c.shared_fanout = shared;
    c.default_mailbox.capacity = 1 << 18;
    Runtime rt(c);
    std::atomic<int> got{0};
    for (int i = 0; i < 300; ++i) rt.spawn<Listener>("fan.x", got);
    ASSERT_TRUE(rt.wait_idle());
    std::atomic<bool> stop{false};
    AgentRef pub = rt.spawn<PublishUntil>(stop);
    ASSERT_EQ(rt.send(pub, 0), SendResult::ok);
    if (shared) {
      EXPECT_TRUE(eventually([&] { return rt.stats().shared_parts > 0; }));
    } else {
      ASSERT_TRUE(eventually([&] { return got.load() >= 300 * 1000; }));
    }
    stop.store(true);
    ASSERT_TRUE(rt.wait_idle());
    if (!shared) {
      EXPECT_EQ(rt.stats().shared_parts, 0u);
    }
    EXPECT_EQ(rt.stats().dropped_total(), 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryWay, FanOut,
                         ::testing::Values(FanOutWay::one_by_one, FanOutWay::batched, FanOutWay::shared,
                                           FanOutWay::shared_one_by_one, FanOutWay::mailbox_only,
                                           FanOutWay::shared_message),
                         [](const ::testing::TestParamInfo<FanOutWay>& p) { return way_name(p.param); });

}  // namespace
}  // namespace swarm
