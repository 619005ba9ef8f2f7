// The standard workloads (DESIGN.md) on the Swarm runtime. Each function is
// one measured run; swarm-bench runs it in a fresh process.

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <chrono>
#include <future>
#include <vector>

#include "benchmarks/workload_support.hpp"
#include "benchmarks/workloads.hpp"
#include "runtime/runtime.hpp"

namespace swarm::bench {
namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

class Idle : public Agent {
 public:
  void on_message(Message&) override {}
};

// W2: bounces a counter; the one that sees the limit reports completion.
class Bouncer : public Agent {
 public:
  Bouncer(std::uint64_t limit, std::promise<void>& done) : limit_(limit), done_(done) {}
  void on_message(Message& m) override {
    std::uint64_t n = m.as<std::uint64_t>() + 1;
    if (n >= limit_) {
      done_.set_value();
      return;
    }
    (void)send(m.sender, n);
  }

 private:
  std::uint64_t limit_;
  std::promise<void>& done_;
};

// Serves the first ball.
class Server : public Bouncer {
 public:
  Server(AgentRef peer, std::uint64_t limit, std::promise<void>& done) : Bouncer(limit, done), peer_(peer) {}
  void on_start() override { (void)send(peer_, std::uint64_t{0}); }

 private:
  AgentRef peer_;
};

// W3/W4: subscribes to its topic and counts down once it has seen every
// message meant for it.
class TopicCounter : public Agent {
 public:
  TopicCounter(std::string topic, std::uint64_t expect, Countdown& joined, Countdown& finished)
      : topic_(std::move(topic)), expect_(expect), joined_(joined), finished_(finished) {}
  void on_start() override {
    if (!subscribe(topic_)) throw std::runtime_error("subscribe " + topic_ + " failed");
    joined_.count_down();
  }
  void on_message(Message&) override {
    if (++seen_ == expect_) finished_.count_down();
  }

 private:
  std::string topic_;
  std::uint64_t expect_;
  Countdown& joined_;
  Countdown& finished_;
  std::uint64_t seen_ = 0;
};

// Publishes topics[i] for every i, kPublishChunk per run, then yields.
class Publisher : public Agent {
 public:
  Publisher(const std::vector<router::TopicId>& ids, const std::vector<std::uint32_t>& topics)
      : ids_(ids), topics_(topics) {}
  void on_message(Message&) override {
    std::uint64_t end = std::min<std::uint64_t>(next_ + kPublishChunk, topics_.size());
    for (; next_ < end; ++next_) (void)publish(ids_[topics_[next_]], next_);
    if (end < topics_.size()) (void)send(self(), std::uint64_t{0});
  }

 private:
  const std::vector<router::TopicId>& ids_;
  const std::vector<std::uint32_t>& topics_;
  std::uint64_t next_ = 0;
};

// Spawns `per_topic` counters on each topic (expecting expect[i] messages),
// waits until all subscribed, publishes `topics`; returns the seconds until
// every message was counted.
double run_topics(Runtime& rt, const std::vector<std::string>& names, const std::vector<std::uint64_t>& expect,
                  const std::vector<std::uint32_t>& topics, std::uint64_t per_topic) {
  std::uint64_t expecting = 0;
  for (std::uint64_t e : expect) expecting += e != 0 ? per_topic : 0;
  Countdown joined(names.size() * per_topic);
  Countdown finished(expecting);
  std::vector<router::TopicId> ids;
  for (const std::string& name : names) ids.push_back(rt.router().intern(name).value());
  for (std::size_t t = 0; t < names.size(); ++t) {
    for (std::uint64_t s = 0; s < per_topic; ++s) rt.spawn<TopicCounter>(names[t], expect[t], joined, finished);
  }
  joined.wait();
  auto t0 = Clock::now();
  AgentRef pub = rt.spawn<Publisher>(ids, topics);
  (void)rt.send(pub, std::uint64_t{0});
  finished.wait();
  return seconds_since(t0);
}

// W5: a ring member forwards the token to `next` until the hop count is spent.
class RingMember : public Agent {
 public:
  explicit RingMember(std::promise<void>& done) : done_(done) {}
  void on_message(Message& m) override {
    if (m.kind == 1) {  // wiring: the next member's ref
      next_ = m.as<AgentRef>();
      return;
    }
    std::uint64_t left = m.as<std::uint64_t>();
    if (left == 0) {
      done_.set_value();
      return;
    }
    (void)send(next_, left - 1);
  }

 private:
  std::promise<void>& done_;
  AgentRef next_;
};

// W6: spawns 10 children until depth 0; leaves report 1; parents sum.
class TreeNode : public Agent {
 public:
  TreeNode(AgentRef parent, unsigned depth, std::promise<std::uint64_t>* root_done)
      : parent_(parent), depth_(depth), root_done_(root_done) {}
  void on_start() override {
    if (depth_ == 0) {
      report(1);
      return;
    }
    for (int i = 0; i < 10; ++i) spawn<TreeNode>(self(), depth_ - 1, nullptr);
  }
  void on_message(Message& m) override {
    sum_ += m.as<std::uint64_t>();
    if (++replies_ == 10) report(sum_);
  }

 private:
  void report(std::uint64_t v) {
    if (root_done_ != nullptr) {
      root_done_->set_value(v);
    } else {
      (void)send(parent_, v);
    }
    stop();
  }
  AgentRef parent_;
  unsigned depth_;
  std::promise<std::uint64_t>* root_done_;
  std::uint64_t sum_ = 0;
  unsigned replies_ = 0;
};

}  // namespace

RunResult swarm_w1(const WorkloadParams& p) {
  const std::uint64_t n = p.scale != 0 ? p.scale : 100'000;
  Runtime rt(config_for(p));
  std::vector<AgentRef> refs;
  refs.reserve(n);
  const std::uint64_t rss0 = resident_bytes();
  auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) refs.push_back(rt.spawn<Idle>());
  RunResult r;
  r.seconds = seconds_since(t0);
  // The refs vector is the benchmark's own bookkeeping, not the agents' cost.
  r.bytes_per_agent = (static_cast<double>(resident_bytes() - rss0) - static_cast<double>(n * sizeof(AgentRef))) /
                      static_cast<double>(n);
  r.value = static_cast<double>(n) / r.seconds;
  r.checksum = rt.stats().live;
  rt.shutdown(ShutdownPolicy::discard);
  return r;
}

RunResult swarm_w2(const WorkloadParams& p) {
  const std::uint64_t n = p.scale != 0 ? p.scale : 1'000'000;
  Runtime rt(config_for(p));
  std::promise<void> done;
  AgentRef b = rt.spawn<Bouncer>(n, done);
  auto t0 = Clock::now();
  rt.spawn<Server>(b, n, done);
  done.get_future().wait();
  RunResult r;
  r.seconds = seconds_since(t0);
  r.value = static_cast<double>(n) / r.seconds;
  r.checksum = n;
  return r;
}

RunResult swarm_w3(const WorkloadParams& p) {
  const std::uint64_t n = fanout_messages(p);
  RuntimeConfig c = config_for(p);
  c.default_mailbox.capacity = static_cast<std::uint32_t>(std::max<std::uint64_t>(n, 1024));  // a whole burst fits
  Runtime rt(c);
  RunResult r;
  r.seconds = run_topics(rt, {"fanout"}, {n}, std::vector<std::uint32_t>(n, 0), kFanoutSubscribers);
  r.checksum = n * kFanoutSubscribers;
  r.value = static_cast<double>(r.checksum) / r.seconds;
  return r;
}

RunResult swarm_w4(const WorkloadParams& p) {
  const std::vector<std::uint32_t> topics = random_topics(many_topics_messages(p), kManyTopics);
  const std::vector<std::uint64_t> expect = count_per_topic(topics, kManyTopics);
  std::vector<std::string> names;
  for (std::uint32_t t = 0; t < kManyTopics; ++t) names.push_back("topic." + std::to_string(t));
  RuntimeConfig c = config_for(p);
  c.default_mailbox.capacity = static_cast<std::uint32_t>(*std::max_element(expect.begin(), expect.end()) + 1);
  Runtime rt(c);
  RunResult r;
  r.seconds = run_topics(rt, names, expect, topics, 1);
  r.checksum = topics.size();
  r.value = static_cast<double>(topics.size()) / r.seconds;
  return r;
}

RunResult swarm_w5(const WorkloadParams& p) {
  const std::uint64_t hops = p.scale != 0 ? p.scale : 1'000'000;
  constexpr int kRing = 503;
  Runtime rt(config_for(p));
  std::promise<void> done;
  std::vector<AgentRef> ring;
  for (int i = 0; i < kRing; ++i) ring.push_back(rt.spawn<RingMember>(done));
  for (int i = 0; i < kRing; ++i) (void)rt.send(ring[i], ring[(i + 1) % kRing], 1);
  rt.wait_idle();
  auto t0 = Clock::now();
  (void)rt.send(ring[0], hops);
  done.get_future().wait();
  RunResult r;
  r.seconds = seconds_since(t0);
  r.value = static_cast<double>(hops) / r.seconds;
  r.checksum = hops;
  return r;
}

RunResult swarm_w6(const WorkloadParams& p) {
  const unsigned depth = spawn_tree_depth(p);
  const std::uint64_t agents = spawn_tree_agents(depth);
  RuntimeConfig c = config_for(p);
  Runtime rt(c);
  std::promise<std::uint64_t> done;
  auto t0 = Clock::now();
  rt.spawn<TreeNode>(AgentRef{}, depth, &done);
  RunResult r;
  r.checksum = done.get_future().get();
  r.seconds = seconds_since(t0);
  r.value = static_cast<double>(agents) / r.seconds;
  return r;
}

}  // namespace swarm::bench
