// swarm-load's own cost per message, next to the runtime call it makes for
// each one (the peer, measured in the same run).
//   swarm-microbench --benchmark_filter=Load --benchmark_repetitions=5

#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "apps/swarm-load/latency.hpp"
#include "apps/swarm-load/schedule.hpp"
#include "runtime/runtime.hpp"

namespace swarm {
namespace {

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

// What the harness adds to a message: the intended time from the rate
// controller, the 16-byte header written into the payload, and at the
// receiver a clock read and a record into the latency histogram.
void BM_Load_HarnessPerMessage(benchmark::State& state) {
  load::RateController rc(load::Schedule::constant(1e9, 1e3));  // 10^12 messages: never runs out
  load::LatencyRecorder recorder;
  std::array<std::byte, 16> buf{};
  for (auto _ : state) {
    const std::uint64_t header[2] = {rc.next_due_ns(), rc.next_index()};
    std::memcpy(buf.data(), header, sizeof header);
    const Payload p(std::span<const std::byte>(buf.data(), buf.size()));
    rc.advance();
    benchmark::DoNotOptimize(p);
    std::uint64_t got[2];
    std::memcpy(got, p.bytes().data(), sizeof got);
    const std::uint64_t now = now_ns();
    recorder.record(now > got[0] ? now - got[0] : 0, load::Phase::measured, true, now);
  }
}
BENCHMARK(BM_Load_HarnessPerMessage);

// The peer: the runtime's part of the same message, sent from an outside
// thread (as a generator does) to an agent on a worker, sustained.
class Sink : public Agent {
 public:
  explicit Sink(std::atomic<std::uint64_t>* seen) : seen_(seen) {}
  void on_message(Message&) override { seen_->fetch_add(1, std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t>* seen_;
};

void BM_Load_RuntimeSend(benchmark::State& state) {
  RuntimeConfig cfg;
  cfg.workers = 1;
  Runtime rt(cfg);
  std::atomic<std::uint64_t> seen{0};
  const AgentRef sink = rt.spawn<Sink>(&seen);
  std::array<std::byte, 16> buf{};
  std::uint64_t sent = 0;
  for (auto _ : state) {
    const Payload p(std::span<const std::byte>(buf.data(), buf.size()));
    while (rt.send(sink, p) != SendResult::ok) std::this_thread::yield();  // full: let the worker catch up
    ++sent;
  }
  while (seen.load(std::memory_order_relaxed) < sent) std::this_thread::yield();  // delivered, not just queued
  state.SetItemsProcessed(static_cast<std::int64_t>(sent));
}
BENCHMARK(BM_Load_RuntimeSend)->UseRealTime();

}  // namespace
}  // namespace swarm
