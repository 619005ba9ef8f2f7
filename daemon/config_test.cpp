#include "daemon/config.hpp"

#include <gtest/gtest.h>

#include <string>

namespace swarm::daemon {
namespace {

Result<DaemonConfig> parse(const std::string& text) {
  static const std::vector<std::string> types = {"planner", "aggregator"};
  return parse_config(text, "/etc/swarm/swarm.yaml", &types);
}

TEST(DaemonConfig, ReadsEveryKey) {
  auto c = parse(R"(
runtime:
  workers: 3
  mailbox: {capacity: 64, overflow: drop_oldest}
  mailbox_by_type: {planner: {capacity: 8}}
  shutdown_timeout: 2s
  idle_spin: 50us
admin: {listen: "127.0.0.1:9500", control: false}
gateway: {bind: "tcp://127.0.0.1:7500", heartbeat: 500ms, max_clients: 10}
storage: {state: "redis://127.0.0.1:6390/2", journal: "host=127.0.0.1 dbname=swarm"}
agents:
  - {type: planner, count: 2, options: {every: 250ms}}
processes:
  - name: tool
    argv: [python3, tool.py, --flag]
    env: {MODEL: small}
    instances: 4
    restart: transient
    max_restarts: 3
    restart_period: 30s
    on_give_up: stay_down
    start_timeout: 20s
    stop_timeout: 1s
    limits: {address_space: 512M, open_files: 256, cpu_seconds: 60}
    output: {max_line: 1000, keep_lines: 50, journal: true}
)");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->runtime.workers, 3u);
  EXPECT_EQ(c->runtime.default_mailbox.capacity, 64u);
  EXPECT_EQ(c->runtime.default_mailbox.overflow, OverflowPolicy::drop_oldest);
  EXPECT_EQ(c->runtime.mailbox_by_type.at("planner").capacity, 8u);
  EXPECT_EQ(c->runtime.shutdown_timeout, std::chrono::seconds(2));
  EXPECT_EQ(c->runtime.idle_spin, std::chrono::microseconds(50));
  EXPECT_EQ(c->runtime.telemetry.admin, "127.0.0.1:9500");
  EXPECT_FALSE(c->control);
  EXPECT_EQ(c->gateway.bind, "tcp://127.0.0.1:7500");
  EXPECT_EQ(c->gateway.heartbeat, std::chrono::milliseconds(500));
  EXPECT_EQ(c->state, "redis://127.0.0.1:6390/2");
  ASSERT_EQ(c->agents.size(), 1u);
  EXPECT_EQ(c->agents[0].count, 2u);
  EXPECT_EQ(c->agents[0].options.at("every"), "250ms");
  ASSERT_EQ(c->processes.size(), 1u);
  const ProcessSpec& p = c->processes[0];
  EXPECT_EQ(p.argv, (std::vector<std::string>{"python3", "tool.py", "--flag"}));
  EXPECT_EQ(p.env.at("MODEL"), "small");
  EXPECT_EQ(p.cwd, "/etc/swarm");  // the config's folder
  EXPECT_EQ(p.instances, 4u);
  EXPECT_EQ(p.restart, RestartType::transient);
  EXPECT_EQ(p.max_restarts, 3u);
  EXPECT_EQ(p.restart_period, std::chrono::seconds(30));
  EXPECT_EQ(p.on_give_up, GiveUp::stay_down);
  EXPECT_EQ(p.start_timeout, std::chrono::seconds(20));
  EXPECT_EQ(p.stop_timeout, std::chrono::seconds(1));
  EXPECT_EQ(p.limit_address_space, 512ull << 20);
  EXPECT_EQ(p.limit_open_files, 256u);
  EXPECT_EQ(p.limit_cpu_seconds, 60u);
  EXPECT_EQ(p.max_line_bytes, 1000u);
  EXPECT_EQ(p.keep_lines, 50u);
  EXPECT_TRUE(p.journal_output);
}

TEST(DaemonConfig, EmptyListsMayBeLeftEmpty) {
  auto c = parse("agents:\nprocesses:\n");
  ASSERT_TRUE(c) << c.error();
  EXPECT_TRUE(c->processes.empty());
}

TEST(DaemonConfig, EmptyFileMeansDefaults) {
  auto c = parse("");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->runtime.telemetry.admin, "127.0.0.1:9464");
  EXPECT_EQ(c->gateway.bind, "tcp://127.0.0.1:7400");
  EXPECT_EQ(c->state, "memory");
  EXPECT_TRUE(c->processes.empty());
}

struct BadConfig {
  const char* what;
  const char* yaml;
  const char* error;  // the whole message must contain this
};

// The file system's own refusal is an error naming the field, not an exception (found by config_fuzz).
TEST(DaemonConfig, ACwdTheFileSystemRefusesIsNamed) {
  auto c = parse("processes:\n  - {name: a, argv: [x], cwd: /" + std::string(5000, 'd') + "}\n");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("processes.a.cwd: "), std::string::npos) << c.error();
  EXPECT_NE(c.error().find("cannot be used: File name too long"), std::string::npos) << c.error();
}

class DaemonConfigErrors : public ::testing::TestWithParam<BadConfig> {};

TEST_P(DaemonConfigErrors, NameFileLineFieldValueAndWhatIsAllowed) {
  auto c = parse(GetParam().yaml);
  ASSERT_FALSE(c) << GetParam().what;
  EXPECT_NE(c.error().find(GetParam().error), std::string::npos) << GetParam().what << ": " << c.error();
  EXPECT_TRUE(c.error().starts_with("/etc/swarm/swarm.yaml:")) << c.error();
}

INSTANTIATE_TEST_SUITE_P(
    All, DaemonConfigErrors,
    ::testing::Values(
        BadConfig{"typo in a process key", "processes:\n  - name: a\n    argvv: [x]\n",
                  "swarm.yaml:3: processes[0].argvv: unknown key \"argvv\" (allowed here: name, argv,"},
        BadConfig{"typo at the top", "proceses: []\n", "swarm.yaml:1: proceses: unknown key \"proceses\""},
        BadConfig{"a string command", "processes:\n  - name: a\n    argv: python3 agent.py\n",
                  "swarm.yaml:3: processes.a.argv: got \"python3 agent.py\"; expected a list such as [python3, "
                  "agent.py] (swarmd never runs a shell"},
        BadConfig{"negative timeout", "processes:\n  - {name: a, argv: [x], start_timeout: -5s}\n",
                  "processes.a.start_timeout: got \"-5s\"; expected a duration such as 250ms, 10s or 2m"},
        BadConfig{"a timeout without unit", "processes:\n  - {name: a, argv: [x], stop_timeout: 5}\n",
                  "processes.a.stop_timeout: got \"5\"; expected a duration"},
        BadConfig{"unknown restart type", "processes:\n  - {name: a, argv: [x], restart: always}\n",
                  "swarm.yaml:2: processes.a.restart: got \"always\"; expected permanent, transient or temporary"},
        BadConfig{"bad Redis URL", "storage: {state: \"http://127.0.0.1:6379\"}\n",
                  "swarm.yaml:1: storage.state: storage: invalid Redis URL"},
        BadConfig{"bad Postgres DSN", "storage: {journal: \"host=127.0.0.1 colour=blue\"}\n",
                  "storage.journal: storage: invalid Postgres DSN"},
        BadConfig{"duplicate names", "processes:\n  - {name: a, argv: [x]}\n  - {name: a, argv: [y]}\n",
                  "swarm.yaml:3: processes.a.name: the name \"a\" is taken by the process on line 2"},
        BadConfig{"zero instances", "processes:\n  - {name: a, argv: [x], instances: 0}\n",
                  "processes.a.instances: got \"0\"; expected a whole number in 1..10000"},
        BadConfig{"bad admin address", "admin: {listen: nonsense}\n",
                  "admin.listen: got \"nonsense\"; expected HOST:PORT, :PORT, or \"\" for no admin port"},
        BadConfig{"gateway over http", "gateway: {bind: \"http://127.0.0.1:7400\"}\n",
                  "gateway.bind: got \"http://127.0.0.1:7400\"; expected tcp://HOST:PORT or ipc:///path"},
        BadConfig{"unknown agent type", "agents:\n  - {type: plannr}\n",
                  "agents[0].type: got \"plannr\"; expected an agent type this program registered: aggregator, planner"},
        BadConfig{"bad overflow", "runtime: {mailbox: {overflow: block}}\n",
                  "runtime.mailbox.overflow: got \"block\"; expected reject, drop_oldest or drop_newest"},
        BadConfig{"empty argv", "processes:\n  - {name: a, argv: []}\n",
                  "processes.a.argv: got a list; expected a program name as its first item"},
        BadConfig{"idle spin above the cap", "runtime: {idle_spin: 11ms}\n",
                  "runtime.idle_spin: got \"11ms\"; expected a duration in 0us..10ms"},
        BadConfig{"idle spin without unit", "runtime: {idle_spin: 200}\n",
                  "runtime.idle_spin: got \"200\"; expected a duration such as 200us, 250ms"},
        BadConfig{"not YAML", "processes: [\n", "not valid YAML"},
        BadConfig{"name with a space", "processes:\n  - {name: \"my tool\", argv: [x]}\n",
                  "processes[0].name: got \"my tool\"; expected 1..64 letters, digits"},
        BadConfig{"a key given twice", "processes:\n  - name: a\n    argv: [x]\n    argv: [y]\n",
                  "swarm.yaml:4: processes[0].argv: given twice"},
        BadConfig{"missing cwd", "processes:\n  - {name: a, argv: [x], cwd: /no/such/dir}\n",
                  "processes.a.cwd: \"/no/such/dir\" is not a directory"},
        BadConfig{"cluster without a node name", "cluster: {servers: [\"nats://127.0.0.1:4222\"]}\n",
                  "swarm.yaml:1: cluster.node: is missing (every node needs a name of its own"},
        BadConfig{"cluster servers as one string", "cluster: {node: a, servers: \"nats://127.0.0.1:4222\"}\n",
                  "cluster.servers: got \"nats://127.0.0.1:4222\"; expected a list of NATS URLs"},
        BadConfig{"cluster server over http", "cluster: {node: a, servers: [\"http://127.0.0.1:4222\"]}\n",
                  "cluster: servers: \"http://127.0.0.1:4222\" is not a NATS URL (expected nats://HOST:PORT"},
        BadConfig{"cluster node name with a dot", "cluster: {node: eu.1, servers: [\"nats://127.0.0.1:4222\"]}\n",
                  "cluster: node \"eu.1\" is not a node name (1 to 64 of A-Z a-z 0-9 _ -)"},
        BadConfig{"cluster timeout shorter than two heartbeats",
                  "cluster: {node: a, servers: [\"nats://h:1\"], heartbeat_interval: 1s, node_timeout: 1500ms}\n",
                  "node_timeout (1500 ms) must be at least two heartbeat_intervals"},
        BadConfig{"cluster typo", "cluster: {node: a, servers: [\"nats://h:1\"], heartbeat: 1s}\n",
                  "cluster.heartbeat: unknown key \"heartbeat\" (allowed here: node, servers,"}));

TEST(DaemonConfig, ReadsTheClusterSection) {
  auto c = parse(
      "cluster:\n"
      "  node: eu-1\n"
      "  servers: [\"nats://10.0.0.1:4222\", \"nats://10.0.0.2:4222\"]\n"
      "  prefix: prod\n"
      "  heartbeat_interval: 500ms\n"
      "  node_timeout: 3s\n"
      "  max_in_flight: 1000\n"
      "  replicas: 3\n");
  ASSERT_TRUE(c) << c.error();
  ASSERT_TRUE(c->cluster);
  EXPECT_EQ(c->cluster->node, "eu-1");
  EXPECT_EQ(c->cluster->servers, (std::vector<std::string>{"nats://10.0.0.1:4222", "nats://10.0.0.2:4222"}));
  EXPECT_EQ(c->cluster->prefix, "prod");
  EXPECT_EQ(c->cluster->heartbeat_interval, std::chrono::milliseconds(500));
  EXPECT_EQ(c->cluster->node_timeout, std::chrono::milliseconds(3000));
  EXPECT_EQ(c->cluster->max_in_flight, 1000u);
  EXPECT_EQ(c->cluster->replicas, 3u);
  EXPECT_FALSE(parse("processes: []\n")->cluster) << "no cluster section: a node on its own";
}

TEST(DaemonConfig, Durations) {
  EXPECT_EQ(*parse_duration("250ms", "f"), std::chrono::milliseconds(250));
  EXPECT_EQ(*parse_duration("2m", "f"), std::chrono::minutes(2));
  EXPECT_FALSE(parse_duration("", "f"));
  EXPECT_FALSE(parse_duration("1.5s", "f"));
  EXPECT_FALSE(parse_duration("99999999999999999999h", "f"));
  EXPECT_FALSE(parse_duration("200us", "f")) << "milliseconds fields take no microseconds";
  EXPECT_TRUE(parse_duration("2000us", "f"));
  EXPECT_EQ(*parse_duration_us("200us", "f"), std::chrono::microseconds(200));
  EXPECT_EQ(*parse_duration_us("1ms", "f"), std::chrono::microseconds(1000));
  EXPECT_FALSE(parse_duration_us("5", "f"));
}

}  // namespace
}  // namespace swarm::daemon
