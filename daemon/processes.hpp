#pragma once
// Supervises external agent processes (daemon::ProcessSpec) with OTP
// semantics: restart types, restart intensity, start and stop timeouts,
// process groups, resource limits, output read line by line.
//
//   daemon::ProcessSupervisor sup({.gateway_endpoint = gw.endpoint(), .metrics = &rt.metrics()});
//   sup.apply(config.processes);    // starts them; later calls apply the difference
//   sup.hello("tool-0");           // the gateway saw its HELLO: it is running
//   sup.stop_all();                // reverse start order, each with its stop timeout
//
// One thread, whatever the number of processes: an epoll loop over each
// process's pidfd and output pipes, with one timeout for all deadlines. Every
// fork happens on that thread (so PR_SET_PDEATHSIG, which follows the forking
// thread, kills the children only when swarmd itself is gone). Memory per
// process is bounded: a line longer than max_line_bytes is cut, and only the
// newest keep_lines lines are kept. Thread-safe.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "daemon/config.hpp"
#include "runtime/persistence.hpp"

namespace swarm::metrics {
class Registry;
}

namespace swarm::daemon {

enum class ProcessState : std::uint8_t { starting, running, stopping, stopped, exited, failed };
std::string_view to_string(ProcessState s) noexcept;

/// Why a process ended. Metric labels (swarm_process_exits_total{reason}).
enum class ExitReason : std::uint8_t {
  normal,         // exit code 0
  error,          // a non-zero exit code
  signal,         // killed by a signal swarmd did not send
  stopped,        // stopped by swarmd (SIGTERM honoured)
  stop_timeout,   // ignored SIGTERM for stop_timeout: SIGKILLed
  start_timeout,  // no HELLO within start_timeout (or none again after its session ended): SIGKILLed
  exec_failed,    // could not be started (program not found, cwd or limits refused)
};
inline constexpr int kExitReasonCount = 7;
std::string_view to_string(ExitReason r) noexcept;

/// One instance of a process, as swarmctl shows it.
struct InstanceInfo {
  std::string name;     // "tool" or, with instances > 1, "tool-0", "tool-1", ...
  std::string process;  // the ProcessSpec's name
  std::uint32_t instance = 0;
  int pid = 0;          // 0 when not running
  ProcessState state = ProcessState::stopped;
  std::uint64_t restarts = 0;
  double uptime_seconds = 0;  // since its last start
  std::string last_exit;      // "" before the first exit
  std::vector<std::string> argv;
};

struct OutputLine {
  std::uint64_t seq = 0;  // increases across all processes
  std::string name;       // the instance
  bool is_stderr = false;
  std::int64_t at_us = 0;  // wall clock
  std::string text;        // without the newline; cut to max_line_bytes
};

struct SupervisorOptions {
  /// Given to every process as SWARM_GATEWAY (and SWARM_TOKEN when set).
  std::string gateway_endpoint = {};
  std::string gateway_token = {};
  /// Output lines are written here as "NAME| text" ("NAME (stderr)| text"),
  /// once per wakeup rather than once per line; -1: not written.
  int log_fd = -1;
  /// Each output line, on the supervisor's thread with its lock held: keep
  /// it quick, and never call the supervisor from it.
  std::function<void(const OutputLine&)> on_line = {};
  /// Lifecycle events and, where asked, output lines. None: not journaled.
  std::shared_ptr<LifecycleSink> journal = {};
  /// A process with on_give_up = shutdown exceeded its restart intensity
  /// (called once, on the supervisor's thread; must not call back in).
  std::function<void(const std::string& why)> on_escalation = {};
  /// swarm_process_* series go here. None: no metrics.
  metrics::Registry* metrics = nullptr;
};

/// What apply() changed.
struct ApplySummary {
  std::vector<std::string> added, removed, changed;
};

class ProcessSupervisor {
 public:
  explicit ProcessSupervisor(SupervisorOptions options);
  /// stop_all(), then joins its thread.
  ~ProcessSupervisor();
  ProcessSupervisor(const ProcessSupervisor&) = delete;
  ProcessSupervisor& operator=(const ProcessSupervisor&) = delete;

  /// Makes the supervised set match `specs`: new processes are started (in
  /// list order), removed ones stopped, changed ones restarted with their new
  /// spec. Returns once every start has been attempted.
  ApplySummary apply(const std::vector<ProcessSpec>& specs);
  /// NAME is a process (all its instances) or one instance. The error names
  /// what exists when NAME does not.
  Result<std::vector<std::string>> restart(const std::string& name);
  Result<std::vector<std::string>> stop(const std::string& name);
  /// Starts stopped, exited or failed instances (and resets a failed process's intensity).
  Result<std::vector<std::string>> start(const std::string& name);
  /// Stops everything, process by process in reverse start order, each with
  /// its stop timeout; returns when all have exited. Nothing is restarted after.
  void stop_all();

  /// The gateway saw a HELLO (or a session end) from a client of this name.
  void hello(const std::string& client_name);
  void goodbye(const std::string& client_name);

  std::vector<InstanceInfo> instances() const;
  /// Kept lines of NAME, oldest first: the newest `lines` when after is 0,
  /// else the oldest `lines` with seq > after (to follow without gaps).
  Result<std::vector<OutputLine>> logs(const std::string& name, std::size_t lines, std::uint64_t after) const;

  struct State;  // behind the API (processes.cpp)

 private:
  std::unique_ptr<State> state_;
};

}  // namespace swarm::daemon
