// Scheduler fairness: does an agent made runnable by a long handler start on
// an idle worker while that handler still runs?
//   swarm-microbench --benchmark_filter=BurstToIdleConsumer --benchmark_repetitions=5

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "runtime/runtime.hpp"

namespace swarm {
namespace {

constexpr std::uint64_t kBurst = 100'000;

// One burst's shared state, reset by the benchmark thread between bursts.
struct Burst {
  std::atomic<bool> producer_returned{false};  // the producer's handler is about to return
  std::atomic<std::uint64_t> consumed{0};      // messages the consumer has handled
  std::atomic<std::uint64_t> early{0};         // ... of which before producer_returned
  std::atomic<std::uint64_t> handler_ns{0};    // how long the producer's handler ran
  std::atomic<int> finished{0};                // producer returned + consumer done: 2

  void finish() {
    finished.fetch_add(1, std::memory_order_release);
    finished.notify_all();
  }
};

// Spins for about `ns`: a handler's own work.
void work_for(std::int64_t ns) {
  if (ns == 0) return;
  const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
  while (std::chrono::steady_clock::now() < until) {
  }
}

class BurstConsumer : public Agent {
 public:
  static constexpr std::string_view kTypeName = "BurstConsumer";
  BurstConsumer(Burst& burst, std::int64_t work_ns) : burst_(burst), work_ns_(work_ns) {}
  void on_message(Message&) override {
    work_for(work_ns_);
    if (!burst_.producer_returned.load(std::memory_order_acquire)) ++early_;
    if (++handled_ == kBurst) {  // publish once per burst: the consumer itself stays cheap
      burst_.early.store(early_, std::memory_order_relaxed);
      burst_.consumed.store(handled_, std::memory_order_release);
      burst_.finish();
      handled_ = 0;
      early_ = 0;
    }
  }

 private:
  Burst& burst_;
  std::int64_t work_ns_;
  std::uint64_t handled_ = 0;
  std::uint64_t early_ = 0;
};

// Sends the whole burst from one handler.
class BurstProducer : public Agent {
 public:
  BurstProducer(Burst& burst, AgentRef consumer) : burst_(burst), consumer_(consumer) {}
  void on_message(Message&) override {
    const auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < kBurst; ++i) (void)send(consumer_, i);
    burst_.handler_ns.store(static_cast<std::uint64_t>((std::chrono::steady_clock::now() - t0).count()),
                            std::memory_order_relaxed);
    burst_.producer_returned.store(true, std::memory_order_release);
    burst_.finish();
  }

 private:
  Burst& burst_;
  AgentRef consumer_;
};

// One iteration: a producer's single handler sends 100k messages to an idle
// consumer (whose handler does nothing, or spins consumer_ns per message);
// time until the consumer has handled all of them and the handler returned.
// Counters: consumed_early = the fraction of messages handled before the
// producer's handler returned (0 when the consumer waits for the producer's
// worker); first_early = the fraction of bursts whose first message was;
// handler_ms = how long the producer's handler ran.
void BM_Scheduler_BurstToIdleConsumer(benchmark::State& state) {
  RuntimeConfig c;
  c.workers = 2;
  c.mailbox_by_type["BurstConsumer"] = MailboxOptions{static_cast<std::uint32_t>(2 * kBurst), OverflowPolicy::reject};
  Runtime rt(c);
  Burst burst;
  AgentRef consumer = rt.spawn<BurstConsumer>(burst, state.range(0));
  AgentRef producer = rt.spawn<BurstProducer>(burst, consumer);
  std::uint64_t early = 0;
  std::uint64_t handler_ns = 0;
  std::uint64_t first_early = 0;  // bursts whose first message was handled early
  for (auto _ : state) {
    state.PauseTiming();
    burst.producer_returned.store(false);
    burst.consumed.store(0);
    burst.finished.store(0);
    rt.wait_idle();  // both workers parked again
    state.ResumeTiming();
    (void)rt.send(producer, std::uint64_t{0});
    // Block (not spin): the two workers get the machine's two cores.
    for (int f = 0; f != 2; f = burst.finished.load(std::memory_order_acquire)) {
      burst.finished.wait(f, std::memory_order_acquire);
    }
    const std::uint64_t e = burst.early.load(std::memory_order_relaxed);
    early += e;
    handler_ns += burst.handler_ns.load(std::memory_order_relaxed);
    first_early += e != 0 ? 1 : 0;
  }
  const double bursts = static_cast<double>(state.iterations());
  state.counters["consumed_early"] = static_cast<double>(early) / (bursts * kBurst);
  state.counters["first_early"] = static_cast<double>(first_early) / bursts;
  state.counters["handler_ms"] = static_cast<double>(handler_ns) / bursts / 1e6;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBurst));
}
BENCHMARK(BM_Scheduler_BurstToIdleConsumer)
    ->ArgName("consumer_ns")
    ->Arg(0)
    ->Arg(200)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace swarm
