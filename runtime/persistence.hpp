#pragma once
// What the runtime hands to storage: persistent agents' state (a StateStore)
// and the agents' lifecycle history (a LifecycleSink). storage/ implements
// both (in memory, Redis, Postgres); the runtime knows only these interfaces,
// so it never waits on a server and is testable without one.
//
//   RuntimeConfig cfg;
//   cfg.state_store = storage::make_memory_state_store();
//   cfg.lifecycle = journal;   // a std::shared_ptr<storage::Journal>
//
// A persistent agent names its key in its constructor and overrides
// snapshot()/restore() (see Agent::persist_as). Thread-safety: every
// implementation is thread-safe.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace swarm {

namespace metrics {
class Collector;
}

/// One agent's state as stored.
struct StoredState {
  std::string data;               // what Agent::snapshot() returned
  std::uint64_t version = 0;      // 1 for the first snapshot of a key, +1 per snapshot since
  std::int64_t updated_ms = 0;    // wall clock of the snapshot, ms since the Unix epoch

  friend bool operator==(const StoredState&, const StoredState&) = default;
};

/// Where persistent agents' state lives. Write-behind: put() only queues.
class StateStore {
 public:
  /// Writes what it can within a bounded time, then stops.
  virtual ~StateStore() = default;

  /// Queues `state` as the newest for `key`; an unwritten older state of the
  /// same key is replaced (coalescing), so the buffer is bounded by the number
  /// of keys. Never blocks on I/O, never throws, never drops.
  virtual void put(std::string_view key, StoredState state) = 0;

  using LoadCallback = std::function<void(Result<std::optional<StoredState>>)>;
  /// Fetches the newest state of `key` (a queued, unwritten one counts) and
  /// calls `done` exactly once, on any thread, possibly before load returns:
  /// with the state, nullopt when the key has none, or an error only when
  /// the store is closing (while the server is down, loads wait for it).
  virtual void load(std::string key, LoadCallback done) = 0;

  /// Returns when everything put before the call is written, or an error
  /// after `timeout` saying how much is still pending and why.
  virtual Result<void> flush(std::chrono::milliseconds timeout) = 0;

  /// For /readyz: OK, or why the store cannot write now.
  virtual Result<void> ready() const = 0;

  /// `rewrite` is called (on any thread) when what the store wrote may be
  /// gone from the server, e.g. a Redis that restarted (without persistence,
  /// or losing its last fsync interval): the owner then puts every live
  /// state again. A runtime given the store sets it; stores that cannot lose
  /// what they wrote never call it. Set once, before the first put.
  virtual void on_written_state_lost(std::function<void()> rewrite) { (void)rewrite; }

  /// Adds the store's series to a scrape; the runtime calls it for its /metrics.
  virtual void collect(metrics::Collector& out) const { (void)out; }
};

/// A lifecycle event of one agent. Values of Kind equal storage::EventKind's.
struct LifecycleEvent {
  enum class Kind : std::uint8_t { spawned, exited, crashed, restarted, message };
  Kind kind;
  std::uint64_t agent;            // AgentRef bits
  std::string_view agent_type;
  std::string_view detail;        // exit/crash reason; the topic of a `message`
  std::string_view payload = {};  // `message` only: the bytes published
};

/// Receives lifecycle events (and audited messages) from the runtime, on the
/// thread where they happen (often a worker): it must only queue, never block.
class LifecycleSink {
 public:
  virtual ~LifecycleSink() = default;
  virtual void record(const LifecycleEvent& event) noexcept = 0;
  /// For /readyz: OK, or why events cannot be written now.
  virtual Result<void> ready() const { return {}; }
  /// Returns when what was recorded is durable (called at shutdown).
  virtual Result<void> flush(std::chrono::milliseconds timeout) {
    (void)timeout;
    return {};
  }
  /// Adds the sink's series to a scrape; the runtime calls it for its /metrics.
  virtual void collect(metrics::Collector& out) const { (void)out; }
};

}  // namespace swarm
