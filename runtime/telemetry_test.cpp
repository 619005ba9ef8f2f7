// Telemetry of a running runtime: latency histograms, slow consumers by name,
// the slow-handler hook, the logical profile, the admin port and the switch.

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "metrics/registry.hpp"
#include "runtime/runtime.hpp"
#include "runtime/supervisor.hpp"
#include "runtime/test_util.hpp"

namespace swarm {
namespace {

using namespace std::chrono_literals;
using test::eventually;

class Counter : public Agent {
 public:
  static constexpr std::string_view kTypeName = "counter";
  explicit Counter(std::atomic<int>& n) : n_(n) {}
  void on_message(Message&) override { n_.fetch_add(1); }

 private:
  std::atomic<int>& n_;
};

// Blocks in its first handler until released: its mailbox fills up behind it.
class Stuck : public Agent {
 public:
  static constexpr std::string_view kTypeName = "stuck";
  Stuck(std::atomic<bool>& release, std::atomic<int>& entered) : release_(release), entered_(entered) {}
  void on_message(Message&) override {
    entered_.fetch_add(1);
    while (!release_.load()) std::this_thread::sleep_for(1ms);
  }

 private:
  std::atomic<bool>& release_;
  std::atomic<int>& entered_;
};

RuntimeConfig sampled_config() {
  RuntimeConfig cfg;
  cfg.workers = 2;
  cfg.telemetry.sample_every = 1;  // time every message: exact counts below
  return cfg;
}

std::uint64_t count_of(metrics::Registry& reg, const std::string& name, const std::string& label = {}) {
  std::uint64_t n = 0;
  for (const auto& f : reg.Collect()) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      bool match = label.empty();
      for (const auto& l : m.label) match |= l.value == label;
      if (match) n += m.histogram.sample_count;
    }
  }
  return n;
}

// Spawns a Counter, sends it `count` messages from this thread, waits until handled.
bool count_messages(Runtime& rt, int count) {
  std::atomic<int> n{0};
  AgentRef a = rt.spawn<Counter>(n);
  for (int i = 0; i < count; ++i) {
    if (rt.send(a, Payload::of(i)) != SendResult::ok) return false;
  }
  return eventually([&] { return n.load() == count; }) && rt.wait_idle();
}

TEST(Telemetry, EveryMessageIsTimedWhenSampleEveryIsOne) {
  Runtime rt(sampled_config());
  ASSERT_TRUE(count_messages(rt, 1000));
  EXPECT_EQ(count_of(rt.metrics(), "swarm_queueing_delay_seconds"), 1000u);
  EXPECT_EQ(count_of(rt.metrics(), "swarm_handler_duration_seconds", "counter"), 1000u);
  EXPECT_EQ(count_of(rt.metrics(), "swarm_spawn_duration_seconds"), 1u);
}

TEST(Telemetry, SamplingTimesOneInNMessages) {
  RuntimeConfig cfg = sampled_config();
  cfg.workers = 1;
  cfg.telemetry.sample_every = 10;
  Runtime rt(cfg);
  ASSERT_TRUE(count_messages(rt, 1000));
  // One sending thread: its countdown picks exactly every 10th send.
  EXPECT_EQ(count_of(rt.metrics(), "swarm_queueing_delay_seconds"), 100u);
}

TEST(Telemetry, OffMeansNoHistogramsAndNoSamples) {
  RuntimeConfig cfg = sampled_config();
  cfg.telemetry.enabled = false;
  Runtime rt(cfg);
  ASSERT_TRUE(count_messages(rt, 100));
  const std::string text = rt.metrics().render();
  EXPECT_EQ(text.find("swarm_queueing_delay_seconds"), std::string::npos);
  EXPECT_EQ(text.find("swarm_handler_duration_seconds"), std::string::npos);
  EXPECT_NE(text.find("swarm_worker_messages_total"), std::string::npos) << "the runtime's own counters stay";
  EXPECT_TRUE(rt.logical_profile().stacks.empty());
}

TEST(Telemetry, SlowConsumersAreNamedAndBoundedToTopN) {
  RuntimeConfig cfg = sampled_config();
  cfg.telemetry.slow_consumers = 2;
  Runtime rt(cfg);
  std::atomic<bool> release{false};
  std::atomic<int> entered{0};
  std::atomic<int> n{0};
  // Two stuck agents (one per worker) with 10 and 20 queued messages behind
  // them, and idle counters that must not be named.
  AgentRef s1 = rt.spawn<Stuck>(release, entered);
  AgentRef s2 = rt.spawn<Stuck>(release, entered);
  for (int i = 0; i < 5; ++i) rt.spawn<Counter>(n);
  ASSERT_EQ(rt.send(s1, Payload::of(0)), SendResult::ok);
  ASSERT_EQ(rt.send(s2, Payload::of(0)), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return entered.load() == 2; }));
  for (int i = 0; i < 10; ++i) ASSERT_EQ(rt.send(s1, Payload::of(i)), SendResult::ok);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(rt.send(s2, Payload::of(i)), SendResult::ok);

  const std::string text = rt.metrics().render();
  EXPECT_NE(text.find("swarm_slow_consumer_mailbox_depth{agent=\"" + to_string(s2) + "\",type=\"stuck\"} 20"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("swarm_slow_consumer_mailbox_depth{agent=\"" + to_string(s1) + "\",type=\"stuck\"} 10"),
            std::string::npos);
  EXPECT_NE(text.find("swarm_mailbox_messages 30"), std::string::npos);
  EXPECT_NE(text.find("swarm_agents{type=\"stuck\",state=\"running\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_agents{type=\"counter\",state=\"idle\"} 5"), std::string::npos);
  release = true;
}

TEST(Telemetry, ASlowHandlerIsReportedOnceWhileItRuns) {
  RuntimeConfig cfg = sampled_config();
  cfg.telemetry.slow_handler_threshold = 50ms;
  std::mutex mu;
  std::vector<std::uint64_t> reported;  // agent bits, one per report
  std::string type;
  std::atomic<bool> release{false}, release_second{false};
  cfg.telemetry.on_slow_handler = [&](const SlowHandler& h) {
    EXPECT_GE(h.running_for, 50ms);
    std::lock_guard lock(mu);
    if (reported.empty()) type = h.type;
    reported.push_back(h.agent_bits);
    release = true;  // the handler is still running when we are told
    if (reported.size() == 2) release_second = true;
  };
  const auto reports = [&] {
    std::lock_guard lock(mu);
    return reported;
  };
  Runtime rt(cfg);
  struct ReleaseAtExit {  // after rt: a failed assertion must not leave a handler stuck at shutdown
    std::atomic<bool>& a;
    std::atomic<bool>& b;
    ~ReleaseAtExit() { a = b = true; }
  } release_at_exit{release, release_second};
  std::atomic<int> entered{0};
  AgentRef s = rt.spawn<Stuck>(release, entered);
  ASSERT_EQ(rt.send(s, Payload::of(0)), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return reports().size() == 1; }));
  ASSERT_TRUE(rt.wait_idle());
  // A second slow handler afterwards: once the watchdog reports it, it has
  // looked again and again since the first one ended (no fixed sleep).
  AgentRef second = rt.spawn<Stuck>(release_second, entered);
  ASSERT_EQ(rt.send(second, Payload::of(0)), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return reports().size() >= 2; }));
  ASSERT_TRUE(rt.wait_idle());
  EXPECT_EQ(reports(), (std::vector<std::uint64_t>{s.bits(), second.bits()}));  // the first only once
  EXPECT_EQ(type, "stuck");
  EXPECT_NE(rt.metrics().render().find("swarm_slow_handlers_total{type=\"stuck\"} 2"), std::string::npos);
}

// A lifecycle sink whose shutdown flush takes a while (a slow journal).
class SlowFlushSink : public LifecycleSink {
 public:
  void record(const LifecycleEvent&) noexcept override {}
  Result<void> flush(std::chrono::milliseconds) override {
    std::this_thread::sleep_for(400ms);
    return {};
  }
};

TEST(Telemetry, WorkersThatStoppedOrNeverRanAHandlerAreNotSlowHandlers) {
  RuntimeConfig cfg = sampled_config();
  cfg.telemetry.slow_handler_threshold = 20ms;
  cfg.lifecycle = std::make_shared<SlowFlushSink>();
  std::atomic<int> reports{0};
  cfg.telemetry.on_slow_handler = [&](const SlowHandler&) { reports.fetch_add(1); };
  {
    Runtime rt(cfg);
    std::atomic<int> n{0};
    AgentRef a = rt.spawn<Counter>(n);
    ASSERT_EQ(rt.send(a, Payload::of(1)), SendResult::ok);
    ASSERT_TRUE(eventually([&] { return n.load() == 1; }));
    rt.shutdown();  // the workers stop, then the sink's flush takes 400 ms: 20 watchdog looks
  }
  EXPECT_EQ(reports.load(), 0);
}

class Child : public Agent {
 public:
  static constexpr std::string_view kTypeName = "child";
  void on_message(Message&) override {
    volatile double x = 0;
    for (int i = 0; i < 1000; ++i) x = x + i;
  }
};

TEST(Telemetry, TheLogicalProfileFoldsSupervisorPathTypeAndTopic) {
  Runtime rt(sampled_config());
  std::atomic<int> started{0};
  SupervisorSpec spec;
  ChildSpec child{"worker", [&](Supervisor& s, const Payload&) {
                    started.fetch_add(1);
                    return s.spawn<Child>();
                  }};
  child.subscriptions.push_back({"jobs.>", ""});
  spec.children.push_back(std::move(child));
  rt.spawn<Supervisor>(std::move(spec));
  ASSERT_TRUE(eventually([&] { return started.load() == 1; }));
  ASSERT_TRUE(rt.wait_idle());
  for (int i = 0; i < 100; ++i) ASSERT_EQ(rt.publish("jobs.render", Payload::of(i))->delivered, 1u);
  ASSERT_TRUE(rt.wait_idle());
  auto profile = rt.logical_profile();
  auto it = profile.stacks.find("swarm;supervisor;child;jobs.render");
  ASSERT_NE(it, profile.stacks.end()) << metrics::to_folded(profile);
  EXPECT_GT(it->second, 0u);
  EXPECT_EQ(count_of(rt.metrics(), "swarm_publish_fanout_seconds"), 100u);
}

TEST(Telemetry, TheAdminPortServesMetricsAgentsTopicsAndReadiness) {
  RuntimeConfig cfg = sampled_config();
  cfg.telemetry.admin = "127.0.0.1:0";
  Runtime rt(cfg);
  ASSERT_GT(rt.admin_port(), 0);
  std::atomic<int> n{0};
  AgentRef a = rt.spawn<Counter>(n);
  ASSERT_TRUE(rt.subscribe(a, "orders.*"));
  ASSERT_EQ(rt.publish("orders.eu", Payload::of(1))->delivered, 1u);

  httplib::Client http("127.0.0.1", rt.admin_port());
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("swarm_worker_busy_seconds_total{worker=\"1\"}"), std::string::npos);
  auto agents = http.Get("/debug/agents");
  ASSERT_TRUE(agents);
  EXPECT_NE(agents->body.find("\"type\":\"counter\""), std::string::npos) << agents->body;
  auto topics = http.Get("/debug/topics");
  ASSERT_TRUE(topics);
  EXPECT_NE(topics->body.find("\"topic\":\"orders.eu\""), std::string::npos) << topics->body;
  EXPECT_EQ(http.Get("/healthz")->status, 200);
  EXPECT_EQ(http.Get("/readyz")->status, 200);
  auto bad = http.Get("/debug/flamegraph?seconds=0");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("seconds must be 1..60"), std::string::npos);
  auto folded = http.Get("/debug/flamegraph?seconds=1&type=logical&format=folded");
  ASSERT_TRUE(folded);
  EXPECT_EQ(folded->status, 200);
  auto svg = http.Get("/debug/flamegraph?seconds=1");  // CPU profile, SVG by default
  ASSERT_TRUE(svg);
  EXPECT_EQ(svg->status, 200) << svg->body;
  EXPECT_EQ(svg->get_header_value("Content-Type"), "image/svg+xml");
  EXPECT_NE(svg->body.find("<svg"), std::string::npos);
}

TEST(Telemetry, AFlamegraphInFlightNeitherBlocksHealthChecksNorDelaysShutdown) {
  RuntimeConfig cfg;
  cfg.telemetry.admin = "127.0.0.1:0";
  auto rt = std::make_unique<Runtime>(cfg);
  const std::uint16_t port = rt->admin_port();
  {
    // One request of each kind first, one at a time: cpp-httplib's function-local statics are then set up
    // before requests run at once (ThreadSanitizer cannot see the static guard in the uninstrumented library).
    httplib::Client warm("127.0.0.1", port);
    ASSERT_EQ(warm.Get("/healthz")->status, 200);
    ASSERT_EQ(warm.Get("/metrics")->status, 200);
    ASSERT_EQ(warm.Get("/debug/flamegraph?seconds=1&type=logical")->status, 200);
  }
  std::atomic<int> long_status{0};
  std::thread long_profile([&] {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(std::chrono::seconds(90));
    for (;;) {  // until it is the one in flight
      auto r = c.Get("/debug/flamegraph?seconds=60&type=logical");
      if (!r || r->status != 429) {
        long_status.store(r ? r->status : -1);
        return;
      }
    }
  });
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(std::chrono::seconds(2));  // a health check queued behind the profile fails
  ASSERT_TRUE(eventually([&] {
    auto r = http.Get("/debug/flamegraph?seconds=1&type=logical");
    return r && r->status == 429;
  }, std::chrono::seconds(20)));
  for (int i = 0; i < 8; ++i) {
    auto health = http.Get("/healthz");
    ASSERT_TRUE(health) << "a health check waited behind the flamegraph";
    EXPECT_EQ(health->status, 200);
    auto metrics = http.Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_EQ(metrics->status, 200);
  }
  const auto start = std::chrono::steady_clock::now();
  rt.reset();  // ends the 60 s profile instead of waiting for it
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  long_profile.join();
  EXPECT_NE(long_status.load(), 0);
}

TEST(Telemetry, ABadAdminAddressOrATakenPortIsAClearStartupError) {
  RuntimeConfig cfg;
  cfg.telemetry.admin = "localhost";
  try {
    Runtime rt(cfg);
    FAIL() << "accepted an address without a port";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("telemetry.admin"), std::string::npos) << e.what();
  }
  RuntimeConfig first_cfg;
  first_cfg.telemetry.admin = "127.0.0.1:0";
  Runtime first(first_cfg);
  RuntimeConfig taken;
  taken.telemetry.admin = "127.0.0.1:" + std::to_string(first.admin_port());
  try {
    Runtime second(taken);
    FAIL() << "bound a port that is taken";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace swarm
