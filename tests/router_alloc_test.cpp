// Publishing an inline payload (<= 32 bytes) through a warm router allocates
// nothing: not by id, not by name, not to wildcards or queue groups, not when
// deliveries fail and dead letters are republished. This binary replaces the
// global operator new to count allocations; it links only swarm::router.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

#include "router/router.hpp"
#include "tests/counting_new.hpp"

namespace swarm::router {
namespace {

// Counts; reports full or dead for the addresses it is told to.
class CountingEndpoint : public Endpoint {
 public:
  DeliverStatus deliver(const Delivery& d) noexcept override {
    delivered.fetch_add(1, std::memory_order_relaxed);
    if (d.address == full) return DeliverStatus::mailbox_full;
    if (d.address == dead) return DeliverStatus::dead;
    return DeliverStatus::ok;
  }
  std::size_t depth(std::uint64_t address) const noexcept override { return address % 7; }
  std::atomic<std::uint64_t> delivered{0};
  std::uint64_t full = ~0ull, dead = ~0ull;
};

constexpr int kWarm = 100, kRuns = 100'000;

// Allocations made by `publish_once` over kRuns calls, after kWarm.
template <class F>
std::uint64_t allocations_of(F publish_once) {
  for (int i = 0; i < kWarm; ++i) publish_once(i);
  const std::uint64_t before = g_allocations.load();
  for (int i = 0; i < kRuns; ++i) publish_once(i);
  return g_allocations.load() - before;
}

TEST(RouterZeroAllocation, PublishByIdToExactWildcardAndGroupSubscribers) {
  Router r;
  CountingEndpoint ep;
  for (std::uint64_t a = 0; a < 10; ++a) ASSERT_TRUE(r.subscribe(a % 2 ? "z.*" : "z.x", {&ep, a}));
  ASSERT_TRUE(r.subscribe("z.>", {&ep, 100}, "group"));
  ASSERT_TRUE(r.subscribe("z.>", {&ep, 101}, "group"));
  const TopicId id = *r.intern("z.x");
  EXPECT_EQ(allocations_of([&](int i) { (void)r.publish(id, Payload::of(i)); }), 0u);
  EXPECT_EQ(ep.delivered.load(), std::uint64_t{kWarm + kRuns} * 11);
}

TEST(RouterZeroAllocation, PublishByNameOfAKnownTopic) {
  Router r;
  CountingEndpoint ep;
  ASSERT_TRUE(r.subscribe("orders.*.created", {&ep, 1}));
  ASSERT_TRUE(r.intern("orders.eu.created"));
  EXPECT_EQ(allocations_of([&](int i) { (void)r.publish("orders.eu.created", Payload::of(i)); }), 0u);
}

TEST(RouterZeroAllocation, LeastLoadedGroups) {
  RouterConfig c;
  c.group_policy = GroupPolicy::least_loaded;
  Router r(c);
  CountingEndpoint ep;
  for (std::uint64_t a = 0; a < 8; ++a) ASSERT_TRUE(r.subscribe("jobs.>", {&ep, a}, "workers"));
  const TopicId id = *r.intern("jobs.resize");
  EXPECT_EQ(allocations_of([&](int i) { (void)r.publish(id, Payload::of(i)); }), 0u);
}

TEST(RouterZeroAllocation, DeadLettersCountedAndRepublished) {
  RouterConfig c;
  c.dead_letter_topic = true;
  Router r(c);
  CountingEndpoint ep;
  ep.full = 1;
  ep.dead = 2;
  ASSERT_TRUE(r.subscribe("x", {&ep, 1}));
  ASSERT_TRUE(r.subscribe("x", {&ep, 2}));
  ASSERT_TRUE(r.subscribe("$dead.>", {&ep, 99}));
  const TopicId x = *r.intern("x");
  const TopicId nobody = *r.intern("nobody");
  EXPECT_EQ(allocations_of([&](int i) {
              (void)r.publish(x, Payload::of(i));
              (void)r.publish(nobody, Payload::of(i));
            }),
            0u);
  EXPECT_EQ(r.stats().republished, 2u * (kWarm + kRuns));
}

TEST(RouterZeroAllocation, PublishFromAnotherThread) {
  Router r;
  CountingEndpoint ep;
  ASSERT_TRUE(r.subscribe("t", {&ep, 1}));
  const TopicId id = *r.intern("t");
  std::uint64_t allocations = ~0ull;
  std::thread([&] { allocations = allocations_of([&](int i) { (void)r.publish(id, Payload::of(i)); }); }).join();
  EXPECT_EQ(allocations, 0u) << "a new thread's first publish takes an epoch slot, without allocating";
}

TEST(RouterZeroAllocation, TheCounterSeesAllocations) {
  Router r;
  CountingEndpoint ep;
  ASSERT_TRUE(r.subscribe("t", {&ep, 1}));
  const TopicId id = *r.intern("t");
  // A subscription change between publishes makes the next one rebuild the set.
  EXPECT_GT(allocations_of([&](int i) {
              auto s = r.subscribe("t", {&ep, 2});
              (void)r.publish(id, Payload::of(i));
              r.unsubscribe(*s);
            }),
            0u);
}

}  // namespace
}  // namespace swarm::router
