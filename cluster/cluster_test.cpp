// Nodes joined through a real 3-server NATS cluster on 127.0.0.1 (JetStream
// on, free ports, temporary folders): pub/sub with wildcards, queue groups,
// requests and names across nodes, interest withdrawn, a node SIGKILLed or
// stopped, a NATS server SIGKILLed, a duplicate node name.

#include "cluster/cluster.hpp"
#include "metrics/registry.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <string>
#include <vector>

#include "base/mutex.hpp"
#include "tests/support/nats_cluster.hpp"
#include "runtime/test_util.hpp"

namespace swarm::cluster {
namespace {

using namespace std::chrono_literals;
using test::eventually;

struct Inbox {
  mutable Mutex mu;
  std::vector<std::string> got SWARM_GUARDED_BY(mu);
  std::size_t size() const {
    MutexLock lock(mu);
    return got.size();
  }
  std::vector<std::string> all() const {
    MutexLock lock(mu);
    return got;
  }
  bool has(const std::string& text) const {
    MutexLock lock(mu);
    return std::find(got.begin(), got.end(), text) != got.end();
  }
};

class Collector : public Agent {
 public:
  explicit Collector(Inbox& inbox) : inbox_(inbox) {}
  void on_message(Message& m) override {
    MutexLock lock(inbox_.mu);
    inbox_.got.emplace_back(m.text());
  }

 private:
  Inbox& inbox_;
};

class Echo : public Agent {
 public:
  void on_message(Message& m) override {
    if (m.is_request()) (void)reply(m, Payload("echo " + std::string(m.text())));
  }
};

struct Node {
  std::unique_ptr<Runtime> rt;
  std::unique_ptr<Cluster> cluster;
  Node() = default;
  Node(Node&&) = default;
  Node& operator=(Node&&) = default;
  ~Node() { leave(); }
  void leave() {
    cluster.reset();
    if (rt) rt->shutdown();
  }
  Runtime& operator*() { return *rt; }
  Runtime* operator->() { return rt.get(); }
  // Deliveries a publish on `topic` here would make (local and to other nodes).
  std::size_t receivers(std::string_view topic) { return rt->router().receivers(rt->router().intern(topic).value()); }
  PeerStats peer(const std::string& name) const {
    for (PeerStats& p : cluster->stats().peers) {
      if (p.node == name) return p;
    }
    return {};
  }
};

class ClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { nats_ = new test::NatsCluster(3); }
  static void TearDownTestSuite() {
    delete nats_;
    nats_ = nullptr;
  }

  ClusterConfig config(const std::string& name, int server) {
    ClusterConfig c;
    c.node = name;
    c.servers = nats_->urls_from(server);
    c.prefix = prefix_;
    c.heartbeat_interval = 100ms;
    c.node_timeout = 1000ms;
    c.send_asap = send_asap_;
    return c;
  }
  Node join(const ClusterConfig& c) {
    Node n;
    RuntimeConfig rc;
    rc.workers = 2;
    n.rt = std::make_unique<Runtime>(rc);
    auto joined = Cluster::join(*n.rt, c);
    if (!joined) ADD_FAILURE() << joined.error();
    if (joined) n.cluster = std::move(*joined);
    return n;
  }
  Node join(const std::string& name, int server) { return join(config(name, server)); }
  // Waits until every node sees every other one up.
  static bool all_up(std::vector<Node*> nodes) {
    return eventually([&] {
      for (Node* n : nodes) {
        if (n->cluster->nodes().size() != nodes.size() - 1) return false;
      }
      return true;
    });
  }

  static test::NatsCluster* nats_;
  bool send_asap_ = true;
  // Each test its own subjects and buckets: nodes of an earlier test are not seen.
  static inline int tests_ = 0;
  const std::string prefix_ = "t" + std::to_string(::getpid()) + "_" + std::to_string(++tests_);
};
test::NatsCluster* ClusterTest::nats_ = nullptr;

std::string send_mode(const ::testing::TestParamInfo<bool>& info) { return info.param ? "asap" : "coalesced"; }

// The tests that count every message run both ways: each frame handed to NATS
// at once (send_asap), and frames for one peer coalesced by the flusher.
class ClusterBothWays : public ClusterTest, public ::testing::WithParamInterface<bool> {
 protected:
  ClusterBothWays() { send_asap_ = GetParam(); }
};
INSTANTIATE_TEST_SUITE_P(SendAsap, ClusterBothWays, ::testing::Bool(), send_mode);

TEST_P(ClusterBothWays, WildcardPublishReachesEveryMatchingSubscriberOnceAndNoOtherNode) {
  Node a = join("a", 0), b = join("b", 1), c = join("c", 2);
  ASSERT_TRUE(all_up({&a, &b, &c}));
  Inbox on_b, on_c;
  const AgentRef rb = b->spawn<Collector>(on_b);
  const AgentRef rc = c->spawn<Collector>(on_c);
  ASSERT_TRUE(b->subscribe(rb, "orders.*"));
  ASSERT_TRUE(c->subscribe(rc, "orders.>"));
  ASSERT_TRUE(c->subscribe(rc, "orders.eu"));  // two matching patterns: still once
  ASSERT_TRUE(eventually([&] { return a.receivers("orders.eu") == 2 && a.receivers("orders.us.west") == 1; }));

  for (int i = 0; i < 200; ++i) ASSERT_TRUE(a->publish("orders.eu", Payload("m" + std::to_string(i))));
  ASSERT_TRUE(a->publish("orders.us.west", Payload(std::string("deep"))));
  ASSERT_TRUE(a->publish("orders.eu", Payload(std::string("end"))));
  ASSERT_TRUE(eventually([&] { return on_b.has("end") && on_c.has("end"); }));
  // Frames between two nodes keep their order: "end" is last, nothing is twice.
  const auto got_b = on_b.all(), got_c = on_c.all();
  ASSERT_EQ(got_b.size(), 201u);
  ASSERT_EQ(got_c.size(), 202u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(got_b[i], "m" + std::to_string(i));
  EXPECT_EQ(std::count(got_c.begin(), got_c.end(), "deep"), 1);
  EXPECT_EQ(std::count(got_b.begin(), got_b.end(), "deep"), 0);

  // No remote interest: the publish never leaves a.
  const std::uint64_t sent_b = a.peer("b").sent, sent_c = a.peer("c").sent;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(a->publish("invoices.eu", Payload(std::string("x"))));
  EXPECT_EQ(a.peer("b").sent, sent_b);
  EXPECT_EQ(a.peer("c").sent, sent_c);
  EXPECT_EQ(a.cluster->stats().dropped[static_cast<int>(RemoteDrop::lost_in_transit)], 0u);
}

TEST_F(ClusterTest, QueueGroupTakesEachMessageOnceAcrossAllNodes) {
  Node a = join("a", 0), b = join("b", 1), c = join("c", 2);
  ASSERT_TRUE(all_up({&a, &b, &c}));
  Inbox on_a, on_b, on_c, plain;
  ASSERT_TRUE(a->subscribe(a->spawn<Collector>(on_a), "jobs.*", "work"));
  ASSERT_TRUE(b->subscribe(b->spawn<Collector>(on_b), "jobs.*", "work"));
  ASSERT_TRUE(c->subscribe(c->spawn<Collector>(on_c), "jobs.>", "work"));
  ASSERT_TRUE(b->subscribe(b->spawn<Collector>(plain), "jobs.*"));
  ASSERT_TRUE(eventually([&] { return a.peer("b").interest == 2 && a.peer("c").interest == 1; }));

  constexpr int kJobs = 300;
  for (int i = 0; i < kJobs; ++i) ASSERT_TRUE(a->publish("jobs.build", Payload("j" + std::to_string(i))));
  ASSERT_TRUE(eventually([&] { return on_a.size() + on_b.size() + on_c.size() == kJobs && plain.size() == kJobs; }));
  // Even spread over the members of the whole cluster (one each here).
  EXPECT_GE(on_a.size(), 50u);
  EXPECT_GE(on_b.size(), 50u);
  EXPECT_GE(on_c.size(), 50u);
  std::vector<std::string> all = on_a.all();
  for (const auto& v : {on_b.all(), on_c.all()}) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::unique(all.begin(), all.end()), all.end()) << "a job was taken twice";
  ASSERT_TRUE(a->wait_idle(5s) && b->wait_idle(5s) && c->wait_idle(5s));
  EXPECT_EQ(on_a.size() + on_b.size() + on_c.size(), static_cast<std::size_t>(kJobs));
}

TEST_F(ClusterTest, RequestsFindRespondersOnOtherNodes) {
  Node a = join("a", 0), b = join("b", 1);
  ASSERT_TRUE(all_up({&a, &b}));
  const AgentRef echo = b->spawn<Echo>();
  ASSERT_TRUE(b->subscribe(echo, "svc.echo", "echoes"));
  ASSERT_TRUE(eventually([&] { return a.receivers("svc.echo") == 1; }));
  for (int i = 0; i < 20; ++i) {
    Reply r = a->request("svc.echo", Payload("hi" + std::to_string(i)), 5s).get();
    ASSERT_EQ(r.status, AskStatus::ok);
    EXPECT_EQ(r.message.text(), "echo hi" + std::to_string(i));
  }
  // Its responder gone, a request ends well before its timeout: no_responder
  // (nobody subscribed, here or there), or dead_agent when it reached the
  // responder's mailbox just before the kill took effect, as on one node.
  ASSERT_TRUE(b->kill(echo));
  const auto start = std::chrono::steady_clock::now();
  Reply r = a->request("svc.echo", Payload(std::string("anyone?")), 20s).get();
  EXPECT_TRUE(r.status == AskStatus::no_responder || r.status == AskStatus::dead_agent) << to_string(r.status);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST_F(ClusterTest, NamesResolveFromEveryNodeAndAreReleased) {
  Node a = join("a", 0), b = join("b", 1), c = join("c", 2);
  ASSERT_TRUE(all_up({&a, &b, &c}));
  const AgentRef echo = b->spawn<Echo>();
  ASSERT_TRUE(b->register_name(echo, "echo-b"));
  ASSERT_TRUE(eventually([&] { return a->whereis("echo-b").valid() && c->whereis("echo-b").valid(); }));
  const AgentRef remote = a->whereis("echo-b");
  EXPECT_FALSE(remote.local());
  Reply r = a->ask(remote, Payload(std::string("x")), 5s).get();
  ASSERT_EQ(r.status, AskStatus::ok);
  EXPECT_EQ(r.message.text(), "echo x");

  // The name is taken cluster-wide.
  const AgentRef other = a->spawn<Echo>();
  auto taken = a->register_name(other, "echo-b");
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().find("on another node"), std::string::npos) << taken.error();

  // Released when its agent exits; then free on every node.
  ASSERT_TRUE(b->stop(echo));
  ASSERT_TRUE(eventually([&] { return !a->whereis("echo-b").valid() && !c->whereis("echo-b").valid(); }));
  ASSERT_TRUE(a->register_name(other, "echo-b"));
  ASSERT_TRUE(eventually([&] { return c->whereis("echo-b").valid(); }));

  // A ref on a node that is gone: unreachable, and counted.
  const AgentRef on_c = c->whereis("echo-b");
  a.leave();
  ASSERT_TRUE(eventually([&] { return c.cluster->nodes() == std::vector<std::string>{"b"}; }));
  EXPECT_EQ(c->send(on_c, Payload(std::string("late"))), SendResult::unreachable);
  EXPECT_EQ(c->stats().refused[static_cast<int>(RefuseReason::unreachable)], 1u);
  EXPECT_FALSE(c->whereis("echo-b").valid());
  // A clean leave is not an outage: its per-peer series go, so no alert waits on it.
  EXPECT_TRUE(c.peer("a").left);
  const std::string scraped = c->metrics().render();
  EXPECT_EQ(scraped.find("peer=\"a\""), std::string::npos) << scraped;
  EXPECT_NE(scraped.find("swarm_cluster_peer_up{peer=\"b\"} 1"), std::string::npos) << scraped;
}

TEST_F(ClusterTest, InterestIsWithdrawnWhenTheLastSubscriberExits) {
  Node a = join("a", 0), b = join("b", 1);
  ASSERT_TRUE(all_up({&a, &b}));
  Inbox inbox;
  const AgentRef one = b->spawn<Collector>(inbox), two = b->spawn<Collector>(inbox);
  ASSERT_TRUE(b->subscribe(one, "w.x"));
  ASSERT_TRUE(b->subscribe(two, "w.*"));
  ASSERT_TRUE(eventually([&] { return a.receivers("w.x") == 1 && a.peer("b").interest == 2; }));
  ASSERT_TRUE(b->stop(one));
  ASSERT_TRUE(eventually([&] { return a.peer("b").interest == 1; }));
  EXPECT_EQ(a.receivers("w.x"), 1u);
  ASSERT_TRUE(b->stop(two));
  ASSERT_TRUE(eventually([&] { return a.receivers("w.x") == 0 && a.peer("b").interest == 0; }));
  const std::uint64_t sent = a.peer("b").sent;
  ASSERT_TRUE(a->publish("w.x", Payload(std::string("nobody"))));
  EXPECT_EQ(a.peer("b").sent, sent);
}

TEST_F(ClusterTest, ADuplicateNodeNameIsRefused) {
  Node a = join("a", 0);
  Runtime rt;
  auto again = Cluster::join(rt, config("a", 1));
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().find("\"a\" is taken by a live node"), std::string::npos) << again.error();
  auto bad = Cluster::join(rt, config("no spaces", 1));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("not a node name"), std::string::npos) << bad.error();
  rt.shutdown();
}

// A node in a process of its own (cluster_test_node), for SIGKILL and SIGSTOP.
class ChildNode {
 public:
  ChildNode(const test::NatsCluster& nats, const std::string& name, const std::string& prefix, const std::string& pattern) {
    std::string urls;
    for (const std::string& u : nats.urls_from(1)) urls += (urls.empty() ? "" : ",") + u;
    log_ = (nats.dir() / (name + ".log")).string();
    pid_ = test::spawn_process({CLUSTER_TEST_NODE, name, urls, pattern, prefix}, log_);
  }
  ~ChildNode() { signal(SIGKILL); }
  void signal(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    if (sig == SIGKILL) {
      ::waitpid(pid_, nullptr, 0);
      pid_ = 0;
    }
  }
  std::string log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  pid_t pid_ = 0;
  std::string log_;
};

TEST_P(ClusterBothWays, ANodeKilledMidRunIsDetectedAndEveryMessageIsDeliveredOrCounted) {
  Node a = join("a", 0), b = join("b", 2);
  ChildNode d(*nats_, "d", prefix_, "load.>");
  ASSERT_TRUE(eventually([&] { return a.receivers("load.x") == 1; }, 20s)) << d.log();
  Inbox on_b;
  ASSERT_TRUE(b->subscribe(b->spawn<Collector>(on_b), "after.kill"));

  std::uint64_t published = 0;
  auto publish = [&](int n) {
    for (int i = 0; i < n; ++i, ++published) (void)a->publish("load.x", Payload(std::string(64, 'x'))).value();
  };
  publish(5000);
  d.signal(SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  // Keep publishing until a declares d down.
  auto d_up = [&] {
    const auto nodes = a.cluster->nodes();
    return std::find(nodes.begin(), nodes.end(), "d") != nodes.end();
  };
  while (d_up() && std::chrono::steady_clock::now() - killed < 10s) {
    publish(100);
    std::this_thread::yield();
  }
  const auto detected = std::chrono::steady_clock::now() - killed;
  ASSERT_TRUE(eventually([&] { return !a.peer("d").up; }));
  // Bound: node_timeout (1 s) plus a heartbeat, with slack for a slow machine.
  EXPECT_LT(detected, 3s);
  publish(1000);  // after: nobody has interest, counted as no_subscriber

  const PeerStats pd = a.peer("d");
  const ClusterStats cs = a.cluster->stats();
  EXPECT_EQ(pd.sent, pd.acknowledged + pd.lost_node_down) << "in flight to d when it died: counted";
  // Refused here: no room in d's backlog, no connection, or d just declared down.
  const std::uint64_t refused_here = cs.dropped[static_cast<int>(RemoteDrop::backlog_full)] +
                                     cs.dropped[static_cast<int>(RemoteDrop::disconnected)] +
                                     cs.dropped[static_cast<int>(RemoteDrop::node_down)] - pd.lost_node_down;
  const std::uint64_t no_subscriber = a->stats().dropped[static_cast<int>(DropReason::no_subscriber)];
  EXPECT_EQ(published, pd.sent + refused_here + no_subscriber) << "every publish: sent, or counted here";
  EXPECT_GT(pd.sent, 0u);
  EXPECT_GE(no_subscriber, 1000u);

  // A node that died stays visible at 0 (what SwarmClusterPeerDown fires on).
  EXPECT_FALSE(pd.left);
  const std::string scraped = a->metrics().render();
  EXPECT_NE(scraped.find("swarm_cluster_peer_up{peer=\"d\"} 0"), std::string::npos) << scraped;
  EXPECT_NE(scraped.find("swarm_cluster_max_in_flight " + std::to_string(a.cluster->config().max_in_flight)),
            std::string::npos) << scraped;

  // The others keep running.
  ASSERT_TRUE(eventually([&] { return a.receivers("after.kill") == 1; }));
  ASSERT_TRUE(a->publish("after.kill", Payload(std::string("still here"))));
  ASSERT_TRUE(eventually([&] { return on_b.has("still here"); }));
}

TEST_F(ClusterTest, ANodeThatNeverReadsCannotBlockOrGrowThisOne) {
  ClusterConfig ca = config("a", 0);
  ca.max_in_flight = 1000;
  Node a = join(ca);
  ChildNode d(*nats_, "d", prefix_, "slow.>");
  ASSERT_TRUE(eventually([&] { return a.receivers("slow.x") == 1; }, 20s)) << d.log();
  d.signal(SIGSTOP);
  for (int i = 0; i < 50'000; ++i) (void)a->publish("slow.x", Payload(std::string(64, 'x'))).value();
  const PeerStats pd = a.peer("d");
  const ClusterStats cs = a.cluster->stats();
  EXPECT_LE(pd.sent - pd.acknowledged, 1000u) << "its backlog is bounded";
  EXPECT_GE(cs.dropped[static_cast<int>(RemoteDrop::backlog_full)], 40'000u) << "and what did not fit is counted";
  d.signal(SIGKILL);
  ASSERT_TRUE(eventually([&] { return !a.peer("d").up; }));
  EXPECT_LE(a.peer("d").lost_node_down, 1000u);
}

class ClusterFailover : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(SendAsap, ClusterFailover, ::testing::Bool(), send_mode);

TEST_P(ClusterFailover, ANatsServerKilledTrafficResumesAndTheGapIsCounted) {
  test::NatsCluster nats(3);
  auto config = [&](const std::string& name, int server) {
    ClusterConfig c;
    c.node = name;
    c.send_asap = GetParam();
    c.servers = nats.urls_from(server);
    c.heartbeat_interval = 100ms;
    c.node_timeout = 3000ms;
    return c;
  };
  Node a, b;
  a.rt = std::make_unique<Runtime>();
  b.rt = std::make_unique<Runtime>();
  a.cluster = std::move(Cluster::join(*a.rt, config("a", 0)).value());
  b.cluster = std::move(Cluster::join(*b.rt, config("b", 1)).value());
  Inbox on_b;
  ASSERT_TRUE(b->subscribe(b->spawn<Collector>(on_b), "r.x"));
  // a relays only once b knows it: b's interest names the nodes it knows.
  ASSERT_TRUE(eventually([&] { return a.receivers("r.x") == 1; }, 20s));
  EXPECT_TRUE(b.peer("a").up);

  std::uint64_t published = 0;
  auto publish = [&](int n) {
    for (int i = 0; i < n; ++i, ++published) (void)a->publish("r.x", Payload(std::to_string(published))).value();
  };
  publish(1000);
  ASSERT_TRUE(eventually([&] { return on_b.size() == 1000; }));
  nats.kill(0);  // a's server
  const std::size_t before = on_b.size();
  ASSERT_TRUE(eventually([&] {
    publish(10);
    return a.cluster->stats().reconnects >= 1 && on_b.size() > before + 100;
  }, 20s));
  publish(100);
  // Everything a sent is acknowledged by b: received, or counted missing.
  ASSERT_TRUE(eventually([&] { return a.peer("b").acknowledged == a.peer("b").sent; }, 20s));
  const PeerStats from_a = b.peer("a");
  EXPECT_EQ(from_a.received + from_a.lost_in_transit, a.peer("b").sent);
  ASSERT_TRUE(b->wait_idle(5s));
  EXPECT_EQ(on_b.size(), from_a.received);
  EXPECT_TRUE(a.peer("b").up) << "a NATS server's death is not a node's";
  EXPECT_EQ(b.cluster->stats().dropped[static_cast<int>(RemoteDrop::unknown_node)], 0u);
}

}  // namespace
}  // namespace swarm::cluster
