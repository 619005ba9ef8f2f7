#pragma once
// Runtime configuration and its validation. Bad values are rejected at start-up
// with a message naming the field and the allowed values.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "router/router.hpp"
#include "runtime/clock.hpp"
#include "runtime/persistence.hpp"

namespace swarm {

/// What a full mailbox does with one more message.
enum class OverflowPolicy : std::uint8_t {
  reject,       // the new message is refused and the sender sees SendResult::mailbox_full
  drop_oldest,  // the oldest queued message is dropped to make room (counted)
  drop_newest,  // the new message is dropped (counted); the sender sees SendResult::dropped
};
std::string_view to_string(OverflowPolicy p);
/// Parses "reject" | "drop_oldest" | "drop_newest"; the error names `field`.
Result<OverflowPolicy> parse_overflow_policy(std::string_view text, std::string_view field);

/// Mailbox settings of one agent type.
struct MailboxOptions {
  std::uint32_t capacity = 1024;
  OverflowPolicy overflow = OverflowPolicy::reject;
};

/// What shutdown() does with messages still queued.
enum class ShutdownPolicy : std::uint8_t {
  drain,    // let agents process every queued message first
  discard,  // drop queued messages (counted as dead_agent) and stop at once
};

/// A handler that has run longer than TelemetryConfig::slow_handler_threshold.
struct SlowHandler {
  std::uint64_t agent_bits = 0;  // AgentRef::bits() of the agent
  std::string type;              // its agent type
  unsigned worker = 0;           // the worker running it
  std::chrono::nanoseconds running_for{0};  // at least this long so far (still running)
};

/// Metrics, latency histograms, slow-consumer tracking and the admin port.
struct TelemetryConfig {
  /// Off: no hot-path instrument is touched (counters the runtime keeps for
  /// itself still are); /metrics then shows those alone. For overhead benchmarks.
  bool enabled = true;
  /// 1 in N messages, spawns and publishes is timed (queueing delay, handler
  /// duration, spawn, fan-out); 1..65536. Counts come from counters, not samples.
  std::uint32_t sample_every = 64;
  /// Agents named in the slow-consumer top-N (by mailbox depth and by queueing delay); 0..1000.
  std::uint32_t slow_consumers = 10;
  /// Hard cap on exported series; what it cuts is counted.
  std::size_t max_series = 10000;
  /// A handler running longer than this is reported once (log line, counter,
  /// callback); 0 turns the watchdog off.
  std::chrono::milliseconds slow_handler_threshold{1000};
  /// Called on the watchdog thread, while the slow handler still runs.
  std::function<void(const SlowHandler&)> on_slow_handler;
  /// Admin HTTP address "HOST:PORT" (":PORT" = 127.0.0.1); empty: no admin port.
  std::string admin;
};

struct RuntimeConfig {
  /// Never more worker threads than this, whatever the configuration or load.
  static constexpr unsigned kMaxWorkers = 256;
  static constexpr std::uint32_t kMaxMailboxCapacity = 1u << 24;
  static constexpr std::chrono::microseconds kDefaultIdleSpin{200};

  unsigned workers = default_workers();  // 1..kMaxWorkers; defaults to the number of cores
  std::uint32_t throughput_budget = 64;  // messages per activation before yielding
  MailboxOptions default_mailbox{};
  std::map<std::string, MailboxOptions, std::less<>> mailbox_by_type;  // agent type name -> options
  bool pooling = true;                  // per-type object pools for agents
  std::chrono::milliseconds timer_tick{1};
  /// The longest a worker with nothing to do keeps looking for work before it
  /// parks (0..10 ms; 0: park after a brief search). Waking a parked worker
  /// costs tens to hundreds of microseconds on a VM, so at steady light loads
  /// a short spin is the difference in latency. The window adapts per worker,
  /// like the kernel's halt polling: it grows while work comes back soon after
  /// a park and shrinks when it does not, so an idle runtime does not spin.
  /// One worker spins at a time.
  std::chrono::microseconds idle_spin = kDefaultIdleSpin;
  /// A publish on a worker queues the agents it makes runnable together, with
  /// one wake-up, instead of one by one (false: one by one).
  bool batch_fanout = true;
  /// A publish from a handler to 128 agents or more is shared out in parts
  /// that a worker with nothing of its own to run helps deliver (its receivers
  /// then run there); the publish still returns once every delivery is made,
  /// with the same result and order (false: the publishing worker makes them
  /// all). Off by default: faster in the machine's slow stretches, slower in
  /// its quick ones (docs/benchmarks.md, "W3: shared fan-out").
  bool shared_fanout = false;
  /// The message that makes an idle agent runnable is handed to it with its
  /// scheduling instead of going through its mailbox: one atomic exchange
  /// fewer for the sender and for the receiver (false: every message through
  /// the mailbox). Same order, bounds and counts either way.
  bool wake_handoff = true;
  /// With wake_handoff: a publish hands the idle subscribers it wakes one
  /// shared message, which each copies on its own worker, instead of building
  /// an envelope for each (false: an envelope each). Off by default: faster
  /// in the machine's slow stretches, slower in its quick ones
  /// (docs/benchmarks.md, "The waking message handed over").
  bool fanout_handoff = false;
  std::chrono::milliseconds shutdown_timeout{5000};
  router::RouterConfig router{};        // topic limits, queue-group policy, dead-letter topic
  TelemetryConfig telemetry{};
  /// Where persistent agents' state goes (storage::make_memory_state_store(),
  /// make_redis_state_store()); none: agents cannot persist_as().
  std::shared_ptr<StateStore> state_store;
  /// Receives spawned/exited/crashed/restarted events and audited messages
  /// (a storage::Journal); none: no history is kept.
  std::shared_ptr<LifecycleSink> lifecycle;
  /// Topic patterns whose published messages go to `lifecycle` as `message`
  /// events (the message audit log). REQUIRES: lifecycle is set.
  std::vector<std::string> audit_topics;
  /// Time for timers, ask timeouts and supervision (runtime/clock.hpp); none:
  /// the real steady clock. A test::ManualClock makes those exact in tests.
  std::shared_ptr<Clock> clock;
  /// Step mode, for deterministic tests (swarm::test::DeterministicRuntime
  /// sets it): no worker threads and no timer thread; agents run only on the
  /// thread that calls the runtime's run_once / run_until_idle, and timers fire
  /// only when the clock is advanced. `workers` is ignored (one logical
  /// worker). REQUIRES: clock is a test::ManualClock.
  bool step_mode = false;

  /// OK, or an error that names the first bad field and its allowed values.
  Result<void> validate() const;
  /// The number of cores, clamped to 1..kMaxWorkers.
  static unsigned default_workers();
};

}  // namespace swarm
