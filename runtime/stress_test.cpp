// Stress tests, meant for ThreadSanitizer: many agents, many messages, and
// spawn/stop/send racing from several threads.

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "runtime/runtime.hpp"
#include "runtime/test_util.hpp"

namespace swarm {
namespace {

using test::eventually;

class Counter : public Agent {
 public:
  explicit Counter(std::atomic<std::uint64_t>& total) : total_(total) {}
  void on_message(Message& m) override {
    if (m.kind == 1) {
      stop();
      return;
    }
    total_.fetch_add(m.as<std::uint32_t>(), std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t>& total_;
};

RuntimeConfig stress_config() {
  RuntimeConfig c;
  c.workers = 4;  // more workers than cores: more interleavings
  c.default_mailbox.capacity = 1 << 20;
  return c;
}

TEST(Stress, HundredThousandAgentsMillionMessagesFromFourThreads) {
  Runtime rt(stress_config());
  std::atomic<std::uint64_t> total{0};
  constexpr int kAgents = 100'000;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250'000;
  std::vector<AgentRef> agents;
  agents.reserve(kAgents);
  for (int i = 0; i < kAgents; ++i) agents.push_back(rt.spawn<Counter>(total));
  std::vector<std::thread> senders;
  std::atomic<std::uint64_t> accepted{0};
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      std::minstd_rand rng(t + 1);
      std::uint64_t ok = 0;
      for (int i = 0; i < kPerThread; ++i) {
        if (rt.send(agents[rng() % kAgents], std::uint32_t{1}) == SendResult::ok) ++ok;
      }
      accepted += ok;
    });
  }
  for (auto& s : senders) s.join();
  EXPECT_EQ(accepted.load(), std::uint64_t{kThreads} * kPerThread);
  ASSERT_TRUE(eventually([&] { return total.load() == accepted.load(); }, std::chrono::milliseconds(120000)));
}

TEST(Stress, ConcurrentSpawnStopAndSendToDyingAgents) {
  Runtime rt(stress_config());
  std::atomic<std::uint64_t> total{0};
  // Accounting: every user message is handled, refused (dead_agent returned
  // to the sender) or dropped after acceptance; drops are all counted.
  std::atomic<std::uint64_t> accepted{0}, refused{0}, stop_messages_accepted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::minstd_rand rng(t + 7);
      std::vector<AgentRef> mine;
      for (int i = 0; i < 20'000; ++i) {
        unsigned op = rng() % 4;
        if (op == 0 || mine.empty()) {
          mine.push_back(rt.spawn<Counter>(total));
          continue;
        }
        AgentRef target = mine[rng() % mine.size()];
        if (op == 2) {
          rt.stop(target);
          continue;
        }
        SendResult r = op == 1 ? rt.send(target, Payload{}, 1) : rt.send(target, std::uint32_t{1});
        ASSERT_TRUE(r == SendResult::ok || r == SendResult::dead_agent) << to_string(r);
        if (r == SendResult::dead_agent) {
          ++refused;
        } else if (op == 1) {
          ++stop_messages_accepted;
        } else {
          ++accepted;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  rt.shutdown();
  RuntimeStats s = rt.stats();
  EXPECT_EQ(s.live, 0u);
  EXPECT_EQ(s.spawned, s.exited);
  EXPECT_LE(total.load(), accepted.load());
  // Refusals were told to the sender and are counted apart from losses.
  EXPECT_EQ(s.refused[static_cast<int>(RefuseReason::dead_agent)], refused.load());
  // Stop messages that were handled ended an agent; the rest were dropped.
  const std::uint64_t dead = s.dropped[static_cast<int>(DropReason::dead_agent)];
  const std::uint64_t lost_values = accepted.load() - total.load();
  EXPECT_GE(dead, lost_values);
  EXPECT_LE(dead, lost_values + stop_messages_accepted.load());
}

// Spawns 10 children down to depth 0; leaves report 1, parents sum and exit.
class Tree : public Agent {
 public:
  Tree(AgentRef parent, unsigned depth, std::atomic<std::uint64_t>& result)
      : parent_(parent), depth_(depth), result_(result) {}
  void on_start() override {
    if (depth_ == 0) return report(1);
    for (int i = 0; i < 10; ++i) spawn<Tree>(self(), depth_ - 1, result_);
  }
  void on_message(Message& m) override {
    sum_ += m.as<std::uint64_t>();
    if (++replies_ == 10) report(sum_);
  }

 private:
  void report(std::uint64_t v) {
    if (parent_.valid()) {
      (void)send(parent_, v);
    } else {
      result_ = v;
    }
    stop();
  }
  AgentRef parent_;
  unsigned depth_;
  std::atomic<std::uint64_t>& result_;
  std::uint64_t sum_ = 0;
  unsigned replies_ = 0;
};

TEST(Stress, AgentsSpawnAndMessageEachOtherAcrossWorkers) {
  Runtime rt(stress_config());
  std::atomic<std::uint64_t> result{0};
  rt.spawn<Tree>(AgentRef{}, 5, result);  // 111,111 agents
  ASSERT_TRUE(eventually([&] { return result.load() == 100'000; }, std::chrono::milliseconds(120000)));
  ASSERT_TRUE(eventually([&] { return rt.stats().live == 0; }));
  EXPECT_EQ(rt.stats().spawned, 111'111u);
  EXPECT_EQ(rt.stats().dropped_total(), 0u);
}

struct Numbered {
  std::uint32_t sender;
  std::uint32_t n;  // per sender and receiver
};

// Counts what it receives and checks that each sender's messages come in order.
class OrderChecker : public Agent {
 public:
  OrderChecker(std::atomic<std::uint64_t>& received, std::atomic<std::uint64_t>& out_of_order)
      : received_(received), out_of_order_(out_of_order) {}
  void on_message(Message& m) override {
    const auto x = m.as<Numbered>();
    if (x.n != next_.at(x.sender)) out_of_order_.fetch_add(1, std::memory_order_relaxed);
    next_.at(x.sender) = x.n + 1;
    received_.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t>& received_;
  std::atomic<std::uint64_t>& out_of_order_;
  std::array<std::uint32_t, 4> next_{};
};

class WakeHandoff : public ::testing::TestWithParam<bool> {};

// Receivers go idle and wake all the time; the message that wakes one is
// handed over with its scheduling (wake_handoff) or queued like the rest.
// Either way each sender's order holds and nothing is lost.
TEST_P(WakeHandoff, EachSendersOrderHoldsAndNothingIsLost) {
  RuntimeConfig c = stress_config();
  c.wake_handoff = GetParam();
  Runtime rt(c);
  constexpr std::uint32_t kReceivers = 8;
  constexpr std::uint32_t kThreads = 4;
  constexpr std::uint32_t kPerThread = 100'000;
  std::atomic<std::uint64_t> received{0}, out_of_order{0};
  std::vector<AgentRef> receivers;
  for (std::uint32_t i = 0; i < kReceivers; ++i) receivers.push_back(rt.spawn<OrderChecker>(received, out_of_order));
  std::vector<std::thread> senders;
  for (std::uint32_t t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      std::minstd_rand rng(t + 1);
      std::array<std::uint32_t, kReceivers> next{};
      for (std::uint32_t i = 0; i < kPerThread; ++i) {
        const std::uint32_t r = rng() % kReceivers;
        ASSERT_EQ(rt.send(receivers[r], Numbered{t, next[r]++}), SendResult::ok);
      }
    });
  }
  for (auto& s : senders) s.join();
  ASSERT_TRUE(eventually([&] { return received.load() == std::uint64_t{kThreads} * kPerThread; },
                         std::chrono::milliseconds(120000)));
  EXPECT_EQ(out_of_order.load(), 0u);
  EXPECT_EQ(rt.stats().dropped_total(), 0u);
  // Woken that often, most messages found their receiver idle or nearly so.
  EXPECT_GT(rt.stats().activations, 1000u);
}

INSTANTIATE_TEST_SUITE_P(Stress, WakeHandoff, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "on" : "off"; });

}  // namespace
}  // namespace swarm
