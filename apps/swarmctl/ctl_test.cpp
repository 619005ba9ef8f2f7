#include "apps/swarmctl/ctl.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace swarm::ctl {
namespace {

using nlohmann::json;

TEST(Defaults, TokenFileIsPerUserAndAdminPort) {
  EXPECT_EQ(default_token_file(1000, 9464), "/tmp/swarmd-1000/control-9464.token");
}

TEST(Defaults, TrimDropsSurroundingWhitespaceOnly) {
  EXPECT_EQ(trim("  ab c\r\n"), "ab c");
  EXPECT_EQ(trim("\n\t "), "");
}

TEST(Defaults, UrlEncodeKeepsUnreservedCharacters) {
  EXPECT_EQ(url_encode("tool-0_a.b~"), "tool-0_a.b~");
  EXPECT_EQ(url_encode("a b&c=\"x\""), "a%20b%26c%3D%22x%22");
}

TEST(Defaults, WildcardGatewayHostsBecomeTheAdminHost) {
  EXPECT_EQ(connect_endpoint("tcp://0.0.0.0:7400", "10.0.0.5"), "tcp://10.0.0.5:7400");
  EXPECT_EQ(connect_endpoint("tcp://*:7400", "127.0.0.1"), "tcp://127.0.0.1:7400");
  EXPECT_EQ(connect_endpoint("tcp://[::]:7400", "::1"), "tcp://[::1]:7400");
  EXPECT_EQ(connect_endpoint("tcp://127.0.0.1:7400", "10.0.0.5"), "tcp://127.0.0.1:7400");
  EXPECT_EQ(connect_endpoint("ipc:///tmp/gw", "10.0.0.5"), "ipc:///tmp/gw");
}

TEST(Format, TableAlignsColumnsWithoutTrailingSpaces) {
  EXPECT_EQ(format_table({{"NAME", "PID"}, {"tool-0", "12"}, {"x", ""}}),
            "NAME    PID\n"
            "tool-0  12\n"
            "x\n");
}

TEST(Format, DurationsGrowUnitsWithTheirSize) {
  EXPECT_EQ(format_duration(0.25), "250ms");
  EXPECT_EQ(format_duration(12.5), "12.5s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(7380), "2h03m");
  EXPECT_EQ(format_duration(4 * 86400 + 2 * 3600 + 5), "4d02h");
  EXPECT_EQ(format_duration(-1), "?");
}

TEST(Format, ProcessesShowDashesForWhatIsNotThere) {
  const json p = json::parse(R"({"processes":[
    {"name":"tool-0","process":"tool","instance":0,"pid":1234,"state":"running","restarts":0,
     "uptime_seconds":12.5,"last_exit":"","argv":["python3","tool.py"]},
    {"name":"tool-1","process":"tool","instance":1,"pid":0,"state":"failed","restarts":5,
     "uptime_seconds":0,"last_exit":"exit code 1","argv":["python3","tool.py"]}]})");
  EXPECT_EQ(processes_text(p),
            "NAME    PID   STATE    RESTARTS  UPTIME  LAST EXIT\n"
            "tool-0  1234  running  0         12.5s   -\n"
            "tool-1  -     failed   5         -       exit code 1\n");
  EXPECT_EQ(processes_text(json::parse(R"({"processes":[]})")), "no processes\n");
}

TEST(Format, StatusIsOneLinePerFact) {
  const json s = json::parse(
      R"({"pid":42,"version":"0.1.0","config":"/etc/swarm.yaml","uptime_seconds":65,"admin":"127.0.0.1:9464",
          "gateway":"tcp://127.0.0.1:7400","workers":2,"agents_live":12,"clients":5,
          "processes":{"total":5,"running":4,"starting":0,"failed":1},"draining":false})");
  EXPECT_EQ(status_text(s),
            "swarmd 0.1.0, pid 42, up 1m05s\n"
            "config     /etc/swarm.yaml\n"
            "admin      127.0.0.1:9464\n"
            "gateway    tcp://127.0.0.1:7400\n"
            "workers    2\n"
            "agents     12 live\n"
            "clients    5\n"
            "processes  5: 4 running, 0 starting, 1 failed\n"
            "draining   no\n");
}

TEST(Format, StatusShowsMissingFieldsAsQuestionMarks) {
  const std::string text = status_text(json::parse(R"({"pid":42})"));
  EXPECT_NE(text.find("swarmd ?, pid 42, up ?"), std::string::npos);
  EXPECT_NE(text.find("processes  ?: ? running"), std::string::npos);
}

TEST(Format, AgentsListTypesAndSamples) {
  const json a = json::parse(R"({"live":3,"queued_messages":7,"backlogged_agents":1,
    "by_type":[{"type":"echo","idle":1,"queued":1,"running":0}],
    "deepest_mailboxes":[{"agent":"<0:1.0>","type":"echo","mailbox_depth":7,"mailbox_capacity":1024,
                          "queueing_delay_seconds":0.002}],
    "slowest_consumers":[]})");
  EXPECT_EQ(agents_text(a),
            "3 live agents, 7 queued messages, 1 backlogged agents\n"
            "\n"
            "TYPE  IDLE  QUEUED  RUNNING\n"
            "echo  1     1       0\n"
            "\n"
            "deepest mailboxes:\n"
            "AGENT    TYPE  DEPTH  CAPACITY  DELAY\n"
            "<0:1.0>  echo  7      1024      2ms\n"
            "\n"
            "slowest consumers: none\n");
}

TEST(Format, TopicsShowOnlyNonZeroDeadLetters) {
  const json t = json::parse(R"({"topics":2,"subscriptions":3,"published":10,"delivered":9,
    "dead_letters":{"no_subscribers":1,"mailbox_full":0},
    "top_topics":[{"topic":"echo.>","subscribers":2,"queue_groups":1}]})");
  EXPECT_EQ(topics_text(t),
            "2 topics, 3 subscriptions, 10 published, 9 delivered\n"
            "dead letters: no_subscribers 1\n"
            "\n"
            "TOPIC   SUBSCRIBERS  QUEUE GROUPS\n"
            "echo.>  2            1\n");
}

TEST(Format, ControlAnswersNameWhatWasDone) {
  EXPECT_EQ(control_text("restarted", json::parse(R"({"restarted":["tool-0","tool-1"]})")),
            "restarted tool-0, tool-1");
  EXPECT_EQ(control_text("stopped", json::parse(R"({"stopped":[]})")), "stopped nothing");
}

TEST(Format, LogLinesCarryNameAndStream) {
  EXPECT_EQ(log_line_text(json::parse(R"({"seq":17,"name":"tool-0","stream":"stderr","at_us":1,"text":"oops\n"})")),
            "tool-0 stderr| oops");
}

TEST(Format, ErrorTextPrefersTheJsonErrorField) {
  EXPECT_EQ(error_text(R"({"error":"no process or instance named \"x\""})"), "no process or instance named \"x\"");
  EXPECT_EQ(error_text("admin: no page /debug/status\n"), "admin: no page /debug/status");
  EXPECT_EQ(error_text(""), "(no reason given)");
}

TEST(Format, MessageJsonIsOneLineEvenForBinaryPayloads) {
  EXPECT_EQ(message_json("a.b", "<0:1.0>", "text/plain", "hi"),
            R"({"content_type":"text/plain","payload":"hi","sender":"<0:1.0>","topic":"a.b"})");
  const std::string binary = message_json("a", "", "application/octet-stream", std::string("\xff\n", 2));
  EXPECT_EQ(binary.find('\n'), std::string::npos);
  EXPECT_NE(binary.find("\xef\xbf\xbd"), std::string::npos);  // U+FFFD
}

}  // namespace
}  // namespace swarm::ctl
