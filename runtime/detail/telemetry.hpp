#pragma once
// The runtime's telemetry: its metrics registry and hot-path instruments, the
// scrape-time callbacks that turn the runtime's own counters and queues into
// USE series, the slow-consumer scan, the logical profile (handler time by
// supervisor path; agent type; topic), the slow-handler watchdog thread and
// the admin HTTP port. docs/metrics.md lists every series.
//
// Cost model: latency is measured on 1 in `sample_every` messages, spawns and
// publishes (a thread-local countdown; two clock reads per sampled message);
// everything else is read from counters the runtime keeps anyway, at scrape
// time. With telemetry off, sample() is one predictable branch.
//
// Thread-safe: hot-path members are called by workers; the rest by scrapes,
// the admin server and the watchdog thread.

#include <atomic>
#include <functional>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>


#include "base/mutex.hpp"
#include "metrics/flamegraph.hpp"
#include "metrics/registry.hpp"
#include "runtime/config.hpp"
#include "runtime/detail/runtime_view.hpp"
#include "runtime/message.hpp"

namespace swarm {
struct AgentTypeInfo;
}  // namespace swarm

namespace swarm::metrics {
class AdminServer;
}

namespace swarm::detail {

struct Slot;
struct Worker;


inline std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

// Counts down to the next sampled event on this thread (shared by runtimes).
inline thread_local std::uint32_t tls_sample_countdown = 1;

/// One agent as seen by a scan of the agent table.
struct AgentSample {
  AgentRef ref;
  std::uint16_t type = 0;
  std::uint32_t depth = 0;     // queued messages
  std::uint32_t capacity = 0;
  std::uint32_t delay_us = 0;  // moving average of sampled queueing delays
};

/// A racy snapshot of every live agent, for /debug/agents and the slow-consumer series.
struct AgentScan {
  struct ByType {
    std::uint64_t idle = 0, queued = 0, running = 0;
  };
  std::vector<ByType> by_type;               // index: type id
  std::uint64_t messages = 0;                // queued in all mailboxes
  std::uint64_t backlogged = 0;              // agents with at least one queued message
  double max_fill = 0;                       // deepest mailbox / its capacity
  std::vector<AgentSample> deepest, slowest;  // top N, worst first
};

class Telemetry {
 public:
  Telemetry(const RuntimeView& rt, const TelemetryConfig& config);
  ~Telemetry();
  Telemetry(const Telemetry&) = delete;
  Telemetry& operator=(const Telemetry&) = delete;

  /// Registers the scrape callbacks, starts the watchdog and the admin port
  /// (throws std::runtime_error if the port cannot be bound).
  void start();
  /// Stops the admin port and the watchdog. Idempotent.
  void stop();

  // -- hot path ---

  bool on() const noexcept { return on_; }
  /// True for 1 in sample_every calls on this thread (never when off).
  bool sample() noexcept {
    // The countdown is per thread, not per runtime: one left by a runtime
    // with a larger sample_every restarts here.
    if (!on_ || (--tls_sample_countdown != 0 && tls_sample_countdown < sample_every_)) return false;
    tls_sample_countdown = sample_every_;
    return true;
  }
  /// A sampled message's handler ran from `start` to `end` (ns); it was queued at `enqueued`.
  void record_handler(Slot& slot, const AgentTypeInfo& type, unsigned worker, std::uint32_t path,
                      std::uint32_t topic, std::uint64_t enqueued, std::uint64_t start, std::uint64_t end) noexcept;

  metrics::Histogram spawn_time, ask_time, fanout_time, timer_lag;
  metrics::Counter timer_undeliverable;

  // -- control plane ---

  metrics::Registry& registry() noexcept { return registry_; }
  void init_type(AgentTypeInfo& type);
  /// The supervisor-path id of a child of an agent on `parent_path` of type `parent_type`.
  std::uint32_t child_path(std::uint32_t parent_path, unsigned parent_type);
  AgentScan scan(std::size_t top) const;
  /// Handler time since start by "path;type;topic", in ns (sampled, scaled up).
  metrics::FoldedStacks logical_profile() const;
  std::string agents_json(std::size_t top) const;
  std::string topics_json(std::size_t top) const;
  /// The bound admin port, 0 without one.
  std::uint16_t admin_port() const noexcept;
  metrics::AdminServer* admin() noexcept { return admin_.get(); }
  /// A JSON page under /debug/ (Runtime::set_debug_page); nothing without an admin port.
  void set_debug_page(std::string path, std::function<std::string()> render);
  void remove_debug_page(const std::string& path);

 private:
  void collect(metrics::Collector& c);
  void watch();
  std::string type_name(unsigned id) const;
  std::string agent_label(const AgentSample& a) const;

  static constexpr std::uint32_t kMaxPaths = 1u << 20;
  static constexpr std::uint32_t kOtherTopics = kNoTopic - 1;

  // Handler ns by (path, type, topic) key, one open-addressing table per
  // worker. Only that worker writes (a key once, then plain load+store adds);
  // readers acquire the key, then read the total. Keys never move or leave.
  struct LogicalShard {
    static constexpr std::uint32_t kSlots = 4096;
    static constexpr std::uint32_t kMaxProbe = 32;
    static constexpr std::uint64_t kUsed = 1ull << 63;  // marks a key (a key may be 0)
    struct Entry {
      std::atomic<std::uint64_t> key{0};
      std::atomic<std::uint64_t> ns{0};
    };
    std::unique_ptr<Entry[]> entries{new Entry[kSlots]};
    /// Owner only. False when the key has no place (the table is full around it).
    bool add(std::uint64_t key, std::uint64_t ns) noexcept;
  };

  // -- constant after construction ---
  const RuntimeView& rt_;
  const TelemetryConfig config_;
  const bool on_;
  const std::uint32_t sample_every_;
  const std::uint64_t started_ns_;
  metrics::Registry registry_;
  metrics::Histogram queueing_delay_;
  std::unique_ptr<LogicalShard[]> logical_;

  // -- guarded by paths_mu_ ---
  mutable Mutex paths_mu_;
  std::map<std::string, std::pair<metrics::Histogram, metrics::Counter>, std::less<>> type_series_
      SWARM_GUARDED_BY(paths_mu_);
  std::vector<std::pair<std::uint32_t, unsigned>> paths_ SWARM_GUARDED_BY(paths_mu_);  // id -> (parent path, type)
  std::unordered_map<std::uint64_t, std::uint32_t> path_ids_ SWARM_GUARDED_BY(paths_mu_);

  // -- scrape state (callbacks run one scrape at a time) ---
  std::vector<double> busy_exported_;  // keeps busy seconds monotonic across racy reads
  std::uint64_t callback_id_ = 0;

  // -- watchdog ---
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool watch_stop_ = false;
  std::thread watchdog_;
  std::map<std::string, metrics::Counter> slow_by_type_;  // by type name; watchdog thread only

  std::unique_ptr<metrics::AdminServer> admin_;
};

}  // namespace swarm::detail
