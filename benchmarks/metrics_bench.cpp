// Hot-path instruments: Swarm's per-thread shards next to prometheus-cpp's own
// (atomic counter; mutex-guarded histogram), 1 and 2 threads on one series.

#include <benchmark/benchmark.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "metrics/registry.hpp"

namespace {

swarm::metrics::Registry& swarm_registry() {
  static swarm::metrics::Registry r;
  return r;
}

void BM_Counter_Increment(benchmark::State& state) {
  static const swarm::metrics::Counter c = swarm_registry().counter("bm_counter_total", "bench");
  for (auto _ : state) c.inc();
}
BENCHMARK(BM_Counter_Increment)->Threads(1)->Threads(2)->UseRealTime();

void BM_PrometheusCounter_Increment(benchmark::State& state) {
  static prometheus::Registry registry;
  static prometheus::Counter& c = prometheus::BuildCounter().Name("bm_counter_total").Register(registry).Add({});
  for (auto _ : state) c.Increment();
}
BENCHMARK(BM_PrometheusCounter_Increment)->Threads(1)->Threads(2)->UseRealTime();

// Durations spread over ~4 decades, so bucket lookup is not a constant.
std::uint64_t next_duration(std::uint64_t& x) {
  x = x * 6364136223846793005ull + 1442695040888963407ull;
  return 100 + (x >> 44);  // 100 ns .. ~1 ms
}

void BM_Histogram_Observe(benchmark::State& state) {
  static const swarm::metrics::Histogram h = swarm_registry().histogram("bm_seconds", "bench");
  std::uint64_t x = static_cast<std::uint64_t>(state.thread_index()) + 1;
  for (auto _ : state) h.observe_ns(next_duration(x));
}
BENCHMARK(BM_Histogram_Observe)->Threads(1)->Threads(2)->UseRealTime();

void BM_PrometheusHistogram_Observe(benchmark::State& state) {
  static prometheus::Registry registry;
  // Same export resolution as Swarm's: powers of two from 256 ns to 34 s.
  static prometheus::Histogram& h = []() -> prometheus::Histogram& {
    prometheus::Histogram::BucketBoundaries b;
    for (unsigned s = swarm::metrics::kExportMinShift; s <= swarm::metrics::kExportMaxShift; ++s) {
      b.push_back(static_cast<double>(std::uint64_t{1} << s) * 1e-9);
    }
    return prometheus::BuildHistogram().Name("bm_seconds").Register(registry).Add({}, b);
  }();
  std::uint64_t x = static_cast<std::uint64_t>(state.thread_index()) + 1;
  for (auto _ : state) h.Observe(static_cast<double>(next_duration(x)) * 1e-9);
}
BENCHMARK(BM_PrometheusHistogram_Observe)->Threads(1)->Threads(2)->UseRealTime();

void BM_Registry_Render(benchmark::State& state) {
  // A scrape of 100 counters and 10 histograms (what a small swarm exports).
  swarm::metrics::Registry r;
  for (int i = 0; i < 100; ++i) r.counter("bm_render_total", "bench", {{"worker", std::to_string(i)}}).inc();
  for (int i = 0; i < 10; ++i) r.histogram("bm_render_seconds", "bench", {{"type", std::to_string(i)}}).observe_ns(1000);
  for (auto _ : state) benchmark::DoNotOptimize(r.render());
}
BENCHMARK(BM_Registry_Render);

}  // namespace
