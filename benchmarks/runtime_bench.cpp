// Micro-benchmarks of the runtime's building blocks.
//   swarm-microbench --benchmark_filter=Spawn --benchmark_repetitions=5

#include <benchmark/benchmark.h>

#include <thread>
#include <vector>

#include "runtime/detail/envelope_pool.hpp"
#include "runtime/detail/mpsc_queue.hpp"
#include "runtime/runtime.hpp"

namespace swarm {
namespace {

// -- mailbox ---

void BM_Mailbox_PushPop(benchmark::State& state) {
  detail::MpscQueue q;
  detail::Envelope e;
  for (auto _ : state) {
    q.push(&e);
    benchmark::DoNotOptimize(q.pop());
  }
}
BENCHMARK(BM_Mailbox_PushPop);

// One producer thread, the benchmark thread consumes: the cross-core cost.
void BM_Mailbox_PushPopCrossThread(benchmark::State& state) {
  detail::MpscQueue q;
  constexpr int kNodes = 4096;
  std::vector<detail::Envelope> nodes(kNodes);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> consumed{0};
  std::thread producer([&] {
    std::uint64_t produced = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      if (produced - consumed.load(std::memory_order_acquire) < kNodes) {
        q.push(&nodes[produced % kNodes]);
        ++produced;
      }
    }
  });
  std::uint64_t n = 0;
  for (auto _ : state) {
    while (q.pop() == nullptr) {
    }
    consumed.store(++n, std::memory_order_release);
  }
  stop = true;
  producer.join();
}
BENCHMARK(BM_Mailbox_PushPopCrossThread)->UseRealTime();

void BM_Envelope_PoolMakeFree(benchmark::State& state) {
  for (auto _ : state) detail::free_envelope(detail::make_envelope());
}
BENCHMARK(BM_Envelope_PoolMakeFree);

void BM_Envelope_NewDelete(benchmark::State& state) {
  for (auto _ : state) {
    auto* e = new detail::Envelope();
    benchmark::DoNotOptimize(e);
    delete e;
  }
}
BENCHMARK(BM_Envelope_NewDelete);

// -- spawn ---

class Idle : public Agent {
 public:
  void on_message(Message&) override {}
  char state_[64] = {};  // a small agent with some state of its own
};

// Spawn with recycled memory (the steady state): every 10k spawns the agents
// are stopped, untimed, so their memory returns to the pool or the heap.
void BM_Runtime_Spawn(benchmark::State& state) {
  RuntimeConfig c;
  c.workers = 1;
  c.pooling = state.range(0) != 0;
  Runtime rt(c);
  std::vector<AgentRef> refs;
  refs.reserve(10'000);
  for (auto _ : state) {
    refs.push_back(rt.spawn<Idle>());
    if (refs.size() == 10'000) {
      state.PauseTiming();
      for (AgentRef r : refs) rt.stop(r);
      while (rt.stats().live != 0) std::this_thread::yield();
      refs.clear();
      state.ResumeTiming();
    }
  }
}
BENCHMARK(BM_Runtime_Spawn)->ArgName("pooled")->Arg(1)->Arg(0);

// Spawn and exit, both timed: the full life of a short-lived agent.
void BM_Runtime_SpawnExit(benchmark::State& state) {
  RuntimeConfig c;
  c.workers = 1;
  c.pooling = state.range(0) != 0;
  Runtime rt(c);
  for (auto _ : state) {
    AgentRef r = rt.spawn<Idle>();
    rt.stop(r);
    if ((state.iterations() & 1023) == 0) rt.wait_idle();
  }
  rt.wait_idle();
}
BENCHMARK(BM_Runtime_SpawnExit)->ArgName("pooled")->Arg(1)->Arg(0)->UseRealTime();

}  // namespace
}  // namespace swarm

BENCHMARK_MAIN();
