#pragma once
// The standard workloads of DESIGN.md, one function per (runtime, workload).
// Each call performs ONE measured run in the calling process and returns its
// figure; swarm-bench runs each repeat in a fresh child process so resident
// memory and allocator state start clean.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <future>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::bench {

struct WorkloadParams {
  unsigned workers = 0;     // worker threads; 0 = hardware cores
  std::uint64_t scale = 0;  // 0 = the standard size (W1 100k agents, W2 1M msgs, ...)
  enum class Pooling { runtime_default, on, off } pooling = Pooling::runtime_default;  // Swarm's agent pools
  bool telemetry = true;  // Swarm's metrics and latency sampling (off: for overhead figures)
  int profile_hz = 0;     // > 0: the built-in CPU profiler samples at this rate during the run
  int idle_spin_us = -1;  // Swarm's RuntimeConfig::idle_spin; -1 = the runtime's default
  std::optional<bool> batch_fanout = {};  // Swarm's RuntimeConfig::batch_fanout; unset = the runtime's default
  std::optional<bool> shared_fanout = {};  // Swarm's RuntimeConfig::shared_fanout; unset = the runtime's default
  std::optional<bool> wake_handoff = {};   // Swarm's RuntimeConfig::wake_handoff; unset = the runtime's default
  std::optional<bool> fanout_handoff = {};  // Swarm's RuntimeConfig::fanout_handoff; unset = the runtime's default
  // Storage workloads (S1, S2): the server, and batching (0 = the backend's default).
  std::string redis_url = {};     // S1: redis://HOST:PORT
  std::string postgres_dsn = {};  // S2: libpq DSN
  std::size_t batch = 0;          // S1/S2 on swarm: max batch; raw: the batch size
  int max_delay_ms = 0;           // S1/S2 on swarm: the store's max delay
  std::size_t connections = 0;    // S1 on swarm: the store's writer connections (0 = its default)
  bool staged = false;            // S2 on swarm: every batch through the staging table (the retry path)
  // Cluster workloads (C1-C3): the NATS servers, and libnats' SendAsap on
  // every connection of the run, Swarm's nodes and the raw peer alike.
  std::string nats_urls = {};           // nats://HOST:PORT[,nats://HOST:PORT...]
  std::optional<bool> send_asap = {};   // unset: the workload's default (send_asap_for)
};

std::string_view to_string(WorkloadParams::Pooling);

/// The SendAsap setting a cluster workload runs with: --send-asap, else off
/// for C1 (bulk throughput: libnats batches writes) and on for C2 and C3
/// (latency first, ClusterConfig's default).
bool send_asap_for(std::string_view workload, const WorkloadParams& p);

struct RunResult {
  double value = 0;                       // higher is better, in the workload's unit
  double seconds = 0;                     // wall time of the measured part
  std::optional<double> bytes_per_agent = {};  // W1: resident bytes per idle agent
  std::uint64_t checksum = 0;             // correctness witness (W6: sum of leaves)
  std::optional<double> history_p95_ms = {};   // S2 swarm: p95 of history(agent) on the rows written
  std::optional<double> latency_median_us = {};  // G2: median round trip
  std::optional<double> latency_p99_us = {};     // G2: p99 round trip
  std::optional<std::uint64_t> drops = {};       // G1, G3: messages sent that never arrived
};

// W1 spawn 100k idle agents; value = spawns/s, bytes_per_agent from RSS.
// W2 ping-pong 1M messages between two agents; value = messages/s.
// W3 fan-out: 1 publisher, 1,000 subscribers on one topic, 1,000 messages;
//    value = deliveries/s (1M deliveries).
// W4 many topics: 10k agents each on its own topic, 1M messages published to
//    random topics; value = messages/s.
// W5 thread ring: 503 agents pass a token 1M hops; value = hops/s.
// W6 spawn tree: each agent spawns 10 children down to 1M leaves, sums them;
//    value = agents/s (1,111,111 agents), checksum = 1,000,000.
RunResult swarm_w1(const WorkloadParams&);
RunResult swarm_w2(const WorkloadParams&);
RunResult swarm_w3(const WorkloadParams&);
RunResult swarm_w4(const WorkloadParams&);
RunResult swarm_w5(const WorkloadParams&);
RunResult swarm_w6(const WorkloadParams&);

// S1 state flush: `scale` (standard 1M) keys each get one 128-byte state put
//    into Swarm's Redis StateStore, then flush() returns; value = states/s.
//    raw: the same HSETs through one hiredis connection in pipelines of `batch`
//    (default 1024). Both start from an empty database (FLUSHDB first).
// S2 journal: `scale` (standard 1M) events with a 64-byte payload appended to
//    Swarm's Postgres journal, then flush() returns; value = events/s.
//    Then (not timed in value) 1,000 history(agent) queries of random agents
//    on the table as written; history_p95_ms = their p95.
//    raw: the same rows through pqxx::stream_to COPY batches of `batch`
//    (default 10,000) on one connection. Both start from an empty table.
RunResult swarm_s1(const WorkloadParams&);
RunResult raw_s1(const WorkloadParams&);
RunResult swarm_s2(const WorkloadParams&);
RunResult raw_s2(const WorkloadParams&);

// The gateway workloads (gateway_workloads.cpp): a client process that
// swarm-bench starts itself (--gateway-client), loopback TCP, 64-byte payloads.
// G1 throughput: one client publishes `scale` (standard 1M) messages to one
//    subscribed agent; value = messages/s the agent received, from its first
//    message to its last. raw: the same frames DEALER -> ROUTER receive loop.
// G2 round trip: `scale` (standard 100k) sequential Client::request to an
//    echo agent's name (after 1,000 unmeasured); value = requests/s, plus the
//    median and p99 round trip. raw: the same frames echoed by a ROUTER loop.
// G3 fan-out: 100 clients in one process subscribe to a topic; an in-process
//    publisher publishes `scale` (standard 10k) messages; value = deliveries/s
//    until every subscriber has every message. raw: PUB -> 100 SUB sockets.
RunResult swarm_g1(const WorkloadParams&);
RunResult raw_g1(const WorkloadParams&);
RunResult swarm_g2(const WorkloadParams&);
RunResult raw_g2(const WorkloadParams&);
RunResult swarm_g3(const WorkloadParams&);
RunResult raw_g3(const WorkloadParams&);
/// The client side of G1..G3 (`swarm-bench ID --gateway-client ENDPOINT
/// --runtime swarm|raw --scale N`): prints its result as a JSON line.
int run_gateway_client(std::string_view workload, std::string_view runtime, const std::string& endpoint,
                       const WorkloadParams& p);

// The cluster workloads (cluster_workloads.cpp): Swarm runtimes joined
// through a nats-server (--nats, JetStream on), each node a process of its own
// (swarm-bench starts node A itself: --cluster-child), 64-byte payloads.
// C1 throughput: node A publishes `scale` (standard 1M) messages on a topic
//    that one agent on node B subscribes to, with flow control (a window of
//    unacknowledged frames under max_in_flight); value = messages/s B's agent
//    received, from its first message to its last; drops = sent - received.
//    raw: natsConnection_Publish -> an async subscription counting, same server.
// C2 round trip: `scale` (standard 20k) sequential Runtime::request on A to a
//    topic an echo agent on B subscribes to (after 1,000 unmeasured); value =
//    requests/s, plus the median and p99 round trip. raw: natsConnection_Request
//    to a subscription that publishes each request back to its reply subject.
// C3 local publish: a publisher agent publishes `scale` (standard 1M)
//    messages to one local subscriber while the runtime is joined to a
//    cluster whose other node (a second process) listens on another topic;
//    value = messages/s. raw: the same runtime and agents with no cluster.
RunResult swarm_c1(const WorkloadParams&);
RunResult raw_c1(const WorkloadParams&);
RunResult swarm_c2(const WorkloadParams&);
RunResult raw_c2(const WorkloadParams&);
RunResult swarm_c3(const WorkloadParams&);
RunResult raw_c3(const WorkloadParams&);
/// Node A of C1..C3 (`swarm-bench ID --cluster-child PREFIX --runtime
/// swarm|raw --nats URLS ...`): prints its result as a JSON line, then stays
/// joined until its stdin closes.
int run_cluster_child(std::string_view workload, std::string_view runtime, const std::string& prefix,
                      const WorkloadParams& p);

RunResult caf_w1(const WorkloadParams&);
RunResult caf_w2(const WorkloadParams&);
RunResult caf_w3(const WorkloadParams&);
RunResult caf_w4(const WorkloadParams&);
RunResult caf_w5(const WorkloadParams&);
RunResult caf_w6(const WorkloadParams&);

// W6's shape: the depth whose 10^depth leaves reach `scale` (standard: 6, 1M
// leaves), and the number of agents in such a tree.
inline unsigned spawn_tree_depth(const WorkloadParams& p) {
  if (p.scale == 0) return 6;
  unsigned depth = 1;
  for (std::uint64_t leaves = 10; leaves < p.scale; leaves *= 10) ++depth;
  return depth;
}
inline std::uint64_t spawn_tree_agents(unsigned depth) {
  std::uint64_t agents = 0, level = 1;
  for (unsigned d = 0; d <= depth; ++d, level *= 10) agents += level;
  return agents;
}

// Counts down from n; the last count_down() fulfils the promise. Thread-safe.
class Countdown {
 public:
  explicit Countdown(std::uint64_t n) : left_(n) {
    if (n == 0) done_.set_value();
  }
  void count_down() {
    if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.set_value();
  }
  void wait() { done_.get_future().wait(); }

 private:
  std::atomic<std::uint64_t> left_;
  std::promise<void> done_;
};

// W3/W4's shape, the same for every runtime.
inline constexpr std::uint64_t kFanoutSubscribers = 1'000;
inline std::uint64_t fanout_messages(const WorkloadParams& p) { return p.scale != 0 ? p.scale : 1'000; }
inline constexpr std::uint32_t kManyTopics = 10'000;
inline std::uint64_t many_topics_messages(const WorkloadParams& p) { return p.scale != 0 ? p.scale : 1'000'000; }
inline constexpr std::uint64_t kPublishChunk = 1'000;  // publishes per handler run, so publishers yield

/// W4's random topic sequence (fixed seed, so every runtime publishes the same).
std::vector<std::uint32_t> random_topics(std::uint64_t n, std::uint32_t topics);
/// How many of `sequence` go to each of `topics` topics.
std::vector<std::uint64_t> count_per_topic(const std::vector<std::uint32_t>& sequence, std::uint32_t topics);

// Resident set size of this process in bytes (from /proc/self/statm).
std::uint64_t resident_bytes();

}  // namespace swarm::bench
