#pragma once
// Several nodes, one swarm: runtimes on different machines joined through a
// NATS cluster (docs/cluster.md).
//
//   swarm::cluster::ClusterConfig c;
//   c.node = "eu-1";
//   c.servers = {"nats://10.0.0.1:4222", "nats://10.0.0.2:4222"};
//   auto node = swarm::cluster::Cluster::join(rt, c);   // Result: why not, e.g. a taken name
//   // from now on: topics, queue groups, requests and names reach every node
//
// What crosses: a publish goes to a node only where that node's subscribers
// match it (nodes exchange their interest: patterns and queue groups); a queue
// group takes each message once across all nodes; requests, replies, sends to
// refs of other nodes, and names (a JetStream key-value bucket) work as on one
// node. Messages relayed from another node are delivered locally only (one
// hop, no loops). A node that falls silent for node_timeout is down: its
// interest and names are withdrawn, messages in flight to it are counted, and
// sends to its refs return unreachable.
//
// Its own files stay apart from runtime/ because only programs that join a
// cluster link libnats (as transport/ keeps ZeroMQ apart); swarmd's YAML has a
// `cluster:` section (docs/swarmd.md).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "runtime/runtime.hpp"

namespace swarm::cluster {

struct ClusterConfig {
  std::string node;                  // this node's name, unique in the cluster: [A-Za-z0-9_-], 1 to 64 bytes
  std::vector<std::string> servers;  // NATS URLs (nats:// or tls://), tried in order, then any with reconnect
  std::string prefix = "swarm";      // subjects and buckets: swarms sharing NATS servers use different ones

  // Passed through to libnats: credentials (a .creds file, user/password or a
  // token) and TLS (ca_file to verify the servers; cert_file/key_file for
  // client certificates; tls forces TLS with the system's trust).
  std::string credentials_file;
  std::string user;
  std::string password;
  std::string token;
  bool tls = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;

  // libnats' SendAsap: latency first; off for bulk throughput: libnats then
  // batches writes (a flusher thread sends what publishes buffered).
  bool send_asap = true;

  std::chrono::milliseconds heartbeat_interval{250};  // node heartbeats, interest refresh
  std::chrono::milliseconds node_timeout{2000};       // a node silent this long is down
  std::chrono::milliseconds connect_timeout{2000};    // each server, at join and reconnect
  // Messages sent to one node and not yet acknowledged by it. Beyond this, a
  // message for that node is dropped and counted (backlog_full): a slow node
  // cannot make this one's workers block or its memory grow.
  std::uint32_t max_in_flight = 65536;
  std::uint32_t max_payload_bytes = 1 << 20;  // larger messages are refused and counted (too_large)
  // Copies of the names and nodes buckets in JetStream: 3 on a cluster of 3 or
  // more servers, so that names survive a server's death.
  std::uint32_t replicas = 1;

  /// OK, or an error naming the field, the value and what is allowed.
  Result<void> validate() const;
};

/// What this node exchanged with one other node.
struct PeerStats {
  std::string node;
  bool up = false;
  bool left = false;                 // down because it said goodbye (a clean leave), not silent
  std::uint64_t sent = 0;            // messages handed to NATS for it
  std::uint64_t sent_bytes = 0;
  std::uint64_t acknowledged = 0;    // of those, confirmed received (or counted lost on the way) by it
  std::uint64_t received = 0;        // messages from it
  std::uint64_t received_bytes = 0;
  std::uint64_t lost_in_transit = 0;  // from it, missing in the sequence (e.g. a NATS server died)
  std::uint64_t lost_node_down = 0;   // to it, unacknowledged when it went down
  std::uint32_t interest = 0;        // its (pattern, queue group) entries
  double rtt_ms = 0;                 // last heartbeat round trip through NATS
  double silent_ms = 0;              // since it was last heard
};

/// Why a message for another node was not sent; values equal the metric label.
enum class RemoteDrop : std::uint8_t {
  backlog_full,   // max_in_flight unacknowledged messages for that node
  disconnected,   // no NATS connection and the reconnect buffer is full
  too_large,      // over max_payload_bytes
  not_encodable,  // an in-process C++ value: only bytes cross machines
  node_down,      // in flight to a node that went down (see PeerStats::lost_node_down)
  unknown_node,   // arrived from a node this one does not know (yet)
  lost_in_transit,  // missing from a node's sequence on arrival
};
inline constexpr int kRemoteDropReasons = 7;
std::string_view to_string(RemoteDrop r);

struct ClusterStats {
  bool connected = false;
  std::string server;           // the NATS server connected to
  std::uint64_t reconnects = 0;
  std::uint64_t nodes_down = 0;  // peers declared down since join
  std::uint64_t dropped[kRemoteDropReasons] = {};
  std::uint32_t interest_entries = 0;  // this node's own, as announced
  std::vector<PeerStats> peers;
};

class Cluster {
 public:
  /// Connects, claims the node name (refused while a live node holds it),
  /// and starts exchanging interest and names. The runtime must outlive it.
  static Result<std::unique_ptr<Cluster>> join(Runtime& rt, ClusterConfig config);
  /// Leaves: says goodbye (peers withdraw this node at once), releases its
  /// names, detaches from the runtime.
  ~Cluster();
  /// Leaves now (as the destructor does); stats() and nodes() stay callable,
  /// from any thread, and show no peers. Idempotent.
  void leave();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  const ClusterConfig& config() const noexcept;
  /// Nodes up now, this one excluded, sorted.
  std::vector<std::string> nodes() const;
  ClusterStats stats() const;
  /// The JSON of /debug/cluster: this node, its peers, their interest and health.
  std::string debug_json() const;

  struct Impl;

 private:
  explicit Cluster(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace swarm::cluster
