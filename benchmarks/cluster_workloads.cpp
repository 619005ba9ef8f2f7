// C1..C3, the cluster workloads (see workloads.hpp and docs/benchmarks.md):
// Swarm runtimes joined through NATS (cluster/) against raw libnats doing the
// same transfers through the same nats-server.
//
// C1 and C2 have two nodes, each a process. The measured one (swarm-bench's
// --child) is node B, with the agent; it starts node A, this executable again
// with the hidden --cluster-child PREFIX, which publishes (C1) or requests
// (C2) and prints its results as a JSON line on a pipe. A stays joined until
// B closes A's stdin: B has every message by then, and A's goodbye (a control
// subject, delivered on another thread) cannot overtake A's last frames.
//
//   C1 swarm: Runtime::publish on A -> relay -> NATS -> B -> a subscribed agent that counts.
//      raw:   natsConnection_Publish on A -> NATS -> an async subscription on B that counts.
//   C2 swarm: Runtime::request on A to c2.echo -> B's echo agent replies, one request at a time.
//      raw:   natsConnection_Request on A -> a subscription on B publishing each back to its reply subject.
//   C3 swarm: a publisher agent -> one local subscriber, the runtime joined to a cluster whose
//             other node (A, idle) listens on another topic, so nothing crosses.
//      raw:   the same runtime and agents, no cluster.
//
// Every run has subjects and buckets of its own (a prefix with B's pid); the
// buckets are deleted afterwards. Both sides of a run use the same SendAsap
// (send_asap_for) and the same pending limits on the receiving subscription.

#include <nats/nats.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "benchmarks/bench_driver.hpp"
#include "benchmarks/workload_support.hpp"
#include "benchmarks/workloads.hpp"
#include "cluster/cluster.hpp"
#include "runtime/runtime.hpp"

namespace swarm::bench {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::string_view kC1Topic = "c1.data";
constexpr std::string_view kC2Topic = "c2.echo";
constexpr std::string_view kC3Topic = "c3.local";
constexpr std::string_view kC3Other = "c3.other";  // node A's interest: a topic nobody publishes on
constexpr std::uint64_t kC1Window = 1'024;          // publishes between two looks at the frames in flight
constexpr std::uint64_t kC2Warmup = 1'000;          // round trips before the measured ones
// The receiving subscription's pending limits, the cluster's own for its data
// subject: a burst waits in libnats instead of being dropped as a slow consumer.
constexpr int kPendingMessages = 1 << 20;
constexpr int kPendingBytes = 256 << 20;
constexpr auto kDeadline = 300s;  // no run should come near it; a hang ends with an error
constexpr auto kQuiet = 10s;      // after A has sent everything: this long without a message means drops
constexpr auto kJoinWait = 30s;   // until a node sees the other's interest

std::uint64_t c1_messages(const WorkloadParams& p) { return p.scale != 0 ? p.scale : 1'000'000; }
std::uint64_t c2_requests(const WorkloadParams& p) { return p.scale != 0 ? p.scale : 20'000; }
std::uint64_t c3_messages(const WorkloadParams& p) { return p.scale != 0 ? p.scale : 1'000'000; }

// A whole run fits in the agent's mailbox: what arrives from another node
// cannot be pushed back on, and a full mailbox would drop it.
RuntimeConfig config_for_run(const WorkloadParams& p, std::uint64_t n) {
  RuntimeConfig c = config_for(p);
  c.default_mailbox.capacity =
      static_cast<std::uint32_t>(std::clamp<std::uint64_t>(n + 1024, 1024, RuntimeConfig::kMaxMailboxCapacity));
  return c;
}

std::vector<std::string> server_urls(const WorkloadParams& p) {
  std::vector<std::string> urls;
  std::stringstream in(p.nats_urls);
  for (std::string url; std::getline(in, url, ',');) {
    if (!url.empty()) urls.push_back(url);
  }
  return urls;
}

cluster::ClusterConfig node_config(std::string_view id, const std::string& prefix, std::string node,
                                   const WorkloadParams& p) {
  cluster::ClusterConfig c;
  c.node = std::move(node);
  c.servers = server_urls(p);
  c.prefix = prefix;
  c.send_asap = send_asap_for(id, p);
  return c;
}

std::unique_ptr<cluster::Cluster> join(std::string_view id, Runtime& rt, const cluster::ClusterConfig& c) {
  auto node = cluster::Cluster::join(rt, c);
  if (!node) fail(id, node.error());
  return std::move(*node);
}

// Until this node's router has a receiver for `topic` (the other node's
// interest arrived).
void wait_for_interest(std::string_view id, Runtime& rt, std::string_view topic) {
  const router::TopicId t = rt.router().intern(topic).value();
  for (const auto deadline = Clock::now() + kJoinWait; rt.router().receivers(t) == 0;) {
    if (Clock::now() > deadline) fail(id, "the other node's interest in " + std::string(topic) + " never arrived");
    std::this_thread::sleep_for(1ms);
  }
}

Payload payload() {
  return Payload(std::as_bytes(std::span(payload_bytes().data(), payload_bytes().size())), ContentType::octet_stream);
}

std::string subject(const std::string& prefix, std::string_view topic) { return prefix + "." + std::string(topic); }

// -- raw libnats ---

struct NatsFree {
  void operator()(natsConnection* nc) const noexcept {
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
  }
  void operator()(natsSubscription* s) const noexcept { natsSubscription_Destroy(s); }
  void operator()(natsMsg* m) const noexcept { natsMsg_Destroy(m); }
};
using Connection = std::unique_ptr<natsConnection, NatsFree>;
using Subscription = std::unique_ptr<natsSubscription, NatsFree>;
using NatsMessage = std::unique_ptr<natsMsg, NatsFree>;

std::string nats_error(natsStatus s) {
  const char* last = nats_GetLastError(nullptr);
  std::string text = natsStatus_GetText(s);
  if (last != nullptr && *last != '\0' && text != last) text += " (" + std::string(last) + ")";
  return text;
}

void check(std::string_view id, natsStatus s, std::string_view what) {
  if (s != NATS_OK) fail(id, "raw: " + std::string(what) + ": " + nats_error(s));
}

// The servers as a node connects to them: in order, SendAsap as the run's.
Connection connect(std::string_view id, const WorkloadParams& p) {
  const std::vector<std::string> urls = server_urls(p);
  std::vector<const char*> list;
  for (const std::string& u : urls) list.push_back(u.c_str());
  natsOptions* o = nullptr;
  natsStatus s = natsOptions_Create(&o);
  if (s == NATS_OK) s = natsOptions_SetServers(o, list.data(), static_cast<int>(list.size()));
  if (s == NATS_OK) s = natsOptions_SetNoRandomize(o, true);
  if (s == NATS_OK) s = natsOptions_SetSendAsap(o, send_asap_for(id, p));
  natsConnection* nc = nullptr;
  if (s == NATS_OK) s = natsConnection_Connect(&nc, o);
  natsOptions_Destroy(o);
  check(id, s, "connecting to " + p.nats_urls);
  return Connection(nc);
}

// A run's key-value buckets (the cluster creates PREFIX_nodes and
// PREFIX_names in JetStream's memory): gone with the run.
void delete_buckets(std::string_view id, const WorkloadParams& p, const std::string& prefix) {
  Connection nc = connect(id, p);
  jsCtx* js = nullptr;
  if (natsConnection_JetStream(&js, nc.get(), nullptr) != NATS_OK) return;
  for (const char* what : {"_nodes", "_names"}) (void)js_DeleteKeyValue(js, (prefix + what).c_str());
  jsCtx_Destroy(js);
}

// -- node A, seen from B ---

// This executable again as `swarm-bench ID --cluster-child PREFIX --runtime R
// --nats URLS --scale N ...`; it stays joined until its stdin closes.
class NodeProcess : public ChildProcess {
 public:
  NodeProcess(std::string_view id, std::string_view runtime, const std::string& prefix, const WorkloadParams& p)
      : ChildProcess(id, "node A",
                     {"swarm-bench", std::string(id), "--cluster-child", prefix, "--runtime", std::string(runtime),
                      "--nats", p.nats_urls, "--scale", std::to_string(p.scale), "--workers",
                      std::to_string(p.workers), "--send-asap", send_asap_for(id, p) ? "on" : "off", "--telemetry",
                      p.telemetry ? "on" : "off"},
                     true) {}
  json result() { return ChildProcess::result(kDeadline); }
};

// Node A's side: until B closes our stdin.
void wait_for_release() {
  char buf[64];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EINTR)) return;
  }
}

void print(const json& j) { std::cout << j.dump() << std::endl; }

// -- C1: node A publishes, one agent on node B counts ---

// What B received, read by B's main thread while the run goes on.
struct Tally {
  std::atomic<std::uint64_t> seen{0};
  std::atomic<std::int64_t> first_ns{0}, last_ns{0};

  // One more message; the clock is read at the first, at the last one
  // expected and every 1,024 in between (for a run with drops).
  void count(std::uint64_t expect) {
    const std::uint64_t n = seen.load(std::memory_order_relaxed) + 1;
    if (n == 1) first_ns.store(now_ns(), std::memory_order_relaxed);
    if (n == expect || (n & 1023) == 0) last_ns.store(now_ns(), std::memory_order_relaxed);
    seen.store(n, std::memory_order_release);
  }
};

class C1Counter : public Agent {
 public:
  C1Counter(std::uint64_t expect, Tally& tally, Countdown& joined) : expect_(expect), tally_(tally), joined_(joined) {}
  void on_start() override {
    if (!subscribe(kC1Topic)) throw std::runtime_error("C1: subscribe failed");
    joined_.count_down();
  }
  void on_message(Message&) override { tally_.count(expect_); }

 private:
  std::uint64_t expect_;
  Tally& tally_;
  Countdown& joined_;
};

// B's main thread: until the tally has `n`, or node A has printed its result
// (it sent everything) and nothing came for kQuiet. Returns A's result.
json wait_for_messages(std::string_view id, NodeProcess& a, const Tally& tally, std::uint64_t n) {
  json sent;
  std::uint64_t last_seen = 0;
  auto last_progress = Clock::now();
  for (const auto deadline = Clock::now() + kDeadline; tally.seen.load(std::memory_order_acquire) < n;) {
    if (auto line = a.read_line(Clock::now() + 1ms)) sent = a.parse(*line);
    const std::uint64_t seen = tally.seen.load(std::memory_order_acquire);
    const auto now = Clock::now();
    if (seen != last_seen) {
      last_seen = seen;
      last_progress = now;
    }
    if (!sent.is_null() && now - last_progress > kQuiet) break;
    if (now > deadline) fail(id, "the run did not end in " + std::to_string(kDeadline.count()) + " s");
  }
  return sent.is_null() ? a.result() : sent;
}

RunResult c1_result(std::uint64_t sent, const Tally& tally, const std::string& why_lost) {
  const std::uint64_t received = tally.seen.load(std::memory_order_acquire);
  RunResult r;
  r.seconds = static_cast<double>(tally.last_ns.load() - tally.first_ns.load()) / 1e9;
  r.value = r.seconds > 0 ? static_cast<double>(received) / r.seconds : 0;
  r.checksum = received;
  r.drops = sent - std::min(sent, received);
  if (*r.drops != 0) {
    std::cerr << "C1: " << *r.drops << " of " << sent << " messages were not received (" << why_lost
              << "); the figure counts what arrived\n";
  }
  return r;
}

// "backlog_full 12, node_down 3": the nonzero drop counters of a node.
std::string drops_text(const cluster::ClusterStats& s) {
  std::string out;
  for (int i = 0; i < cluster::kRemoteDropReasons; ++i) {
    if (s.dropped[i] == 0) continue;
    out += (out.empty() ? "" : ", ") + std::string(to_string(static_cast<cluster::RemoteDrop>(i))) + " " +
           std::to_string(s.dropped[i]);
  }
  return out.empty() ? "none" : out;
}

// Flow control: waits until node `peer` has acknowledged enough frames for
// another window under max_in_flight, so no publish is refused for
// backlog_full. (B acknowledges every 1,024 frames and every heartbeat.)
void wait_for_window(const cluster::Cluster& node, std::string_view peer) {
  const std::uint64_t limit = node.config().max_in_flight;
  for (const auto deadline = Clock::now() + kDeadline;;) {
    for (const cluster::PeerStats& s : node.stats().peers) {
      if (s.node == peer && s.up && s.sent - std::min(s.sent, s.acknowledged) + kC1Window <= limit) return;
    }
    if (Clock::now() > deadline) fail("C1", "node " + std::string(peer) + " never acknowledged what it was sent");
    std::this_thread::sleep_for(50us);
  }
}

int c1_node_a_swarm(const std::string& prefix, const WorkloadParams& p) {
  const std::uint64_t n = c1_messages(p);
  Runtime rt(config_for(p));
  auto node = join("C1", rt, node_config("C1", prefix, "a", p));
  wait_for_interest("C1", rt, kC1Topic);
  const router::TopicId topic = rt.router().intern(kC1Topic).value();
  const Payload message = payload();
  std::uint64_t refused = 0;
  const auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < n;) {
    wait_for_window(*node, "b");
    for (std::uint64_t k = 0; k < kC1Window && i < n; ++k, ++i) refused += rt.publish(topic, message).delivered == 0 ? 1 : 0;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  print({{"sent", n}, {"refused", refused}, {"seconds", seconds}, {"dropped", drops_text(node->stats())}});
  wait_for_release();
  node.reset();
  rt.shutdown();
  return 0;
}

int c1_node_a_raw(const std::string& prefix, const WorkloadParams& p) {
  const std::uint64_t n = c1_messages(p);
  Connection nc = connect("C1", p);
  const std::string to = subject(prefix, kC1Topic);
  const std::string& bytes = payload_bytes();
  std::uint64_t refused = 0;
  const auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    refused += natsConnection_Publish(nc.get(), to.c_str(), bytes.data(), static_cast<int>(bytes.size())) == NATS_OK ? 0 : 1;
  }
  check("C1", natsConnection_Flush(nc.get()), "flush");  // the server has every message
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  print({{"sent", n}, {"refused", refused}, {"seconds", seconds}});
  wait_for_release();
  return 0;
}

}  // namespace

RunResult swarm_c1(const WorkloadParams& p) {
  const std::uint64_t n = c1_messages(p);
  const std::string prefix = "swarm-bench-c1-" + std::to_string(::getpid());
  RunResult r;
  {
    Runtime rt(config_for_run(p, n));
    auto node = join("C1", rt, node_config("C1", prefix, "b", p));
    Countdown joined(1);
    Tally tally;
    rt.spawn<C1Counter>(n, tally, joined);
    joined.wait();
    NodeProcess a("C1", "swarm", prefix, p);
    const json sent = wait_for_messages("C1", a, tally, n);
    a.finish();
    const RuntimeStats stats = rt.stats();
    r = c1_result(n, tally,
                  "A refused " + std::to_string(sent.at("refused").get<std::uint64_t>()) + ", A's cluster drops: " +
                      sent.at("dropped").get<std::string>() + ", B's: " + drops_text(node->stats()) +
                      ", B's runtime dropped " + std::to_string(stats.dropped_total()));
    node.reset();
    rt.shutdown();
  }
  delete_buckets("C1", p, prefix);
  return r;
}

RunResult raw_c1(const WorkloadParams& p) {
  const std::uint64_t n = c1_messages(p);
  const std::string prefix = "swarm-bench-c1-" + std::to_string(::getpid());
  struct Receiver {
    Tally tally;
    std::uint64_t expect;
  } receiver{{}, n};
  Connection nc = connect("C1", p);
  natsSubscription* raw_sub = nullptr;
  check("C1",
        natsConnection_Subscribe(
            &raw_sub, nc.get(), subject(prefix, kC1Topic).c_str(),
            [](natsConnection*, natsSubscription*, natsMsg* m, void* self) {
              auto& r = *static_cast<Receiver*>(self);
              r.tally.count(r.expect);
              natsMsg_Destroy(m);
            },
            &receiver),
        "subscribe");
  Subscription sub(raw_sub);
  check("C1", natsSubscription_SetPendingLimits(sub.get(), kPendingMessages, kPendingBytes), "pending limits");
  check("C1", natsConnection_Flush(nc.get()), "flush");  // the server has the subscription before A starts
  NodeProcess a("C1", "raw", prefix, p);
  const json sent = wait_for_messages("C1", a, receiver.tally, n);
  a.finish();
  std::int64_t slow_consumer = 0;
  (void)natsSubscription_GetDropped(sub.get(), &slow_consumer);
  (void)natsSubscription_Unsubscribe(sub.get());
  return c1_result(n, receiver.tally,
                   "A's publishes refused " + std::to_string(sent.at("refused").get<std::uint64_t>()) +
                       ", B dropped as a slow consumer " + std::to_string(slow_consumer));
}

namespace {

// -- C2: sequential requests from node A to an echo agent on node B ---

class C2Echo : public Agent {
 public:
  explicit C2Echo(Countdown& ready) : ready_(ready) {}
  void on_start() override {
    if (!subscribe(kC2Topic)) throw std::runtime_error("C2: subscribe failed");
    ready_.count_down();
  }
  void on_message(Message& m) override {
    if (m.is_request()) (void)reply(m, m.payload);
  }

 private:
  Countdown& ready_;
};

// Times `n` calls of `round_trip` after kC2Warmup unmeasured ones and prints
// the result line (G2's, gateway_workloads.cpp).
template <class RoundTrip>
void c2_measure(std::uint64_t n, RoundTrip&& round_trip) {
  std::uint64_t failed = 0;
  for (std::uint64_t i = 0; i < std::min(n, kC2Warmup); ++i) failed += round_trip() ? 0 : 1;
  std::vector<double> us;
  us.reserve(n);
  const auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto t = Clock::now();
    failed += round_trip() ? 0 : 1;
    us.push_back(to_us(Clock::now() - t));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  auto [median, p99] = median_p99(us);
  print({{"value", static_cast<double>(n) / seconds},
         {"seconds", seconds},
         {"ok", n - std::min(n, failed)},
         {"failed", failed},
         {"median_us", median},
         {"p99_us", p99}});
}

RunResult c2_result(const json& out) {
  RunResult r;
  r.seconds = out.at("seconds").get<double>();
  r.value = out.at("value").get<double>();
  r.checksum = out.at("ok").get<std::uint64_t>();
  r.latency_median_us = out.at("median_us").get<double>();
  r.latency_p99_us = out.at("p99_us").get<double>();
  if (out.at("failed").get<std::uint64_t>() != 0) {
    fail("C2", std::to_string(out.at("failed").get<std::uint64_t>()) + " requests got no proper answer");
  }
  return r;
}

int c2_node_a_swarm(const std::string& prefix, const WorkloadParams& p) {
  Runtime rt(config_for(p));
  auto node = join("C2", rt, node_config("C2", prefix, "a", p));
  wait_for_interest("C2", rt, kC2Topic);
  const Payload request = payload();
  c2_measure(c2_requests(p), [&] {
    const Reply reply = rt.request(kC2Topic, request, 5s).get();
    return reply.ok() && reply.message.payload.size() == kPayloadBytes;
  });
  wait_for_release();
  node.reset();
  rt.shutdown();
  return 0;
}

int c2_node_a_raw(const std::string& prefix, const WorkloadParams& p) {
  Connection nc = connect("C2", p);
  const std::string to = subject(prefix, kC2Topic);
  const std::string& bytes = payload_bytes();
  c2_measure(c2_requests(p), [&] {
    natsMsg* raw_reply = nullptr;
    const natsStatus s =
        natsConnection_Request(&raw_reply, nc.get(), to.c_str(), bytes.data(), static_cast<int>(bytes.size()), 5000);
    NatsMessage reply(raw_reply);
    return s == NATS_OK && natsMsg_GetDataLength(reply.get()) == static_cast<int>(kPayloadBytes);
  });
  wait_for_release();
  return 0;
}

}  // namespace

RunResult swarm_c2(const WorkloadParams& p) {
  const std::string prefix = "swarm-bench-c2-" + std::to_string(::getpid());
  json out;
  {
    Runtime rt(config_for(p));
    auto node = join("C2", rt, node_config("C2", prefix, "b", p));
    Countdown ready(1);
    rt.spawn<C2Echo>(ready);
    ready.wait();
    NodeProcess a("C2", "swarm", prefix, p);
    out = a.result();
    a.finish();
    node.reset();
    rt.shutdown();
  }
  delete_buckets("C2", p, prefix);
  return c2_result(out);
}

RunResult raw_c2(const WorkloadParams& p) {
  const std::string prefix = "swarm-bench-c2-" + std::to_string(::getpid());
  Connection nc = connect("C2", p);
  natsSubscription* raw_sub = nullptr;
  check("C2",
        natsConnection_Subscribe(
            &raw_sub, nc.get(), subject(prefix, kC2Topic).c_str(),
            [](natsConnection* c, natsSubscription*, natsMsg* m, void*) {
              NatsMessage request(m);
              if (const char* reply_to = natsMsg_GetReply(m); reply_to != nullptr) {
                (void)natsConnection_Publish(c, reply_to, natsMsg_GetData(m), natsMsg_GetDataLength(m));
              }
            },
            nullptr),
        "subscribe");
  Subscription sub(raw_sub);
  check("C2", natsConnection_Flush(nc.get()), "flush");
  NodeProcess a("C2", "raw", prefix, p);
  json out = a.result();
  a.finish();
  (void)natsSubscription_Unsubscribe(sub.get());
  return c2_result(out);
}

namespace {

// -- C3: a local publish, with the cluster on and no remote interest, or off ---

class C3Counter : public Agent {
 public:
  C3Counter(std::uint64_t expect, Countdown& joined, Countdown& finished)
      : expect_(expect), joined_(joined), finished_(finished) {}
  void on_start() override {
    if (!subscribe(kC3Topic)) throw std::runtime_error("C3: subscribe failed");
    joined_.count_down();
  }
  void on_message(Message&) override {
    if (++seen_ == expect_) finished_.count_down();
  }

 private:
  std::uint64_t expect_;
  Countdown& joined_;
  Countdown& finished_;
  std::uint64_t seen_ = 0;
};

// Publishes `n` messages on kC3Topic, kPublishChunk per run, then yields (W4's publisher).
class C3Publisher : public Agent {
 public:
  C3Publisher(router::TopicId topic, std::uint64_t n) : topic_(topic), n_(n), message_(payload()) {}
  void on_message(Message&) override {
    const std::uint64_t end = std::min(next_ + kPublishChunk, n_);
    for (; next_ < end; ++next_) (void)publish(topic_, message_);
    if (end < n_) (void)send(self(), std::uint64_t{0});
  }

 private:
  router::TopicId topic_;
  std::uint64_t n_;
  Payload message_;
  std::uint64_t next_ = 0;
};

// The measured part, the same with and without the cluster: seconds from the
// first publish until the subscriber has counted every message.
double c3_publish(Runtime& rt, std::uint64_t n) {
  Countdown joined(1), finished(1);
  rt.spawn<C3Counter>(n, joined, finished);
  joined.wait();
  const router::TopicId topic = rt.router().intern(kC3Topic).value();
  const auto t0 = Clock::now();
  const AgentRef publisher = rt.spawn<C3Publisher>(topic, n);
  (void)rt.send(publisher, std::uint64_t{0});
  finished.wait();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

RunResult c3_result(std::uint64_t n, double seconds, const Runtime& rt) {
  RunResult r;
  r.seconds = seconds;
  r.value = static_cast<double>(n) / seconds;
  r.checksum = n;
  if (const std::uint64_t dropped = rt.stats().dropped_total(); dropped != 0) {
    fail("C3", std::to_string(dropped) + " messages were dropped");
  }
  return r;
}

class C3Listener : public Agent {
 public:
  void on_message(Message&) override {}
};

// Node A of C3: joined, interested in a topic nobody publishes on, idle.
int c3_node_a(const std::string& prefix, const WorkloadParams& p) {
  Runtime rt(config_for(p));
  auto node = join("C3", rt, node_config("C3", prefix, "a", p));
  const AgentRef idle = rt.spawn<C3Listener>();
  if (auto r = rt.subscribe(idle, kC3Other); !r) fail("C3", r.error());
  print({{"ready", true}});
  wait_for_release();
  node.reset();
  rt.shutdown();
  return 0;
}

}  // namespace

RunResult swarm_c3(const WorkloadParams& p) {
  const std::uint64_t n = c3_messages(p);
  const std::string prefix = "swarm-bench-c3-" + std::to_string(::getpid());
  RunResult r;
  {
    Runtime rt(config_for_run(p, n));
    auto node = join("C3", rt, node_config("C3", prefix, "b", p));
    NodeProcess a("C3", "swarm", prefix, p);
    (void)a.result();
    wait_for_interest("C3", rt, kC3Other);  // the cluster is whole: a relay subscription here
    const double seconds = c3_publish(rt, n);
    if (node->stats().peers.empty() || node->nodes().empty()) fail("C3", "node A left during the run");
    a.finish();
    r = c3_result(n, seconds, rt);
    node.reset();
    rt.shutdown();
  }
  delete_buckets("C3", p, prefix);
  return r;
}

RunResult raw_c3(const WorkloadParams& p) {
  const std::uint64_t n = c3_messages(p);
  Runtime rt(config_for_run(p, n));
  const double seconds = c3_publish(rt, n);
  RunResult r = c3_result(n, seconds, rt);
  rt.shutdown();
  return r;
}

int run_cluster_child(std::string_view workload, std::string_view runtime, const std::string& prefix,
                      const WorkloadParams& p) {
  try {
    const bool swarm = runtime == "swarm";
    if (!swarm && runtime != "raw") throw std::invalid_argument("--runtime must be swarm or raw");
    if (workload == "C1") return swarm ? c1_node_a_swarm(prefix, p) : c1_node_a_raw(prefix, p);
    if (workload == "C2") return swarm ? c2_node_a_swarm(prefix, p) : c2_node_a_raw(prefix, p);
    if (workload == "C3" && swarm) return c3_node_a(prefix, p);
    throw std::invalid_argument("--cluster-child is for C1, C2 and C3 (swarm)");
  } catch (const std::exception& e) {
    std::cout << json{{"error", e.what()}}.dump() << std::endl;
    return 1;
  }
}

}  // namespace swarm::bench
