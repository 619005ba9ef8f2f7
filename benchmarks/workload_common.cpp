#include <unistd.h>

#include <fstream>

#include "benchmarks/workloads.hpp"

namespace swarm::bench {

std::string_view to_string(WorkloadParams::Pooling p) {
  switch (p) {
    case WorkloadParams::Pooling::on: return "on";
    case WorkloadParams::Pooling::off: return "off";
    case WorkloadParams::Pooling::runtime_default: break;
  }
  return "default";
}

bool send_asap_for(std::string_view workload, const WorkloadParams& p) {
  if (p.send_asap) return *p.send_asap;
  return workload != "C1";
}

std::vector<std::uint32_t> random_topics(std::uint64_t n, std::uint32_t topics) {
  std::vector<std::uint32_t> out(n);
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;  // xorshift64: fast, and the same everywhere
  for (auto& t : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t = static_cast<std::uint32_t>(x % topics);
  }
  return out;
}

std::vector<std::uint64_t> count_per_topic(const std::vector<std::uint32_t>& sequence, std::uint32_t topics) {
  std::vector<std::uint64_t> counts(topics, 0);
  for (std::uint32_t t : sequence) ++counts[t];
  return counts;
}

std::uint64_t resident_bytes() {
  // statm: size resident shared text lib data dt, in pages.
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace swarm::bench
