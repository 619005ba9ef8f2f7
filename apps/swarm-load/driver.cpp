#include "apps/swarm-load/driver.hpp"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "apps/swarm-load/node_link.hpp"
#include "cluster/cluster.hpp"
#include "metrics/registry.hpp"
#include "runtime/runtime.hpp"

namespace swarm::load {

namespace {

using namespace std::chrono_literals;

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}
static_assert(std::is_same_v<std::chrono::steady_clock::duration, std::chrono::nanoseconds>);

// What every payload starts with. `stamp` is the intended send time (steady
// clock ns) with the top bit set for measured messages.
struct Header {
  std::uint64_t stamp;
  std::uint64_t index;
};
static_assert(sizeof(Header) == 16);
constexpr std::uint64_t kMeasuredBit = std::uint64_t{1} << 63;

Header header_of(const Payload& p) noexcept {
  Header h{};
  std::memcpy(&h, p.bytes().data(), sizeof h);
  return h;
}

// Burns `ns` of CPU in a handler (the scenario's work_ns).
void burn(std::uint64_t ns) noexcept {
  if (ns == 0) return;
  const std::uint64_t end = now_ns() + ns;
  while (now_ns() < end) {
  }
}

// Shared by the agents and generators of one run. Constant after the swarm is
// built, except the recorder (own synchronization).
struct Context {
  LatencyRecorder recorder;
  std::uint64_t work_ns = 0;
  std::chrono::nanoseconds request_timeout{0};
  bool persist = false;
  router::TopicId rr_topic = 0;

  void record(std::uint64_t stamp, bool counts) noexcept {
    const std::uint64_t now = now_ns();
    const std::uint64_t intended = stamp & ~kMeasuredBit;
    recorder.record(now > intended ? now - intended : 0, (stamp & kMeasuredBit) != 0 ? Phase::measured : Phase::warmup,
                    counts, now);
  }
};

// Agents of the scenario. Persistent when storage is on: each keeps a count
// of what it handled and marks itself dirty on every message.
class LoadAgent : public Agent {
 public:
  LoadAgent(Context& ctx, const std::string& key) : ctx_(ctx) {
    if (ctx.persist) persist_as(key);
  }
  std::string snapshot() const override { return std::to_string(handled_); }
  void restore(std::string_view state, std::uint64_t) override { handled_ = std::strtoull(std::string(state).c_str(), nullptr, 10); }

 protected:
  void touch() noexcept {
    ++handled_;
    if (ctx_.persist) mark_dirty();
    burn(ctx_.work_ns);
  }
  Context& ctx_;
  std::uint64_t handled_ = 0;
};

// A pipeline stage: forwards to the next stage, or records at the end.
class Stage final : public LoadAgent {
 public:
  static constexpr std::string_view kTypeName = "load_stage";
  Stage(Context& ctx, const std::string& key, AgentRef next) : LoadAgent(ctx, key), next_(next) {}
  void on_message(Message& m) override {
    touch();
    if (next_) {
      (void)send(next_, m.payload);  // a refusal is counted by the runtime
    } else {
      ctx_.record(header_of(m.payload).stamp, true);
    }
  }

 private:
  AgentRef next_;
};

// A subscriber of a fanout or topics path: records every delivery; one
// receiver per message (`counts`) also counts the message as completed.
class Subscriber final : public LoadAgent {
 public:
  static constexpr std::string_view kTypeName = "load_subscriber";
  Subscriber(Context& ctx, const std::string& key, bool counts) : LoadAgent(ctx, key), counts_(counts) {}
  void on_message(Message& m) override {
    touch();
    ctx_.record(header_of(m.payload).stamp, counts_);
  }

 private:
  bool counts_;
};

// Request-reply: a client turns each message from the generator into a
// request and records the round trip when the reply arrives.
class Client final : public LoadAgent {
 public:
  static constexpr std::string_view kTypeName = "load_client";
  using LoadAgent::LoadAgent;
  void on_message(Message& m) override {
    touch();
    const std::uint64_t stamp = header_of(m.payload).stamp;
    // Two words of capture: std::function keeps it inline (no allocation).
    request(ctx_.rr_topic, m.payload, 0, ctx_.request_timeout, [ctx = &ctx_, stamp](AskStatus st, Message*) {
      if (st == AskStatus::ok) {
        ctx->record(stamp, true);
      } else {
        ctx->recorder.lose((stamp & kMeasuredBit) != 0 ? Phase::measured : Phase::warmup);
      }
    });
  }
};

class Server final : public LoadAgent {
 public:
  static constexpr std::string_view kTypeName = "load_server";
  using LoadAgent::LoadAgent;
  void on_message(Message& m) override {
    touch();
    (void)reply(m, m.payload);
  }
};

class Idle final : public Agent {
 public:
  static constexpr std::string_view kTypeName = "load_idle";
  void on_message(Message&) override {}
};

// Where the generator sends: the entry points of every path of the swarm.
struct Swarm {
  std::vector<AgentRef> lanes;            // pipeline: first stage of each chain
  std::vector<router::TopicId> lane_topics;  // pipeline across nodes: load.lane.N, instead of `lanes`
  router::TopicId fanout_topic = 0;
  std::vector<router::TopicId> topic_ids; // topics path
  std::vector<AgentRef> clients;          // request-reply
  bool has_pipeline = false, has_fanout = false, has_topics = false, has_rr = false;
};

Result<void> subscribe_or_fail(Runtime& rt, AgentRef a, const std::string& topic, const std::string& group) {
  auto r = rt.subscribe(a, topic, group);
  if (!r) return unexpected("swarm-load: subscribe " + topic + ": " + r.error());
  return {};
}

// Subscribers of one topic: plain, or split into queue groups; the counting
// receiver is subscriber 0 (plain) or every member of group 0.
Result<void> add_subscribers(Runtime& rt, Context& ctx, const Scenario& s, const std::string& topic) {
  for (std::uint32_t j = 0; j < s.subscribers; ++j) {
    const bool grouped = s.queue_groups > 0;
    const std::uint32_t group = grouped ? j % s.queue_groups : 0;
    const bool counts = grouped ? group == 0 : j == 0;
    AgentRef a = rt.spawn<Subscriber>(ctx, "swarm-load/" + topic + "/" + std::to_string(j), counts);
    if (auto ok = subscribe_or_fail(rt, a, topic, grouped ? "g" + std::to_string(group) : std::string()); !ok) return ok;
  }
  return {};
}

// Which part of the swarm a process builds: all of it, or one node's part of
// a cross-node run (driver.hpp).
enum class Side : std::uint8_t { whole, publishers, subscribers };

Result<Swarm> build_swarm(Runtime& rt, Context& ctx, const Scenario& s, Side side = Side::whole) {
  const bool publishers = side != Side::subscribers;
  const bool subscribers = side != Side::publishers;
  Swarm w;
  const bool all = s.topology == Topology::mixed;
  w.has_pipeline = s.topology == Topology::pipeline || (all && s.mix.pipeline > 0);
  w.has_fanout = s.topology == Topology::fanout || (all && s.mix.fanout > 0);
  w.has_topics = s.topology == Topology::topics || (all && s.mix.topics > 0);
  w.has_rr = s.topology == Topology::request_reply || (all && s.mix.request_reply > 0);
  if (w.has_pipeline) {
    for (std::uint32_t lane = 0; lane < s.lanes; ++lane) {
      const std::string topic = "load.lane." + std::to_string(lane);
      if (subscribers) {
        AgentRef next;
        for (std::uint32_t k = s.stages; k-- > 0;) {
          next = rt.spawn<Stage>(ctx, "swarm-load/pipeline/" + std::to_string(lane) + "/" + std::to_string(k), next);
        }
        if (side == Side::whole) {
          w.lanes.push_back(next);
        } else if (auto ok = subscribe_or_fail(rt, next, topic, ""); !ok) {
          return unexpected(ok.error());
        }
      }
      if (side == Side::publishers) {
        auto id = rt.router().intern(topic);
        if (!id) return unexpected("swarm-load: " + id.error());
        w.lane_topics.push_back(*id);
      }
    }
  }
  if (w.has_fanout) {
    auto id = rt.router().intern("load.fanout");
    if (!id) return unexpected("swarm-load: " + id.error());
    w.fanout_topic = *id;
    if (subscribers) {
      if (auto ok = add_subscribers(rt, ctx, s, "load.fanout"); !ok) return unexpected(ok.error());
    }
  }
  if (w.has_topics) {
    for (std::uint32_t t = 0; t < s.topics; ++t) {
      const std::string name = "load.topic." + std::to_string(t);
      auto id = rt.router().intern(name);
      if (!id) return unexpected("swarm-load: " + id.error());
      w.topic_ids.push_back(*id);
      if (subscribers) {
        if (auto ok = add_subscribers(rt, ctx, s, name); !ok) return unexpected(ok.error());
      }
    }
  }
  if (w.has_rr) {
    auto id = rt.router().intern("load.rr");
    if (!id) return unexpected("swarm-load: " + id.error());
    ctx.rr_topic = *id;
    for (std::uint32_t j = 0; subscribers && j < s.servers; ++j) {
      AgentRef a = rt.spawn<Server>(ctx, "swarm-load/server/" + std::to_string(j));
      if (auto ok = subscribe_or_fail(rt, a, "load.rr", "servers"); !ok) return unexpected(ok.error());
    }
    for (std::uint32_t j = 0; publishers && j < s.clients; ++j) {
      w.clients.push_back(rt.spawn<Client>(ctx, "swarm-load/client/" + std::to_string(j)));
    }
  }
  for (std::uint32_t j = 0; publishers && j < s.idle_agents; ++j) rt.spawn<Idle>();
  return w;
}

// Cross-node: every topic the generators publish on has, here, the receivers
// the other node's subscribers make (its interest arrived).
bool interest_arrived(Runtime& rt, const Swarm& w, const Context& ctx, const Scenario& s) {
  const std::size_t per_topic = s.queue_groups > 0 ? s.queue_groups : 1;
  for (router::TopicId id : w.lane_topics) {
    if (rt.router().receivers(id) < 1) return false;
  }
  if (w.has_fanout && rt.router().receivers(w.fanout_topic) < per_topic) return false;
  for (router::TopicId id : w.topic_ids) {
    if (rt.router().receivers(id) < per_topic) return false;
  }
  return !w.has_rr || rt.router().receivers(ctx.rr_topic) >= 1;
}

// -- generators ---

std::uint64_t mix64(std::uint64_t x) noexcept {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Cells a generator writes (single writer) and the driver reads.
struct alignas(64) GeneratorCells {
  std::atomic<std::uint64_t> sent_warmup{0}, sent_measured{0};
  std::atomic<std::uint64_t> last_send_ns{0};
  std::atomic<std::uint64_t> max_lag_ns{0};
  std::atomic<std::uint64_t> cpu_ns{0};
  std::atomic<bool> finished{false};
};

void store(std::atomic<std::uint64_t>& c, std::uint64_t v) noexcept { c.store(v, std::memory_order_relaxed); }
std::uint64_t load(const std::atomic<std::uint64_t>& c) noexcept { return c.load(std::memory_order_relaxed); }

std::uint64_t thread_cpu_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

void sleep_until_ns(std::uint64_t t) noexcept {
  timespec ts{static_cast<time_t>(t / 1'000'000'000ull), static_cast<long>(t % 1'000'000'000ull)};
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// -- cores: the runtime's, and one per generator ---

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

struct CoreSplit {
  std::vector<int> runtime, generators;  // empty: no split
  std::string describe() const {
    auto list = [](const std::vector<int>& v) {
      std::string out;
      for (int c : v) out += (out.empty() ? "" : ",") + std::to_string(c);
      return out;
    };
    return "generators pinned to CPU " + list(generators) + "; the runtime's threads on CPU " + list(runtime);
  }
};

// The last `generators` of the allowed CPUs for the generators, the rest for
// the runtime; no split when that would leave the runtime nothing.
CoreSplit split_cores(unsigned generators) {
  std::vector<int> cpus = allowed_cpus();
  if (cpus.size() <= generators) return {};
  CoreSplit split;
  split.generators.assign(cpus.end() - generators, cpus.end());
  split.runtime.assign(cpus.begin(), cpus.end() - generators);
  return split;
}

void set_affinity(const std::vector<int>& cpus) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  (void)::sched_setaffinity(0, sizeof set, &set);  // best effort: a refused mask only costs precision
}

void pin_to(int cpu) noexcept { set_affinity({cpu}); }

// Threads created in its scope inherit `cpus`; the caller's mask comes back after.
class ScopedAffinity {
 public:
  explicit ScopedAffinity(const std::vector<int>& cpus) : saved_(cpus.empty() ? std::vector<int>{} : allowed_cpus()) {
    if (!cpus.empty()) set_affinity(cpus);
  }
  ~ScopedAffinity() {
    if (!saved_.empty()) set_affinity(saved_);
  }
  ScopedAffinity(const ScopedAffinity&) = delete;
  ScopedAffinity& operator=(const ScopedAffinity&) = delete;

 private:
  std::vector<int> saved_;
};

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Open-loop pacing: gaps longer than kSleepAbove are slept through (waking
// kWakeEarly before the due time), shorter ones are waited out on the clock.
constexpr std::uint64_t kSleepAbove = 300'000;
constexpr std::uint64_t kWakeEarly = 150'000;

class Generator {
 public:
  Generator(Runtime& rt, const Scenario& s, const Swarm& w, GeneratorCells& cells, unsigned index)
      : rt_(rt), s_(s), w_(w), cells_(cells), index_(index), buf_(s.payload_bytes) {
    const MixWeights& m = s.mix;
    cum_[0] = w.has_pipeline ? (s.topology == Topology::mixed ? m.pipeline : 1) : 0;
    cum_[1] = cum_[0] + (w.has_fanout ? (s.topology == Topology::mixed ? m.fanout : 1) : 0);
    cum_[2] = cum_[1] + (w.has_topics ? (s.topology == Topology::mixed ? m.topics : 1) : 0);
    cum_[3] = cum_[2] + (w.has_rr ? (s.topology == Topology::mixed ? m.request_reply : 1) : 0);
  }

  // Sends message `i` with header `stamp`.
  void send(std::uint64_t i, std::uint64_t stamp) noexcept {
    const Header h{stamp, i};
    std::memcpy(buf_.data(), &h, sizeof h);
    const Payload p(std::span<const std::byte>(buf_.data(), buf_.size()));
    const std::uint64_t pick = cum_[3] == 1 ? 0 : mix64(i) % cum_[3];
    if (pick < cum_[0]) {
      if (!w_.lane_topics.empty()) {
        (void)rt_.publish(w_.lane_topics[n_pipeline_++ % w_.lane_topics.size()], p);
      } else {
        (void)rt_.send(w_.lanes[n_pipeline_++ % w_.lanes.size()], p);
      }
    } else if (pick < cum_[1]) {
      (void)rt_.publish(w_.fanout_topic, p);
    } else if (pick < cum_[2]) {
      (void)rt_.publish(w_.topic_ids[mix64(i ^ 0x5bd1e995) % w_.topic_ids.size()], p);
    } else {
      (void)rt_.send(w_.clients[n_rr_++ % w_.clients.size()], p);
    }
  }

  // Open loop: every message of `rc` at its intended time (origin + offset).
  void run_open(RateController rc, std::uint64_t origin, std::uint64_t warmup_messages, const std::atomic<bool>& stop) {
    const std::uint64_t cpu0 = thread_cpu_ns();
    std::uint64_t sent_w = 0, sent_m = 0, max_lag = 0;
    std::uint64_t now = now_ns();
    std::uint64_t last_send = 0;
    while (!rc.done()) {
      const std::uint64_t due = origin + rc.next_due_ns();
      if (due > now) {
        if (stop.load(std::memory_order_relaxed)) break;
        now = now_ns();
        if (due > now + kSleepAbove) {
          // A long gap: sleep, waking early enough to be on time (a sleep
          // costs ~20 us of CPU and wakes tens of us late on a VM).
          store(cells_.sent_warmup, sent_w);
          store(cells_.sent_measured, sent_m);
          store(cells_.last_send_ns, last_send);
          store(cells_.max_lag_ns, max_lag);
          sleep_until_ns(due - kWakeEarly);
          now = now_ns();
          continue;
        }
        // A short gap: wait on the clock, yielding the core to any thread
        // that wants it (on a small machine, a worker).
        while (now < due) {
          if (due - now > 5'000) {
            std::this_thread::yield();
          } else {
            cpu_relax();
          }
          now = now_ns();
        }
      }
      const std::uint64_t i = rc.next_index();
      const bool measured = i >= warmup_messages;
      send(i, due | (measured ? kMeasuredBit : 0));
      last_send = now;
      if (measured) {
        ++sent_m;
        if (now - due > max_lag) max_lag = now - due;
      } else {
        ++sent_w;
      }
      rc.advance();
      // Now and then while behind: re-read the clock (so the lag stays
      // honest), publish progress, look at the stop flag.
      if (((sent_w + sent_m) & 63) == 0) {
        now = now_ns();
        store(cells_.sent_warmup, sent_w);
        store(cells_.sent_measured, sent_m);
        if (stop.load(std::memory_order_relaxed)) break;
      }
    }
    store(cells_.sent_warmup, sent_w);
    store(cells_.sent_measured, sent_m);
    store(cells_.last_send_ns, last_send);
    store(cells_.max_lag_ns, max_lag);
    store(cells_.cpu_ns, thread_cpu_ns() - cpu0);
  }

  // Closed loop: at most `window` messages outstanding (over all generators),
  // each sent as soon as the window allows.
  template <class InFlight>
  void run_closed(std::uint64_t measure_start, std::uint64_t measure_end, std::uint64_t measured_limit,
                  std::uint64_t window, InFlight in_flight, const std::atomic<bool>& stop) {
    const std::uint64_t cpu0 = thread_cpu_ns();
    std::uint64_t sent_w = 0, sent_m = 0, i = index_;
    const std::uint64_t stride = s_.generators;
    unsigned idle_spins = 0;
    for (;;) {
      if (stop.load(std::memory_order_relaxed)) break;
      const std::uint64_t now = now_ns();
      const bool measured = now >= measure_start;
      if (measured && measured_limit == 0 && now >= measure_end) break;
      if (measured && measured_limit != 0 && sent_m >= measured_limit) break;
      store(cells_.sent_warmup, sent_w);
      store(cells_.sent_measured, sent_m);
      const std::uint64_t out = in_flight();
      if (out >= window) {
        // Let the workers (on a small machine, the same cores) catch up.
        if (++idle_spins < 16) {
          std::this_thread::yield();
        } else {
          sleep_until_ns(now_ns() + 20'000);
        }
        continue;
      }
      idle_spins = 0;
      std::uint64_t batch = std::min<std::uint64_t>(window - out, 64);
      if (measured && measured_limit != 0) batch = std::min(batch, measured_limit - sent_m);
      for (std::uint64_t k = 0; k < batch; ++k) {
        send(i, now_ns() | (measured ? kMeasuredBit : 0));
        i += stride;
      }
      (measured ? sent_m : sent_w) += batch;
      store(cells_.last_send_ns, now_ns());
    }
    store(cells_.sent_warmup, sent_w);
    store(cells_.sent_measured, sent_m);
    store(cells_.cpu_ns, thread_cpu_ns() - cpu0);
  }

 private:
  Runtime& rt_;
  const Scenario& s_;
  const Swarm& w_;
  GeneratorCells& cells_;
  unsigned index_;
  std::vector<std::byte> buf_;
  std::uint64_t cum_[4] = {};
  std::uint64_t n_pipeline_ = 0, n_rr_ = 0;
};

// -- results helpers ---

struct Usage {
  double user = 0, system = 0;
  std::uint64_t max_rss = 0;
};

Usage usage() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return {static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) / 1e6,
          static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) / 1e6,
          static_cast<std::uint64_t>(ru.ru_maxrss) * 1024};
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string hostname() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// Messages the load lost, by DropReason: the runtime's drops plus its refusals,
// since a generator or stage that is refused lets the message go (a refusal
// is filed under the drop reason of the same name, as results JSON has it).
std::array<std::uint64_t, kDropReasonCount> lost_by_reason(const RuntimeStats& s) {
  std::array<std::uint64_t, kDropReasonCount> lost = s.dropped;
  for (int r = 0; r < kRefuseReasonCount; ++r) {
    const auto reason = static_cast<RefuseReason>(r);
    const DropReason as = reason == RefuseReason::mailbox_full    ? DropReason::mailbox_full
                          : reason == RefuseReason::dead_agent    ? DropReason::dead_agent
                          : reason == RefuseReason::expired       ? DropReason::expired
                          : reason == RefuseReason::unreachable   ? DropReason::remote_unreachable
                                                                  : DropReason::shutting_down;
    lost[static_cast<int>(as)] += s.refused[r];
  }
  return lost;
}

std::uint64_t drops_of(const std::array<std::uint64_t, kDropReasonCount>& lost) {
  std::uint64_t n = 0;
  for (int r = 0; r < kDropReasonCount; ++r) {
    if (static_cast<DropReason>(r) != DropReason::shutting_down) n += lost[r];
  }
  return n;
}

std::uint64_t runtime_drops(const RuntimeStats& s) { return drops_of(lost_by_reason(s)); }

std::uint64_t sum(const std::array<std::uint64_t, cluster::kRemoteDropReasons>& v) {
  std::uint64_t n = 0;
  for (std::uint64_t x : v) n += x;
  return n;
}

std::array<std::uint64_t, cluster::kRemoteDropReasons> cluster_dropped(const cluster::Cluster& node) {
  const cluster::ClusterStats st = node.stats();
  std::array<std::uint64_t, cluster::kRemoteDropReasons> out{};
  for (int i = 0; i < cluster::kRemoteDropReasons; ++i) out[i] = st.dropped[i];
  return out;
}

// What this process counted, for the other end of a cross-node run.
NodeCounts node_counts(const Context& ctx, Runtime& rt, const cluster::Cluster* node) {
  NodeCounts c;
  for (Phase p : {Phase::warmup, Phase::measured}) {
    c.completed[static_cast<int>(p)] = ctx.recorder.completed(p);
    c.lost[static_cast<int>(p)] = ctx.recorder.lost(p);
  }
  c.last_completion_ns = ctx.recorder.last_measured_completion_ns();
  c.runtime_lost = lost_by_reason(rt.stats());
  if (node != nullptr) c.cluster_dropped = cluster_dropped(*node);
  const Usage u = usage();
  c.cpu_user = u.user;
  c.cpu_system = u.system;
  c.max_rss = u.max_rss;
  return c;
}

// The part of the load metrics the admin port shows; updated by the driver each interval.
struct AdminView {
  std::mutex mu;
  double target_rate = 0;
  int phase = 0;  // 0 warm-up, 1 measured, 2 draining
};

metrics::HistogramSnapshot to_metrics(const LatencyHistogram& h) {
  metrics::HistogramSnapshot out;
  for (std::size_t i = 0; i < LatencyBuckets::kCount; ++i) {
    if (h.bucket_count(i) != 0) out.counts[metrics::Buckets::index(LatencyBuckets::lower(i))] += h.bucket_count(i);
  }
  out.sum_ns = h.sum();
  return out;
}

// A run's runtime with `workers` workers (mailboxes, telemetry and storage as
// the scenario says) and its agents' shared context.
Result<RuntimeConfig> runtime_config(const Scenario& s, unsigned workers) {
  RuntimeConfig cfg;
  cfg.workers = workers;
  cfg.idle_spin = std::chrono::microseconds(s.idle_spin_us);
  cfg.default_mailbox = {s.mailbox_capacity, s.overflow};
  cfg.telemetry.enabled = s.telemetry;
  // Handlers that burn CPU on purpose are not stuck.
  if (s.work_ns >= 100'000'000) cfg.telemetry.slow_handler_threshold = 0ms;
  if (auto ok = configure_storage(s, cfg); !ok) return unexpected(ok.error());
  return cfg;
}

std::unique_ptr<Context> context_for(const Scenario& s) {
  auto ctx = std::make_unique<Context>();
  ctx->work_ns = s.work_ns;
  ctx->request_timeout = std::chrono::nanoseconds(static_cast<std::int64_t>(s.request_timeout * 1e9));
  ctx->persist = s.storage != StorageKind::none;
  return ctx;
}

}  // namespace

Result<RunResult> run_scenario(const Scenario& s, const RunOptions& options) {
  static const std::atomic<bool> kNever{false};
  const std::atomic<bool>& stop = options.stop != nullptr ? *options.stop : kNever;

  // By default each generator keeps a core of its own (see the split below).
  const auto cores = static_cast<unsigned>(allowed_cpus().size());
  auto configured = runtime_config(s, s.workers != 0 ? s.workers : cores > s.generators ? cores - s.generators : 1u);
  if (!configured) return unexpected(configured.error());
  RuntimeConfig cfg = std::move(*configured);
  cfg.telemetry.admin = s.admin;
  auto ctx = context_for(s);

  // With the default worker count, the cores are split for real: a generator
  // waits for send times on the clock, so a worker sharing its core would be
  // preempted (on 2 cores, p99 of milliseconds). The runtime's threads
  // inherit a mask without the generators' cores; each generator is pinned.
  const CoreSplit split = s.workers == 0 ? split_cores(s.generators) : CoreSplit{};
  std::unique_ptr<Runtime> rt;
  try {
    const ScopedAffinity for_the_runtime(split.runtime);
    rt = std::make_unique<Runtime>(cfg);
  } catch (const std::exception& e) {
    return unexpected(std::string(e.what()));
  }
  RunResult res;
  if (!split.generators.empty()) res.notes.push_back(split.describe());
  res.scenario = s.name;
  res.scenario_json = to_json(s).dump();
  res.mode = std::string(to_string(s.mode));
  res.started_at = utc_now();
  res.workers = rt->worker_count();
  res.cores = std::max(1u, std::thread::hardware_concurrency());
  res.host = hostname();
  res.warmup_seconds = s.warmup;

  // Across nodes: this process joins as the publishers' node, then starts
  // the subscribers' node (in the runtime's CPU mask) and waits until each
  // sees the other and their subscriptions.
  const bool cross = !s.nats.empty();
  std::unique_ptr<cluster::Cluster> node;
  std::unique_ptr<SubscriberNode> remote;
  auto fail = [&](const std::string& why) -> Result<RunResult> {
    remote.reset();
    node.reset();
    rt->shutdown(ShutdownPolicy::discard);
    return unexpected(why);
  };
  if (cross) {
    auto joined = cluster::Cluster::join(*rt, node_config(s, kPublisherNode));
    if (!joined) return fail(joined.error());
    node = std::move(*joined);
  }
  auto swarm = build_swarm(*rt, *ctx, s, cross ? Side::publishers : Side::whole);
  if (!swarm) return fail(swarm.error());
  if (!rt->wait_idle(60s)) res.notes.push_back("the swarm was still starting when the load began");
  if (cross) {
    {
      const ScopedAffinity for_the_node(split.runtime);
      std::string binary = options.node_binary;
      if (binary.empty()) {
        std::error_code ec;
        binary = std::filesystem::read_symlink("/proc/self/exe", ec).string();
        if (ec) binary = "/proc/self/exe";
      }
      auto started = SubscriberNode::start(binary, subscriber_node_args(s), 60s);
      if (!started) return fail(started.error());
      remote = std::move(*started);
    }
    const std::uint64_t deadline = now_ns() + 30'000'000'000ull;
    while (!interest_arrived(*rt, *swarm, *ctx, s)) {
      if (now_ns() > deadline) {
        return fail(std::string("the subscriptions of node ") + kSubscriberNode +
                    " did not reach this node within 30 s (see /debug/cluster with --admin)");
      }
      sleep_until_ns(now_ns() + 10'000'000);
    }
    res.notes.push_back(std::string("across nodes: publishers in this process (node ") + kPublisherNode +
                        "), subscribers in process " + std::to_string(remote->pid()) + " (node " + kSubscriberNode +
                        ", " + std::to_string(remote->workers()) + (remote->workers() == 1 ? " worker" : " workers") +
                        "), joined through NATS " + without_credentials(s.nats) +
                        "; latency from the stamp written here to the time read there, both on this machine's "
                        "steady clock; CPU time adds both processes (not the NATS servers)");
  }

  // The admin port shows the load's own series next to the runtime's.
  AdminView view;
  const std::uint64_t callback = rt->metrics().add_callback([&](metrics::Collector& c) {
    c.histogram("swarm_load_latency_seconds", "swarm-load: end-to-end latency of every observation so far (warm-up included).",
                {{"scenario", s.name}}, to_metrics(ctx->recorder.histogram_all()));
    c.counter("swarm_load_completed_total", "swarm-load: messages that reached the end of their path.",
              {{"scenario", s.name}}, static_cast<double>(ctx->recorder.completed_all()));
    std::lock_guard lock(view.mu);
    c.gauge("swarm_load_target_rate", "swarm-load: the schedule's current rate (messages/s; 0 in closed loop).",
            {{"scenario", s.name}}, view.target_rate);
    c.gauge("swarm_load_phase", "swarm-load: 0 warm-up, 1 measuring, 2 draining.", {{"scenario", s.name}}, view.phase);
  });

  // -- the load plan ---
  const double warmup = s.warmup;
  const Schedule measured = s.measured_schedule();
  const Schedule full = measured.with_warmup(warmup);
  const std::uint64_t warmup_messages =
      warmup > 0 ? static_cast<std::uint64_t>(std::ceil(full.segments().front().from * warmup - 1e-9)) : 0;
  const std::uint64_t end_index = s.messages != 0 ? warmup_messages + s.messages : full.message_count();
  if (s.mode == LoadMode::open) {
    res.target_rate = s.messages != 0 ? measured.rate_at(0) : measured.mean_rate(0, measured.duration());
    res.schedule = measured.describe();
  }

  std::vector<std::unique_ptr<GeneratorCells>> cells;
  for (unsigned g = 0; g < s.generators; ++g) cells.push_back(std::make_unique<GeneratorCells>());
  auto sent_all = [&] {
    std::uint64_t n = 0;
    for (auto& c : cells) n += load(c->sent_warmup) + load(c->sent_measured);
    return n;
  };
  // Across nodes, the other process's counts (every 2 ms) and both nodes'
  // cluster drops join this process's.
  auto remote_counts = [&] { return remote ? remote->counts() : NodeCounts{}; };
  auto all_drops = [&](const NodeCounts& rc) {  // runtime drops of both processes, cluster drops of both nodes
    std::uint64_t n = runtime_drops(rt->stats());
    if (remote) n += drops_of(rc.runtime_lost) + sum(rc.cluster_dropped) + sum(cluster_dropped(*node));
    return n;
  };
  auto remote_done = [](const NodeCounts& rc) { return rc.completed[0] + rc.completed[1] + rc.lost[0] + rc.lost[1]; };
  const RuntimeStats stats0 = rt->stats();
  const std::uint64_t drops0 = all_drops(remote_counts());

  // Closed loop: in flight = sent − completed − lost − dropped; the runtime's
  // drop count (and the other node's counts) are refreshed every
  // millisecond, not per message.
  struct DropCache {
    std::atomic<std::uint64_t> value{0};
    std::atomic<std::uint64_t> at{0};
  } drop_cache;
  auto in_flight = [&]() -> std::uint64_t {
    const std::uint64_t t = now_ns();
    if (t - drop_cache.at.load(std::memory_order_relaxed) > 1'000'000) {
      const NodeCounts rc = remote_counts();
      drop_cache.value.store(all_drops(rc) - drops0 + remote_done(rc), std::memory_order_relaxed);
      drop_cache.at.store(t, std::memory_order_relaxed);
    }
    const std::uint64_t done = ctx->recorder.completed_all() + ctx->recorder.lost_all() +
                               drop_cache.value.load(std::memory_order_relaxed);
    const std::uint64_t sent = sent_all();
    return sent > done ? sent - done : 0;
  };

  // Start a little ahead so every generator is waiting when message 0 is due.
  const std::uint64_t origin = now_ns() + 20'000'000;
  const std::uint64_t measure_start = origin + static_cast<std::uint64_t>(warmup * 1e9);
  const std::uint64_t measure_end = measure_start + static_cast<std::uint64_t>(s.measured_seconds() * 1e9);
  // The generators stop early on `stop` (copied by the sampler below) or when
  // the other node of a cross-node run fails.
  std::atomic<bool> halt{false};
  std::string failure;
  std::vector<std::thread> threads;
  for (unsigned g = 0; g < s.generators; ++g) {
    threads.emplace_back([&, g] {
      ::prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // wake-ups within microseconds, not 50 us
      if (!split.generators.empty()) pin_to(split.generators[g]);
      Generator gen(*rt, s, *swarm, *cells[g], g);
      sleep_until_ns(origin);
      if (s.mode == LoadMode::open) {
        gen.run_open(RateController(full, end_index, g, s.generators), origin, warmup_messages, halt);
      } else {
        const std::uint64_t limit =
            s.messages == 0 ? 0 : s.messages / s.generators + (g < s.messages % s.generators ? 1 : 0);
        const std::uint64_t window = std::max<std::uint64_t>(1, s.in_flight / s.generators);
        gen.run_closed(measure_start, measure_end, limit, window * s.generators, in_flight, halt);
      }
      cells[g]->finished.store(true, std::memory_order_release);
    });
  }
  auto all_finished = [&] {
    for (auto& c : cells) {
      if (!c->finished.load(std::memory_order_acquire)) return false;
    }
    return true;
  };

  // -- sampling: one point per interval, plus one at the end of warm-up ---
  const std::uint64_t step = static_cast<std::uint64_t>(std::max(0.05, options.interval) * 1e9);
  LatencyHistogram prev_hist;
  std::uint64_t prev_sent = 0, prev_completed = 0, prev_obs = 0, prev_dropped = 0, prev_t = origin;
  Usage usage0 = usage();
  RuntimeStats stats_m = stats0;  // at the start of measurement
  std::uint64_t lost_warmup = 0;  // requests lost before it
  NodeCounts remote_m;            // across nodes: the other process's counts then
  std::array<std::uint64_t, cluster::kRemoteDropReasons> cluster_m{};  // this node's cluster drops then
  auto mark_measurement = [&] {
    usage0 = usage();
    stats_m = rt->stats();
    lost_warmup = ctx->recorder.lost_all();
    if (remote) {
      remote_m = remote->counts();
      cluster_m = cluster_dropped(*node);
    }
  };
  // Every observation so far, of both processes across nodes.
  auto histogram_all = [&] {
    LatencyHistogram h = ctx->recorder.histogram_all();
    if (remote && failure.empty()) {
      auto snap = remote->snapshot(10s);
      if (!snap) {
        failure = snap.error();
        halt.store(true);
        return prev_hist;  // an empty interval; the run fails
      }
      h.merge(snap->all);
    }
    return h;
  };
  bool measuring = warmup <= 0;
  std::uint64_t next_tick = origin + step;
  if (!measuring) next_tick = std::min(next_tick, measure_start);
  auto sample = [&](std::uint64_t t, bool warm) {
    LatencyHistogram h = histogram_all();
    LatencyHistogram interval = h;
    interval.subtract(prev_hist);
    prev_hist = std::move(h);
    IntervalStats p;
    p.t = static_cast<double>(t - origin) / 1e9;
    p.seconds = static_cast<double>(t - prev_t) / 1e9;
    p.warmup = warm;
    if (s.mode == LoadMode::open) {
      // Messages intended in the interval over its length; a run by duration
      // intends nothing after the schedule's end (a late last tick included).
      const double t0 = static_cast<double>(prev_t - origin) / 1e9;
      const double t1 = s.messages == 0 ? std::min(p.t, full.duration()) : p.t;
      p.target_rate = t1 > t0 ? full.mean_rate(t0, t1) * (t1 - t0) / (p.t - t0) : 0;
    }
    const std::uint64_t sent = sent_all();
    const NodeCounts rc = remote_counts();
    const std::uint64_t completed = ctx->recorder.completed_all() + rc.completed[0] + rc.completed[1];
    const std::uint64_t obs = prev_hist.count();
    const std::uint64_t dropped = all_drops(rc) - drops0 + ctx->recorder.lost_all() + rc.lost[0] + rc.lost[1];
    p.sent = sent - std::min(sent, prev_sent);
    p.completed = completed - std::min(completed, prev_completed);
    p.observations = obs - std::min(obs, prev_obs);
    p.dropped = dropped - std::min(dropped, prev_dropped);
    p.p50 = interval.quantile(0.5) / 1e9;
    p.p99 = interval.quantile(0.99) / 1e9;
    p.max = static_cast<double>(interval.max()) / 1e9;
    prev_sent = sent;
    prev_completed = completed;
    prev_obs = obs;
    prev_dropped = dropped;
    prev_t = t;
    res.timeline.push_back(p);
    {
      std::lock_guard lock(view.mu);
      view.target_rate = s.mode == LoadMode::open ? full.rate_at(p.t) : 0;
      view.phase = warm ? 0 : all_finished() ? 2 : 1;
    }
    if (options.progress) {
      LiveTotals live;
      live.measured_p99 = warm ? 0 : ctx->recorder.histogram(Phase::measured).quantile(0.99) / 1e9;
      live.dropped = dropped;
      live.in_flight = sent > completed + dropped ? sent - completed - dropped : 0;
      options.progress(p, live);
    }
  };
  // Ticks already due are taken even when the generators have finished: a
  // sampler starved past the warm-up's end (a busy machine) still marks it.
  for (;;) {
    if (stop.load(std::memory_order_relaxed)) halt.store(true, std::memory_order_relaxed);
    if (remote && failure.empty()) {
      failure = remote->failure();
      if (!failure.empty()) halt.store(true);
    }
    const bool finished = all_finished();
    const std::uint64_t now = now_ns();
    if (now < next_tick) {
      if (finished) break;
      sleep_until_ns(std::min(next_tick, now + 10'000'000));  // look at the generators every 10 ms
      continue;
    }
    const bool warm = !measuring;
    sample(next_tick, warm);
    if (!measuring && next_tick >= measure_start) {
      measuring = true;
      mark_measurement();
    }
    next_tick += step;
    if (!measuring) next_tick = std::min(next_tick, measure_start);
  }
  for (std::thread& t : threads) t.join();
  if (!measuring) mark_measurement();  // stopped during warm-up
  auto fail_running = [&](const std::string& why) {
    rt->metrics().remove_callback(callback);
    return fail(why.starts_with("subscriber node:") ? why : "subscriber node: " + why);
  };
  if (!failure.empty()) return fail_running(failure);

  // -- drain: wait until every message sent is completed, lost or dropped ---
  {
    std::lock_guard lock(view.mu);
    view.phase = 2;
  }
  const std::uint64_t drain_deadline = now_ns() + static_cast<std::uint64_t>(s.drain_timeout * 1e9);
  for (;;) {
    const NodeCounts rc = remote_counts();
    const std::uint64_t accounted =
        ctx->recorder.completed_all() + ctx->recorder.lost_all() + remote_done(rc) + (all_drops(rc) - drops0);
    if (accounted >= sent_all()) break;
    if (remote && !(failure = remote->failure()).empty()) return fail_running(failure);
    const std::uint64_t now = now_ns();
    if (now >= drain_deadline) {
      res.drained = false;
      res.notes.push_back("did not drain within drain_timeout = " + std::to_string(s.drain_timeout) + " s: " +
                          std::to_string(sent_all() - accounted) + " messages unaccounted for");
      break;
    }
    if (now >= next_tick) {
      sample(next_tick, !measuring);
      next_tick += step;
    }
    sleep_until_ns(std::min(now + 1'000'000, next_tick));
  }
  const std::uint64_t t_end = now_ns();
  if (t_end > prev_t + 1'000'000) sample(t_end, !measuring);
  const Usage usage1 = usage();

  // Across nodes: this node's cluster counters now, then the other node
  // leaves and shuts down, and says what it measured.
  NodeReport remote_final;
  nlohmann::json here_summary;
  std::array<std::uint64_t, cluster::kRemoteDropReasons> cluster1{};
  if (remote) {
    if (!failure.empty()) return fail_running(failure);
    here_summary = cluster_summary(node->stats(), kPublisherNode, "publishers");
    cluster1 = cluster_dropped(*node);
    auto fin = remote->finish(60s);
    if (!fin) return fail_running(fin.error());
    remote_final = std::move(*fin);
  }

  // -- results ---
  std::uint64_t last_send = 0, max_lag = 0, gen_cpu = 0;
  for (auto& c : cells) {
    res.sent += load(c->sent_measured);
    last_send = std::max(last_send, load(c->last_send_ns));
    max_lag = std::max(max_lag, load(c->max_lag_ns));
    gen_cpu += load(c->cpu_ns);
  }
  res.latency = ctx->recorder.histogram(Phase::measured);
  res.completed = ctx->recorder.completed(Phase::measured);
  if (remote) {
    res.latency.merge(remote_final.measured);
    res.completed += remote_final.counts.completed[static_cast<int>(Phase::measured)];
  }
  res.observations = res.latency.count();
  const std::uint64_t last_completion =
      std::max(ctx->recorder.last_measured_completion_ns(), remote_final.counts.last_completion_ns);
  const std::uint64_t window_end = std::max({last_send, last_completion, measure_start});
  res.measured_seconds = static_cast<double>(window_end - measure_start) / 1e9;
  res.throughput = res.measured_seconds > 0 ? static_cast<double>(res.completed) / res.measured_seconds : 0;
  res.cpu_user_seconds = usage1.user - usage0.user;
  res.cpu_system_seconds = usage1.system - usage0.system;
  if (remote) {
    res.cpu_user_seconds += remote_final.counts.cpu_user - remote_m.cpu_user;
    res.cpu_system_seconds += remote_final.counts.cpu_system - remote_m.cpu_system;
    res.notes.push_back("the subscriber node's peak RSS: " + std::to_string(remote_final.counts.max_rss >> 20) + " MiB");
  }
  res.peak_rss_bytes = usage1.max_rss;
  res.generator_cpu_seconds = static_cast<double>(gen_cpu) / 1e9;
  const std::uint64_t sent_total = sent_all();
  res.generator_ns_per_message = sent_total > 0 ? static_cast<double>(gen_cpu) / static_cast<double>(sent_total) : 0;
  res.generator_max_lag_seconds = static_cast<double>(max_lag) / 1e9;
  if (s.mode == LoadMode::open && max_lag > 100'000'000) {
    res.notes.push_back("the load fell behind its schedule by up to " + std::to_string(max_lag / 1'000'000) +
                        " ms (counted in the latency: the swarm or the generator could not keep up)");
  }

  const RuntimeStats stats1 = rt->stats();
  std::uint64_t total = 0;
  const auto lost1 = lost_by_reason(stats1), lost_m = lost_by_reason(stats_m);
  for (int r = 0; r < kDropReasonCount; ++r) {
    std::uint64_t n = lost1[r] - lost_m[r];
    if (remote) n += remote_final.counts.runtime_lost[r] - remote_m.runtime_lost[r];
    res.dropped[std::string(to_string(static_cast<DropReason>(r)))] = n;
    total += n;
  }
  res.dropped["timeout"] = ctx->recorder.lost_all() - lost_warmup;
  if (remote) {
    const NodeCounts& f = remote_final.counts;
    res.dropped["timeout"] += f.lost[0] + f.lost[1] - remote_m.lost[0] - remote_m.lost[1];
    // The cluster's own drops, of both nodes (a message that crossed in a
    // publish is counted nowhere else).
    for (int r = 0; r < cluster::kRemoteDropReasons; ++r) {
      const std::uint64_t n = cluster1[r] - cluster_m[r] + f.cluster_dropped[r] - remote_m.cluster_dropped[r];
      res.dropped["cluster_" + std::string(cluster::to_string(static_cast<cluster::RemoteDrop>(r)))] = n;
      total += n;
    }
    std::vector<std::string> servers = node_config(s, kPublisherNode).servers;
    for (std::string& u : servers) u = without_credentials(u);
    res.cluster_json = nlohmann::json{{"servers", servers},
                                      {"prefix", kClusterPrefix},
                                      {"nodes", {here_summary, remote_final.cluster}}}
                           .dump();
  }
  total += res.dropped["timeout"];
  res.dropped["total"] = total;
  if (stop.load()) res.notes.push_back("stopped early (interrupted)");

  rt->metrics().remove_callback(callback);
  remote.reset();
  node.reset();  // leaves the cluster before the runtime stops
  rt->shutdown(res.drained ? ShutdownPolicy::drain : ShutdownPolicy::discard);
  rt.reset();
  return res;
}

int run_subscriber_node(const Scenario& s, int fd) {
  // The run that spawned this process handles Ctrl-C and then says stop.
  ::signal(SIGINT, SIG_IGN);
  auto say = [fd](const nlohmann::json& j) { return send_link_line(fd, j.dump()); };
  auto fail = [&](const std::string& why) {
    (void)say({{"error", why}});
    return 1;
  };
  const auto cores = static_cast<unsigned>(std::max<std::size_t>(1, allowed_cpus().size()));  // the run's runtime mask
  auto cfg = runtime_config(s, s.workers != 0 ? s.workers : cores);
  if (!cfg) return fail(cfg.error());
  auto ctx = context_for(s);
  std::unique_ptr<Runtime> rt;
  try {
    rt = std::make_unique<Runtime>(*cfg);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  // Built before joining: the first interest this node announces is all of it.
  auto swarm = build_swarm(*rt, *ctx, s, Side::subscribers);
  if (!swarm) {
    rt->shutdown(ShutdownPolicy::discard);
    return fail(swarm.error());
  }
  (void)rt->wait_idle(60s);
  auto joined = cluster::Cluster::join(*rt, node_config(s, kSubscriberNode));
  if (!joined) {
    rt->shutdown(ShutdownPolicy::discard);
    return fail(joined.error());
  }
  std::unique_ptr<cluster::Cluster> node = std::move(*joined);
  // Replies and acknowledgements go to the run's node: it must be known here.
  const std::uint64_t deadline = now_ns() + 30'000'000'000ull;
  for (;;) {
    const std::vector<std::string> up = node->nodes();
    if (std::find(up.begin(), up.end(), kPublisherNode) != up.end()) break;
    if (now_ns() > deadline) {
      node.reset();
      rt->shutdown(ShutdownPolicy::discard);
      return fail(std::string("node ") + kPublisherNode + " did not appear within 30 s");
    }
    sleep_until_ns(now_ns() + 10'000'000);
  }
  auto report = [&] {
    NodeReport r;
    r.counts = node_counts(*ctx, *rt, node.get());
    r.all = ctx->recorder.histogram_all();
    r.measured = ctx->recorder.histogram(Phase::measured);
    return r;
  };
  bool gone = !say({{"ready", {{"pid", ::getpid()}, {"workers", rt->worker_count()}}}});

  // Counts every 2 ms; commands as they come; the end of the link is a stop.
  std::string buf;
  std::uint64_t next_counts = 0;
  while (!gone) {
    const std::uint64_t now = now_ns();
    if (now >= next_counts) {
      next_counts = now + 2'000'000;
      if (!say({{"counts", to_json(node_counts(*ctx, *rt, node.get()))}})) break;
    }
    pollfd pfd{fd, POLLIN, 0};
    const int wait_ms = static_cast<int>((next_counts - std::min(next_counts, now_ns())) / 1'000'000) + 1;
    if (::poll(&pfd, 1, wait_ms) <= 0) continue;
    char chunk[4096];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the run closed the link
    buf.append(chunk, static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = buf.find('\n')) != std::string::npos;) {
      const std::string command = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (command == "snapshot") {
        if (!say({{"snapshot", to_json(report())}})) gone = true;
      } else if (command == "stop") {
        gone = true;
        break;
      }
    }
  }
  // Leave first (the run's node then withdraws this one's interest), then
  // finish what is queued, then say what was measured.
  nlohmann::json summary = cluster_summary(node->stats(), kSubscriberNode, "subscribers");
  const auto dropped = cluster_dropped(*node);
  node.reset();
  rt->shutdown(ShutdownPolicy::drain);
  NodeReport last;
  last.counts = node_counts(*ctx, *rt, nullptr);
  last.counts.cluster_dropped = dropped;
  last.all = ctx->recorder.histogram_all();
  last.measured = ctx->recorder.histogram(Phase::measured);
  last.cluster = std::move(summary);
  (void)say({{"final", to_json(last)}});
  return 0;
}

}  // namespace swarm::load
