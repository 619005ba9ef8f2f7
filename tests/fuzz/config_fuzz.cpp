// libFuzzer target: swarmd's YAML config (daemon/config.cpp), as an operator
// may write it. Properties checked on every input:
//  - parse_config() gives a config or an error, never a crash;
//  - an error names the file (and a line, once the text is YAML at all);
//  - an accepted config keeps the promises the supervisor relies on.
// Build and run: scripts/fuzz [seconds]

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "daemon/config.hpp"

namespace {
void require(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<std::string> types = {"planner", "aggregator"};
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = swarm::daemon::parse_config(text, "/etc/swarm/fuzz.yaml", &types);
  if (!config) {
    require(config.error().starts_with("/etc/swarm/fuzz.yaml:"));
    return 0;
  }
  for (const auto& p : config->processes) {
    require(!p.name.empty() && !p.argv.empty() && !p.argv[0].empty());
    require(p.instances >= 1 && p.max_line_bytes >= 80);
    require(p.start_timeout.count() > 0 && p.stop_timeout.count() >= 0);
  }
  for (const auto& a : config->agents) require(a.type == "planner" || a.type == "aggregator");
  require(config->runtime.validate().has_value());
  return 0;
}
