// libFuzzer target: frames one cluster node sends another through NATS
// (cluster/wire.hpp). Any node on the same NATS account can send them, so a
// frame is outside input. Properties checked on every input:
//  - decode() gives a frame or an error naming what was wrong, never a crash;
//  - what decodes re-encodes to the same bytes (the codec is its own inverse).
// Build and run: scripts/fuzz [seconds]

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cluster/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace swarm::cluster::wire;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto f = decode(bytes);
  if (!f) {
    if (f.error().empty()) std::abort();
    return 0;
  }
  std::string again;
  encode(*f, again);
  if (again != bytes) std::abort();
  return 0;
}
