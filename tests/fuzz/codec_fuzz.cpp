// libFuzzer target: SWP/1 messages as a client or gateway may send them
// (docs/protocol.md). The input is cut into frames (each: one length byte,
// then that many bytes). Properties checked on every input:
//  - decode() gives a command or an error naming what was wrong, never a crash;
//  - an error's code is one of the protocol's, and its message is not empty;
//  - what decodes re-encodes to frames that decode to the same command, and
//    encoding those again gives the same frames (the codec is its own inverse).
// Build and run: scripts/fuzz [seconds]

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "transport/codec.hpp"

namespace {
void require(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace swarm::transport;
  std::vector<std::string_view> frames;
  std::size_t i = 0;
  while (i < size) {
    const std::size_t len = std::min<std::size_t>(data[i], size - i - 1);
    frames.emplace_back(reinterpret_cast<const char*>(data + i + 1), len);
    i += 1 + len;
  }
  Limits limits;
  limits.max_payload_bytes = 64;  // reach the too_large paths with small inputs
  auto d = decode(frames, limits);
  if (!d) {
    const auto code = static_cast<int>(d.error().code);
    require(code >= 1 && code <= kErrorCodeCount);
    require(!d.error().message.empty());
    return 0;
  }
  const Frames once = encode(d->body);
  std::vector<std::string_view> views(once.begin(), once.end());
  auto again = decode(views, limits);
  require(static_cast<bool>(again));
  require(again->command == d->command);
  require(encode(again->body) == once);
  return 0;
}
