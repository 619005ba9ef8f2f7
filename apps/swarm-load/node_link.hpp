#pragma once
// Cross-node runs (driver.hpp, the scenario's `nats`): the link between a run
// and the second swarm-load process that holds its subscribers.
//
//   auto node = SubscriberNode::start(binary, subscriber_node_args(s), 60s);  // spawned, built, joined
//   NodeCounts c = node->counts();            // its latest counts (every 2 ms)
//   auto snap = node->snapshot(5s);           // its histograms now
//   auto last = node->finish(30s);            // it leaves, shuts down, says what it measured, exits
//
// One Unix socket between the two (the other process's fd 3), one line each way:
//   run -> node:  "snapshot" | "stop"        (end of file: stop)
//   node -> run:  JSON objects, one a line:
//     {"ready": {"pid", "workers"}}          once it is built, joined, and sees the run's node
//     {"error": "why"}                       instead of ready; then it exits 1
//     {"counts": {...}}                      every 2 ms (NodeCounts)
//     {"snapshot": {"counts", "all", "measured"}}           the answer to "snapshot" (histograms)
//     {"final": {"counts", "all", "measured", "cluster"}}   after "stop", once it left and shut down

#include <sys/types.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/swarm-load/latency.hpp"
#include "apps/swarm-load/scenario.hpp"
#include "base/result.hpp"
#include "cluster/cluster.hpp"
#include "runtime/message.hpp"

namespace swarm::load {

inline constexpr const char* kClusterPrefix = "swarm-load";  // subjects and buckets of cross-node runs
inline constexpr const char* kPublisherNode = "swarm-load-pub";
inline constexpr const char* kSubscriberNode = "swarm-load-sub";
inline constexpr int kLinkFd = 3;  // the socket's fd in the subscriber node's process

/// What a process counted so far (monotonic, like the counters it copies).
struct NodeCounts {
  std::uint64_t completed[2] = {0, 0};  // by Phase
  std::uint64_t lost[2] = {0, 0};
  std::uint64_t last_completion_ns = 0;  // measured, steady clock
  std::array<std::uint64_t, kDropReasonCount> runtime_lost{};  // its runtime's drops and refusals, by DropReason
  std::array<std::uint64_t, cluster::kRemoteDropReasons> cluster_dropped{};  // its cluster node's, by RemoteDrop
  double cpu_user = 0, cpu_system = 0;  // seconds, the whole process
  std::uint64_t max_rss = 0;            // bytes
};

struct NodeReport {
  NodeCounts counts;
  LatencyHistogram all, measured;
  nlohmann::json cluster;  // final only: cluster_summary() of that node
};

nlohmann::json to_json(const NodeCounts& c);
Result<NodeCounts> counts_from_json(const nlohmann::json& j);
nlohmann::json to_json(const NodeReport& r);
Result<NodeReport> report_from_json(const nlohmann::json& j);

/// A node's ClusterStats without interest lists: what results keep.
nlohmann::json cluster_summary(const cluster::ClusterStats& s, std::string_view node, std::string_view role);

/// The cluster config of a cross-node run's node `node`: s.nats, kClusterPrefix.
cluster::ClusterConfig node_config(const Scenario& s, const char* node);

/// `--set FIELD=VALUE` arguments that rebuild the subscriber side of `s`
/// (topology, sizes, work, mailboxes, workers, telemetry, storage, nats).
std::vector<std::string> subscriber_node_args(const Scenario& s);

/// The run's end of the link: the other process. Thread-safe.
class SubscriberNode {
 public:
  /// Spawns `binary _subscriber-node --link-fd 3 ARGS...` (in this thread's
  /// CPU mask) and waits up to `timeout` for it to be ready; an error says
  /// what it said, or how it ended.
  static Result<std::unique_ptr<SubscriberNode>> start(const std::string& binary, const std::vector<std::string>& args,
                                                       std::chrono::milliseconds timeout);
  /// Closes the link (it stops), waits up to 10 s for it to exit, then kills it.
  ~SubscriberNode();
  SubscriberNode(const SubscriberNode&) = delete;
  SubscriberNode& operator=(const SubscriberNode&) = delete;

  pid_t pid() const noexcept { return pid_; }
  unsigned workers() const noexcept { return workers_; }
  /// The counts it sent last.
  NodeCounts counts() const;
  /// Empty while the link works; else why it broke (it exited, sent garbage).
  std::string failure();
  /// Its histograms and counts now.
  Result<NodeReport> snapshot(std::chrono::milliseconds timeout);
  /// Tells it to stop; its final report once it has left the cluster and
  /// shut its runtime down; reaps it.
  Result<NodeReport> finish(std::chrono::milliseconds timeout);

 private:
  SubscriberNode() = default;
  Result<nlohmann::json> await(const char* kind, std::chrono::milliseconds timeout);
  void read_loop();
  bool send_line(std::string_view line);
  std::string exit_text();

  pid_t pid_ = -1;
  int fd_ = -1;
  unsigned workers_ = 0;
  std::thread reader_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  NodeCounts counts_;
  std::deque<nlohmann::json> replies_;  // ready, error, snapshot, final: in order
  std::string failure_;
  bool closed_ = false;  // the reader saw the end of the link
  bool finishing_ = false;  // finish() told it to stop
  bool reaped_ = false;
  int status_ = 0;
};

/// The node's end of the link: sends whole lines (MSG_NOSIGNAL: a gone run is
/// an error, not a signal). False when the run is gone.
bool send_link_line(int fd, std::string_view line);

}  // namespace swarm::load
