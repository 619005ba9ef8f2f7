#pragma once
// A built-in sampling CPU profiler: every thread of the process, symbolized,
// as folded stacks ready for render_svg() or to_folded().
//
//   auto r = metrics::profile_cpu({.duration = std::chrono::seconds(5), .frequency_hz = 99});
//   if (!r) return log(r.error());            // "profiler: a profile is already running"
//   std::string svg = metrics::render_svg(*r, {.title = "CPU"});
//   std::string folded = metrics::to_folded(*r);  // for flamegraph.pl, inferno, speedscope
//
// How: for each thread (rescanned from /proc/self/task every 100 ms) a POSIX
// timer on the thread's CPU-time clock sends it SIGPROF every 1/frequency of
// CPU time it uses, so idle threads cost nothing and get no samples. The
// handler walks frame pointers, reading each frame with process_vm_readv (or a
// pipe write where seccomp forbids that) so a bad pointer cannot crash it, and
// stores the program counters in a lock-free ring that the profiling thread
// drains. Afterwards each address is named
// through libdw (which also knows static functions), else dladdr, else
// "module+0xoffset", and demangled.
//
// Contract:
// - Blocks the calling thread for `duration`. That thread is not sampled.
// - Only one profile runs at a time in the process; a second one returns an
//   error at once. Outside a profile no timer and no SIGPROF handler exists:
//   the previous SIGPROF action is restored and every timer deleted.
// - Stacks are root first: "<thread name>;main;...;leaf". Frames of code
//   built without frame pointers (often libc) end a stack early. Samples lost
//   to a full ring appear as the stack "[dropped]".
// - The kernel checks CPU-time timers at its tick, so a thread yields at most
//   CONFIG_HZ samples per CPU-second (often 250) whatever frequency_hz says.
// - If SIGPROF already has a handler (another profiler), profile_cpu() refuses.
// - A thread whose CPU clock cannot be used is sampled on wall-clock time
//   instead (stats.wall_clock_threads): it is sampled even when idle, and a
//   blocking call may return EINTR where SA_RESTART does not apply.
// - x86-64 Linux only; elsewhere profile_cpu() returns an error.
//
// Thread-safe: any thread may call profile_cpu() and cpu_profile_running().

#include <atomic>
#include <chrono>
#include <cstdint>

#include "base/result.hpp"
#include "metrics/flamegraph.hpp"

namespace swarm::metrics {

struct ProfileOptions {
  std::chrono::milliseconds duration{1000};  // 1 ms .. 1 hour
  int frequency_hz = 99;                     // 1 .. 1000 samples per CPU-second per thread
  int max_depth = 64;                        // frames per stack, 1 .. 128
  bool thread_names = true;                  // root each stack at the thread's name
  const std::atomic<bool>* stop = nullptr;   // if set, the profile ends early once it is true
};

/// What a profile saw, besides its stacks.
struct ProfileStats {
  std::uint64_t samples = 0;   // stored samples, including "[dropped]" ones
  std::uint64_t dropped = 0;   // samples lost because the ring was full
  int threads = 0;             // threads that had a timer at some point
  int wall_clock_threads = 0;  // of those, sampled on CLOCK_MONOTONIC
};

/// Samples every thread of the process for `options.duration` and returns
/// their folded stacks (weight = samples). Errors: invalid options, another
/// profile running, unsupported platform, or no SIGPROF handler could be
/// installed. If `stats` is not null it is filled in on success.
Result<FoldedStacks> profile_cpu(const ProfileOptions& options, ProfileStats* stats = nullptr);

/// True while a profile_cpu() call is running somewhere in the process.
bool cpu_profile_running();

// -- test hooks ---

/// Reads frames through a pipe write (the fallback when process_vm_readv is
/// not allowed, e.g. by a seccomp filter) instead of process_vm_readv.
void use_pipe_reader_for_test(bool on);

}  // namespace swarm::metrics
