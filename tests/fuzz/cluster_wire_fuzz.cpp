// libFuzzer target: frames one cluster node sends another through NATS
// (cluster/wire.hpp). Any node on the same NATS account can send them, so a
// frame is outside input. Properties checked on every input:
//  - decode() gives a frame or an error naming what was wrong, never a crash,
//    frame after frame as a node reads a NATS message;
//  - the frames that decode re-encode to the bytes they came from (the codec
//    is its own inverse).
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
  std::string_view rest = bytes;
  std::string again;
  while (!rest.empty()) {
    auto f = decode(rest);
    if (!f) {
      if (f.error().empty()) std::abort();
      break;
    }
    encode(*f, again);
  }
  if (again != bytes.substr(0, bytes.size() - rest.size())) std::abort();
  return 0;
}
