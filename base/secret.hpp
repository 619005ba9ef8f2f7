#pragma once
// Comparing a secret (a token) with what a client sent.

#include <cstddef>
#include <string_view>

namespace swarm {

/// True when `given` equals `secret`, in a time that depends on the length of
/// `given` alone, not on where the two differ. False when `secret` is empty.
inline bool equal_constant_time(std::string_view given, std::string_view secret) noexcept {
  if (secret.empty()) return false;
  unsigned char diff = given.size() == secret.size() ? 0 : 1;
  for (std::size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i] ^ secret[i % secret.size()]);
  }
  return diff == 0;
}

}  // namespace swarm
