#pragma once
// The logic of swarm-bench without its command line: the workload table,
// statistics, the JSON contract, and running each repeat in a fresh child.
//
//   auto w = find_workload("W2");
//   auto rts = parse_runtimes("both");
//   auto sums = run_benchmark(**w, *rts, 5, {}, run_in_child, std::cerr);
//   for (const Summary& s : *sums) std::cout << summary_json(s) << '\n';

#include <functional>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "benchmarks/workloads.hpp"

namespace swarm::bench {

/// One measured run of a workload on a runtime.
using WorkloadFn = std::function<RunResult(const WorkloadParams&)>;

/// A standard workload and its implementation per runtime.
struct Workload {
  std::string_view id;           // "W2"
  std::string_view unit;         // "msgs/s"
  std::string_view description;  // one line, for --help
  WorkloadFn swarm;  // empty = not available on swarm
  WorkloadFn caf;    // empty = not available on CAF
  WorkloadFn raw = {};  // storage workloads: the raw client library doing the same writes
  /// The peer Swarm is compared with: "raw" for storage workloads, else "caf".
  std::string_view peer() const { return raw ? "raw" : "caf"; }
};

/// The runtimes a workload can run on, in output order.
inline constexpr std::string_view kRuntimes[] = {"swarm", "caf", "raw"};

/// All workloads, in display order.
std::span<const Workload> workloads();

/// The workload named `id`, or an error naming the allowed ids.
Result<const Workload*> find_workload(std::string_view id);

/// An error saying what to pass when `w` needs a server `p` does not name
/// (S1 --redis, S2 --postgres, C1-C3 --nats).
Result<void> check_servers(const Workload& w, const WorkloadParams& p);

/// `w`'s function for `runtime`; an error if the runtime is unknown or lacks `w`.
Result<WorkloadFn> workload_function(const Workload& w, std::string_view runtime);

/// "swarm", "caf", "raw" or "both" as the list of runtimes to run; "both" is
/// swarm and `w`'s peer (CAF when no workload is given).
Result<std::vector<std::string>> parse_runtimes(std::string_view name, const Workload* w = nullptr);

/// Median, min and max of some runs.
struct Stats {
  double median = 0;
  double min = 0;
  double max = 0;
};

/// Stats of `values`; the median of an even count is the mean of the middle two.
/// All zeros when `values` is empty.
Stats compute_stats(std::span<const double> values);

/// All repeats of one workload on one runtime.
struct Summary {
  std::string workload;
  std::string runtime;
  std::string unit;
  WorkloadParams params;
  std::vector<RunResult> runs;
};

/// One-line JSON object of `s`: workload, runtime, unit, median, min, max,
/// runs, (W1) bytes_per_agent, plus workers, scale, seconds, checksums.
std::string summary_json(const Summary& s);

/// One-line JSON of a run, as a child prints it.
std::string run_result_json(const RunResult& r);

/// The RunResult of a child's JSON line.
Result<RunResult> parse_run_result(std::string_view line);

/// `value` with a k/M/G prefix and the unit, e.g. "12.31 M msgs/s".
std::string format_rate(double value, std::string_view unit);

/// Human table of `sums` (all of one workload); with swarm and a peer, a last
/// line with the swarm/peer ratio of medians.
std::string format_table(std::span<const Summary> sums);

/// Runs one repeat of `w` on `runtime` and returns its result.
using Runner = std::function<Result<RunResult>(const Workload& w, std::string_view runtime,
                                               const WorkloadParams& params)>;

/// Runner that re-executes /proc/self/exe as
/// `EXE ID --child --runtime R --workers N --scale N` and parses its stdout.
Result<RunResult> run_in_child(const Workload& w, std::string_view runtime,
                               const WorkloadParams& params);

/// Like run_in_child, with the executable given (tests use other programs).
Result<RunResult> run_child_process(const std::string& exe, const Workload& w,
                                    std::string_view runtime, const WorkloadParams& params);

/// Child side: runs `w` once on `runtime` in this process and prints its JSON
/// line on stdout. Returns the process exit code.
int run_child(const Workload& w, std::string_view runtime, const WorkloadParams& params);

/// Runs `repeat` repeats per runtime, interleaving runtimes, with a progress
/// line per run on `progress`. One Summary per runtime, in `runtimes` order.
Result<std::vector<Summary>> run_benchmark(const Workload& w,
                                           std::span<const std::string> runtimes, int repeat,
                                           const WorkloadParams& params, const Runner& run,
                                           std::ostream& progress);

}  // namespace swarm::bench
