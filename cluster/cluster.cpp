// A node of a cluster: the NATS connection, the interest exchanged with other
// nodes, the frames between them, names in a JetStream key-value bucket, and
// failure detection by heartbeats (docs/cluster.md).
//
// Threads: libnats delivers this node's frames on one thread (on_data) and
// the control subjects on another (on_control); `ticker` polls local interest
// every 10 ms and, each heartbeat, sends heartbeats and acknowledgements,
// declares silent nodes down and writes names; `watcher` follows the names
// bucket. Workers reach other nodes through Relay (publishes) and PeerNode
// (sends, requests and replies to refs of other nodes): both only append to
// NATS's buffer, never wait for another node.

#include "cluster/cluster.hpp"

#include <nats/nats.h>
#include <sys/random.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "base/mutex.hpp"
#include "cluster/wire.hpp"
#include "metrics/registry.hpp"

namespace swarm::cluster {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr std::uint32_t kMaxPeers = 64;
constexpr std::uint32_t kMaxWeight = 16;  // subscriptions standing for one node's members of a queue group
constexpr std::uint32_t kMaxGroups = 1 << 16;
constexpr auto kTick = std::chrono::milliseconds(10);  // local interest is polled this often
constexpr std::uint64_t kAckEvery = 1024;             // frames between acknowledgements, besides each heartbeat
constexpr std::size_t kBatchBytes = 64 << 10;         // coalesced frames for one peer (send_asap off) per NATS message

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

std::uint64_t random_u64() {
  std::uint64_t v = 0;
  while (v == 0) {
    if (getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) v = static_cast<std::uint64_t>(now_ns());
  }
  return v;
}

std::string hex(std::uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// A bucket key for a registered name: readable when it is made of safe
// characters, hex otherwise (names may hold any printable byte).
std::string name_key(std::string_view name) {
  if (std::all_of(name.begin(), name.end(), name_char)) return "n_" + std::string(name);
  std::string key = "x_";
  for (unsigned char c : name) {
    static constexpr char kDigits[] = "0123456789abcdef";
    key += kDigits[c >> 4];
    key += kDigits[c & 15];
  }
  return key;
}

std::string nats_error(natsStatus s) {
  const char* last = nats_GetLastError(nullptr);
  std::string text = natsStatus_GetText(s);
  if (last != nullptr && *last != '\0' && text != last) text += " (" + std::string(last) + ")";
  return text;
}

AskStatus status_of(SendResult r) {
  switch (r) {
    case SendResult::mailbox_full: return AskStatus::mailbox_full;
    case SendResult::shutting_down: return AskStatus::shutting_down;
    default: return AskStatus::dead_agent;
  }
}

}  // namespace

std::string_view to_string(RemoteDrop r) {
  switch (r) {
    case RemoteDrop::backlog_full: return "backlog_full";
    case RemoteDrop::disconnected: return "disconnected";
    case RemoteDrop::too_large: return "too_large";
    case RemoteDrop::not_encodable: return "not_encodable";
    case RemoteDrop::node_down: return "node_down";
    case RemoteDrop::unknown_node: return "unknown_node";
    case RemoteDrop::lost_in_transit: return "lost_in_transit";
  }
  return "unknown";
}

Result<void> ClusterConfig::validate() const {
  if (node.empty() || node.size() > 64 || !std::all_of(node.begin(), node.end(), name_char)) {
    return unexpected("cluster: node \"" + node + "\" is not a node name (1 to 64 of A-Z a-z 0-9 _ -)");
  }
  if (prefix.empty() || prefix.size() > 64 || !std::all_of(prefix.begin(), prefix.end(), name_char)) {
    return unexpected("cluster: prefix \"" + prefix + "\" is not a prefix (1 to 64 of A-Z a-z 0-9 _ -)");
  }
  if (servers.empty()) return unexpected(std::string("cluster: servers is empty (expected NATS URLs, e.g. nats://127.0.0.1:4222)"));
  for (const std::string& s : servers) {
    const auto scheme = s.find("://");
    const std::string_view name = scheme == std::string::npos ? std::string_view{} : std::string_view(s).substr(0, scheme);
    if ((name != "nats" && name != "tls") || s.size() == scheme + 3) {
      return unexpected("cluster: servers: \"" + s + "\" is not a NATS URL (expected nats://HOST:PORT or tls://HOST:PORT)");
    }
  }
  auto positive = [](std::chrono::milliseconds v, const char* field) -> Result<void> {
    if (v.count() <= 0) return unexpected("cluster: " + std::string(field) + " is " + std::to_string(v.count()) + " ms (expected > 0)");
    return {};
  };
  if (auto r = positive(heartbeat_interval, "heartbeat_interval"); !r) return r;
  if (auto r = positive(node_timeout, "node_timeout"); !r) return r;
  if (auto r = positive(connect_timeout, "connect_timeout"); !r) return r;
  if (node_timeout < 2 * heartbeat_interval) {
    return unexpected("cluster: node_timeout (" + std::to_string(node_timeout.count()) +
                      " ms) must be at least two heartbeat_intervals (" + std::to_string(2 * heartbeat_interval.count()) +
                      " ms): one late heartbeat must not declare a node down");
  }
  if (max_in_flight == 0) return unexpected(std::string("cluster: max_in_flight is 0 (expected at least 1)"));
  if (max_payload_bytes == 0 || max_payload_bytes > 64u << 20) {
    return unexpected("cluster: max_payload_bytes is " + std::to_string(max_payload_bytes) + " (expected 1 to 67108864)");
  }
  if (replicas < 1 || replicas > 5) return unexpected("cluster: replicas is " + std::to_string(replicas) + " (expected 1 to 5)");
  if ((user.empty()) != (password.empty())) return unexpected(std::string("cluster: user and password go together"));
  if ((cert_file.empty()) != (key_file.empty())) return unexpected(std::string("cluster: cert_file and key_file go together"));
  return {};
}

struct Cluster::Impl {
  // Publishes for other nodes: the router delivers here for each node whose
  // interest matches (address: peer slot << 48 | group id << 16 | weight).
  struct Relay final : router::Endpoint {
    Impl& s;
    explicit Relay(Impl& impl) : s(impl) {}
    router::DeliverStatus deliver(const router::Delivery& d) noexcept override { return s.relay_publish(d); }
  };
  // A node number of this runtime standing for one node number of a peer
  // (its agents, its callers, or one of its transports).
  struct PeerNode final : RemoteNode {
    Impl& s;
    std::uint32_t slot;
    std::uint32_t home;  // the node number on the peer
    std::uint32_t number = 0;  // ours
    std::atomic<bool> live{true};  // false once its peer is down (the slot may serve another node then)
    PeerNode(Impl& impl, std::uint32_t peer, std::uint32_t home_node) : s(impl), slot(peer), home(home_node) {}
    SendResult deliver(AgentRef to, Message& msg) noexcept override {
      return live.load(std::memory_order_acquire) ? s.send_direct(slot, home, to, msg) : SendResult::unreachable;
    }
    bool alive(AgentRef) const noexcept override { return live.load(std::memory_order_acquire); }
  };

  struct Peer {
    std::atomic<bool> up{false};
    std::atomic<bool> left{false};  // it said goodbye: its series go away (an alert is for a node that died)
    std::atomic<std::uint64_t> incarnation{0};
    std::atomic<std::int64_t> last_heard{0};
    std::atomic<std::int64_t> rtt_ns{0};

    // -- sending: subject and sequence under send_mu (slots are reused) ---
    Mutex send_mu;
    std::string subject SWARM_GUARDED_BY(send_mu);
    std::uint64_t next_seq SWARM_GUARDED_BY(send_mu) = 0;  // frames sent
    std::string batch SWARM_GUARDED_BY(send_mu);            // send_asap off: frames not yet handed to NATS
    std::uint64_t batch_frames SWARM_GUARDED_BY(send_mu) = 0;
    std::atomic<std::uint64_t> sent{0};
    std::atomic<std::uint64_t> sent_bytes{0};
    std::atomic<std::uint64_t> acked{0};  // highest seq it acknowledged

    // -- receiving: on_data's thread only, but for the atomics ---
    std::uint64_t expected = 0;  // 0: adopt the first frame's seq
    std::atomic<std::uint64_t> seen{0};  // highest seq received (gaps counted)
    std::atomic<std::uint64_t> received{0};
    std::atomic<std::uint64_t> received_bytes{0};
    std::atomic<std::uint64_t> lost_in_transit{0};
    std::atomic<std::uint64_t> lost_node_down{0};
    std::uint64_t ack_sent = 0;  // ticker

    // -- guarded by Impl::mu ---
    std::string name;
    std::uint64_t interest_version = 0;
    std::map<std::pair<std::string, std::string>, std::uint32_t> interest;  // (pattern, group) -> subscribers
    std::map<std::pair<std::string, std::string>, std::vector<router::SubscriptionId>> subs;
    std::map<std::uint32_t, std::unique_ptr<PeerNode>> nodes;  // home node -> ours
    std::int64_t asked_interest = 0;  // when a refresh was last asked for
    std::atomic<std::uint32_t> node0{0};   // ours for its agents (home 0)
    std::atomic<std::uint32_t> callers{0};  // ours for its callers (home kCallerNode)
  };

  struct NameEntry {
    std::string node;
    std::uint64_t incarnation = 0;
    wire::Ref ref;
  };
  struct NameOp {
    std::string name;
    AgentRef holder;
    bool registered;
  };
  struct Directory final : NameDirectory {
    Impl& s;
    explicit Directory(Impl& impl) : s(impl) {}
    AgentRef resolve(std::string_view name) const noexcept override { return s.resolve(name); }
    void changed(std::string_view name, AgentRef holder, bool registered) noexcept override {
      s.name_changed(name, holder, registered);
    }
  };

  Runtime& rt;
  const ClusterConfig cfg;
  const std::uint64_t incarnation = random_u64();
  const std::string id_hex = hex(incarnation);
  const std::string data_subject;
  Relay relay{*this};
  Directory directory{*this};

  natsOptions* opts = nullptr;
  mutable Mutex conn_mu;  // nc's destruction against stats() on other threads
  natsConnection* nc SWARM_PT_GUARDED_BY(conn_mu) = nullptr;
  jsCtx* js = nullptr;
  kvStore* nodes_kv = nullptr;
  kvStore* names_kv = nullptr;
  kvWatcher* names_watch = nullptr;
  natsSubscription* data_sub = nullptr;
  natsSubscription* control_sub = nullptr;
  natsSubscription* pong_sub = nullptr;

  std::array<Peer, kMaxPeers> peers;
  std::atomic<std::uint32_t> peer_slots{0};  // slots ever used
  std::array<std::atomic<std::uint16_t>, kMaxRemoteNodes + 1> number_slot{};  // our node number -> slot + 1

  mutable Mutex mu;
  std::vector<std::unique_ptr<std::string>> group_store SWARM_GUARDED_BY(mu);
  std::map<std::string, std::uint32_t, std::less<>> group_ids SWARM_GUARDED_BY(mu);
  std::unique_ptr<std::atomic<const std::string*>[]> group_names{new std::atomic<const std::string*>[kMaxGroups]{}};
  std::set<std::uint64_t> down_incarnations SWARM_GUARDED_BY(mu);
  bool republish_interest SWARM_GUARDED_BY(mu) = false;

  mutable Mutex names_mu;
  std::map<std::string, NameEntry, std::less<>> names SWARM_GUARDED_BY(names_mu);  // by bucket key
  std::vector<NameOp> name_ops SWARM_GUARDED_BY(names_mu);
  std::map<std::string, AgentRef, std::less<>> own_names SWARM_GUARDED_BY(names_mu);  // name -> holder, as written

  // ticker's own
  std::vector<router::InterestEntry> announced;
  std::uint64_t interest_version = 0;
  std::uint64_t seen_subscriptions = ~std::uint64_t{0};

  bool joined = false;  // start() succeeded: leave() says goodbye
  std::atomic<bool> connected{false};
  std::atomic<std::uint64_t> reconnects{0};
  std::atomic<std::uint64_t> nodes_down{0};
  std::atomic<std::uint64_t> name_conflicts{0};
  std::atomic<std::uint64_t> malformed{0};
  std::array<std::atomic<std::uint64_t>, kRemoteDropReasons> dropped{};
  std::atomic<std::uint32_t> interest_entries{0};

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stop = false;
  bool closed = false;  // libnats ran its closed callback: no callback of this connection runs after it
  std::thread ticker;
  std::thread watcher;
  // send_asap off: the flusher hands each peer's coalesced frames to NATS.
  std::thread flusher;
  std::mutex flush_mu;
  std::condition_variable flush_cv;
  bool flush_wanted = false;
  bool flush_stop = false;
  std::uint64_t metrics_callback = 0;

  Impl(Runtime& runtime, ClusterConfig config)
      : rt(runtime), cfg(std::move(config)), data_subject(cfg.prefix + ".n." + cfg.node) {}

  void count(RemoteDrop r, std::uint64_t n = 1) noexcept {
    dropped[static_cast<int>(r)].fetch_add(n, std::memory_order_relaxed);
  }
  std::string subject(std::string_view what) const { return cfg.prefix + ".c." + std::string(what); }

  // -- joining ---

  Result<void> connect() {
    natsStatus s = natsOptions_Create(&opts);
    std::vector<const char*> urls;
    for (const std::string& u : cfg.servers) urls.push_back(u.c_str());
    if (s == NATS_OK) s = natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size()));
    if (s == NATS_OK) s = natsOptions_SetName(opts, ("swarm/" + cfg.node).c_str());
    if (s == NATS_OK) s = natsOptions_SetNoRandomize(opts, true);
    if (s == NATS_OK) s = natsOptions_SetTimeout(opts, cfg.connect_timeout.count());
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 250);
    if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, cfg.send_asap);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, &Impl::on_disconnected, this);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, &Impl::on_reconnected, this);
    if (s == NATS_OK) s = natsOptions_SetClosedCB(opts, &Impl::on_closed, this);
    if (s == NATS_OK && !cfg.credentials_file.empty()) {
      s = natsOptions_SetUserCredentialsFromFiles(opts, cfg.credentials_file.c_str(), nullptr);
    }
    if (s == NATS_OK && !cfg.user.empty()) s = natsOptions_SetUserInfo(opts, cfg.user.c_str(), cfg.password.c_str());
    if (s == NATS_OK && !cfg.token.empty()) s = natsOptions_SetToken(opts, cfg.token.c_str());
    const bool tls = cfg.tls || !cfg.ca_file.empty() || !cfg.cert_file.empty();
    if (s == NATS_OK && tls) s = natsOptions_SetSecure(opts, true);
    if (s == NATS_OK && !cfg.ca_file.empty()) s = natsOptions_LoadCATrustedCertificates(opts, cfg.ca_file.c_str());
    if (s == NATS_OK && !cfg.cert_file.empty()) {
      s = natsOptions_LoadCertificatesChain(opts, cfg.cert_file.c_str(), cfg.key_file.c_str());
    }
    if (s != NATS_OK) return unexpected("cluster: NATS options: " + nats_error(s));
    s = natsConnection_Connect(&nc, opts);
    if (s != NATS_OK) {
      std::string all;
      for (const std::string& u : cfg.servers) all += (all.empty() ? "" : ", ") + u;
      return unexpected("cluster: no NATS server answers at " + all + ": " + nats_error(s));
    }
    connected.store(true);
    s = natsConnection_JetStream(&js, nc, nullptr);
    if (s != NATS_OK) return unexpected("cluster: JetStream: " + nats_error(s));
    if (auto r = open_bucket(&nodes_kv, "nodes", 3 * cfg.node_timeout); !r) return r;
    return open_bucket(&names_kv, "names", std::chrono::nanoseconds(0));
  }

  // Opens the bucket PREFIX_WHAT, creating it on first use; an error names why not.
  Result<void> open_bucket(kvStore** kv, const char* what, std::chrono::nanoseconds ttl) {
    const std::string bucket = cfg.prefix + "_" + what;
    if (js_KeyValue(kv, js, bucket.c_str()) == NATS_OK) return {};
    kvConfig c;
    kvConfig_Init(&c);
    c.Bucket = bucket.c_str();
    c.History = 1;
    c.TTL = ttl.count();  // nanoseconds in this libnats
    c.StorageType = js_MemoryStorage;
    c.Replicas = static_cast<int>(cfg.replicas);
    const natsStatus s = js_CreateKeyValue(kv, js, &c);
    if (s == NATS_OK) return {};
    const std::string why = nats_error(s);
    if (js_KeyValue(kv, js, bucket.c_str()) == NATS_OK) return {};  // another node created it first
    return unexpected("cluster: JetStream key-value bucket " + bucket + ": " + why +
                      " (node names and agent names need JetStream: start nats-server with -js)");
  }

  // The node name is ours unless a live node holds it: a holder that has not
  // refreshed its key for a node_timeout is gone (its key also expires).
  Result<void> claim_name() {
    const std::string value = id_hex;
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::uint64_t rev = 0;
      if (kvStore_CreateString(&rev, nodes_kv, cfg.node.c_str(), value.c_str()) == NATS_OK) return {};
      kvEntry* e = nullptr;
      if (kvStore_Get(&e, nodes_kv, cfg.node.c_str()) != NATS_OK) continue;  // expired meanwhile: create again
      const std::uint64_t first = kvEntry_Revision(e);
      const std::string holder = kvEntry_ValueString(e);
      kvEntry_Destroy(e);
      std::this_thread::sleep_for(cfg.node_timeout);  // a live holder refreshes it within this time
      e = nullptr;
      if (kvStore_Get(&e, nodes_kv, cfg.node.c_str()) == NATS_OK) {
        const std::uint64_t now = kvEntry_Revision(e);
        kvEntry_Destroy(e);
        if (now != first) {
          return unexpected("cluster: node name \"" + cfg.node + "\" is taken by a live node (incarnation " + holder +
                            "): every node needs a name of its own");
        }
        if (kvStore_UpdateString(&rev, nodes_kv, cfg.node.c_str(), value.c_str(), first) == NATS_OK) return {};
      }
    }
    return unexpected("cluster: could not claim node name \"" + cfg.node + "\" in bucket " + cfg.prefix + "_nodes");
  }

  Result<void> start() {
    if (auto r = connect(); !r) return r;
    if (auto r = claim_name(); !r) return r;
    natsStatus s = natsConnection_Subscribe(&data_sub, nc, data_subject.c_str(), &Impl::on_data, this);
    if (s == NATS_OK) s = natsSubscription_SetPendingLimits(data_sub, 1 << 20, 256 << 20);
    if (s == NATS_OK) s = natsConnection_Subscribe(&control_sub, nc, (cfg.prefix + ".c.*").c_str(), &Impl::on_control, this);
    if (s == NATS_OK) {
      s = natsConnection_Subscribe(&pong_sub, nc, (cfg.prefix + ".c.pong." + cfg.node).c_str(), &Impl::on_pong, this);
    }
    if (s == NATS_OK) s = kvStore_WatchAll(&names_watch, names_kv, nullptr);
    if (s == NATS_OK) s = natsConnection_Flush(nc);
    if (s != NATS_OK) return unexpected("cluster: subscribing: " + nats_error(s));
    forget_own_past_names();
    rt.set_name_directory(&directory);
    watcher = std::thread([this] { watch_names(); });
    ticker = std::thread([this] { tick_loop(); });
    if (!cfg.send_asap) flusher = std::thread([this] { flush_loop(); });
    joined = true;
    send_control("hello", {});
    metrics_callback = rt.metrics().add_callback([this](metrics::Collector& c) { publish_metrics(c); });
    rt.set_debug_page("/debug/cluster", [this] { return debug_json(); });
    return {};
  }

  // Names this node's earlier life left in the bucket (it was killed).
  void forget_own_past_names() {
    kvKeysList keys{};
    if (kvStore_Keys(&keys, names_kv, nullptr) != NATS_OK) return;
    for (int i = 0; i < keys.Count; ++i) {
      kvEntry* e = nullptr;
      if (kvStore_Get(&e, names_kv, keys.Keys[i]) != NATS_OK) continue;
      const json v = json::parse(std::string_view(static_cast<const char*>(kvEntry_Value(e)), kvEntry_ValueLen(e)),
                                 nullptr, false);
      kvEntry_Destroy(e);
      if (v.is_object() && v.value("node", "") == cfg.node) kvStore_Delete(names_kv, keys.Keys[i]);
    }
    kvKeysList_Destroy(&keys);
  }

  ~Impl() { leave(); }

  void leave() {
    {
      std::lock_guard lock(stop_mu);
      if (stop) return;
      stop = true;
    }
    stop_cv.notify_all();
    if (ticker.joinable()) ticker.join();
    if (flusher.joinable()) {
      {
        std::lock_guard lock(flush_mu);
        flush_stop = true;
      }
      flush_cv.notify_all();
      flusher.join();
    }
    flush_all();  // what is coalesced goes before the goodbye
    if (names_watch != nullptr) kvWatcher_Stop(names_watch);
    if (watcher.joinable()) watcher.join();
    if (metrics_callback != 0) rt.metrics().remove_callback(metrics_callback);
    rt.remove_debug_page("/debug/cluster");
    rt.set_name_directory(nullptr);
    if (joined && connected.load()) {
      write_names();
      std::vector<std::pair<std::string, AgentRef>> mine;
      {
        MutexLock lock(names_mu);
        mine.assign(own_names.begin(), own_names.end());
        own_names.clear();
      }
      for (const auto& [name, holder] : mine) kvStore_Delete(names_kv, name_key(name).c_str());
      json acks = json::object();
      for (std::uint32_t i = 0; i < peer_slots.load(); ++i) {
        MutexLock lock(mu);
        if (peers[i].up.load()) acks[peers[i].name] = peers[i].seen.load();
      }
      send_control("bye", {{"acks", acks}});
      if (nodes_kv != nullptr) kvStore_Delete(nodes_kv, cfg.node.c_str());
      natsConnection_FlushTimeout(nc, 1000);
    }
    // No callback runs after the drains; then nothing routes to this node's endpoints.
    for (natsSubscription* sub : {data_sub, control_sub, pong_sub}) {
      if (sub == nullptr) continue;
      if (natsSubscription_Drain(sub) == NATS_OK) natsSubscription_WaitForDrainCompletion(sub, 2000);
      natsSubscription_Destroy(sub);
    }
    {
      MutexLock lock(mu);
      for (std::uint32_t i = 0; i < peer_slots.load(); ++i) {
        peers[i].up.store(false);
        retire_locked(i);
      }
    }
    detach_retired();
    rt.router().synchronize();
    if (names_watch != nullptr) kvWatcher_Destroy(names_watch);
    if (nodes_kv != nullptr) kvStore_Destroy(nodes_kv);
    if (names_kv != nullptr) kvStore_Destroy(names_kv);
    if (js != nullptr) jsCtx_Destroy(js);
    if (nc != nullptr) {
      MutexLock lock(conn_mu);  // stats() may be reading the connection on another thread
      connected.store(false);
      natsConnection_Close(nc);
      // Callbacks run on libnats' own thread after Close returns; the closed one comes last.
      std::unique_lock wait(stop_mu);
      stop_cv.wait_for(wait, std::chrono::seconds(5), [&] { return closed; });
      wait.unlock();
      natsConnection_Destroy(nc);
      nc = nullptr;
    }
    if (opts != nullptr) natsOptions_Destroy(opts);
  }

  // -- peers ---

  // The slot of a live peer with this incarnation, or -1. Lock-free: on_data's path.
  int slot_of(std::uint64_t incarnation_id) const noexcept {
    const std::uint32_t n = peer_slots.load(std::memory_order_acquire);
    for (std::uint32_t i = 0; i < n; ++i) {
      if (peers[i].incarnation.load(std::memory_order_acquire) == incarnation_id &&
          peers[i].up.load(std::memory_order_acquire)) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }

  // The slot for a node heard from; a new incarnation of a known name replaces the old.
  int peer_for(const std::string& name, std::uint64_t id) SWARM_REQUIRES(mu) {
    if (int slot = slot_of(id); slot >= 0) return slot;
    down_incarnations.erase(id);  // heard again after being declared down (e.g. our own NATS gap): a fresh start
    const std::uint32_t n = peer_slots.load();
    for (std::uint32_t i = 0; i < n; ++i) {
      if (peers[i].up.load() && peers[i].name == name) down_locked(i, false);  // restarted
    }
    // A node that comes back takes its old slot, so its series keep one set of labels.
    std::uint32_t slot = n;
    for (std::uint32_t i = 0; i < n; ++i) {
      if (!peers[i].up.load() && (slot == n || peers[i].name == name)) slot = i;
    }
    if (slot == kMaxPeers) return -1;
    Peer& p = peers[slot];
    {
      MutexLock send_lock(p.send_mu);
      p.subject = cfg.prefix + ".n." + name;
      p.next_seq = 0;
      p.batch.clear();
      p.batch_frames = 0;
    }
    p.name = name;
    p.left.store(false);
    p.incarnation.store(id);
    p.sent.store(0);
    p.sent_bytes.store(0);
    p.acked.store(0);
    p.expected = 0;
    p.seen.store(0);
    p.received.store(0);
    p.received_bytes.store(0);
    p.lost_in_transit.store(0);
    p.lost_node_down.store(0);
    p.ack_sent = 0;
    p.interest_version = 0;
    p.interest.clear();
    p.asked_interest = 0;
    p.last_heard.store(now_ns());
    p.node0.store(attach_locked(slot, 0));
    p.callers.store(attach_locked(slot, AgentRef::kCallerNode));
    p.up.store(true, std::memory_order_release);
    if (slot == n) peer_slots.store(n + 1, std::memory_order_release);
    republish_interest = true;  // it needs to learn ours
    std::fprintf(stderr, "cluster %s: node %s joined (incarnation %s)\n", cfg.node.c_str(), name.c_str(), hex(id).c_str());
    return static_cast<int>(slot);
  }

  std::uint32_t attach_locked(std::uint32_t slot, std::uint32_t home) SWARM_REQUIRES(mu) {
    auto& nodes = peers[slot].nodes;
    if (auto it = nodes.find(home); it != nodes.end()) return it->second->number;
    auto node = std::make_unique<PeerNode>(*this, slot, home);
    try {
      node->number = rt.attach_node(*node);
    } catch (const std::length_error&) {
      return 0;  // no node number left: refs of it are invalid here
    }
    number_slot[node->number].store(static_cast<std::uint16_t>(slot + 1));
    const std::uint32_t number = node->number;
    nodes.emplace(home, std::move(node));
    return number;
  }

  // Our node number for a peer's node number.
  std::uint32_t number_for(std::uint32_t slot, std::uint32_t home) {
    if (home == 0) return peers[slot].node0.load(std::memory_order_acquire);
    if (home == AgentRef::kCallerNode) return peers[slot].callers.load(std::memory_order_acquire);
    MutexLock lock(mu);
    return peers[slot].up.load() ? attach_locked(slot, home) : 0;
  }

  AgentRef local_ref(std::uint32_t slot, wire::Ref r) {
    if (r.bits == 0) return {};
    const std::uint32_t number = number_for(slot, r.node);
    return number == 0 ? AgentRef{} : AgentRef::from_bits(r.bits, number);
  }

  // A ref of ours as the other node should know it. A ref of a third node is
  // not passed on (one hop): the receiver gets none.
  wire::Ref export_ref(std::uint64_t bits, std::uint32_t node) const noexcept {
    if (node != 0 && node <= kMaxRemoteNodes && number_slot[node].load(std::memory_order_relaxed) != 0) return {};
    return {bits, node};
  }

  // Withdraws a peer's subscriptions and node numbers (detached later, by
  // detach_retired: detaching waits for deliveries in progress).
  void retire_locked(std::uint32_t slot) SWARM_REQUIRES(mu) {
    Peer& p = peers[slot];
    for (auto& [key, ids] : p.subs) {
      for (router::SubscriptionId id : ids) rt.router().unsubscribe(id);
    }
    p.subs.clear();
    p.interest.clear();
    for (auto& [home, node] : p.nodes) {
      node->live.store(false, std::memory_order_release);
      retired.push_back(std::move(node));
    }
    p.nodes.clear();
    p.node0.store(0);
    p.callers.store(0);
  }
  std::vector<std::unique_ptr<PeerNode>> retired SWARM_GUARDED_BY(mu);

  void detach_retired() {
    std::vector<std::unique_ptr<PeerNode>> nodes;
    {
      MutexLock lock(mu);
      nodes.swap(retired);
    }
    for (auto& node : nodes) {
      rt.detach_node(node->number);
      number_slot[node->number].store(0);
    }
  }

  void down_locked(std::uint32_t slot, bool timed_out) SWARM_REQUIRES(mu) {
    Peer& p = peers[slot];
    if (!p.up.exchange(false)) return;
    down_incarnations.insert(p.incarnation.load());
    std::uint64_t lost = 0;
    {
      MutexLock send_lock(p.send_mu);
      const std::uint64_t acked = p.acked.load();
      lost = p.next_seq > acked ? p.next_seq - acked : 0;  // coalesced frames included: they are never sent now
      p.next_seq = 0;
      p.batch.clear();
      p.batch_frames = 0;
    }
    p.lost_node_down.fetch_add(lost);
    count(RemoteDrop::node_down, lost);
    nodes_down.fetch_add(1);
    std::fprintf(stderr, "cluster %s: node %s is down (%s); %llu messages in flight to it are lost\n", cfg.node.c_str(),
                 p.name.c_str(), timed_out ? "silent for node_timeout" : "left or restarted",
                 static_cast<unsigned long long>(lost));
    retire_locked(slot);
  }

  // -- interest ---

  void apply_interest(std::uint32_t slot, const json& entries) SWARM_REQUIRES(mu) {
    Peer& p = peers[slot];
    std::map<std::pair<std::string, std::string>, std::uint32_t> next;
    for (const json& e : entries) {
      if (!e.is_array() || e.size() != 3 || !e[0].is_string() || !e[1].is_string() || !e[2].is_number_unsigned()) continue;
      next[{e[0].get<std::string>(), e[1].get<std::string>()}] = e[2].get<std::uint32_t>();
    }
    for (auto it = p.subs.begin(); it != p.subs.end();) {
      auto n = next.find(it->first);
      const bool same = n != next.end() && (it->first.second.empty() || std::min(n->second, kMaxWeight) ==
                                                                               std::min(p.interest[it->first], kMaxWeight));
      if (same) {
        ++it;
        continue;
      }
      for (router::SubscriptionId id : it->second) rt.router().unsubscribe(id);
      it = p.subs.erase(it);
    }
    for (const auto& [key, subscribers] : next) {
      if (p.subs.count(key) != 0) continue;
      const auto& [pattern, group] = key;
      std::vector<router::SubscriptionId> ids;
      const std::uint64_t base = std::uint64_t{slot} << 48;
      if (group.empty()) {
        if (auto id = rt.router().subscribe(pattern, {&relay, base}); id) ids.push_back(*id);
      } else {
        const std::uint32_t gid = group_id_locked(group);
        if (gid == 0) continue;
        for (std::uint32_t k = 0; k < std::min(subscribers, kMaxWeight); ++k) {
          if (auto id = rt.router().subscribe(pattern, {&relay, base | std::uint64_t{gid} << 16 | k}, group); id) {
            ids.push_back(*id);
          }
        }
      }
      p.subs.emplace(key, std::move(ids));
    }
    p.interest = std::move(next);
  }

  std::uint32_t group_id_locked(const std::string& group) SWARM_REQUIRES(mu) {
    if (auto it = group_ids.find(group); it != group_ids.end()) return it->second;
    const auto id = static_cast<std::uint32_t>(group_store.size() + 1);
    if (id >= kMaxGroups) return 0;
    group_store.push_back(std::make_unique<std::string>(group));
    group_names[id].store(group_store.back().get(), std::memory_order_release);
    group_ids.emplace(group, id);
    return id;
  }

  void poll_interest(bool force) {
    const std::uint64_t version = rt.router().subscription_version();
    if (version != seen_subscriptions) {
      seen_subscriptions = version;
      auto now = rt.router().interest(&relay);
      if (now != announced) {
        announced = std::move(now);
        ++interest_version;
        interest_entries.store(static_cast<std::uint32_t>(announced.size()));
        force = true;
      }
    }
    if (!force) return;
    json list = json::array();
    for (const auto& e : announced) list.push_back({e.pattern, e.queue_group, e.subscribers});
    // The nodes that know this one: only they relay to it (to the others it
    // would be a stranger's frames, dropped as unknown_node).
    json known = json::array();
    for (std::uint32_t i = 0; i < peer_slots.load(); ++i) {
      if (peers[i].up.load()) known.push_back(hex(peers[i].incarnation.load()));
    }
    send_control("interest", {{"v", interest_version}, {"interest", std::move(list)}, {"known", std::move(known)}});
  }

  // -- control subjects (JSON) ---

  void send_control(std::string_view what, json body) {
    body["node"] = cfg.node;
    body["id"] = id_hex;
    const std::string text = body.dump();
    natsConnection_Publish(nc, subject(what).c_str(), text.data(), static_cast<int>(text.size()));
  }

  static void on_control(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
    auto& s = *static_cast<Impl*>(self);
    const std::string_view subj = natsMsg_GetSubject(msg);
    const std::string_view what = subj.substr(subj.rfind('.') + 1);
    const json body = json::parse(std::string_view(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)), nullptr, false);
    natsMsg_Destroy(msg);
    if (!body.is_object() || !body.contains("node") || !body["node"].is_string() || !body.contains("id") ||
        !body["id"].is_string()) {
      s.malformed.fetch_add(1);
      return;
    }
    s.control(what, body);
  }

  void control(std::string_view what, const json& body) {
    const std::string name = body["node"].get<std::string>();
    const std::uint64_t id = std::strtoull(body["id"].get<std::string>().c_str(), nullptr, 16);
    if (id == incarnation) return;  // our own
    if (name == cfg.node) {
      std::fprintf(stderr, "cluster %s: another node (incarnation %s) uses this node's name\n", cfg.node.c_str(),
                   hex(id).c_str());
      return;
    }
    MutexLock lock(mu);
    if (what == "bye") {
      const int slot = slot_of(id);
      if (slot < 0) return;
      Peer& p = peers[slot];
      if (const auto acks = body.find("acks"); acks != body.end() && acks->contains(cfg.node)) {
        const std::uint64_t seq = (*acks)[cfg.node].get<std::uint64_t>();
        std::uint64_t old = p.acked.load();
        while (seq > old && !p.acked.compare_exchange_weak(old, seq)) {
        }
      }
      down_locked(static_cast<std::uint32_t>(slot), false);
      p.left.store(true);
      return;
    }
    const int slot = peer_for(name, id);
    if (slot < 0) return;
    Peer& p = peers[slot];
    p.last_heard.store(now_ns());
    if (what == "hello") {
      republish_interest = true;
    } else if (what == "hb") {
      json pong = {{"t", body.value("t", std::int64_t{0})}, {"node", cfg.node}, {"id", id_hex}};
      const std::string text = pong.dump();
      natsConnection_Publish(nc, (cfg.prefix + ".c.pong." + name).c_str(), text.data(), static_cast<int>(text.size()));
      if (body.value("v", std::uint64_t{0}) != p.interest_version) ask_again(p);  // its interest was lost on the way
    } else if (what == "interest") {
      const std::uint64_t v = body.value("v", std::uint64_t{0});
      if (v == p.interest_version && !p.interest.empty()) return;
      // Sent before it heard of this node: its next announcement, which our
      // hello at join asks for, will name us (a hello again if that was lost).
      if (const auto known = body.find("known");
          known != body.end() && known->is_array() && std::find(known->begin(), known->end(), id_hex) == known->end()) {
        ask_again(p);
        return;
      }
      p.interest_version = v;
      if (const auto list = body.find("interest"); list != body.end() && list->is_array()) apply_interest(slot, *list);
    }
  }
  bool republish_hello SWARM_GUARDED_BY(mu) = false;

  // A hello makes every node repeat its interest; at most one per peer every
  // four heartbeats.
  void ask_again(Peer& p) SWARM_REQUIRES(mu) {
    const std::int64_t now = now_ns();
    if (now - p.asked_interest <= 4 * std::chrono::nanoseconds(cfg.heartbeat_interval).count()) return;
    p.asked_interest = now;
    republish_hello = true;
  }

  static void on_pong(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
    auto& s = *static_cast<Impl*>(self);
    const json body = json::parse(std::string_view(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)), nullptr, false);
    natsMsg_Destroy(msg);
    if (!body.is_object() || !body.contains("id") || !body["id"].is_string() || !body.contains("t")) return;
    const int slot = s.slot_of(std::strtoull(body["id"].get<std::string>().c_str(), nullptr, 16));
    if (slot < 0 || !body["t"].is_number_integer()) return;
    s.peers[slot].rtt_ns.store(now_ns() - body["t"].get<std::int64_t>());
  }

  static void on_disconnected(natsConnection*, void* self) { static_cast<Impl*>(self)->connected.store(false); }
  static void on_closed(natsConnection*, void* self) {
    auto& s = *static_cast<Impl*>(self);
    std::lock_guard lock(s.stop_mu);
    s.closed = true;
    s.stop_cv.notify_all();
  }
  static void on_reconnected(natsConnection*, void* self) {
    auto& s = *static_cast<Impl*>(self);
    s.connected.store(true);
    s.reconnects.fetch_add(1);
    s.send_control("hello", {});  // interest may have been lost during the gap
    MutexLock lock(s.mu);
    s.republish_interest = true;
  }

  // -- frames ---

  router::DeliverStatus relay_publish(const router::Delivery& d) noexcept {
    const auto slot = static_cast<std::uint32_t>(d.address >> 48);
    const auto gid = static_cast<std::uint32_t>((d.address >> 16) & 0xffffffff);
    if (slot >= kMaxPeers || !peers[slot].up.load(std::memory_order_acquire)) {
      count(RemoteDrop::node_down);  // declared down a moment ago; its interest is being withdrawn
      return router::DeliverStatus::dead;
    }
    wire::Frame f;
    f.type = wire::Type::publish;
    f.kind = d.kind;
    f.sender = export_ref(d.sender, d.sender_node);
    f.correlation_id = d.correlation_id;
    f.ttl_ns = ttl_of(d.deadline_ns);
    f.topic = rt.router().topic_name(d.topic);
    if (gid != 0) f.group = *group_names[gid].load(std::memory_order_acquire);
    const SendResult r = send_frame(slot, f, d.payload);
    return r == SendResult::ok ? router::DeliverStatus::ok
           : r == SendResult::mailbox_full ? router::DeliverStatus::mailbox_full
                                          : router::DeliverStatus::dead;
  }

  static std::uint64_t ttl_of(std::uint64_t deadline_ns) {
    if (deadline_ns == 0) return 0;
    const auto now = static_cast<std::uint64_t>(now_ns());
    return deadline_ns > now ? deadline_ns - now : 1;
  }

  SendResult send_direct(std::uint32_t slot, std::uint32_t home, AgentRef to, Message& msg) noexcept {
    if (!peers[slot].up.load(std::memory_order_acquire)) return SendResult::unreachable;
    wire::Frame f;
    f.to = {to.bits(), home};
    f.kind = msg.kind;
    f.correlation_id = msg.correlation_id;
    f.ttl_ns = ttl_of(msg.deadline_ns);
    if (msg.system == SystemKind::reply) {
      f.type = wire::Type::reply;
      f.status = msg.status;
      f.partial = msg.partial;
    } else if (msg.system == SystemKind::user) {
      f.type = wire::Type::send;
      const AgentRef from = msg.correlation_id != 0 && msg.reply_to.valid() ? msg.reply_to : msg.sender;
      f.sender = export_ref(from.bits(), from.node);
    } else {
      return SendResult::unreachable;  // stop, kill and links do not cross nodes
    }
    return send_frame(slot, f, msg.payload);
  }

  SendResult send_frame(std::uint32_t slot, wire::Frame& f, const Payload& payload) noexcept {
    if (payload.content_type() == ContentType::value && !(f.type == wire::Type::reply && f.status != 0)) {
      count(RemoteDrop::not_encodable);
      return SendResult::dead_agent;
    }
    if (payload.size() > cfg.max_payload_bytes) {
      count(RemoteDrop::too_large);
      return SendResult::dead_agent;
    }
    thread_local std::string buf;
    Peer& p = peers[slot];
    f.origin = incarnation;
    f.content = static_cast<std::uint8_t>(payload.content_type());
    f.payload = payload.content_type() == ContentType::value ? std::string_view{} : payload.text();
    const std::size_t size = wire::kHeaderBytes + f.topic.size() + f.group.size() + f.payload.size();
    try {
      MutexLock lock(p.send_mu);
      // Declared down after the caller looked: what down_locked() counted as lost is final, so this one
      // is not sent (a frame numbered after it would reach nobody, uncounted).
      if (!p.up.load(std::memory_order_acquire)) {
        count(RemoteDrop::node_down);
        return SendResult::unreachable;
      }
      const std::uint64_t acked = p.acked.load(std::memory_order_acquire);
      if (p.next_seq > acked && p.next_seq - acked >= cfg.max_in_flight) {
        count(RemoteDrop::backlog_full);
        return SendResult::mailbox_full;
      }
      if (cfg.send_asap) {
        f.seq = p.next_seq + 1;
        buf.clear();
        wire::encode(f, buf);
        if (natsConnection_Publish(nc, p.subject.c_str(), buf.data(), static_cast<int>(buf.size())) != NATS_OK) {
          count(RemoteDrop::disconnected);
          return SendResult::mailbox_full;
        }
      } else {
        if (p.batch.size() + size > kBatchBytes) flush_locked(p);  // a batch stays under the limit, or is one frame
        f.seq = p.next_seq + 1;
        const bool first = p.batch.empty();
        wire::encode(f, p.batch);
        ++p.batch_frames;
        if (p.batch.size() >= kBatchBytes) {
          flush_locked(p);
        } else if (first) {
          {
            std::lock_guard wake(flush_mu);
            flush_wanted = true;
          }
          flush_cv.notify_one();
        }
      }
      p.next_seq = f.seq;
      p.sent.fetch_add(1, std::memory_order_relaxed);
      p.sent_bytes.fetch_add(size, std::memory_order_relaxed);
    } catch (...) {  // out of memory: refused, not lost silently
      return SendResult::mailbox_full;
    }
    return SendResult::ok;
  }

  // Hands p's coalesced frames to NATS as one message. If NATS refuses it (no
  // connection and the reconnect buffer full) its frames are counted as
  // disconnected and their sequence numbers given back: the peer sees no gap.
  void flush_locked(Peer& p) SWARM_REQUIRES(p.send_mu) {
    if (p.batch.empty()) return;
    if (natsConnection_Publish(nc, p.subject.c_str(), p.batch.data(), static_cast<int>(p.batch.size())) != NATS_OK) {
      count(RemoteDrop::disconnected, p.batch_frames);
      p.next_seq -= p.batch_frames;
      p.sent.fetch_sub(p.batch_frames, std::memory_order_relaxed);
      p.sent_bytes.fetch_sub(p.batch.size(), std::memory_order_relaxed);
    }
    p.batch_frames = 0;
    if (p.batch.capacity() > 4 * kBatchBytes) {
      std::string().swap(p.batch);  // one large frame passed: do not keep its buffer
    } else {
      p.batch.clear();
    }
  }

  void flush_all() {
    for (std::uint32_t i = 0; i < peer_slots.load(std::memory_order_acquire); ++i) {
      MutexLock lock(peers[i].send_mu);
      flush_locked(peers[i]);
    }
  }

  // Woken by the first frame coalesced for a peer; while it hands batches to
  // NATS, the next ones fill: the busier the link, the larger the batches.
  void flush_loop() {
    std::unique_lock lock(flush_mu);
    for (;;) {
      flush_cv.wait(lock, [&] { return flush_wanted || flush_stop; });
      if (flush_stop) return;
      flush_wanted = false;
      lock.unlock();
      flush_all();
      lock.lock();
    }
  }

  void send_ack(std::uint32_t slot, std::uint64_t seq) {
    wire::Frame f;
    f.type = wire::Type::ack;
    f.origin = incarnation;
    f.seq = seq;
    std::string buf;
    wire::encode(f, buf);
    std::string subject;
    {
      MutexLock lock(peers[slot].send_mu);
      subject = peers[slot].subject;
    }
    natsConnection_Publish(nc, subject.c_str(), buf.data(), static_cast<int>(buf.size()));
  }

  static void on_data(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
    static_cast<Impl*>(self)->receive(std::string_view(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)));
    natsMsg_Destroy(msg);
  }

  // A NATS message: one frame, or several a peer coalesced.
  void receive(std::string_view bytes) {
    while (!bytes.empty()) {
      const std::size_t before = bytes.size();
      auto f = wire::decode(bytes);
      if (!f) {
        if (malformed.fetch_add(1) == 0) std::fprintf(stderr, "cluster %s: %s\n", cfg.node.c_str(), f.error().c_str());
        return;
      }
      receive_frame(*f, before - bytes.size());
    }
  }

  void receive_frame(const wire::Frame& f, std::size_t frame_bytes) {
    const int found = slot_of(f.origin);
    if (found < 0) {
      if (f.type != wire::Type::ack) count(RemoteDrop::unknown_node);
      return;
    }
    const auto slot = static_cast<std::uint32_t>(found);
    Peer& p = peers[slot];
    p.last_heard.store(now_ns(), std::memory_order_relaxed);
    if (f.type == wire::Type::ack) {
      std::uint64_t old = p.acked.load();
      while (f.seq > old && !p.acked.compare_exchange_weak(old, f.seq)) {
      }
      return;
    }
    if (p.expected == 0) p.expected = f.seq;
    if (f.seq >= p.expected) {
      if (f.seq > p.expected) {
        p.lost_in_transit.fetch_add(f.seq - p.expected);
        count(RemoteDrop::lost_in_transit, f.seq - p.expected);
      }
      p.expected = f.seq + 1;
      p.seen.store(f.seq, std::memory_order_release);
    }
    p.received.fetch_add(1, std::memory_order_relaxed);
    p.received_bytes.fetch_add(frame_bytes, std::memory_order_relaxed);
    if (f.seq % kAckEvery == 0) send_ack(slot, f.seq);

    if (f.content >= kContentTypeCount || f.content == static_cast<std::uint8_t>(ContentType::value)) {
      malformed.fetch_add(1);
      return;
    }
    Payload payload(std::as_bytes(std::span(f.payload.data(), f.payload.size())), static_cast<ContentType>(f.content));
    const AgentRef sender = local_ref(slot, f.sender);
    ForwardOptions o{sender, f.correlation_id, {f.kind, std::chrono::nanoseconds(f.ttl_ns)}};
    switch (f.type) {
      case wire::Type::publish: {
        auto topic = rt.router().intern(f.topic);
        if (!topic) {
          malformed.fetch_add(1);
          return;
        }
        o.relayed_by = &relay;
        o.relay_group = f.group;
        const router::PublishResult r = rt.forward_publish(*topic, payload, o);
        if (f.correlation_id != 0 && r.delivered == 0) answer(slot, f.sender, f.correlation_id, AskStatus::no_responder);
        break;
      }
      case wire::Type::send: {
        const SendResult r = rt.forward(AgentRef::from_bits(f.to.bits, f.to.node), std::move(payload), o);
        if (f.correlation_id != 0 && r != SendResult::ok) answer(slot, f.sender, f.correlation_id, status_of(r));
        break;
      }
      case wire::Type::reply:
        (void)rt.forward_reply(AgentRef::from_bits(f.to.bits, f.to.node), f.correlation_id,
                               static_cast<AskStatus>(f.status), f.partial, std::move(payload));
        break;
      case wire::Type::ack: break;
    }
  }

  // A request that found nobody here is answered at once, as on one node.
  void answer(std::uint32_t slot, wire::Ref asker, std::uint64_t correlation_id, AskStatus status) {
    wire::Frame f;
    f.type = wire::Type::reply;
    f.to = asker;
    f.correlation_id = correlation_id;
    f.status = static_cast<std::uint8_t>(status);
    (void)send_frame(slot, f, Payload{});
  }

  // -- the ticker ---

  void tick_loop() {
    auto next_beat = Clock::now();
    auto next_refresh = Clock::now() + cfg.node_timeout / 3;
    std::unique_lock lock(stop_mu);
    while (!stop) {
      stop_cv.wait_for(lock, kTick);
      if (stop) break;
      lock.unlock();
      bool force = false;
      bool hello = false;
      {
        MutexLock l(mu);
        force = std::exchange(republish_interest, false);
        hello = std::exchange(republish_hello, false);
      }
      if (hello) send_control("hello", {});
      poll_interest(force);
      write_names();
      const auto now = Clock::now();
      if (now >= next_beat) {
        next_beat = now + cfg.heartbeat_interval;
        beat();
      }
      if (now >= next_refresh) {
        next_refresh = now + cfg.node_timeout / 3;
        std::uint64_t rev = 0;
        kvStore_PutString(&rev, nodes_kv, cfg.node.c_str(), id_hex.c_str());
        forget_dead_names();
      }
      lock.lock();
    }
  }

  void beat() {
    send_control("hb", {{"v", interest_version}, {"t", now_ns()}});
    release_dead_names();
    const std::int64_t now = now_ns();
    const std::int64_t timeout = std::chrono::nanoseconds(cfg.node_timeout).count();
    {
      MutexLock lock(mu);
      for (std::uint32_t i = 0; i < peer_slots.load(); ++i) {
        if (peers[i].up.load() && now - peers[i].last_heard.load() > timeout) down_locked(i, true);
      }
    }
    detach_retired();
    for (std::uint32_t i = 0; i < peer_slots.load(); ++i) {
      Peer& p = peers[i];
      const std::uint64_t seen = p.seen.load();
      if (p.up.load() && seen != p.ack_sent) {
        p.ack_sent = seen;
        send_ack(i, seen);
      }
    }
  }

  // -- names ---

  AgentRef resolve(std::string_view name) const noexcept {
    std::uint64_t owner = 0;
    wire::Ref ref;
    {
      MutexLock lock(names_mu);
      auto it = names.find(name_key(name));
      if (it == names.end()) return {};
      owner = it->second.incarnation;
      ref = it->second.ref;
    }
    if (owner == incarnation) return {};  // ours: the runtime knows it
    const int slot = slot_of(owner);
    if (slot < 0) return {};  // its node is down
    return const_cast<Impl*>(this)->local_ref(static_cast<std::uint32_t>(slot), ref);
  }

  void name_changed(std::string_view name, AgentRef holder, bool registered) noexcept {
    if (holder.node != 0 && holder.node <= kMaxRemoteNodes && number_slot[holder.node].load() != 0) return;  // not ours
    try {
      MutexLock lock(names_mu);
      name_ops.push_back({std::string(name), holder, registered});
    } catch (...) {
    }
  }

  void write_names() {
    std::vector<NameOp> ops;
    {
      MutexLock lock(names_mu);
      ops.swap(name_ops);
    }
    for (const NameOp& op : ops) {
      const std::string key = name_key(op.name);
      if (op.registered) {
        const json value = {{"name", op.name}, {"node", cfg.node}, {"id", id_hex}, {"ref", {op.holder.bits(), op.holder.node}}};
        const std::string text = value.dump();
        {
          MutexLock lock(names_mu);
          own_names[op.name] = op.holder;
        }
        std::uint64_t rev = 0;
        kvStore_PutString(&rev, names_kv, key.c_str(), text.c_str());
      } else {
        bool mine = false;
        {
          MutexLock lock(names_mu);
          auto it = own_names.find(op.name);
          mine = it != own_names.end() && it->second == op.holder;
          if (mine) own_names.erase(it);
        }
        if (mine) kvStore_Delete(names_kv, key.c_str());
      }
    }
  }

  // A name registered with Runtime::register_name stays in the runtime's
  // table after its agent exits (it is skipped there); here it is released.
  void release_dead_names() {
    std::vector<std::pair<std::string, AgentRef>> dead;
    {
      MutexLock lock(names_mu);
      for (const auto& [name, holder] : own_names) {
        if (!rt.alive(holder)) dead.emplace_back(name, holder);
      }
    }
    for (const auto& [name, holder] : dead) {
      if (!rt.unregister_name(name, holder)) name_changed(name, holder, false);
    }
  }

  void watch_names() {
    while (true) {
      kvEntry* e = nullptr;
      const natsStatus s = kvWatcher_Next(&e, names_watch, 200);
      {
        std::lock_guard lock(stop_mu);
        if (stop) {
          if (e != nullptr) kvEntry_Destroy(e);
          return;
        }
      }
      if (s != NATS_OK || e == nullptr) continue;  // a timeout, or the end of the initial values
      const std::string key = kvEntry_Key(e);
      if (kvEntry_Operation(e) != kvOp_Put) {
        MutexLock lock(names_mu);
        names.erase(key);
        kvEntry_Destroy(e);
        continue;
      }
      const json v = json::parse(std::string_view(static_cast<const char*>(kvEntry_Value(e)), kvEntry_ValueLen(e)),
                                 nullptr, false);
      kvEntry_Destroy(e);
      if (!v.is_object() || !v.contains("ref") || !v["ref"].is_array() || v["ref"].size() != 2) continue;
      NameEntry entry{v.value("node", ""), std::strtoull(v.value("id", "").c_str(), nullptr, 16),
                      {v["ref"][0].get<std::uint64_t>(), v["ref"][1].get<std::uint32_t>()}};
      const std::string name = v.value("name", "");
      AgentRef revoked;
      {
        MutexLock lock(names_mu);
        // Two nodes registered the name at once: the bucket's last write wins.
        if (entry.incarnation != incarnation) {
          if (auto it = own_names.find(name); it != own_names.end()) {
            revoked = it->second;
            own_names.erase(it);
          }
        }
        names[key] = std::move(entry);
      }
      if (revoked.valid() && rt.unregister_name(name, revoked)) {
        name_conflicts.fetch_add(1);
        std::fprintf(stderr, "cluster %s: name \"%s\" was registered on another node at the same time; it is theirs\n",
                     cfg.node.c_str(), name.c_str());
      }
    }
  }

  // The names of nodes declared down are deleted by one live node: the one
  // whose name sorts first.
  void forget_dead_names() {
    std::set<std::uint64_t> dead;
    {
      MutexLock lock(mu);
      for (std::uint32_t i = 0; i < peer_slots.load(); ++i) {
        if (peers[i].up.load() && peers[i].name < cfg.node) return;
      }
      dead = down_incarnations;
    }
    std::vector<std::string> keys;
    {
      MutexLock lock(names_mu);
      for (const auto& [key, entry] : names) {
        if (dead.count(entry.incarnation) != 0) keys.push_back(key);
      }
    }
    for (const std::string& key : keys) kvStore_Delete(names_kv, key.c_str());
  }

  // -- observability ---

  PeerStats peer_stats_of(std::uint32_t i, std::int64_t now) const SWARM_REQUIRES(mu) {
    const Peer& p = peers[i];
    PeerStats s;
    s.node = p.name;
    s.up = p.up.load();
    s.left = !s.up && p.left.load();
    s.sent = p.sent.load();
    s.sent_bytes = p.sent_bytes.load();
    s.acknowledged = p.acked.load();
    s.received = p.received.load();
    s.received_bytes = p.received_bytes.load();
    s.lost_in_transit = p.lost_in_transit.load();
    s.lost_node_down = p.lost_node_down.load();
    s.interest = static_cast<std::uint32_t>(p.interest.size());
    s.rtt_ms = static_cast<double>(p.rtt_ns.load()) / 1e6;
    s.silent_ms = static_cast<double>(now - p.last_heard.load()) / 1e6;
    return s;
  }

  std::vector<PeerStats> peer_stats() const {
    std::vector<PeerStats> out;
    const std::int64_t now = now_ns();
    MutexLock lock(mu);
    for (std::uint32_t i = 0; i < peer_slots.load(); ++i) {
      if (!peers[i].name.empty()) out.push_back(peer_stats_of(i, now));
    }
    return out;
  }

  ClusterStats stats() const {
    ClusterStats s;
    s.connected = connected.load();
    char url[256] = {};
    {
      MutexLock lock(conn_mu);
      if (nc != nullptr && natsConnection_GetConnectedUrl(nc, url, sizeof url) == NATS_OK) s.server = url;
    }
    s.reconnects = reconnects.load();
    s.nodes_down = nodes_down.load();
    for (int i = 0; i < kRemoteDropReasons; ++i) s.dropped[i] = dropped[i].load();
    s.interest_entries = interest_entries.load();
    s.peers = peer_stats();
    return s;
  }

  void publish_metrics(metrics::Collector& c) const {
    const ClusterStats s = stats();
    c.gauge("swarm_cluster_connected_servers", "NATS servers this node is connected to (0 or 1)", {}, s.connected ? 1 : 0);
    c.counter("swarm_cluster_reconnects_total", "Reconnections to a NATS server", {}, static_cast<double>(s.reconnects));
    c.gauge("swarm_cluster_interest_entries", "This node's (pattern, queue group) entries announced to the others", {},
            s.interest_entries);
    c.counter("swarm_cluster_nodes_down_total", "Peer nodes declared down (silent, left or restarted)", {},
              static_cast<double>(s.nodes_down));
    std::uint32_t up = 0;
    for (const PeerStats& p : s.peers) up += p.up ? 1 : 0;
    c.gauge("swarm_cluster_nodes", "Peer nodes up", {}, up);
    c.gauge("swarm_cluster_max_in_flight", "Unacknowledged messages allowed per peer before backlog_full", {},
            static_cast<double>(cfg.max_in_flight));
    for (int i = 0; i < kRemoteDropReasons; ++i) {
      c.counter("swarm_cluster_dropped_total", "Messages between nodes dropped, by reason",
                {{"reason", std::string(to_string(static_cast<RemoteDrop>(i)))}}, static_cast<double>(s.dropped[i]));
    }
    for (const PeerStats& p : s.peers) {
      if (p.left) continue;  // a clean leave: nothing to watch until it comes back
      c.counter("swarm_cluster_messages_total", "Messages to and from each peer node",
                {{"peer", p.node}, {"direction", "out"}}, static_cast<double>(p.sent));
      c.counter("swarm_cluster_messages_total", "Messages to and from each peer node",
                {{"peer", p.node}, {"direction", "in"}}, static_cast<double>(p.received));
      c.counter("swarm_cluster_bytes_total", "Frame bytes to and from each peer node", {{"peer", p.node}, {"direction", "out"}},
                static_cast<double>(p.sent_bytes));
      c.counter("swarm_cluster_bytes_total", "Frame bytes to and from each peer node", {{"peer", p.node}, {"direction", "in"}},
                static_cast<double>(p.received_bytes));
      c.gauge("swarm_cluster_in_flight", "Messages sent to a peer and not yet acknowledged", {{"peer", p.node}},
              static_cast<double>(p.sent > p.acknowledged ? p.sent - p.acknowledged : 0));
      c.gauge("swarm_cluster_peer_interest_entries", "A peer's (pattern, queue group) entries", {{"peer", p.node}}, p.interest);
      c.gauge("swarm_cluster_rtt_seconds", "Heartbeat round trip to a peer through NATS", {{"peer", p.node}}, p.rtt_ms / 1e3);
      c.gauge("swarm_cluster_peer_up", "1 while a peer node is up", {{"peer", p.node}}, p.up ? 1 : 0);
    }
  }

  std::string debug_json() const {
    const ClusterStats s = stats();
    json peers_json = json::array();
    {
      const std::int64_t now = now_ns();
      MutexLock lock(mu);
      for (std::uint32_t i = 0; i < peer_slots.load(); ++i) {
        if (peers[i].name.empty()) continue;
        const PeerStats p = peer_stats_of(i, now);
        json interest = json::array();
        for (const auto& [key, n] : peers[i].interest) {
          interest.push_back({{"pattern", key.first}, {"queue_group", key.second}, {"subscribers", n}});
        }
        peers_json.push_back({{"node", p.node}, {"up", p.up}, {"left", p.left}, {"sent", p.sent},
                              {"acknowledged", p.acknowledged}, {"received", p.received},
                              {"lost_in_transit", p.lost_in_transit}, {"lost_node_down", p.lost_node_down},
                              {"rtt_ms", p.rtt_ms}, {"silent_ms", p.silent_ms}, {"interest", std::move(interest)}});
      }
    }
    json dropped_json = json::object();
    for (int i = 0; i < kRemoteDropReasons; ++i) dropped_json[std::string(to_string(static_cast<RemoteDrop>(i)))] = s.dropped[i];
    return json{{"node", cfg.node},
                {"incarnation", id_hex},
                {"connected", s.connected},
                {"server", s.server},
                {"reconnects", s.reconnects},
                {"interest_entries", s.interest_entries},
                {"heartbeat_interval_ms", cfg.heartbeat_interval.count()},
                {"node_timeout_ms", cfg.node_timeout.count()},
                {"max_in_flight", cfg.max_in_flight},
                {"dropped", dropped_json},
                {"peers", peers_json}}
        .dump(2);
  }
};

Cluster::Cluster(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Cluster::~Cluster() = default;
void Cluster::leave() { impl_->leave(); }

Result<std::unique_ptr<Cluster>> Cluster::join(Runtime& rt, ClusterConfig config) {
  if (auto r = config.validate(); !r) return unexpected(r.error());
  auto impl = std::make_unique<Impl>(rt, std::move(config));
  if (auto r = impl->start(); !r) return unexpected(r.error());
  return std::unique_ptr<Cluster>(new Cluster(std::move(impl)));
}

const ClusterConfig& Cluster::config() const noexcept { return impl_->cfg; }

std::vector<std::string> Cluster::nodes() const {
  std::vector<std::string> out;
  for (const PeerStats& p : impl_->peer_stats()) {
    if (p.up) out.push_back(p.node);
  }
  std::sort(out.begin(), out.end());
  return out;
}

ClusterStats Cluster::stats() const { return impl_->stats(); }
std::string Cluster::debug_json() const { return impl_->debug_json(); }

}  // namespace swarm::cluster
