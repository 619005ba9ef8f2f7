#pragma once
// swarmd as a library. A C++ program with agent types of its own becomes the
// daemon by registering them and handing its main() over:
//
//   int main(int argc, char** argv) {
//     swarm::daemon::AgentTypes types;
//     types.add("planner", [](swarm::Runtime& rt, const swarm::daemon::AgentSpec& a) -> swarm::Result<void> {
//       for (std::uint32_t i = 0; i < a.count; ++i) rt.spawn<Planner>(a.options);
//       return {};
//     });
//     return swarm::daemon::main(argc, argv, types);   // swarmd's command line, signals, exit codes
//   }
//
// The config's `agents:` list names these types; docs/swarmd.md has the rest.

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "daemon/config.hpp"
#include "runtime/runtime.hpp"

namespace swarm::daemon {

/// Spawns `spec.count` agents of one type with `spec.options`; an error
/// (e.g. a bad option) stops swarmd at start with the message.
using AgentFactory = std::function<Result<void>(Runtime& rt, const AgentSpec& spec)>;

class AgentTypes {
 public:
  void add(std::string type, AgentFactory factory) { factories_[std::move(type)] = std::move(factory); }
  const AgentFactory* find(const std::string& type) const {
    auto it = factories_.find(type);
    return it == factories_.end() ? nullptr : &it->second;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, f] : factories_) out.push_back(name);
    return out;
  }

 private:
  std::map<std::string, AgentFactory> factories_;
};

/// swarmd's exit codes.
inline constexpr int kExitOk = 0;         // stopped by SIGTERM/SIGINT, drain or --seconds; everything flushed
inline constexpr int kExitFailure = 1;    // could not start (port taken, ...) or could not flush what it accepted
inline constexpr int kExitUsage = 2;      // bad command line or config
inline constexpr int kExitEscalated = 3;  // a process exceeded its restart intensity with on_give_up: shutdown

struct RunOptions {
  std::chrono::seconds seconds{0};  // stop after this long (0: run until told)
};

/// Runs `config` until SIGTERM/SIGINT, a drain, an escalation or `seconds`;
/// SIGHUP re-reads config.path. Returns the exit code. Blocks SIGTERM, SIGINT
/// and SIGHUP in the calling thread: call it before starting other threads.
int run(const DaemonConfig& config, const AgentTypes& types, RunOptions options = {});

/// swarmd's command line: `swarmd --config FILE [--seconds N]`,
/// `swarmd check-config FILE`, `swarmd --help`.
int main(int argc, char** argv, const AgentTypes& types = {});

/// The control token file of an admin port when the config names none.
std::string default_token_file(std::uint16_t admin_port);

}  // namespace swarm::daemon
