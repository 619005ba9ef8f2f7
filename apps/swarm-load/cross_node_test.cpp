// Cross-node runs (the scenario's `nats`): publishers in the test's process,
// subscribers in a real second swarm-load process, the two joined through a
// real nats-server (tests/support/nats_cluster.hpp). They check counts and what the
// results say, never timing.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "apps/swarm-load/driver.hpp"
#include "apps/swarm-load/node_link.hpp"
#include "apps/swarm-load/report.hpp"
#include "tests/support/nats_cluster.hpp"
#include "runtime/runtime.hpp"

namespace swarm::load {
namespace {

// -- without NATS: the pieces ---

TEST(CrossNodeScenario, NatsTakesNatsUrlsAndResultsLeaveOutCredentials) {
  Scenario s = *builtin_scenario("fanout");
  ASSERT_TRUE(set_field(s, "nats", "nats://a:4222, tls://b:4222"));
  EXPECT_EQ(s.nats, "nats://a:4222, tls://b:4222");
  EXPECT_EQ(node_config(s, kPublisherNode).servers, (std::vector<std::string>{"nats://a:4222", "tls://b:4222"}));
  EXPECT_EQ(node_config(s, kPublisherNode).prefix, "swarm-load");
  auto bad = set_field(s, "nats", "http://a:4222");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(),
            "scenario: nats = \"http://a:4222\" is not allowed (allowed: NATS URLs nats://HOST:PORT or tls://HOST:PORT, "
            "comma-separated)");
  EXPECT_FALSE(set_field(s, "nats", "nats://"));
  ASSERT_TRUE(set_field(s, "nats", "nats://user:secret@a:4222,nats://b:4222"));
  EXPECT_EQ(to_json(s)["nats"], "nats://a:4222,nats://b:4222");
  ASSERT_TRUE(set_field(s, "nats", ""));  // back to one process
  EXPECT_TRUE(s.nats.empty());
  EXPECT_EQ(to_json(s)["nats"], "");
}

TEST(CrossNodeScenario, TheSubscriberNodeRebuildsTheSameSwarm) {
  Scenario s = *builtin_scenario("mixed");
  for (auto [field, value] : {std::pair{"stages", "3"}, {"lanes", "5"}, {"subscribers", "7"}, {"queue_groups", "2"},
                              {"topics", "11"}, {"servers", "3"}, {"work_ns", "500"}, {"mix", "pipeline=1,topics=2"},
                              {"mailbox_capacity", "100"}, {"overflow", "drop_oldest"}, {"workers", "2"},
                              {"telemetry", "off"}, {"payload_bytes", "64"}, {"request_timeout", "250ms"},
                              {"nats", "nats://127.0.0.1:4222"}}) {
    ASSERT_TRUE(set_field(s, field, value)) << field;
  }
  Scenario rebuilt;
  const std::vector<std::string> args = subscriber_node_args(s);
  ASSERT_EQ(args.size() % 2, 0u);
  for (std::size_t i = 0; i < args.size(); i += 2) {
    ASSERT_EQ(args[i], "--set");
    const std::size_t eq = args[i + 1].find('=');
    ASSERT_TRUE(set_field(rebuilt, args[i + 1].substr(0, eq), args[i + 1].substr(eq + 1))) << args[i + 1];
  }
  nlohmann::json a = to_json(s), b = to_json(rebuilt);
  // The load is the run's, not the node's.
  for (const char* load : {"description", "clients", "idle_agents", "mode", "rate", "schedule", "in_flight", "warmup",
                           "seconds", "messages", "generators", "drain_timeout"}) {
    a.erase(load);
    b.erase(load);
  }
  EXPECT_EQ(a, b);
}

TEST(CrossNodeLink, ReportsRoundTripThroughJson) {
  NodeReport r;
  r.counts.completed[1] = 7;
  r.counts.lost[0] = 2;
  r.counts.last_completion_ns = 123;
  r.counts.runtime_lost[static_cast<int>(DropReason::mailbox_full)] = 5;
  r.counts.cluster_dropped[static_cast<int>(cluster::RemoteDrop::backlog_full)] = 3;
  r.counts.cpu_user = 1.5;
  r.counts.max_rss = 1 << 20;
  r.all.record(1000);
  r.all.record(2000);
  r.measured.record(2000);
  auto back = report_from_json(nlohmann::json::parse(to_json(r).dump()));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(to_json(back->counts), to_json(r.counts));
  EXPECT_EQ(back->all, r.all);
  EXPECT_EQ(back->measured, r.measured);
  EXPECT_FALSE(report_from_json(nlohmann::json{{"counts", 1}}));
}

// -- with a nats-server ---

class CrossNode : public testing::Test {
 protected:
  static void SetUpTestSuite() { nats_ = new test::NatsCluster(1); }
  static void TearDownTestSuite() {
    delete nats_;
    nats_ = nullptr;
  }

  // A built-in scenario, small enough for sanitizer builds, across nodes.
  static Scenario small(const std::string& name) {
    Scenario s = *builtin_scenario(name);
    s.rate = 1000;
    s.warmup = 0.2;
    s.seconds = 0.5;
    s.topics = 20;
    s.subscribers = std::min<std::uint32_t>(s.subscribers, 4);
    s.drain_timeout = 30;
    s.request_timeout = 30;
    s.nats = nats_->url(0);
    return s;
  }

  static Result<RunResult> run(const Scenario& s) {
    if (auto ok = validate(s); !ok) return unexpected(ok.error());
    RunOptions o;
    o.node_binary = SWARM_LOAD_BINARY;
    return run_scenario(s, o);
  }

  // Every message sent reached the end of its path on the other node, nothing was lost.
  static void expect_everything_accounted(const Scenario& s, const RunResult& r) {
    const auto expected = static_cast<std::uint64_t>(s.rate * s.seconds + 0.5);
    EXPECT_EQ(r.sent, expected) << s.name;
    EXPECT_EQ(r.completed, r.sent) << s.name;
    EXPECT_EQ(r.dropped_total(), 0u) << s.name;
    EXPECT_TRUE(r.drained) << s.name;
    EXPECT_EQ(r.latency.count(), r.observations);
    EXPECT_GT(r.latency.min(), 0u);
    EXPECT_LT(r.latency.max(), 60'000'000'000u);
    for (const char* reason : {"cluster_backlog_full", "cluster_lost_in_transit", "cluster_node_down"}) {
      EXPECT_EQ(r.dropped.count(reason), 1u) << reason;
    }
  }

  // Frames node `from` sent node `to` over the whole run, from the results' cluster section.
  static std::uint64_t frames(const RunResult& r, const std::string& from, const std::string& to) {
    const nlohmann::json c = nlohmann::json::parse(r.cluster_json);
    for (const nlohmann::json& n : c["nodes"]) {
      if (n["node"] != from) continue;
      for (const nlohmann::json& p : n["peers"]) {
        if (p["node"] == to) return p["sent"].get<std::uint64_t>();
      }
    }
    ADD_FAILURE() << "no " << from << " -> " << to << " in " << r.cluster_json;
    return 0;
  }

  static test::NatsCluster* nats_;
};

test::NatsCluster* CrossNode::nats_ = nullptr;

TEST_F(CrossNode, PipelineChainsRunOnTheOtherNode) {
  const Scenario s = small("pipeline");
  auto r = run(s);
  ASSERT_TRUE(r) << r.error();
  expect_everything_accounted(s, *r);
  // Each message crossed once, warm-up included; nothing came back.
  const auto all = static_cast<std::uint64_t>(s.rate * (s.seconds + s.warmup) + 0.5);
  EXPECT_EQ(frames(*r, kPublisherNode, kSubscriberNode), all);
  EXPECT_EQ(frames(*r, kSubscriberNode, kPublisherNode), 0u);
  const nlohmann::json c = nlohmann::json::parse(r->cluster_json);
  EXPECT_EQ(c["servers"], nlohmann::json::array({nats_->url(0)}));
  EXPECT_EQ(c["nodes"][0]["role"], "publishers");
  EXPECT_EQ(c["nodes"][1]["role"], "subscribers");
  bool noted = false;
  for (const std::string& n : r->notes) noted |= n.find("subscribers in process") != std::string::npos;
  EXPECT_TRUE(noted);
  // The results file keeps the cluster section.
  auto back = run_from_json(to_json(*r));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(nlohmann::json::parse(back->cluster_json), c);
  EXPECT_NE(format_table(*r).find("swarm-load-pub -> swarm-load-sub"), std::string::npos) << format_table(*r);
}

TEST_F(CrossNode, FanoutReachesEverySubscriberThereWithOneFramePerMessage) {
  const Scenario s = small("fanout");
  auto r = run(s);
  ASSERT_TRUE(r) << r.error();
  expect_everything_accounted(s, *r);
  EXPECT_EQ(r->observations, r->sent * s.subscribers);
  const auto all = static_cast<std::uint64_t>(s.rate * (s.seconds + s.warmup) + 0.5);
  EXPECT_EQ(frames(*r, kPublisherNode, kSubscriberNode), all);  // fanned out there, not here
}

TEST_F(CrossNode, TopicsWithQueueGroupsDeliverOncePerGroup) {
  Scenario s = small("topics");
  s.subscribers = 4;
  s.queue_groups = 2;
  auto r = run(s);
  ASSERT_TRUE(r) << r.error();
  expect_everything_accounted(s, *r);
  EXPECT_EQ(r->observations, r->sent * 2);
}

TEST_F(CrossNode, RequestReplyRoundTripsAcrossNodes) {
  const Scenario s = small("request-reply");
  auto r = run(s);
  ASSERT_TRUE(r) << r.error();
  expect_everything_accounted(s, *r);
  EXPECT_EQ(r->dropped.at("timeout"), 0u);
  const auto all = static_cast<std::uint64_t>(s.rate * (s.seconds + s.warmup) + 0.5);
  EXPECT_EQ(frames(*r, kPublisherNode, kSubscriberNode), all);  // requests
  EXPECT_EQ(frames(*r, kSubscriberNode, kPublisherNode), all);  // replies
}

TEST_F(CrossNode, MixedInClosedLoop) {
  Scenario s = small("mixed");
  s.mode = LoadMode::closed;
  s.in_flight = 20;
  s.seconds = 0;
  s.messages = 500;
  auto r = run(s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->sent, 500u);
  EXPECT_EQ(r->completed, 500u);
  EXPECT_EQ(r->dropped_total(), 0u);
  EXPECT_TRUE(r->drained);
}

TEST_F(CrossNode, DropsOnTheOtherNodeAreCountedAndEveryMessageIsAccountedFor) {
  Scenario s = small("fanout");
  s.subscribers = 1;
  s.mailbox_capacity = 2;
  s.work_ns = 2'000'000;  // 2 ms a message at 1000/s: the mailbox overflows
  auto r = run(s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->drained);
  EXPECT_GT(r->dropped.at("mailbox_full"), 0u);
  EXPECT_LT(r->completed, r->sent);
  // Over the whole run (warm-up included: the measured window's drops start
  // when the sampler marks it), every message sent was completed or dropped.
  std::uint64_t sent = 0, done = 0;
  for (const IntervalStats& p : r->timeline) {
    sent += p.sent;
    done += p.completed + p.dropped;
  }
  EXPECT_EQ(done, sent);
}

TEST_F(CrossNode, ASubscriberNodeThatCannotStartFailsTheRunSayingWhy) {
  Scenario s = small("pipeline");
  RunOptions o;
  o.node_binary = "/nonexistent/swarm-load";
  auto r = run_scenario(s, o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("subscriber node"), std::string::npos) << r.error();
  // Its own complaint comes back: here, that its node name is taken.
  Runtime rt;
  auto holder = cluster::Cluster::join(rt, node_config(s, kSubscriberNode));
  ASSERT_TRUE(holder) << holder.error();
  o.node_binary = SWARM_LOAD_BINARY;
  r = run_scenario(s, o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("subscriber node: cluster: node name \"swarm-load-sub\" is taken by a live node"),
            std::string::npos)
      << r.error();
  holder->reset();
  rt.shutdown();
}

TEST(CrossNodeErrors, NoNatsServerIsAnErrorNamingTheUrl) {
  Scenario s = *builtin_scenario("fanout");
  s.nats = "nats://127.0.0.1:" + std::to_string(test::free_port());
  s.seconds = 0.1;
  RunOptions o;
  o.node_binary = SWARM_LOAD_BINARY;
  auto r = run_scenario(s, o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("no NATS server answers at " + s.nats), std::string::npos) << r.error();
}

// The command line: --nats, and the JSON it writes.
TEST_F(CrossNode, TheCommandLineRunsAcrossNodesAndWritesTheClusterSection) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("swarm-load-cross-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string json_path = (dir / "run.json").string(), err = (dir / "stderr").string();
  std::vector<std::string> args = {SWARM_LOAD_BINARY, "run",      "--scenario", "topics", "--topics", "10",
                                   "--rate",          "1000",     "--seconds",  "0.3",    "--warmup", "0.1",
                                   "--quiet",         "--nats",   nats_->url(0), "--json", json_path};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  waitpid(pid, &status, 0);
  std::stringstream err_text, json_text;
  err_text << std::ifstream(err).rdbuf();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << err_text.str();
  json_text << std::ifstream(json_path).rdbuf();
  const nlohmann::json j = nlohmann::json::parse(json_text.str());
  EXPECT_EQ(j["sent"], 300);
  EXPECT_EQ(j["completed"], 300);
  EXPECT_EQ(j["dropped"]["total"], 0);
  EXPECT_TRUE(j["dropped"].contains("cluster_backlog_full"));
  EXPECT_EQ(j["scenario_config"]["nats"], nats_->url(0));
  ASSERT_EQ(j["cluster"]["nodes"].size(), 2u);
  EXPECT_EQ(j["cluster"]["nodes"][1]["node"], "swarm-load-sub");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace swarm::load
