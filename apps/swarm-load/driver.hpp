#pragma once
// The driver: builds the swarm of a scenario on a swarm::Runtime, sends the
// load from generator threads, measures every message end to end, and
// returns the results.
//
//   Scenario s = *builtin_scenario("pipeline");
//   s.rate = 200'000; s.seconds = 5;
//   Result<RunResult> r = run_scenario(s, {.progress = print_line});
//   if (r) std::printf("p99 %.1f us\n", r->latency.quantile(0.99) / 1e3);
//
// Latency: every payload starts with a 16-byte header holding the message's
// intended send time (steady clock, ns). The receiver at the end of the path
// (pipeline: the last stage; fanout/topics: each subscriber; request-reply:
// the client, when the reply arrives) records now − intended on its worker's
// shard of a LatencyRecorder. In open loop the intended time comes from the
// schedule, so a generator or a swarm that falls behind is charged for the
// whole delay (coordinated-omission correction); in closed loop it is the
// actual send time.
//
// A run: build the swarm; wait until it is idle; send for `warmup` seconds
// (recorded apart, excluded from results), then for the measured seconds or
// messages; wait up to `drain_timeout` for the messages in flight; shut the
// runtime down. A time series (one point per second) covers the whole run.
//
// Across nodes (the scenario's `nats` set): this process joins the NATS
// servers as cluster node "swarm-load-pub" (prefix "swarm-load") and keeps the
// publishers — the generators and the request-reply clients; it spawns a
// second swarm-load process (`swarm-load _subscriber-node`, hidden) that
// joins as "swarm-load-sub" and runs the rest: the pipeline chains (each
// chain's first stage subscribes to load.lane.N, on which the generator
// publishes instead of sending), the fanout and topics subscribers, the
// request-reply servers. Every message crosses NATS once (request-reply:
// there and back). The load starts when each node sees the other and this
// one sees the subscribers' interest. The other process records its
// latencies (now − the stamp written here: both on this machine's steady
// clock, so both processes must run on one machine) and reports its counts
// over a Unix socket every 2 ms, its histograms when asked. Results add both
// processes' runtime drops and the cluster's own drops of both nodes
// (dropped.cluster_<reason>), both processes' CPU time, and a "cluster"
// section (frames, bytes, round trip per node).

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "apps/swarm-load/latency.hpp"
#include "apps/swarm-load/scenario.hpp"
#include "base/result.hpp"
#include "runtime/config.hpp"

namespace swarm::load {

/// One point of the time series: what happened in one interval (about a second).
struct IntervalStats {
  double t = 0;            // end of the interval, seconds since the run started
  double seconds = 0;      // its length
  bool warmup = false;     // it ended before measurement started
  double target_rate = 0;  // open loop: the schedule's mean rate over it (0: closed loop)
  std::uint64_t sent = 0;
  std::uint64_t completed = 0;     // messages that reached the end of their path
  std::uint64_t observations = 0;  // latency samples (fanout: one per receiver)
  std::uint64_t dropped = 0;       // runtime drops + requests lost
  double p50 = 0, p99 = 0, max = 0;  // seconds, over the interval's observations

  double sent_rate() const { return seconds > 0 ? static_cast<double>(sent) / seconds : 0; }
  double completed_rate() const { return seconds > 0 ? static_cast<double>(completed) / seconds : 0; }
};

/// Totals for the progress line, as of the end of an interval.
struct LiveTotals {
  double measured_p99 = 0;    // seconds, measured observations so far (0 during warm-up)
  std::uint64_t in_flight = 0;  // sent − completed − dropped (about; fanout counts one receiver)
  std::uint64_t dropped = 0;    // since the start
};

/// Drop reasons reported: the runtime's (DropReason) plus `timeout` (a
/// request-reply request that got no answer in time).
inline constexpr std::array<std::string_view, 7> kDropReasons = {
    "mailbox_full", "no_subscriber", "dead_agent", "expired", "remote_unreachable", "shutting_down", "timeout"};

struct RunResult {
  std::string scenario;          // its name
  std::string scenario_json;     // every field of the scenario, as JSON text
  std::string mode;              // "open" | "closed"
  double target_rate = 0;        // open loop: mean intended rate over the measured window; closed: 0
  std::string schedule;          // open loop: the measured schedule, described
  std::string started_at;        // UTC, ISO 8601
  double warmup_seconds = 0;
  double measured_seconds = 0;   // from the end of warm-up to the last measured send or completion
  std::uint64_t sent = 0;        // measured messages sent
  std::uint64_t completed = 0;   // measured messages that reached the end of their path
  std::uint64_t observations = 0;
  double throughput = 0;         // completed / measured_seconds, messages/s
  LatencyHistogram latency;      // measured observations, ns
  std::map<std::string, std::uint64_t> dropped;  // kDropReasons, plus "total"; measured window and drain
  double cpu_user_seconds = 0, cpu_system_seconds = 0;  // the whole process, over the measured window and drain
  std::uint64_t peak_rss_bytes = 0;  // the process's peak (ru_maxrss)
  double generator_cpu_seconds = 0;  // CPU of the generator threads over the whole run
  double generator_ns_per_message = 0;  // generator CPU per message sent (the harness's sending cost)
  double generator_max_lag_seconds = 0;  // open loop: the latest a measured message left after its intended time
  unsigned workers = 0;
  unsigned cores = 0;
  std::string host;
  bool drained = true;           // every message was accounted for before drain_timeout
  std::vector<std::string> notes;  // things the reader should know (did not drain, generator fell behind, ...)
  std::vector<IntervalStats> timeline;
  std::string cluster_json;      // cross-node runs: the "cluster" section, as JSON text (empty: one process)

  std::uint64_t dropped_total() const {
    auto it = dropped.find("total");
    return it == dropped.end() ? 0 : it->second;
  }
};

struct RunOptions {
  /// Called on the driver's thread after every interval (about once a second).
  std::function<void(const IntervalStats&, const LiveTotals&)> progress;
  /// Set (from a signal handler, another thread) to stop sending early; the
  /// run then drains and reports what it measured.
  const std::atomic<bool>* stop = nullptr;
  /// Seconds per time-series point.
  double interval = 1.0;
  /// Cross-node runs: the swarm-load executable that runs the subscriber
  /// node (empty: this process's own, /proc/self/exe).
  std::string node_binary;
};

/// Runs `scenario`. REQUIRES: validate(scenario) passed. Errors: the runtime
/// or a storage backend could not start (bad admin address, port taken,
/// malformed URL), with their message.
Result<RunResult> run_scenario(const Scenario& scenario, const RunOptions& options = {});

/// The hidden `swarm-load _subscriber-node` mode: builds the subscriber side
/// of `scenario` (REQUIRES: validated, `nats` set), joins the cluster, and
/// talks to the run that spawned it through the socket `link_fd`
/// (node_link.hpp) until told to stop or the socket closes. Returns the exit
/// status (0, or 1 after sending {"error": ...}).
int run_subscriber_node(const Scenario& scenario, int link_fd);

/// Applies the scenario's storage choice to `config` (state store, journal,
/// audited topics). An error for a malformed URL or DSN.
Result<void> configure_storage(const Scenario& scenario, RuntimeConfig& config);

}  // namespace swarm::load
