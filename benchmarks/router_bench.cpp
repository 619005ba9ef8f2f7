// Micro-benchmarks of the topic router.
//   swarm-microbench --benchmark_filter=Router --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "router/router.hpp"

namespace swarm::router {
namespace {

constexpr int kTopics = 10'000;

// Accepts and counts: what remains is the router's own cost.
class NullEndpoint : public Endpoint {
 public:
  DeliverStatus deliver(const Delivery& d) noexcept override {
    benchmark::DoNotOptimize(d.address);
    ++delivered;
    return DeliverStatus::ok;
  }
  std::uint64_t delivered = 0;
};

// 10k topics, one exact subscriber each.
struct TenThousandTopics {
  Router router;
  NullEndpoint ep;
  std::vector<TopicId> ids;
  std::vector<std::string> names;
  TenThousandTopics() {
    for (int i = 0; i < kTopics; ++i) {
      names.push_back("svc.topic" + std::to_string(i) + ".events");
      (void)router.subscribe(names.back(), {&ep, static_cast<std::uint64_t>(i)});
      ids.push_back(*router.intern(names.back()));
    }
    for (TopicId id : ids) router.publish(id, Payload::of(0));  // warm every topic's cache
  }
};

// Resolve by id among 10k topics (+ one virtual delivery): the hot path.
void BM_Router_ExactById(benchmark::State& state) {
  static TenThousandTopics t;
  Payload p = Payload::of(1);
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.router.publish(t.ids[i], p));
    i = (i + 7919) % kTopics;  // stride: not the same cache lines every time
  }
}
BENCHMARK(BM_Router_ExactById);

// The same by name: intern lookup (hash + probe) first.
void BM_Router_ExactByName(benchmark::State& state) {
  static TenThousandTopics t;
  Payload p = Payload::of(1);
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.router.publish(t.names[i], p));
    i = (i + 7919) % kTopics;
  }
}
BENCHMARK(BM_Router_ExactByName);

// A topic matched only by wildcards, its resolved set cached (a cache hit).
void BM_Router_WildcardCacheHit(benchmark::State& state) {
  Router r;
  NullEndpoint ep;
  (void)r.subscribe("svc.*.events", {&ep, 1});
  (void)r.subscribe("svc.>", {&ep, 2});
  TopicId id = *r.intern("svc.orders.events");
  Payload p = Payload::of(1);
  for (auto _ : state) benchmark::DoNotOptimize(r.publish(id, p));
}
BENCHMARK(BM_Router_WildcardCacheHit);

// A wildcard resolution from scratch: each iteration changes the wildcard set
// (subscribe + unsubscribe), so the next publish walks the trie of 100 patterns.
void BM_Router_WildcardResolve(benchmark::State& state) {
  Router r;
  NullEndpoint ep;
  for (int i = 0; i < 100; ++i) (void)r.subscribe("svc.s" + std::to_string(i) + ".*", {&ep, 1});
  (void)r.subscribe("svc.*.events", {&ep, 2});
  TopicId id = *r.intern("svc.orders.events");
  Payload p = Payload::of(1);
  for (auto _ : state) {
    auto s = r.subscribe("other.*", {&ep, 3});
    r.unsubscribe(*s);
    benchmark::DoNotOptimize(r.publish(id, p));
  }
}
BENCHMARK(BM_Router_WildcardResolve);

// Publish an inline payload to N subscribers of one topic.
void BM_Router_Publish(benchmark::State& state) {
  Router r;
  NullEndpoint ep;
  for (std::int64_t i = 0; i < state.range(0); ++i) (void)r.subscribe("fan.out", {&ep, static_cast<std::uint64_t>(i)});
  TopicId id = *r.intern("fan.out");
  Payload p = Payload::of(42);
  for (auto _ : state) benchmark::DoNotOptimize(r.publish(id, p));
  state.SetItemsProcessed(static_cast<std::int64_t>(ep.delivered));
}
BENCHMARK(BM_Router_Publish)->ArgName("subscribers")->Arg(1)->Arg(10)->Arg(1000);

// The peer for the read-path design: the same table behind a shared_mutex.
class SharedMutexTable {
 public:
  void subscribe(TopicId t, Subscriber s) {
    std::unique_lock lock(mu_);
    table_[t].push_back(s);
  }
  std::uint32_t publish(TopicId t, const Payload& p) {
    std::shared_lock lock(mu_);
    auto it = table_.find(t);
    if (it == table_.end()) return 0;
    Delivery d{0, t, 0, 0, 0, p};
    for (Subscriber s : it->second) {
      d.address = s.address;
      s.endpoint->deliver(d);
    }
    return static_cast<std::uint32_t>(it->second.size());
  }

 private:
  std::shared_mutex mu_;
  std::unordered_map<TopicId, std::vector<Subscriber>> table_;
};

void BM_ReadPath_Router(benchmark::State& state) {
  static TenThousandTopics t;
  Payload p = Payload::of(1);
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 101;
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.router.publish(t.ids[i], p));
    i = (i + 7919) % kTopics;
  }
}
BENCHMARK(BM_ReadPath_Router)->Threads(1)->Threads(2)->UseRealTime();

void BM_ReadPath_SharedMutex(benchmark::State& state) {
  static NullEndpoint ep;
  static SharedMutexTable* table = [] {
    auto* tbl = new SharedMutexTable;
    for (int i = 0; i < kTopics; ++i) tbl->subscribe(static_cast<TopicId>(i), {&ep, static_cast<std::uint64_t>(i)});
    return tbl;
  }();
  Payload p = Payload::of(1);
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 101;
  for (auto _ : state) {
    benchmark::DoNotOptimize(table->publish(static_cast<TopicId>(i), p));
    i = (i + 7919) % kTopics;
  }
}
BENCHMARK(BM_ReadPath_SharedMutex)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace swarm::router
