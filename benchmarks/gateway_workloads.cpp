// G1..G3, the gateway workloads (see workloads.hpp and docs/benchmarks.md):
// Swarm's SWP gateway against raw ZeroMQ doing the same transfers.
//
// Every run has two processes: the measured one (swarm-bench's --child, with
// the runtime and gateway, or the raw socket) and a client process, which is
// this executable again with the hidden --gateway-client ENDPOINT flag. The
// client prints its results as JSON lines on a pipe the measured process
// reads. Loopback TCP, a free port (tcp://127.0.0.1:*).
//
//   G1 swarm: Client::publish -> gateway -> a subscribed agent that counts.
//      raw:   the same PUB frames DEALER -> ROUTER into a receive loop.
//   G2 swarm: Client::request (to the name "g2-echo") -> gateway -> an echo
//             agent -> gateway -> client, one at a time.
//      raw:   the same REQUEST frames DEALER -> ROUTER, echoed back as they came.
//   G3 swarm: Runtime::publish -> gateway -> 100 Clients in one process.
//      raw:   the same MSG frames PUB -> 100 SUB sockets in one process.
// Clocks: steady_clock is CLOCK_MONOTONIC, one clock for both processes.

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
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "benchmarks/bench_driver.hpp"
#include "benchmarks/workload_support.hpp"
#include "benchmarks/workloads.hpp"
#include "runtime/runtime.hpp"
#include "transport/client.hpp"
#include "transport/gateway.hpp"

namespace swarm::bench {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace tr = swarm::transport;

constexpr std::string_view kOctets = "application/octet-stream";
constexpr std::string_view kG1Topic = "g1.data";
constexpr std::string_view kG1Barrier = "g1-barrier";  // a name nobody holds: answered dead_agent at once
constexpr std::string_view kG2Echo = "g2-echo";        // the echo agent's name
constexpr std::string_view kG3Topic = "g3.fanout";
constexpr std::uint64_t kG2Warmup = 1'000;  // round trips before the measured ones
constexpr std::size_t kG3Window = 1'000;    // publishes between two looks at the gateway's queues
constexpr auto kDeadline = 300s;            // no run should come near it; a hang ends with an error
constexpr auto kQuiet = 10s;                // raw loops: this long without a message is an error

std::uint64_t g1_messages(const WorkloadParams& p) { return p.scale != 0 ? p.scale : 1'000'000; }
std::uint64_t g2_requests(const WorkloadParams& p) { return p.scale != 0 ? p.scale : 100'000; }
std::uint64_t g3_messages(const WorkloadParams& p) { return p.scale != 0 ? p.scale : 10'000; }

tr::GatewayConfig gateway_config() {
  tr::GatewayConfig g;
  g.bind = "tcp://127.0.0.1:*";
  return g;  // everything else: the defaults (max_outbound 10,000, ...)
}

tr::ClientOptions client_options(const std::string& endpoint, std::string name) {
  tr::ClientOptions o;
  o.endpoint = endpoint;
  o.name = std::move(name);
  return o;
}

// -- the client process, seen from the measured one ---

// This executable again, as `swarm-bench ID --gateway-client ENDPOINT
// --runtime R --scale N`.
class ClientProcess : public ChildProcess {
 public:
  ClientProcess(std::string_view id, std::string_view runtime, const std::string& endpoint, const WorkloadParams& p)
      : ChildProcess(id, "the client process",
                     {"swarm-bench", std::string(id), "--gateway-client", endpoint, "--runtime", std::string(runtime),
                      "--scale", std::to_string(p.scale)},
                     false) {}
  json result() { return ChildProcess::result(kDeadline); }
};

// Receives one multipart message into `parts` (grown as needed; `count`
// parts used) with a plain blocking recv; false when nothing came within the
// socket's RCVTIMEO. The parts after the first are there already (ZeroMQ
// delivers whole messages).
bool receive_parts(zmq::socket_t& s, std::vector<zmq::message_t>& parts, std::size_t& count) {
  count = 0;
  do {
    if (count == parts.size()) parts.emplace_back();
    if (!s.recv(parts[count])) return false;
  } while (parts[count++].more());
  return true;
}

// A socket whose blocking recv gives up after `timeout`.
void set_timeout(zmq::socket_t& s, std::chrono::milliseconds timeout) {
  s.set(zmq::sockopt::rcvtimeo, static_cast<int>(timeout.count()));
}

void send_parts(zmq::socket_t& s, const tr::Frames& frames) {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    (void)s.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

// -- G1: one client publishes to one subscribed agent ---

// What G1's agent saw, read by the workload once the runtime is idle.
struct G1Tally {
  std::atomic<std::uint64_t> seen{0};
  std::atomic<std::int64_t> first_ns{0}, last_ns{0};
};

// Counts what arrives on its topic; the clock is read at the first message,
// at the last one expected and every 1,024 in between (for a run with drops).
class G1Counter : public Agent {
 public:
  G1Counter(std::uint64_t expect, G1Tally& tally, Countdown& joined) : expect_(expect), tally_(tally), joined_(joined) {}
  void on_start() override {
    if (!subscribe(kG1Topic)) throw std::runtime_error("G1: subscribe failed");
    joined_.count_down();
  }
  void on_message(Message&) override {
    const std::uint64_t n = ++seen_;
    if (n == 1) tally_.first_ns.store(now_ns(), std::memory_order_relaxed);
    if (n == expect_ || (n & 1023) == 0) tally_.last_ns.store(now_ns(), std::memory_order_relaxed);
    tally_.seen.store(n, std::memory_order_release);
  }

 private:
  std::uint64_t expect_;
  G1Tally& tally_;
  Countdown& joined_;
  std::uint64_t seen_ = 0;
};

RunResult g1_result(std::uint64_t sent, std::uint64_t received, std::int64_t first_ns, std::int64_t last_ns) {
  RunResult r;
  r.seconds = static_cast<double>(last_ns - first_ns) / 1e9;
  r.value = r.seconds > 0 ? static_cast<double>(received) / r.seconds : 0;
  r.checksum = received;
  r.drops = sent - received;
  if (received != sent) std::cerr << "G1: " << sent - received << " of " << sent << " messages were not received\n";
  return r;
}

int g1_client_swarm(const std::string& endpoint, const WorkloadParams& p) {
  const std::uint64_t n = g1_messages(p);
  tr::Client c(client_options(endpoint, "g1-publisher"));
  const auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) c.publish(kG1Topic, payload_bytes(), kOctets);
  // PUBs of one client are handled in order: once this is answered, the
  // gateway has handed every one of them to the runtime.
  tr::Answers barrier = c.request(kG1Barrier, tr::TargetKind::name, "", kOctets, 60s);
  if (barrier.status != AskStatus::dead_agent) {
    throw std::runtime_error("the request after the PUBs was answered " + std::string(to_string(barrier.status)) +
                             ", not dead_agent");
  }
  std::cout << json{{"sent", n}, {"seconds", std::chrono::duration<double>(Clock::now() - t0).count()}}.dump()
            << std::endl;
  return 0;
}

int g1_client_raw(const std::string& endpoint, const WorkloadParams& p) {
  const std::uint64_t n = g1_messages(p);
  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 5000);
  s.connect(endpoint);
  const tr::Frames frames = tr::encode(tr::Pub{kG1Topic, kOctets, 0, payload_bytes()});
  const auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) send_parts(s, frames);
  s.send(zmq::str_buffer("done"));
  std::vector<zmq::message_t> parts;
  std::size_t count = 0;
  set_timeout(s, 60s);
  if (!receive_parts(s, parts, count)) throw std::runtime_error("no answer to \"done\" in 60 s");
  std::cout << json{{"sent", n}, {"seconds", std::chrono::duration<double>(Clock::now() - t0).count()}}.dump()
            << std::endl;
  return 0;
}

}  // namespace

RunResult swarm_g1(const WorkloadParams& p) {
  const std::uint64_t n = g1_messages(p);
  RuntimeConfig c = config_for(p);
  // A whole run fits in the agent's mailbox: the gateway drops a PUB that a
  // full mailbox refuses (counted), it does not push back on the client.
  c.default_mailbox.capacity =
      static_cast<std::uint32_t>(std::clamp<std::uint64_t>(n + 1024, 1024, RuntimeConfig::kMaxMailboxCapacity));
  Runtime rt(c);
  Countdown joined(1);
  G1Tally tally;
  rt.spawn<G1Counter>(n, tally, joined);
  joined.wait();
  tr::Gateway gw(rt, gateway_config());
  {
    ClientProcess client("G1", "swarm", gw.endpoint(), p);
    (void)client.result();
    client.finish();
  }
  // Every PUB is in the runtime now; let the agent handle what it has.
  if (!rt.wait_idle(std::chrono::duration_cast<std::chrono::milliseconds>(kDeadline))) fail("G1", "the agent never went idle");
  gw.stop();
  rt.shutdown();
  return g1_result(n, tally.seen.load(std::memory_order_acquire), tally.first_ns.load(), tally.last_ns.load());
}

RunResult raw_g1(const WorkloadParams& p) {
  const std::uint64_t n = g1_messages(p);
  zmq::context_t ctx(1);
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  set_timeout(router, kQuiet);
  router.bind("tcp://127.0.0.1:*");
  ClientProcess client("G1", "raw", router.get(zmq::sockopt::last_endpoint), p);
  std::vector<zmq::message_t> parts;
  std::size_t count = 0;
  std::uint64_t received = 0;
  std::int64_t first = 0, last = 0;
  for (;;) {
    if (!receive_parts(router, parts, count)) {
      fail("G1", "raw: nothing received for " + std::to_string(kQuiet.count()) + " s after " +
                     std::to_string(received) + " messages");
    }
    if (count == 2 && parts[1].to_string_view() == "done") {  // routing id, "done": after every data message
      router.send(parts[0], zmq::send_flags::sndmore);
      router.send(zmq::str_buffer("ack"));
      break;
    }
    ++received;
    if (received == 1) first = now_ns();
    if (received == n || (received & 1023) == 0) last = now_ns();
  }
  (void)client.result();
  client.finish();
  return g1_result(n, received, first, last);
}

namespace {

// -- G2: sequential request/reply round trips ---

class G2Echo : public Agent {
 public:
  explicit G2Echo(Countdown& ready) : ready_(ready) {}
  void on_start() override {
    if (!register_name(kG2Echo)) throw std::runtime_error("G2: register_name failed");
    ready_.count_down();
  }
  void on_message(Message& m) override {
    if (m.is_request()) (void)reply(m, m.payload);
  }

 private:
  Countdown& ready_;
};

RunResult g2_result(const json& out) {
  RunResult r;
  r.seconds = out.at("seconds").get<double>();
  r.value = out.at("value").get<double>();
  r.checksum = out.at("ok").get<std::uint64_t>();
  r.latency_median_us = out.at("median_us").get<double>();
  r.latency_p99_us = out.at("p99_us").get<double>();
  if (out.at("failed").get<std::uint64_t>() != 0) {
    fail("G2", std::to_string(out.at("failed").get<std::uint64_t>()) + " requests got no proper answer");
  }
  return r;
}

// Times `n` calls of `round_trip` after kG2Warmup unmeasured ones and prints
// the result line.
template <class RoundTrip>
void g2_measure(std::uint64_t n, RoundTrip&& round_trip) {
  std::uint64_t failed = 0;
  for (std::uint64_t i = 0; i < std::min(n, kG2Warmup); ++i) failed += round_trip() ? 0 : 1;
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
  std::cout << json{{"value", static_cast<double>(n) / seconds},
                    {"seconds", seconds},
                    {"ok", n - std::min(n, failed)},
                    {"failed", failed},
                    {"median_us", median},
                    {"p99_us", p99}}
                   .dump()
            << std::endl;
}

int g2_client_swarm(const std::string& endpoint, const WorkloadParams& p) {
  tr::Client c(client_options(endpoint, "g2-requester"));
  g2_measure(g2_requests(p), [&] {
    tr::Answers a = c.request(kG2Echo, tr::TargetKind::name, payload_bytes(), kOctets, 5s);
    return a.status == AskStatus::ok && a.final().payload.size() == kPayloadBytes;
  });
  return 0;
}

int g2_client_raw(const std::string& endpoint, const WorkloadParams& p) {
  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 5000);
  set_timeout(s, 5s);
  s.connect(endpoint);
  const tr::Frames frames = tr::encode(tr::Request{1, tr::TargetKind::name, kG2Echo, 5000, kOctets, payload_bytes()});
  std::vector<zmq::message_t> parts;
  std::size_t count = 0;
  g2_measure(g2_requests(p), [&] {
    send_parts(s, frames);
    return receive_parts(s, parts, count) && count == frames.size() && parts.back().size() == kPayloadBytes;
  });
  s.send(zmq::str_buffer("done"));
  return 0;
}

}  // namespace

RunResult swarm_g2(const WorkloadParams& p) {
  Runtime rt(config_for(p));
  Countdown ready(1);
  rt.spawn<G2Echo>(ready);
  ready.wait();
  tr::Gateway gw(rt, gateway_config());
  ClientProcess client("G2", "swarm", gw.endpoint(), p);
  json out = client.result();
  client.finish();
  gw.stop();
  rt.shutdown();
  return g2_result(out);
}

RunResult raw_g2(const WorkloadParams& p) {
  zmq::context_t ctx(1);
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  set_timeout(router, kQuiet);
  router.bind("tcp://127.0.0.1:*");
  ClientProcess client("G2", "raw", router.get(zmq::sockopt::last_endpoint), p);
  std::vector<zmq::message_t> parts;
  std::size_t count = 0;
  for (std::uint64_t echoed = 0;; ++echoed) {
    if (!receive_parts(router, parts, count)) {
      fail("G2", "raw: nothing received for " + std::to_string(kQuiet.count()) + " s after " + std::to_string(echoed) +
                     " requests");
    }
    if (count == 2 && parts[1].to_string_view() == "done") break;
    for (std::size_t i = 0; i < count; ++i) {  // routing id first, as it came
      router.send(parts[i], i + 1 < count ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
  json out = client.result();
  client.finish();
  return g2_result(out);
}

namespace {

// -- G3: fan-out to 100 external subscribers ---

constexpr std::size_t kG3Subscribers = 100;

// The client process's loop: `poll_one(i)` takes what subscriber i has and
// returns how many data messages that was. Ends when every subscriber has
// `n`, or when nothing came for kQuiet after the first message (drops).
// Prints the total received and the time (steady clock, ns) of the round of
// polls that brought the last of them.
template <class PollOne>
void g3_receive(std::uint64_t n, PollOne&& poll_one) {
  std::vector<std::uint64_t> got(kG3Subscribers, 0);
  std::uint64_t total = 0;
  std::size_t complete = 0;
  std::int64_t last = 0;
  auto last_progress = Clock::now();
  const auto deadline = Clock::now() + kDeadline;
  while (complete < kG3Subscribers) {
    bool progress = false;
    for (std::size_t i = 0; i < kG3Subscribers; ++i) {
      const std::uint64_t k = poll_one(i);
      if (k == 0) continue;
      progress = true;
      total += k;
      got[i] += k;
      if (got[i] >= n && got[i] - k < n) ++complete;
    }
    const auto now = Clock::now();
    if (progress) {
      last_progress = now;
      last = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    }
    if ((total > 0 && now - last_progress > kQuiet) || now > deadline) break;
  }
  std::cout << json{{"received", total}, {"complete", complete}, {"last_ns", last}}.dump() << std::endl;
}

int g3_client_swarm(const std::string& endpoint, const WorkloadParams& p) {
  std::vector<std::unique_ptr<tr::Client>> clients;
  for (std::size_t i = 0; i < kG3Subscribers; ++i) {
    clients.push_back(std::make_unique<tr::Client>(client_options(endpoint, "g3-sub-" + std::to_string(i))));
    clients.back()->subscribe(1, kG3Topic);
  }
  std::cout << "ready" << std::endl;
  g3_receive(g3_messages(p), [&](std::size_t i) {
    std::uint64_t k = 0;
    while (auto in = clients[i]->next(0ms)) {
      if (in->command == tr::Command::msg) {
        ++k;
      } else if (in->command == tr::Command::error || in->command == tr::Command::bye) {
        std::cerr << "G3: client " << i << ": " << to_string(in->command) << ' ' << in->message << '\n';
      }
    }
    return k;
  });
  return 0;
}

// 100 SUB sockets, each with a context of its own as each tr::Client has.
// Before "ready" the publisher sends probes (one frame); data is the MSG
// frames the gateway would send, whose header frame is 4 bytes.
int g3_client_raw(const std::string& endpoint, const WorkloadParams& p) {
  std::vector<std::unique_ptr<zmq::context_t>> contexts;
  std::vector<zmq::socket_t> subs;
  for (std::size_t i = 0; i < kG3Subscribers; ++i) {
    contexts.push_back(std::make_unique<zmq::context_t>(1));
    subs.emplace_back(*contexts.back(), zmq::socket_type::sub);
    subs.back().set(zmq::sockopt::linger, 0);
    subs.back().set(zmq::sockopt::subscribe, "");
    subs.back().connect(endpoint);
  }
  std::vector<bool> probed(kG3Subscribers, false);
  std::size_t probed_count = 0;
  zmq::message_t part;
  g3_receive(g3_messages(p), [&](std::size_t i) {
    std::uint64_t k = 0;
    while (subs[i].recv(part, zmq::recv_flags::dontwait)) {
      const bool data = part.size() == 4;
      while (part.more()) (void)subs[i].recv(part);
      if (data) {
        ++k;
      } else if (!probed[i]) {
        probed[i] = true;
        if (++probed_count == kG3Subscribers) std::cout << "ready" << std::endl;
      }
    }
    return k;
  });
  subs.clear();
  return 0;
}

RunResult g3_result(std::uint64_t n, const json& out, std::int64_t t0) {
  const std::uint64_t expect = n * kG3Subscribers;
  const std::uint64_t received = out.at("received").get<std::uint64_t>();
  RunResult r;
  r.seconds = static_cast<double>(out.at("last_ns").get<std::int64_t>() - t0) / 1e9;
  r.value = r.seconds > 0 ? static_cast<double>(received) / r.seconds : 0;
  r.checksum = received;
  r.drops = expect > received ? expect - received : 0;
  if (*r.drops != 0) {
    std::cerr << "G3: " << *r.drops << " of " << expect << " deliveries did not arrive ("
              << out.at("complete").get<std::size_t>() << " of " << kG3Subscribers
              << " subscribers got every message); the figure counts what arrived until the last of it\n";
  }
  return r;
}

}  // namespace

RunResult swarm_g3(const WorkloadParams& p) {
  const std::uint64_t n = g3_messages(p);
  Runtime rt(config_for(p));
  const tr::GatewayConfig config = gateway_config();
  tr::Gateway gw(rt, config);
  const router::TopicId topic = rt.router().intern(kG3Topic).value();
  ClientProcess client("G3", "swarm", gw.endpoint(), p);
  if (auto line = client.read_line(Clock::now() + 60s); line != "ready") {
    fail("G3", "the subscribers did not get ready: " + line.value_or("nothing in 60 s"));
  }
  // Their SUBs are in when the router has them all.
  for (const auto deadline = Clock::now() + 30s; rt.router().receivers(topic) < kG3Subscribers;) {
    if (Clock::now() > deadline) fail("G3", "the gateway did not take every SUB in 30 s");
    std::this_thread::sleep_for(1ms);
  }
  const Payload payload(std::as_bytes(std::span(payload_bytes().data(), payload_bytes().size())), ContentType::octet_stream);
  std::uint64_t refused = 0;
  const std::int64_t t0 = now_ns();
  for (std::uint64_t i = 0; i < n;) {
    // Flow control: a window's room in the fullest client queue (clients()
    // lists the most queued first), so no delivery is refused for queue_full.
    for (const auto deadline = Clock::now() + kDeadline;;) {
      const auto fullest = gw.clients(1);
      if (fullest.empty() || fullest[0].queued + kG3Window <= config.max_outbound) break;
      if (Clock::now() > deadline) fail("G3", "the gateway's queues never drained");
      std::this_thread::sleep_for(200us);  // a window is ~0.1 s of the gateway's work: no hurry
    }
    for (std::size_t k = 0; k < kG3Window && i < n; ++k, ++i) {
      const router::PublishResult r = rt.publish(topic, payload);
      refused += kG3Subscribers - std::min<std::uint64_t>(r.delivered, kG3Subscribers);
    }
  }
  json out = client.result();
  client.finish();
  if (refused != 0) std::cerr << "G3: the gateway refused " << refused << " deliveries\n";
  gw.stop();
  rt.shutdown();
  return g3_result(n, out, t0);
}

RunResult raw_g3(const WorkloadParams& p) {
  const std::uint64_t n = g3_messages(p);
  zmq::context_t ctx(1);
  zmq::socket_t pub(ctx, zmq::socket_type::pub);
  // PUB drops at its high-water mark (1,000 by default) without telling, and
  // it has no way to tell the publisher to wait: no limit, so nothing drops.
  // (An HWM of n is not enough: the reader acknowledges reads in batches of
  // half the HWM, so the writer sees a pipe fuller than it is.)
  pub.set(zmq::sockopt::sndhwm, 0);
  pub.set(zmq::sockopt::linger, 0);
  pub.bind("tcp://127.0.0.1:*");
  ClientProcess client("G3", "raw", pub.get(zmq::sockopt::last_endpoint), p);
  // Probes until every subscriber has seen one (ZeroMQ's slow joiner).
  for (const auto deadline = Clock::now() + 60s;;) {
    pub.send(zmq::str_buffer("probe"));
    auto line = client.read_line(Clock::now() + 1ms);
    if (line == "ready") break;
    if (line || Clock::now() > deadline) {
      fail("G3", "raw: the subscribers did not get ready: " + line.value_or("nothing in 60 s"));
    }
  }
  const tr::Frames frames = tr::encode(tr::Msg{1, kG3Topic, "", 0, kOctets, payload_bytes()});
  const std::int64_t t0 = now_ns();
  for (std::uint64_t i = 0; i < n; ++i) send_parts(pub, frames);
  json out = client.result();
  client.finish();
  return g3_result(n, out, t0);
}

int run_gateway_client(std::string_view workload, std::string_view runtime, const std::string& endpoint,
                       const WorkloadParams& p) {
  try {
    const bool swarm = runtime == "swarm";
    if (!swarm && runtime != "raw") throw std::invalid_argument("--runtime must be swarm or raw");
    if (workload == "G1") return swarm ? g1_client_swarm(endpoint, p) : g1_client_raw(endpoint, p);
    if (workload == "G2") return swarm ? g2_client_swarm(endpoint, p) : g2_client_raw(endpoint, p);
    if (workload == "G3") return swarm ? g3_client_swarm(endpoint, p) : g3_client_raw(endpoint, p);
    throw std::invalid_argument("--gateway-client is for G1, G2 and G3");
  } catch (const std::exception& e) {
    std::cout << json{{"error", e.what()}}.dump() << std::endl;
    return 1;
  }
}

}  // namespace swarm::bench
