// Micro-benchmarks of the runtime's building blocks.
//   swarm-microbench --benchmark_filter=Spawn --benchmark_repetitions=5

#include <benchmark/benchmark.h>

#include <future>
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

// The full life of a short-lived agent, on a worker: an agent spawns a child,
// the child reports back from on_start and exits. One iteration = one child.
class Child : public Agent {
 public:
  explicit Child(AgentRef spawner) : spawner_(spawner) {}
  void on_start() override {
    (void)send(spawner_, std::uint64_t{1});
    stop();
  }
  void on_message(Message&) override {}

 private:
  AgentRef spawner_;
};

class Spawner : public Agent {
 public:
  Spawner(std::uint64_t batch, std::promise<void>*& done) : batch_(batch), done_(done) {}
  void on_message(Message& m) override {
    if (!m.sender.valid()) {  // from the benchmark thread: start a batch
      for (std::uint64_t i = 0; i < batch_; ++i) spawn<Child>(self());
    } else if (++returned_ % batch_ == 0) {
      done_->set_value();
    }
  }

 private:
  std::uint64_t batch_;
  std::promise<void>*& done_;
  std::uint64_t returned_ = 0;
};

void BM_Runtime_SpawnExit(benchmark::State& state) {
  constexpr std::uint64_t kBatch = 1000;
  RuntimeConfig c;
  c.workers = 1;
  c.pooling = state.range(0) != 0;
  Runtime rt(c);
  std::promise<void>* done = nullptr;
  AgentRef spawner = rt.spawn<Spawner>(kBatch, done);
  for (auto _ : state) {
    std::promise<void> batch_done;
    done = &batch_done;
    (void)rt.send(spawner, std::uint64_t{0});
    batch_done.get_future().wait();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBatch));
}
BENCHMARK(BM_Runtime_SpawnExit)->ArgName("pooled")->Arg(1)->Arg(0)->UseRealTime();

}  // namespace
}  // namespace swarm

BENCHMARK_MAIN();
