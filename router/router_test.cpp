#include "router/router.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "router/test_endpoint.hpp"

namespace swarm::router {
namespace {

using test::RecordingEndpoint;

TEST(Router, InternGivesStableIdsAndNames) {
  Router r;
  auto a = r.intern("a.b");
  auto b = r.intern("a.c");
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(*r.intern("a.b"), *a);
  EXPECT_EQ(r.topic_name(*b), "a.c");
  EXPECT_FALSE(r.intern("a.*"));
  EXPECT_EQ(r.topic_name(12345), "");
}

TEST(Router, InternGrowsPastManyTopics) {
  Router r;
  std::vector<TopicId> ids;
  for (int i = 0; i < 20'000; ++i) ids.push_back(*r.intern("t." + std::to_string(i)));
  for (int i = 0; i < 20'000; ++i) {
    ASSERT_EQ(*r.intern("t." + std::to_string(i)), ids[i]);
    ASSERT_EQ(r.topic_name(ids[i]), "t." + std::to_string(i));
  }
  EXPECT_EQ(r.stats().topics, 20'000u);
}

TEST(Router, MaxTopicsIsEnforced) {
  RouterConfig c;
  c.max_topics = 2;
  Router r(c);
  ASSERT_TRUE(r.intern("a"));
  ASSERT_TRUE(r.intern("b"));
  auto third = r.intern("c");
  ASSERT_FALSE(third);
  EXPECT_NE(third.error().find("max_topics"), std::string::npos);
}

TEST(Router, BadConfigNamesTheField) {
  RouterConfig c;
  c.max_tokens = 0;
  EXPECT_NE(c.validate().error().find("max_tokens"), std::string::npos);
  EXPECT_THROW(Router{c}, std::invalid_argument);
}

TEST(Router, ExactStarAndTailMatching) {
  Router r;
  RecordingEndpoint ep;
  ASSERT_TRUE(r.subscribe("orders.eu.created", {&ep, 1}));
  ASSERT_TRUE(r.subscribe("orders.*.created", {&ep, 2}));
  ASSERT_TRUE(r.subscribe("orders.>", {&ep, 3}));
  ASSERT_TRUE(r.subscribe("*", {&ep, 4}));
  EXPECT_EQ(r.publish("orders.eu.created", Payload::of(1))->delivered, 3u);
  EXPECT_EQ(r.publish("orders.us.created", Payload::of(1))->delivered, 2u);
  EXPECT_EQ(r.publish("orders.eu", Payload::of(1))->delivered, 1u);  // only '>'
  EXPECT_EQ(r.publish("orders", Payload::of(1))->delivered, 1u);     // only '*': '>' needs one more token
  EXPECT_EQ(ep.count(1), 1u);
  EXPECT_EQ(ep.count(2), 2u);
  EXPECT_EQ(ep.count(3), 3u);
  EXPECT_EQ(ep.count(4), 1u);
}

TEST(Router, ASubscriberMatchedTwiceReceivesOnce) {
  Router r;
  RecordingEndpoint ep;
  ASSERT_TRUE(r.subscribe("a.b", {&ep, 1}));
  ASSERT_TRUE(r.subscribe("a.*", {&ep, 1}));
  ASSERT_TRUE(r.subscribe("a.>", {&ep, 1}));
  EXPECT_EQ(r.publish("a.b", Payload::of(1))->delivered, 1u);
  EXPECT_EQ(ep.count(1), 1u);
}

TEST(Router, FanOutSharesOnePayloadBuffer) {
  Router r;
  RecordingEndpoint ep;
  for (std::uint64_t a = 0; a < 10; ++a) ASSERT_TRUE(r.subscribe("big", {&ep, a}));
  std::string text(1000, 'x');
  Payload p(text);
  ASSERT_FALSE(p.is_inline());
  EXPECT_EQ(r.publish("big", p)->delivered, 10u);
  EXPECT_EQ(ep.last_payload().bytes().data(), p.bytes().data()) << "receivers share the sender's buffer";
}

TEST(Router, QueueGroupDeliversToExactlyOneMemberRoundRobin) {
  Router r;
  RecordingEndpoint ep;
  for (std::uint64_t a = 1; a <= 3; ++a) ASSERT_TRUE(r.subscribe("jobs.*", {&ep, a}, "workers"));
  ASSERT_TRUE(r.subscribe("jobs.>", {&ep, 10}, "auditors"));
  ASSERT_TRUE(r.subscribe("jobs.x", {&ep, 20}));
  for (int i = 0; i < 30; ++i) ASSERT_EQ(r.publish("jobs.x", Payload::of(i))->delivered, 3u);
  EXPECT_EQ(ep.count(1), 10u);
  EXPECT_EQ(ep.count(2), 10u);
  EXPECT_EQ(ep.count(3), 10u);
  EXPECT_EQ(ep.count(10), 30u);
  EXPECT_EQ(ep.count(20), 30u);
}

// Topics seen once each (task ids in the topic): every one is a new cursor,
// and they must not all start at the same member.
TEST(Router, AWildcardQueueGroupSpreadsTopicsSeenOnce) {
  Router r;
  RecordingEndpoint ep;
  for (std::uint64_t a = 1; a <= 3; ++a) ASSERT_TRUE(r.subscribe("tasks.>", {&ep, a}, "workers"));
  for (int i = 0; i < 300; ++i) ASSERT_EQ(r.publish("tasks." + std::to_string(i), Payload::of(i))->delivered, 1u);
  for (std::uint64_t a = 1; a <= 3; ++a) {
    EXPECT_GT(ep.count(a), 50u) << "member " << a;
    EXPECT_LT(ep.count(a), 150u) << "member " << a;
  }
}

TEST(Router, RoundRobinStaysEvenUnderSubscriptionChurn) {
  Router r;
  RecordingEndpoint ep;
  for (std::uint64_t a = 1; a <= 3; ++a) ASSERT_TRUE(r.subscribe("jobs.*", {&ep, a}, "workers"));
  for (int i = 0; i < 30; ++i) {
    auto other = r.subscribe("other.*", {&ep, 50});  // a wildcard change: every set is rebuilt
    ASSERT_EQ(r.publish("jobs.x", Payload::of(i))->delivered, 1u);
    r.unsubscribe(*other);
  }
  EXPECT_EQ(ep.count(1), 10u);
  EXPECT_EQ(ep.count(2), 10u);
  EXPECT_EQ(ep.count(3), 10u);
}

TEST(Router, LeastLoadedPicksTheShortestQueue) {
  RouterConfig c;
  c.group_policy = GroupPolicy::least_loaded;
  Router r(c);
  RecordingEndpoint ep;
  for (std::uint64_t a = 1; a <= 3; ++a) ASSERT_TRUE(r.subscribe("q", {&ep, a}, "g"));
  ep.set_depth(1, 50);
  ep.set_depth(2, 3);
  ep.set_depth(3, 40);
  for (int i = 0; i < 5; ++i) (void)r.publish("q", Payload::of(i));
  EXPECT_EQ(ep.count(2), 5u);
}

TEST(Router, UnsubscribeAndUnsubscribeAll) {
  Router r;
  RecordingEndpoint ep;
  auto s1 = r.subscribe("a.b", {&ep, 1});
  ASSERT_TRUE(r.subscribe("a.*", {&ep, 2}));
  ASSERT_TRUE(r.subscribe("a.>", {&ep, 2}, "g"));
  EXPECT_EQ(r.publish("a.b", Payload::of(1))->delivered, 3u);
  EXPECT_TRUE(r.unsubscribe(*s1));
  EXPECT_FALSE(r.unsubscribe(*s1));
  EXPECT_EQ(r.publish("a.b", Payload::of(1))->delivered, 2u);
  EXPECT_EQ(r.unsubscribe_all({&ep, 2}), 2u);
  EXPECT_EQ(r.unsubscribe_all({&ep, 2}), 0u);
  auto res = r.publish("a.b", Payload::of(1));
  EXPECT_TRUE(res->no_subscriber);
  EXPECT_EQ(r.stats().subscriptions, 0u);
}

TEST(Router, DeadLettersAreCountedByReason) {
  Router r;
  RecordingEndpoint ep;
  ASSERT_TRUE(r.subscribe("x", {&ep, 1}));
  ASSERT_TRUE(r.subscribe("x", {&ep, 2}));
  ep.set_full(1);
  ep.set_dead(2);
  auto res = r.publish("x", Payload::of(1));
  EXPECT_EQ(res->mailbox_full, 1u);
  EXPECT_EQ(res->dead, 1u);
  EXPECT_FALSE(res->no_subscriber);
  (void)r.publish("nobody", Payload::of(1));
  RouterStats s = r.stats();
  EXPECT_EQ(s.dead_letters[static_cast<int>(DeadLetter::mailbox_full)], 1u);
  EXPECT_EQ(s.dead_letters[static_cast<int>(DeadLetter::dead_agent)], 1u);
  EXPECT_EQ(s.dead_letters[static_cast<int>(DeadLetter::no_subscriber)], 1u);
}

TEST(Router, DeadLettersAreRepublishedOnTheDeadTopicWhenAsked) {
  RouterConfig c;
  c.dead_letter_topic = true;
  Router r(c);
  RecordingEndpoint ep;
  ASSERT_TRUE(r.subscribe("$dead.>", {&ep, 99}));
  ASSERT_TRUE(r.subscribe("full", {&ep, 1}));
  ep.set_full(1);
  (void)r.publish("nobody.home", Payload::of(1));
  (void)r.publish("full", Payload::of(2));
  EXPECT_EQ(ep.count(99), 2u);
  auto got = ep.take()[99];
  EXPECT_EQ(r.topic_name(got[0]), "$dead.nobody.home");
  EXPECT_EQ(r.topic_name(got[1]), "$dead.full");
  EXPECT_EQ(r.stats().republished, 2u);
  // A dead letter nobody takes is not republished again (no loops).
  ASSERT_EQ(r.unsubscribe_all({&ep, 99}), 1u);
  (void)r.publish("again", Payload::of(3));
  EXPECT_EQ(r.stats().republished, 2u);
  EXPECT_EQ(r.stats().dead_letters[static_cast<int>(DeadLetter::no_subscriber)], 2u);
}

TEST(Router, BadPatternsAndGroupsAreRejected) {
  Router r;
  RecordingEndpoint ep;
  auto s = r.subscribe("a.>.b", {&ep, 1});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), "router: pattern \"a.>.b\": token 2 is '>', which must be the last token");
  auto g = r.subscribe("a", {&ep, 1}, "bad group");
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().rfind("router: queue group: ", 0), 0u) << g.error();
  auto p = r.publish("a.*", Payload::of(1));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error(),
            "router: topic \"a.*\": token 2 is the wildcard '*'; publish to concrete topics (wildcards are for "
            "subscriptions)");
  EXPECT_FALSE(r.subscribe("a", {nullptr, 1}));
  EXPECT_FALSE(r.publish("a..b", Payload::of(1)));
}

TEST(Router, APublishToOneFullMailboxAmongManyIsRepublishedOnce) {
  RouterConfig c;
  c.dead_letter_topic = true;
  Router r(c);
  RecordingEndpoint ep;
  ASSERT_TRUE(r.subscribe("$dead.>", {&ep, 99}));
  for (std::uint64_t a = 1; a <= 3; ++a) ASSERT_TRUE(r.subscribe("fan", {&ep, a}));
  ep.set_full(1);
  ep.set_full(2);
  auto res = r.publish("fan", Payload::of(1));
  EXPECT_EQ(res->delivered, 1u);
  EXPECT_EQ(res->mailbox_full, 2u);
  EXPECT_EQ(ep.count(99), 1u) << "one dead letter per publish, however many receivers it missed";
  EXPECT_EQ(ep.count(3), 1u);
  EXPECT_EQ(r.stats().dead_letters[static_cast<int>(DeadLetter::mailbox_full)], 2u);
  EXPECT_EQ(r.stats().republished, 1u);
}

TEST(Router, DeadTopicsAreNeverRepublished) {
  RouterConfig c;
  c.dead_letter_topic = true;
  Router r(c);
  RecordingEndpoint ep;
  ASSERT_TRUE(r.subscribe("$dead.>", {&ep, 99}));
  ep.set_full(99);
  // "$dead.x" has a (full) subscriber: its failure must not produce "$dead.$dead.x".
  auto res = r.publish("$dead.x", Payload::of(1));
  EXPECT_EQ(res->mailbox_full, 1u);
  EXPECT_EQ(r.stats().republished, 0u);
  EXPECT_EQ(r.stats().topics, 1u) << "no \"$dead.$dead.x\" topic was created";
}

TEST(Router, DeadLettersAreNotRepublishedWhenTheOptionIsOff) {
  Router r;
  RecordingEndpoint ep;
  ASSERT_TRUE(r.subscribe("$dead.>", {&ep, 99}));
  (void)r.publish("nobody", Payload::of(1));
  EXPECT_EQ(ep.count(99), 0u);
  EXPECT_EQ(r.stats().dead_letters[static_cast<int>(DeadLetter::no_subscriber)], 1u);
}

TEST(Router, StatsCountPublishesAndDeliveries) {
  Router r;
  RecordingEndpoint ep;
  ASSERT_TRUE(r.subscribe("s.*", {&ep, 1}));
  ASSERT_TRUE(r.subscribe("s.>", {&ep, 2}));
  TopicId id = *r.intern("s.x");
  constexpr int kPerThread = 10'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) (void)r.publish(id, Payload::of(i));
    });
  }
  for (auto& t : threads) t.join();
  (void)r.publish("nobody", Payload::of(1));
  RouterStats s = r.stats();
  EXPECT_EQ(s.published, 3u * kPerThread + 1);
  EXPECT_EQ(s.delivered, 2u * 3 * kPerThread);
  EXPECT_EQ(s.dead_letters[static_cast<int>(DeadLetter::no_subscriber)], 1u);
  EXPECT_EQ(s.subscriptions, 2u);
  EXPECT_EQ(s.topics, 2u);
}

TEST(Router, ReceiversCountsPlainSubscribersOnceAndEachGroupOnce) {
  Router r;
  RecordingEndpoint ep;
  TopicId id = *r.intern("a.b");
  EXPECT_EQ(r.receivers(id), 0u);
  ASSERT_TRUE(r.subscribe("a.b", {&ep, 1}));
  ASSERT_TRUE(r.subscribe("a.*", {&ep, 1}));
  ASSERT_TRUE(r.subscribe("a.>", {&ep, 2}));
  ASSERT_TRUE(r.subscribe("a.>", {&ep, 3}, "g"));
  ASSERT_TRUE(r.subscribe("a.b", {&ep, 4}, "g"));
  EXPECT_EQ(r.receivers(id), 3u);
  EXPECT_EQ(r.receivers(TopicId{4242}), 0u);
}

TEST(Router, TopTopicsListsTheTopicsWithMostReceiversFirst) {
  Router r;
  RecordingEndpoint ep;
  ASSERT_TRUE(r.intern("quiet"));
  for (std::uint64_t a = 0; a < 5; ++a) ASSERT_TRUE(r.subscribe("busy.x", {&ep, a}));
  ASSERT_TRUE(r.subscribe("busy.*", {&ep, 0}));  // the same subscriber: still 5
  ASSERT_TRUE(r.subscribe("busy.*", {&ep, 7}, "g"));
  ASSERT_TRUE(r.subscribe("mid", {&ep, 1}));
  ASSERT_TRUE(r.subscribe("mid", {&ep, 2}));
  (void)r.publish("busy.x", Payload::of(1));  // one cached set, one computed
  auto top = r.top_topics(2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].name, "busy.x");
  EXPECT_EQ(top[0].subscribers, 5u);
  EXPECT_EQ(top[0].queue_groups, 1u);
  EXPECT_EQ(top[1].name, "mid");
  EXPECT_EQ(top[1].subscribers, 2u);
  EXPECT_EQ(r.top_topics(100).size(), 3u);
  EXPECT_EQ(r.top_topics(100).back().name, "quiet");
  EXPECT_TRUE(r.top_topics(0).empty());
}

TEST(Router, WithoutTheResultCacheDeliveriesAreTheSame) {
  RouterConfig c;
  c.result_cache = false;
  Router r(c);
  RecordingEndpoint ep;
  ASSERT_TRUE(r.subscribe("orders.eu.created", {&ep, 1}));
  ASSERT_TRUE(r.subscribe("orders.*.created", {&ep, 1}));
  ASSERT_TRUE(r.subscribe("orders.>", {&ep, 3}));
  for (std::uint64_t a = 10; a < 13; ++a) ASSERT_TRUE(r.subscribe("orders.>", {&ep, a}, "g"));
  for (int i = 0; i < 30; ++i) EXPECT_EQ(r.publish("orders.eu.created", Payload::of(i))->delivered, 3u);
  EXPECT_EQ(ep.count(1), 30u);
  EXPECT_EQ(ep.count(3), 30u);
  EXPECT_EQ(ep.count(10) + ep.count(11) + ep.count(12), 30u);
  EXPECT_GT(ep.count(10), 0u);
  EXPECT_GT(ep.count(12), 0u);
}

// Runs a publish's parts last to first, every other one on a second thread.
class TwoThreadHelper : public FanoutHelper {
 public:
  void run_parts(std::size_t parts, Part part, void* context) noexcept override {
    last_parts = parts;
    std::thread other([&] {
      for (std::size_t i = parts; i-- > 0;) {
        if (i % 2 == 1) part(context, i);
      }
    });
    for (std::size_t i = parts; i-- > 0;) {
      if (i % 2 == 0) part(context, i);
    }
    other.join();
  }
  std::size_t last_parts = 0;
};

TEST(Router, APublishSharedOutInPartsDeliversToEachSubscriberOnceAndCountsAll) {
  TwoThreadHelper helper;
  PublishOptions o;
  o.helper = &helper;
  for (std::size_t subscribers : {kSharedFanoutMin - 1, kSharedFanoutMin, std::size_t{1000}, std::size_t{5000}}) {
    SCOPED_TRACE(subscribers);
    Router router;
    RecordingEndpoint ep;
    for (std::uint64_t a = 1; a <= subscribers; ++a) ASSERT_TRUE(router.subscribe("x", {&ep, a}));
    ep.set_full(7);
    ep.set_dead(subscribers);
    helper.last_parts = 0;
    auto res = router.publish("x", Payload::of(1), o);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->delivered, subscribers - 2);
    EXPECT_EQ(res->mailbox_full, 1u);
    EXPECT_EQ(res->dead, 1u);
    const auto got = ep.take();
    EXPECT_EQ(got.size(), subscribers - 2);
    for (const auto& [address, topics] : got) EXPECT_EQ(topics.size(), 1u) << address;
    // Below the threshold one thread delivers all; above, parts of 64 or more, at most 64 of them.
    EXPECT_EQ(helper.last_parts, subscribers < kSharedFanoutMin ? 0 : std::min<std::size_t>(64, subscribers / 64));
  }
}

TEST(Router, UnknownTopicIdIsNoSubscriber) {
  Router r;
  EXPECT_TRUE(r.publish(TopicId{777}, Payload::of(1)).no_subscriber);
  EXPECT_TRUE(r.publish(TopicId{0xffffffff}, Payload::of(1)).no_subscriber);  // beyond every segment
  EXPECT_EQ(r.topic_name(TopicId{0xffffffff}), "");
}

// Publishers race subscribers: a subscriber present the whole time receives
// every message; churned subscriptions come and go without crashes (TSan).
TEST(RouterStress, PublishWhileSubscribingAndUnsubscribing) {
  Router r;
  RecordingEndpoint ep;
  ASSERT_TRUE(r.subscribe("s.>", {&ep, 0}));
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> published{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      TopicId id = *r.intern("s.t" + std::to_string(t));
      while (!stop.load()) {
        (void)r.publish(id, Payload::of(1));
        published.fetch_add(1);
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 2'000; ++i) {
      std::uint64_t a = 1 + i % 50;
      auto s1 = r.subscribe(i % 2 ? "s.*" : "s.t0", {&ep, a});
      (void)r.subscribe("s.>", {&ep, a}, "g");
      if (i % 3 == 0) {
        r.unsubscribe(*s1);
      } else {
        r.unsubscribe_all({&ep, a});
      }
    }
    stop = true;
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ep.count(0), published.load());
  EXPECT_EQ(r.stats().published, published.load());
}

// Ids are published while others publish to ids that may not exist yet: a
// publisher never reads a topic that is still being written (TSan).
TEST(RouterStress, RaceOnIntern) {
  Router r;
  RecordingEndpoint ep;
  ASSERT_TRUE(r.subscribe("n.>", {&ep, 0}));
  constexpr TopicId kTopics = 5'000;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> delivered{0};
  std::thread publisher([&] {
    std::uint64_t sweeps = 0;
    while (!done.load() || sweeps < 2) {
      for (TopicId id = 0; id < kTopics; ++id) {
        PublishResult res = r.publish(id, Payload::of(1));
        delivered.fetch_add(res.delivered);
        if (!res.no_subscriber) {
          EXPECT_EQ(r.topic_name(id).substr(0, 2), "n.");
        }
      }
      ++sweeps;
    }
  });
  for (TopicId i = 0; i < kTopics; ++i) ASSERT_TRUE(r.intern("n." + std::to_string(i)));
  done = true;
  publisher.join();
  EXPECT_GT(delivered.load(), 0u);
  EXPECT_EQ(r.stats().topics, kTopics);
}

}  // namespace
}  // namespace swarm::router
