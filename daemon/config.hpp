#pragma once
// swarmd's configuration: one YAML file (docs/swarmd.md lists every key).
//
//   auto config = daemon::load_config("swarm.yaml");
//   if (!config) { std::cerr << config.error() << "\n"; return 2; }
//
// Every error names the file, the line, the field, the bad value and what is
// allowed; unknown keys are errors, so a typo is never ignored.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "runtime/config.hpp"
#include "cluster/cluster.hpp"
#include "transport/gateway.hpp"

namespace swarm::daemon {

/// What happens when a process exits (OTP's restart types).
enum class RestartType : std::uint8_t {
  permanent,  // always restarted
  transient,  // restarted after an abnormal exit (non-zero code, or a signal swarmd did not send)
  temporary,  // never restarted
};
std::string_view to_string(RestartType t) noexcept;

/// What swarmd does when a process exceeds its restart intensity.
enum class GiveUp : std::uint8_t {
  shutdown,   // as OTP: the failure escalates; swarmd stops everything and exits 3
  stay_down,  // the process stays failed (swarmctl start revives it); the rest runs on
};
std::string_view to_string(GiveUp g) noexcept;

/// One external agent process (a pool of `instances` identical ones).
struct ProcessSpec {
  std::string name;
  std::vector<std::string> argv;               // argv[0] is looked up in PATH when it has no '/'
  std::map<std::string, std::string> env;      // added to swarmd's environment
  std::string cwd;                             // absolute (relative ones resolve against the config's folder)
  std::uint32_t instances = 1;
  RestartType restart = RestartType::permanent;
  std::uint32_t max_restarts = 5;               // restart intensity: at most this many...
  std::chrono::milliseconds restart_period{10'000};  // ...within this period, then give up
  GiveUp on_give_up = GiveUp::shutdown;
  /// Ready once it says HELLO to the gateway with its SWARM_NAME; false: ready once started.
  bool expect_hello = true;
  std::chrono::milliseconds start_timeout{10'000};
  std::chrono::milliseconds stop_timeout{5'000};  // SIGTERM to its group, then SIGKILL
  // Resource limits (0: not set).
  std::uint64_t limit_address_space = 0;  // bytes (RLIMIT_AS)
  std::uint64_t limit_open_files = 0;     // RLIMIT_NOFILE
  std::uint64_t limit_cpu_seconds = 0;    // RLIMIT_CPU
  // Output.
  std::uint32_t max_line_bytes = 4096;  // longer lines are cut (and counted)
  std::uint32_t keep_lines = 200;       // per instance, for swarmctl logs
  bool journal_output = false;          // each line also goes to the journal as a `message` event
  int line = 0;                         // where it is defined in the file (for messages)

  friend bool operator==(const ProcessSpec&, const ProcessSpec&) = default;
};

/// An in-process agent, of a type the program registered (daemon::AgentTypes).
struct AgentSpec {
  std::string type;
  std::uint32_t count = 1;
  std::map<std::string, std::string> options;  // passed to the type's factory as they are
  int line = 0;
};

struct DaemonConfig {
  std::string path;          // the file it was read from (absolute)
  RuntimeConfig runtime;     // workers, mailboxes, shutdown timeout, admin address
  std::string admin_token_file;  // empty: the default /tmp/swarmd-UID/control-PORT.token
  bool control = true;       // false: every /control endpoint answers 403
  bool gateway_enabled = true;
  transport::GatewayConfig gateway;
  std::string gateway_token_file;  // the gateway's token is read from here (empty: none)
  std::string state = "memory";    // "memory" or a redis:// URL
  std::string journal = "memory";  // "memory", "none" or a Postgres DSN
  std::vector<AgentSpec> agents;
  std::vector<ProcessSpec> processes;
  std::optional<cluster::ClusterConfig> cluster;  // absent: a node on its own
};

/// Parses `text` (`origin` names it in errors). Checks everything that can be
/// checked without a server: URLs, DSNs, files named, agent types (when
/// `known_types` is given), duplicate names.
Result<DaemonConfig> parse_config(std::string_view text, std::string_view origin,
                                  const std::vector<std::string>* known_types = nullptr);
/// Reads and parses a file.
Result<DaemonConfig> load_config(const std::string& path, const std::vector<std::string>* known_types = nullptr);

/// The first line of a file, trailing spaces and CR removed (tokens, passwords).
std::string read_first_line(const std::string& path);

/// A duration as the config writes it: "250ms", "10s", "2m" (the error names `field`).
Result<std::chrono::milliseconds> parse_duration(std::string_view text, std::string_view field);
/// The same with microseconds allowed (200us).
Result<std::chrono::microseconds> parse_duration_us(std::string_view text, std::string_view field);

}  // namespace swarm::daemon
