#pragma once
// What the Swarm-side workloads share: the runtime configuration of a run,
// the standard payload, latency summaries, and the second process of the
// two-process workloads (G1..G3, C1..C3).

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "benchmarks/workloads.hpp"
#include "runtime/runtime.hpp"

namespace swarm::bench {

using Clock = std::chrono::steady_clock;

/// Throws "ID: what", the error swarm-bench prints for a run.
[[noreturn]] void fail(std::string_view id, const std::string& what);

/// Workers, pooling and telemetry as the parameters ask.
RuntimeConfig config_for(const WorkloadParams& p);

/// The 64-byte payload of the gateway and cluster workloads.
inline constexpr std::size_t kPayloadBytes = 64;
const std::string& payload_bytes();

inline double to_us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }
inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

/// Median and p99 (nearest rank) of `us`, sorted in place.
std::pair<double, double> median_p99(std::vector<double>& us);

/// This executable again (`swarm-bench ARGS...`), its stdout on a pipe and,
/// with `with_stdin`, its stdin too (closing it is the child's signal to
/// finish). `who` names it in errors ("node A"). Killed if still running when
/// destroyed (an error path).
class ChildProcess {
 public:
  ChildProcess(std::string_view id, std::string who, std::vector<std::string> args, bool with_stdin);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  /// The next line it prints, or nullopt once `deadline` passed. Throws if it
  /// exits first.
  std::optional<std::string> read_line(Clock::time_point deadline);
  /// `line` as the JSON object it printed; throws on an error line.
  nlohmann::json parse(const std::string& line);
  /// The next JSON line, within `wait`; throws on a deadline or a bad line.
  nlohmann::json result(std::chrono::seconds wait);
  /// Closes its stdin, if it has one, and waits for a clean exit.
  void finish();

 private:
  std::string wait();  // "exited with status N" / "was killed by signal N"

  std::string id_;
  std::string who_;
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  std::string buffer_;
};

}  // namespace swarm::bench
