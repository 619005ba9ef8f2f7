// The standard workloads (DESIGN.md) written idiomatically on CAF 0.17, the
// peer Swarm is measured against: event-based actors, the default
// work-stealing scheduler capped at the same number of worker threads.

#include <caf/all.hpp>

#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "benchmarks/workloads.hpp"

namespace swarm::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Config : caf::actor_system_config {
  explicit Config(const WorkloadParams& p) {
    std::size_t workers = p.workers != 0 ? p.workers : std::thread::hardware_concurrency();
    set("scheduler.max-threads", workers);
  }
};

caf::behavior idle(caf::event_based_actor*) {
  return {[](std::uint64_t) {}};
}

struct BouncerState {
  caf::actor peer;  // cached: resolving current_sender() per message costs a refcount round trip
};

caf::behavior bouncer(caf::stateful_actor<BouncerState>* self, std::uint64_t limit, std::promise<void>* done) {
  return {[=](std::uint64_t n) {
    if (n + 1 >= limit) {
      done->set_value();
      return;
    }
    if (!self->state.peer) self->state.peer = caf::actor_cast<caf::actor>(self->current_sender());
    self->send(self->state.peer, n + 1);
  }};
}

caf::behavior server(caf::stateful_actor<BouncerState>* self, caf::actor peer, std::uint64_t limit,
                     std::promise<void>* done) {
  self->state.peer = peer;
  self->send(peer, std::uint64_t{0});
  return bouncer(self, limit, done);
}

// W3/W4: a subscriber joins its group, says so, and counts down once it has
// seen every message meant for it.
struct CounterState {
  std::uint64_t seen = 0;
};

caf::behavior group_counter(caf::stateful_actor<CounterState>* self, caf::group g, std::uint64_t expect,
                            Countdown* joined, Countdown* finished) {
  self->join(g);
  joined->count_down();
  return {[=](std::uint64_t) {
    if (++self->state.seen == expect) finished->count_down();
  }};
}

// Publishes `topics[i]` for every i, kPublishChunk per run, then yields.
struct PublisherState {
  std::uint64_t next = 0;
};

caf::behavior publisher(caf::stateful_actor<PublisherState>* self, std::vector<caf::group>* groups,
                        const std::vector<std::uint32_t>* topics) {
  return {[=](caf::atom_value) {
    std::uint64_t end = std::min<std::uint64_t>(self->state.next + kPublishChunk, topics->size());
    for (; self->state.next < end; ++self->state.next) {
      self->send((*groups)[(*topics)[self->state.next]], std::uint64_t{self->state.next});
    }
    if (end < topics->size()) self->send(self, caf::atom("more"));
  }};
}

// Spawns one counter per group (expecting expect[i] messages), waits until all
// joined, publishes `topics`, and returns the seconds until all were counted.
double run_groups(caf::actor_system& sys, std::vector<caf::group>& groups, const std::vector<std::uint64_t>& expect,
                  const std::vector<std::uint32_t>& topics, std::size_t subscribers_per_group) {
  std::uint64_t expecting = 0;
  for (std::uint64_t e : expect) expecting += e != 0 ? subscribers_per_group : 0;
  Countdown joined(groups.size() * subscribers_per_group);
  Countdown finished(expecting);
  std::vector<caf::actor> counters;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (std::size_t s = 0; s < subscribers_per_group; ++s) {
      counters.push_back(sys.spawn(group_counter, groups[g], expect[g], &joined, &finished));
    }
  }
  joined.wait();
  auto t0 = Clock::now();
  auto pub = sys.spawn(publisher, &groups, &topics);
  caf::anon_send(pub, caf::atom("more"));
  finished.wait();
  double seconds = seconds_since(t0);
  // Group members are referenced by their group: end them explicitly.
  for (auto& c : counters) caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(pub, caf::exit_reason::user_shutdown);
  return seconds;
}

struct RingState {
  caf::actor next;
};

caf::behavior ring_member(caf::stateful_actor<RingState>* self, std::promise<void>* done) {
  return {
      [=](caf::actor next) {
        self->state.next = std::move(next);
        return true;
      },
      [=](std::uint64_t left) {
        if (left == 0) {
          done->set_value();
          return;
        }
        self->send(self->state.next, left - 1);
      },
  };
}

struct TreeState {
  std::uint64_t sum = 0;
  unsigned replies = 0;
};

caf::behavior tree_node(caf::stateful_actor<TreeState>* self, caf::actor parent, unsigned depth,
                        std::promise<std::uint64_t>* root_done) {
  auto report = [=](std::uint64_t v) {
    if (root_done != nullptr) {
      root_done->set_value(v);
    } else {
      self->send(parent, v);
    }
    self->quit();
  };
  if (depth == 0) {
    report(1);
    return {};
  }
  for (int i = 0; i < 10; ++i) self->spawn(tree_node, caf::actor_cast<caf::actor>(self), depth - 1, nullptr);
  return {[=](std::uint64_t v) {
    self->state.sum += v;
    if (++self->state.replies == 10) report(self->state.sum);
  }};
}

}  // namespace

RunResult caf_w1(const WorkloadParams& p) {
  const std::uint64_t n = p.scale != 0 ? p.scale : 100'000;
  Config cfg(p);
  caf::actor_system sys{cfg};
  std::vector<caf::actor> refs;
  refs.reserve(n);
  const std::uint64_t rss0 = resident_bytes();
  auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) refs.push_back(sys.spawn(idle));
  RunResult r;
  r.seconds = seconds_since(t0);
  r.bytes_per_agent = (static_cast<double>(resident_bytes() - rss0) - static_cast<double>(n * sizeof(caf::actor))) /
                      static_cast<double>(n);
  r.value = static_cast<double>(n) / r.seconds;
  r.checksum = refs.size();
  for (auto& a : refs) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  return r;
}

RunResult caf_w2(const WorkloadParams& p) {
  const std::uint64_t n = p.scale != 0 ? p.scale : 1'000'000;
  Config cfg(p);
  caf::actor_system sys{cfg};
  std::promise<void> done;
  auto b = sys.spawn(bouncer, n, &done);
  auto t0 = Clock::now();
  auto s = sys.spawn(server, b, n, &done);
  done.get_future().wait();
  RunResult r;
  r.seconds = seconds_since(t0);
  r.value = static_cast<double>(n) / r.seconds;
  r.checksum = n;
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  return r;
}

RunResult caf_w3(const WorkloadParams& p) {
  const std::uint64_t n = fanout_messages(p);
  Config cfg(p);
  caf::actor_system sys{cfg};
  std::vector<caf::group> groups{sys.groups().get_local("fanout")};
  RunResult r;
  r.seconds = run_groups(sys, groups, {n}, std::vector<std::uint32_t>(n, 0), kFanoutSubscribers);
  r.checksum = n * kFanoutSubscribers;
  r.value = static_cast<double>(r.checksum) / r.seconds;
  return r;
}

RunResult caf_w4(const WorkloadParams& p) {
  const std::vector<std::uint32_t> topics = random_topics(many_topics_messages(p), kManyTopics);
  const std::vector<std::uint64_t> expect = count_per_topic(topics, kManyTopics);
  Config cfg(p);
  caf::actor_system sys{cfg};
  std::vector<caf::group> groups;
  for (std::uint32_t t = 0; t < kManyTopics; ++t) groups.push_back(sys.groups().get_local("topic." + std::to_string(t)));
  RunResult r;
  r.seconds = run_groups(sys, groups, expect, topics, 1);
  r.checksum = topics.size();
  r.value = static_cast<double>(topics.size()) / r.seconds;
  return r;
}

RunResult caf_w5(const WorkloadParams& p) {
  const std::uint64_t hops = p.scale != 0 ? p.scale : 1'000'000;
  constexpr int kRing = 503;
  Config cfg(p);
  caf::actor_system sys{cfg};
  std::promise<void> done;
  std::vector<caf::actor> ring;
  for (int i = 0; i < kRing; ++i) ring.push_back(sys.spawn(ring_member, &done));
  {
    // Wire the ring and wait for every member to acknowledge before timing.
    caf::scoped_actor self{sys};
    for (int i = 0; i < kRing; ++i) {
      self->request(ring[i], caf::infinite, ring[(i + 1) % kRing]).receive([](bool) {}, [](caf::error&) {});
    }
  }
  auto t0 = Clock::now();
  caf::anon_send(ring[0], hops);
  done.get_future().wait();
  RunResult r;
  r.seconds = seconds_since(t0);
  r.value = static_cast<double>(hops) / r.seconds;
  r.checksum = hops;
  for (auto& a : ring) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  return r;
}

RunResult caf_w6(const WorkloadParams& p) {
  const unsigned depth = spawn_tree_depth(p);
  const std::uint64_t agents = spawn_tree_agents(depth);
  Config cfg(p);
  caf::actor_system sys{cfg};
  std::promise<std::uint64_t> done;
  auto t0 = Clock::now();
  sys.spawn(tree_node, caf::actor{}, depth, &done);
  RunResult r;
  r.checksum = done.get_future().get();
  r.seconds = seconds_since(t0);
  r.value = static_cast<double>(agents) / r.seconds;
  return r;
}

}  // namespace swarm::bench
