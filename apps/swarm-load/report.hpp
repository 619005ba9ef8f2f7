#pragma once
// Results of swarm-load runs: the human table, the JSON file, and the
// comparison of two runs that CI scripts use to catch regressions.
//
//   std::fputs(format_table(run).c_str(), stdout);
//   if (auto ok = write_json(run, "base.json"); !ok) fail(ok.error());
//   Comparison c = compare(*read_json("base.json"), *read_json("new.json"), {.threshold = 0.10});
//   std::fputs(format_comparison(c, "base.json", "new.json").c_str(), stdout);
//   return c.regression() ? 1 : 0;
//
// JSON ("format": "swarm-load/1") holds at least scenario, target_rate,
// throughput_msgs_per_s, latency_seconds {p50, p90, p99, p999, max}, dropped
// (by reason, and total) and histogram (every non-empty bucket), plus the
// time series, CPU, memory and the scenario's fields. Readers ignore fields
// they do not know, so later versions may add some.

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "apps/swarm-load/driver.hpp"
#include "base/result.hpp"

namespace swarm::load {

// -- JSON ---

nlohmann::json to_json(const RunResult& r);
/// The run to_json() wrote; the error names the missing or malformed field.
Result<RunResult> run_from_json(const nlohmann::json& j);
/// Writes to_json(r) to `path` ("-" = stdout).
Result<void> write_json(const RunResult& r, const std::string& path);
Result<RunResult> read_json(const std::string& path);

// -- human output ---

/// Latency in ns as "850 ns", "12.3 us", "4.56 ms", "1.20 s".
std::string format_latency_ns(double ns);
/// 1234567 -> "1,234,567".
std::string format_count(double v);
/// The results of one run as an aligned table, with notes at the end.
std::string format_table(const RunResult& r);

// -- comparison ---

enum class Verdict : std::uint8_t { ok, better, regression, not_judged };
std::string_view to_string(Verdict v);

/// Metrics compare() can judge: throughput (higher is better); p50, p90,
/// p99, p999, max, cpu (CPU seconds per completed message) and dropped (the
/// fraction of sent messages dropped) — lower is better.
inline constexpr std::string_view kComparableMetrics[] = {"throughput", "p50", "p90", "p99", "p999", "max",
                                                          "dropped", "cpu"};

struct CompareOptions {
  double threshold = 0.10;  // a change worse than this fraction is a regression
  /// Judged metrics (others are shown, not judged). max is noisy and CPU
  /// depends on the machine's other load, so neither is judged by default.
  std::vector<std::string> metrics = {"throughput", "p50", "p90", "p99", "p999", "dropped"};
};

struct CompareRow {
  std::string metric;
  double a = 0, b = 0;
  double ratio = 0;  // b / a (inf when a is 0 and b is not; 1 when both are 0)
  bool higher_is_better = false;
  Verdict verdict = Verdict::not_judged;
};

struct Comparison {
  std::vector<CompareRow> rows;
  std::vector<std::string> warnings;  // different scenarios, rates, machines; runs that did not drain
  double threshold = 0.10;
  bool regression() const;
};

/// Compares run `b` (new) against `a` (baseline).
Comparison compare(const RunResult& a, const RunResult& b, const CompareOptions& options = {});
/// Side by side, with ratios, verdicts and a last line saying the outcome.
std::string format_comparison(const Comparison& c, const std::string& a_label, const std::string& b_label);
/// Parses "10%" or "0.1". Error names the flag.
Result<double> parse_fraction(std::string_view text, std::string_view flag);

}  // namespace swarm::load
