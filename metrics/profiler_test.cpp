#include "metrics/profiler.hpp"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <string>
#include <thread>

namespace swarm::metrics::testing {
std::string xml_error(std::string_view doc);  // in flamegraph_test.cpp
}  // namespace swarm::metrics::testing

// Outside any namespace and not inlined, so the names in the stacks are exact.
// The inner one is static: only libdw's .symtab lookup can name it, not dladdr.
volatile double swarm_profiler_test_sink = 0;

__attribute__((noinline, noclone)) static void swarm_profiler_test_inner_xyz() {
  double x = swarm_profiler_test_sink;
  for (int i = 1; i < 20000; ++i) x += std::sqrt(static_cast<double>(i) * 1.0001);
  swarm_profiler_test_sink = x;
}

__attribute__((noinline)) void swarm_profiler_test_burn_cpu_xyz(const std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) swarm_profiler_test_inner_xyz();
  asm volatile("" ::: "memory");  // keep this frame: no tail call into the loop above
}

namespace swarm::metrics {
namespace {

using namespace std::chrono_literals;

// A named thread burning CPU in swarm_profiler_test_burn_cpu_xyz until destroyed.
class Burner {
 public:
  explicit Burner(const char* name) {
    thread_ = std::thread([this, name] {
      pthread_setname_np(pthread_self(), name);
      named_.store(true);
      swarm_profiler_test_burn_cpu_xyz(stop_);
    });
    while (!named_.load()) std::this_thread::sleep_for(1ms);
  }
  ~Burner() {
    stop_.store(true);
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> named_{false};
  std::thread thread_;
};

std::uint64_t weight_containing(const FoldedStacks& p, std::string_view what) {
  std::uint64_t sum = 0;
  for (const auto& [stack, weight] : p.stacks) {
    if (stack.find(what) != std::string::npos) sum += weight;
  }
  return sum;
}

std::string dump(const FoldedStacks& p) { return to_folded(p).substr(0, 4000); }

bool sigprof_is_default() {
  struct sigaction old {};
  sigaction(SIGPROF, nullptr, &old);
  return old.sa_handler == SIG_DFL && (old.sa_flags & SA_SIGINFO) == 0;
}

// Lines of /proc/self/timers for timers that send SIGPROF ("" if none, or no such file).
std::string sigprof_timers() {
  std::ifstream in("/proc/self/timers");
  std::string line, found;
  while (std::getline(in, line)) {
    if (line.rfind("signal: " + std::to_string(SIGPROF) + "/", 0) == 0) found += line + "\n";
  }
  return found;
}

void expect_burner_dominates(const FoldedStacks& p, const ProfileStats& stats, const std::string& thread) {
  const std::uint64_t total = p.total();
  ASSERT_GE(total, 10u) << "too few samples: " << dump(p);
  EXPECT_EQ(stats.samples, total);
  EXPECT_GE(stats.threads, 1);
  // The burner is the only busy thread; CPU-time sampling makes its share
  // independent of how loaded the machine is.
  EXPECT_GT(weight_containing(p, "swarm_profiler_test_burn_cpu_xyz"), total / 2) << dump(p);
  EXPECT_GT(weight_containing(p, thread + ";"), total / 2) << dump(p);
  // Root first: thread name, then caller, then callee.
  for (const auto& [stack, weight] : p.stacks) {
    std::size_t outer = stack.find("swarm_profiler_test_burn_cpu_xyz");
    std::size_t inner = stack.find("swarm_profiler_test_inner_xyz");
    if (outer == std::string::npos || inner == std::string::npos) continue;
    EXPECT_EQ(stack.rfind(thread + ";", 0), 0u) << stack;
    EXPECT_LT(outer, inner) << stack;
  }
  const std::string caller_then_static =
      "swarm_profiler_test_burn_cpu_xyz(std::atomic<bool> const&);"
      "swarm_profiler_test_inner_xyz()";
  EXPECT_GT(weight_containing(p, caller_then_static), 0u) << "static functions are named through libdw: " << dump(p);
}

TEST(CpuProfiler, FindsTheFunctionThatBurnsCpu) {
  Burner burner("prof-burner");
  ProfileStats stats;
  auto r = profile_cpu({.duration = 1s, .frequency_hz = 199}, &stats);
  ASSERT_TRUE(r) << r.error();
  expect_burner_dominates(*r, stats, "prof-burner");
}

TEST(CpuProfiler, PipeReaderFindsItToo) {
  Burner burner("prof-pipe");
  use_pipe_reader_for_test(true);
  ProfileStats stats;
  auto r = profile_cpu({.duration = 700ms, .frequency_hz = 199}, &stats);
  use_pipe_reader_for_test(false);
  ASSERT_TRUE(r) << r.error();
  expect_burner_dominates(*r, stats, "prof-pipe");
}

TEST(CpuProfiler, SamplesThreadsStartedDuringTheProfile) {
  std::unique_ptr<Burner> late;
  std::thread starter([&] {
    std::this_thread::sleep_for(200ms);
    late = std::make_unique<Burner>("prof-late");
  });
  auto r = profile_cpu({.duration = 1s, .frequency_hz = 199});
  starter.join();
  late.reset();
  ASSERT_TRUE(r) << r.error();
  EXPECT_GT(weight_containing(*r, "prof-late;"), 0u) << dump(*r);
}

TEST(CpuProfiler, ItsFlamegraphIsWellFormed) {
  Burner burner("prof-svg");
  auto r = profile_cpu({.duration = 300ms, .frequency_hz = 199});
  ASSERT_TRUE(r) << r.error();
  std::string svg = render_svg(*r, {.title = "CPU", .unit = "samples"});
  EXPECT_EQ(testing::xml_error(svg), "");
  EXPECT_NE(svg.find("swarm_profiler_test_burn_cpu_xyz(std::atomic&lt;bool&gt; const&amp;)"), std::string::npos);
}

TEST(CpuProfiler, NoTimerAndNoHandlerOutsideAProfile) {
  ASSERT_TRUE(sigprof_is_default());
  ASSERT_EQ(sigprof_timers(), "");
  Burner burner("prof-off");
  auto r = profile_cpu({.duration = 100ms, .frequency_hz = 1000});
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(sigprof_is_default());
  EXPECT_EQ(sigprof_timers(), "");
  EXPECT_FALSE(cpu_profile_running());
  std::this_thread::sleep_for(50ms);  // a stray SIGPROF now would kill the process
}

TEST(CpuProfiler, OneProfileAtATime) {
  std::thread first([] {
    auto r = profile_cpu({.duration = 500ms});
    EXPECT_TRUE(r) << r.error();
  });
  while (!cpu_profile_running()) std::this_thread::sleep_for(1ms);
  auto second = profile_cpu({.duration = 10ms});
  first.join();
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), "profiler: a profile is already running");
  auto third = profile_cpu({.duration = 10ms});  // free again
  EXPECT_TRUE(third) << third.error();
}

TEST(CpuProfiler, RefusesWhenSigprofHasAnotherHandler) {
  struct sigaction mine {};
  struct sigaction old {};
  mine.sa_handler = [](int) {};
  sigemptyset(&mine.sa_mask);
  sigaction(SIGPROF, &mine, &old);
  auto r = profile_cpu({.duration = 10ms});
  sigaction(SIGPROF, &old, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "profiler: SIGPROF already has a handler (another profiler is active)");
  EXPECT_FALSE(cpu_profile_running());
}

TEST(CpuProfiler, BadOptionsSayWhatIsWrong) {
  auto error_of = [](const ProfileOptions& o) {
    auto r = profile_cpu(o);
    return r ? std::string("(no error)") : r.error();
  };
  EXPECT_EQ(error_of({.duration = 0ms}), "profiler: duration 0 ms is out of range (1 ms .. 1 h)");
  EXPECT_EQ(error_of({.duration = 2h}), "profiler: duration 7200000 ms is out of range (1 ms .. 1 h)");
  EXPECT_EQ(error_of({.frequency_hz = 0}), "profiler: frequency 0 Hz is out of range (1 .. 1000 Hz)");
  EXPECT_EQ(error_of({.frequency_hz = 1001}), "profiler: frequency 1001 Hz is out of range (1 .. 1000 Hz)");
  EXPECT_EQ(error_of({.max_depth = 0}), "profiler: max_depth 0 is out of range (1 .. 128)");
  EXPECT_EQ(error_of({.max_depth = 129}), "profiler: max_depth 129 is out of range (1 .. 128)");
  EXPECT_FALSE(cpu_profile_running());
}

TEST(CpuProfiler, DepthOneKeepsOnlyTheLeaf) {
  Burner burner("prof-leaf");
  auto r = profile_cpu({.duration = 300ms, .frequency_hz = 199, .max_depth = 1, .thread_names = false});
  ASSERT_TRUE(r) << r.error();
  for (const auto& [stack, weight] : r->stacks) EXPECT_EQ(stack.find(';'), std::string::npos) << stack;
  EXPECT_GT(weight_containing(*r, "swarm_profiler_test_inner_xyz"), r->total() / 2) << dump(*r);
}

}  // namespace
}  // namespace swarm::metrics
