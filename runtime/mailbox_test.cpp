// The lock-free building blocks alone: the mailbox queue and the run queue.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "runtime/detail/mpsc_queue.hpp"
#include "runtime/detail/run_queue.hpp"

namespace swarm::detail {
namespace {

struct Item : Node {
  unsigned producer = 0;
  unsigned seq = 0;
};

TEST(MpscQueue, IsFifoForOneProducer) {
  MpscQueue q;
  std::vector<Item> items(100);
  for (unsigned i = 0; i < items.size(); ++i) {
    items[i].seq = i;
    q.push(&items[i]);
  }
  for (unsigned i = 0; i < items.size(); ++i) {
    auto* n = static_cast<Item*>(q.pop());
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->seq, i);
  }
  EXPECT_EQ(q.pop(), nullptr);
}

TEST(MpscQueue, ManyProducersLoseNothingAndKeepEachProducersOrder) {
  constexpr unsigned kProducers = 4, kPerProducer = 50'000;
  MpscQueue q;
  std::vector<std::vector<Item>> items(kProducers);
  for (auto& v : items) v = std::vector<Item>(kPerProducer);
  std::vector<std::thread> producers;
  for (unsigned p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (unsigned i = 0; i < kPerProducer; ++i) {
        items[p][i].producer = p;
        items[p][i].seq = i;
        q.push(&items[p][i]);
      }
    });
  }
  std::vector<unsigned> next(kProducers, 0);
  unsigned popped = 0;
  while (popped < kProducers * kPerProducer) {
    auto* n = static_cast<Item*>(q.pop());
    if (n == nullptr) continue;  // empty or a push in flight
    ASSERT_EQ(n->seq, next[n->producer]) << "producer " << n->producer << " reordered";
    ++next[n->producer];
    ++popped;
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(q.pop(), nullptr);
}

TEST(RunQueue, RefusesPushWhenFullAndIsFifo) {
  RunQueue<int, 4> q;
  int v[5] = {0, 1, 2, 3, 4};
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(q.push_back(&v[i]));
  EXPECT_FALSE(q.push_back(&v[4]));
  EXPECT_EQ(q.size(), 4u);
  EXPECT_EQ(q.pop_front(), &v[0]);
  EXPECT_TRUE(q.push_back(&v[4]));
  for (int i = 1; i <= 4; ++i) EXPECT_EQ(q.pop_front(), &v[i]);
  EXPECT_EQ(q.pop_front(), nullptr);
}

TEST(RunQueue, StealHalfTakesTheOlderHalf) {
  RunQueue<int, 16> q;
  int v[6];
  for (auto& x : v) q.push_back(&x);
  int* out[16];
  ASSERT_EQ(q.steal_half(out, 16), 3u);
  EXPECT_EQ(out[0], &v[0]);
  EXPECT_EQ(out[2], &v[2]);
  EXPECT_EQ(q.steal_half(out, 1), 1u);  // capped by max
  EXPECT_EQ(out[0], &v[3]);
  EXPECT_EQ(q.size(), 2u);
}

TEST(RunQueue, OwnerAndThievesTakeEveryItemExactlyOnce) {
  constexpr int kItems = 200'000;
  RunQueue<int, 256> q;
  std::vector<int> values(kItems);
  std::vector<std::atomic<int>> taken(kItems);
  std::atomic<bool> done{false};
  auto take = [&](int* item) { taken[item - values.data()].fetch_add(1, std::memory_order_relaxed); };
  std::vector<std::thread> thieves;
  for (int t = 0; t < 2; ++t) {
    thieves.emplace_back([&] {
      int* out[128];
      while (!done.load(std::memory_order_acquire) || q.size() != 0) {
        unsigned n = q.steal_half(out, 128);
        for (unsigned i = 0; i < n; ++i) take(out[i]);
      }
    });
  }
  for (int i = 0; i < kItems;) {
    if (q.push_back(&values[i])) {
      ++i;
    } else if (int* item = q.pop_front()) {
      take(item);
    }
  }
  done.store(true, std::memory_order_release);
  while (int* item = q.pop_front()) take(item);
  for (auto& t : thieves) t.join();
  for (int i = 0; i < kItems; ++i) ASSERT_EQ(taken[i].load(), 1) << "item " << i;
}

}  // namespace
}  // namespace swarm::detail
