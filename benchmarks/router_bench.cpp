// Micro-benchmarks of the topic router, with the peers they are judged
// against measured in the same run (machines are noisy; compare ratios):
//   BM_Baseline_*   a std::unordered_map<std::string, ...> lookup and a plain
//                   array index over the same 10k names / ids;
//   BM_ReadPath_*   the router's lock-free read path vs the same table behind
//                   a std::shared_mutex, 1 and 2 publishing threads;
//   cache:0/1       the per-topic result cache switched off and on.
//   swarm-microbench --benchmark_filter='Router|ReadPath|Baseline'
//     --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

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
    for (TopicId id : ids) (void)router.publish(id, Payload::of(0));  // warm every topic's cache
  }
};

// -- baselines: what a lookup costs on this machine, same names, same stride ---

void BM_Baseline_StringHashLookup(benchmark::State& state) {
  static TenThousandTopics t;
  static const auto* map = [] {
    auto* m = new std::unordered_map<std::string, TopicId>;
    for (int i = 0; i < kTopics; ++i) (*m)[t.names[static_cast<std::size_t>(i)]] = t.ids[static_cast<std::size_t>(i)];
    return m;
  }();
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(map->find(t.names[i])->second);
    i = (i + 7919) % kTopics;
  }
}
BENCHMARK(BM_Baseline_StringHashLookup);

void BM_Baseline_IdLookup(benchmark::State& state) {
  struct Slot {
    const void* set;
    std::uint64_t version;
  };
  static std::vector<Slot>* slots = new std::vector<Slot>(kTopics, Slot{nullptr, 1});
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize((*slots)[i]);
    i = (i + 7919) % kTopics;
  }
}
BENCHMARK(BM_Baseline_IdLookup);

// -- resolution: which receivers a topic has, no delivery ---

// Resolve by id among 10k topics (cached sets): the entry, its version
// checks, and the set's header.
void BM_Router_ResolveById(benchmark::State& state) {
  static TenThousandTopics t;
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.router.receivers(t.ids[i]));
    i = (i + 7919) % kTopics;
  }
}
BENCHMARK(BM_Router_ResolveById);

// The same by name: hash + probe of the name table first.
void BM_Router_ResolveByName(benchmark::State& state) {
  static TenThousandTopics t;
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.router.receivers(*t.router.intern(t.names[i])));
    i = (i + 7919) % kTopics;
  }
}
BENCHMARK(BM_Router_ResolveByName);

// -- publish ---

// Publish by id among 10k topics, one subscriber each (+ one virtual delivery).
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

// Publish an inline payload to N subscribers of one topic, the result cache
// on (the default) or off (resolve under the mutex on every publish).
void BM_Router_Publish(benchmark::State& state) {
  RouterConfig c;
  c.result_cache = state.range(1) != 0;
  Router r(c);
  NullEndpoint ep;
  for (std::int64_t i = 0; i < state.range(0); ++i) (void)r.subscribe("fan.out", {&ep, static_cast<std::uint64_t>(i)});
  TopicId id = *r.intern("fan.out");
  Payload p = Payload::of(42);
  for (auto _ : state) benchmark::DoNotOptimize(r.publish(id, p));
  state.SetItemsProcessed(static_cast<std::int64_t>(ep.delivered));
}
BENCHMARK(BM_Router_Publish)
    ->ArgNames({"subscribers", "cache"})
    ->ArgsProduct({{1, 10, 1000}, {1}})
    ->Args({1, 0})
    ->Args({1000, 0});

// A topic matched by 100 wildcard patterns (of 100 subscribers) and one exact one.
void BM_Router_WildcardManyResults(benchmark::State& state) {
  Router r;
  NullEndpoint ep;
  for (std::uint64_t i = 0; i < 100; ++i) (void)r.subscribe(i % 2 ? "svc.*.events" : "svc.>", {&ep, i});
  (void)r.subscribe("svc.orders.events", {&ep, 1000});
  TopicId id = *r.intern("svc.orders.events");
  Payload p = Payload::of(1);
  for (auto _ : state) benchmark::DoNotOptimize(r.publish(id, p));
  state.SetItemsProcessed(static_cast<std::int64_t>(ep.delivered));
}
BENCHMARK(BM_Router_WildcardManyResults);

// A queue group of 8 members: one delivery per publish, round robin.
void BM_Router_QueueGroup(benchmark::State& state) {
  Router r;
  NullEndpoint ep;
  for (std::uint64_t i = 0; i < 8; ++i) (void)r.subscribe("jobs.>", {&ep, i}, "workers");
  TopicId id = *r.intern("jobs.resize");
  Payload p = Payload::of(1);
  for (auto _ : state) benchmark::DoNotOptimize(r.publish(id, p));
}
BENCHMARK(BM_Router_QueueGroup);

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
    Delivery d{0, t, 0, 0, 0, 0, 0, p};
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
