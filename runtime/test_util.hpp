#pragma once
// Helpers for runtime tests: wait for a condition without fixed sleeps.

#include <chrono>
#include <functional>
#include <thread>

namespace swarm::test {

/// Polls `cond` until true or `timeout`; returns its last value.
inline bool eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

}  // namespace swarm::test
