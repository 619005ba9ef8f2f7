// Scheduler fairness: an agent made runnable by a handler that keeps running
// starts on an idle worker, not when that handler returns.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>

#include "runtime/runtime.hpp"
#include "runtime/test_util.hpp"

namespace swarm {
namespace {

using namespace std::chrono_literals;
using test::eventually;

constexpr std::uint64_t kBurst = 100'000;

struct Burst {
  std::atomic<bool> producer_returned{false};  // set as the producer's handler ends
  std::atomic<std::uint64_t> consumed{0};
  std::atomic<int> first_seen_return{-1};  // at message 1: 1 = the handler had returned, 0 = not yet
  std::atomic<bool> in_order{true};
};

class Consumer : public Agent {
 public:
  static constexpr std::string_view kTypeName = "FairnessConsumer";
  explicit Consumer(Burst& burst) : burst_(burst) {}
  void on_message(Message& m) override {
    if (expected_ == 0) burst_.first_seen_return = burst_.producer_returned.load() ? 1 : 0;
    if (m.as<std::uint64_t>() != expected_) burst_.in_order = false;
    ++expected_;
    burst_.consumed.fetch_add(1, std::memory_order_release);
  }

 private:
  Burst& burst_;
  std::uint64_t expected_ = 0;
};

// Sends the burst from one handler. So that a loaded machine (a descheduled
// worker, TSan) cannot make the burst end before the idle worker gets to run,
// the handler then keeps running until the consumer has started, or for at
// most kGrace: without the fix the consumer cannot start before the return.
class Producer : public Agent {
 public:
  static constexpr auto kGrace = std::chrono::seconds(5);
  Producer(Burst& burst, AgentRef consumer) : burst_(burst), consumer_(consumer) {}
  void on_message(Message&) override {
    for (std::uint64_t i = 0; i < kBurst; ++i) {
      if (send(consumer_, i) != SendResult::ok) ++refused_;
    }
    EXPECT_EQ(refused_, 0u);
    (void)eventually([&] { return burst_.consumed.load() != 0; }, kGrace);
    burst_.producer_returned = true;
  }

 private:
  Burst& burst_;
  AgentRef consumer_;
  std::uint64_t refused_ = 0;
};

RuntimeConfig two_workers() {
  RuntimeConfig c;
  c.workers = 2;
  c.mailbox_by_type["FairnessConsumer"] = MailboxOptions{static_cast<std::uint32_t>(2 * kBurst), OverflowPolicy::reject};
  return c;
}

// The issue: the consumer sat in the producer's worker's next slot, which the
// idle worker neither saw nor was woken for, until the 100k sends were done.
TEST(Fairness, ConsumerStartsOnIdleWorkerWhileTheSendingHandlerRuns) {
  Runtime rt(two_workers());
  Burst burst;
  AgentRef consumer = rt.spawn<Consumer>(burst);
  AgentRef producer = rt.spawn<Producer>(burst, consumer);
  ASSERT_TRUE(rt.wait_idle());  // both workers parked: the consumer's worker is idle
  ASSERT_EQ(rt.send(producer, std::uint64_t{0}), SendResult::ok);

  ASSERT_TRUE(eventually([&] { return burst.consumed.load() == kBurst; }, 60s));
  ASSERT_TRUE(eventually([&] { return burst.producer_returned.load(); }, 10s));
  EXPECT_EQ(burst.first_seen_return.load(), 0) << "the consumer's first message waited for the producer's handler";
  EXPECT_TRUE(burst.in_order.load());
  EXPECT_EQ(rt.stats().dropped_total(), 0u);
}

// The same burst again and again: each time the consumer is idle, and each
// time it starts before the handler ends (the watcher role must come back).
TEST(Fairness, EveryBurstStartsEarly) {
  Runtime rt(two_workers());
  for (int round = 0; round < 5; ++round) {
    Burst burst;
    AgentRef consumer = rt.spawn<Consumer>(burst);
    AgentRef producer = rt.spawn<Producer>(burst, consumer);
    ASSERT_TRUE(rt.wait_idle());
    ASSERT_EQ(rt.send(producer, std::uint64_t{0}), SendResult::ok);
    ASSERT_TRUE(eventually([&] { return burst.consumed.load() == kBurst; }, 60s)) << "round " << round;
    ASSERT_TRUE(eventually([&] { return burst.producer_returned.load(); }, 10s)) << "round " << round;
    EXPECT_EQ(burst.first_seen_return.load(), 0) << "round " << round;
    EXPECT_TRUE(burst.in_order.load()) << "round " << round;
    rt.stop(consumer);
    rt.stop(producer);
    ASSERT_TRUE(eventually([&] { return !rt.alive(consumer) && !rt.alive(producer); })) << "round " << round;
  }
  EXPECT_EQ(rt.stats().dropped_total(), 0u);
}

}  // namespace
}  // namespace swarm
