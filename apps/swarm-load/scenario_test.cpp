#include "apps/swarm-load/scenario.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

namespace swarm::load {
namespace {

std::string error_of(Scenario s, std::string_view field, std::string_view value) {
  auto r = set_field(s, field, value);
  return r ? "(no error)" : r.error();
}

TEST(Scenario, EveryBuiltInExistsAndValidates) {
  for (const char* name : {"pipeline", "fanout", "topics", "request-reply", "mixed"}) {
    auto s = builtin_scenario(name);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->name, name);
    EXPECT_FALSE(s->description.empty());
    auto ok = validate(*s);
    EXPECT_TRUE(ok) << ok.error();
  }
  EXPECT_EQ(builtin_scenarios().size(), 5u);
}

TEST(Scenario, UnknownScenarioListsTheBuiltIns) {
  auto s = builtin_scenario("ring");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(),
            "scenario: unknown scenario \"ring\" (allowed: pipeline, fanout, topics, request-reply, mixed, or a "
            ".yaml file)");
}

TEST(Scenario, FieldsParseFromText) {
  Scenario s = *builtin_scenario("pipeline");
  ASSERT_TRUE(set_field(s, "rate", "1.5M"));
  EXPECT_EQ(s.rate, 1.5e6);
  ASSERT_TRUE(set_field(s, "stages", "8"));
  EXPECT_EQ(s.stages, 8u);
  ASSERT_TRUE(set_field(s, "warmup", "250ms"));
  EXPECT_DOUBLE_EQ(s.warmup, 0.25);
  ASSERT_TRUE(set_field(s, "request_timeout", "500us"));
  EXPECT_DOUBLE_EQ(s.request_timeout, 0.0005);
  ASSERT_TRUE(set_field(s, "telemetry", "off"));
  EXPECT_FALSE(s.telemetry);
  ASSERT_TRUE(set_field(s, "overflow", "drop_oldest"));
  EXPECT_EQ(s.overflow, OverflowPolicy::drop_oldest);
  ASSERT_TRUE(set_field(s, "topology", "request-reply"));
  EXPECT_EQ(s.topology, Topology::request_reply);
  ASSERT_TRUE(set_field(s, "mix", "pipeline=1,request-reply=3"));
  EXPECT_EQ(s.mix, (MixWeights{1, 0, 0, 3}));
  ASSERT_TRUE(set_field(s, "schedule", "1k:2,4k:1"));
  EXPECT_EQ(s.schedule.size(), 2u);
  EXPECT_EQ(s.measured_schedule().message_count(), 6000u);
  ASSERT_TRUE(set_field(s, "schedule", "ramp:100:300:10"));
  EXPECT_EQ(s.schedule, (std::vector<RateSegment>{{10, 100, 300}}));
  ASSERT_TRUE(set_field(s, "rate", "500"));  // a rate replaces the schedule
  EXPECT_TRUE(s.schedule.empty());
}

TEST(Scenario, BadValuesNameTheFieldTheValueAndWhatIsAllowed) {
  const Scenario s = *builtin_scenario("pipeline");
  EXPECT_EQ(error_of(s, "stages", "0"), "scenario: stages = 0 is out of range (allowed: 1..10000)");
  EXPECT_EQ(error_of(s, "stages", "2.5"), "scenario: stages = 2.5 is not a whole number (allowed: 1..10000)");
  EXPECT_EQ(error_of(s, "lanes", "many"), "scenario: lanes = \"many\" is not a number (allowed: 1..10000)");
  EXPECT_EQ(error_of(s, "topology", "ring"),
            "scenario: topology = \"ring\" is not allowed (allowed: pipeline, fanout, topics, request-reply, mixed)");
  EXPECT_EQ(error_of(s, "overflow", "spill"),
            "scenario: overflow = \"spill\" is not allowed (allowed: reject, drop_oldest, drop_newest)");
  EXPECT_EQ(error_of(s, "telemetry", "maybe"),
            "scenario: telemetry = \"maybe\" is not allowed (allowed: true, false, on, off)");
  EXPECT_EQ(error_of(s, "storage", "disk"),
            "scenario: storage = \"disk\" is not allowed (allowed: none, memory, redis, postgres)");
  EXPECT_EQ(error_of(s, "payload_bytes", "8"), "scenario: payload_bytes = 8 is out of range (allowed: 16..16777216)");
  EXPECT_EQ(error_of(s, "rate", "0"), "scenario: rate = 0 is out of range (allowed: 0.001..1e9 messages/s)");
  EXPECT_EQ(error_of(s, "warmup", "soon"),
            "scenario: warmup = \"soon\" is not a duration (allowed: e.g. 1.5, 2s, 250ms, 100us)");
  EXPECT_EQ(error_of(s, "mix", "pipeline=1,ring=2"),
            "scenario: mix = \"ring\" is not allowed (allowed: pipeline, fanout, topics, request-reply)");
  EXPECT_EQ(error_of(s, "mix", "pipeline=0"),
            "scenario: mix = pipeline=0 is out of range (allowed: at least one weight above 0)");
  const std::string unknown = error_of(s, "stagez", "1");
  EXPECT_EQ(unknown.rfind("scenario: unknown field \"stagez\" (allowed: name, description, topology, stages", 0), 0u)
      << unknown;
}

TEST(Scenario, CrossFieldChecksNameTheFields) {
  Scenario s = *builtin_scenario("fanout");
  s.queue_groups = s.subscribers + 1;
  auto r = validate(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "scenario: queue_groups = 101 is out of range (allowed: 0..subscribers = 100)");

  s = *builtin_scenario("pipeline");
  s.storage = StorageKind::redis;
  r = validate(s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("storage = redis needs redis = URL"), std::string::npos) << r.error();

  s = *builtin_scenario("pipeline");
  s.messages = 100;
  s.seconds = 5;
  r = validate(s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("messages = 100 and seconds = 5 both set"), std::string::npos) << r.error();

  s = *builtin_scenario("topics");
  s.topics = 1'000'000;
  s.subscribers = 100;
  r = validate(s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("agents = 100000000 is out of range"), std::string::npos) << r.error();
}

TEST(Scenario, ReceiversPerMessageFollowTheTopology) {
  Scenario s = *builtin_scenario("fanout");
  EXPECT_EQ(s.receivers_per_message(), 100);
  s.queue_groups = 5;
  EXPECT_EQ(s.receivers_per_message(), 5);
  EXPECT_EQ(builtin_scenario("pipeline")->receivers_per_message(), 1);
  Scenario m = *builtin_scenario("mixed");  // 40 + 20 single, 40 of 8 receivers
  EXPECT_DOUBLE_EQ(m.receivers_per_message(), (40 + 20 + 40 * 8) / 100.0);
}

TEST(Scenario, DurationDefaultsToTenSecondsOrTheSchedule) {
  Scenario s = *builtin_scenario("pipeline");
  EXPECT_EQ(s.measured_seconds(), 10);
  ASSERT_TRUE(set_field(s, "schedule", "1000:3,2000:4"));
  EXPECT_EQ(s.measured_seconds(), 7);
  s.seconds = 5;  // cuts the schedule
  EXPECT_EQ(s.measured_schedule().message_count(), 3000u + 4000);
}

TEST(ScenarioYaml, AFileSetsFieldsOnTopOfABase) {
  auto s = parse_scenario_yaml(R"(
base: fanout
subscribers: 12
queue_groups: 3
payload_bytes: 64
telemetry: off
warmup: 500ms
schedule:
  - {rate: 1k, seconds: 2}
  - {from: 1000, to: 3000, seconds: 2}
mix: {pipeline: 1, topics: 2}
)",
                               "market.yaml");
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->name, "market");
  EXPECT_EQ(s->topology, Topology::fanout);
  EXPECT_EQ(s->subscribers, 12u);
  EXPECT_EQ(s->queue_groups, 3u);
  EXPECT_EQ(s->payload_bytes, 64u);
  EXPECT_FALSE(s->telemetry);
  EXPECT_DOUBLE_EQ(s->warmup, 0.5);
  EXPECT_EQ(s->schedule, (std::vector<RateSegment>{{2, 1000, 1000}, {2, 1000, 3000}}));
  EXPECT_EQ(s->mix, (MixWeights{1, 0, 2, 0}));
  EXPECT_EQ(s->measured_seconds(), 4);
}

TEST(ScenarioYaml, ErrorsNameTheFileAndLine) {
  auto expect_error = [](const std::string& yaml, const std::string& want) {
    auto s = parse_scenario_yaml(yaml, "x.yaml");
    ASSERT_FALSE(s) << yaml;
    EXPECT_EQ(s.error().rfind(want, 0), 0u) << s.error();
  };
  expect_error("topology: pipeline\nstages: 0\n", "x.yaml:2: scenario: stages = 0 is out of range (allowed: 1..10000)");
  expect_error("topology: pipeline\n\nstagez: 4\n", "x.yaml:3: scenario: unknown field \"stagez\"");
  expect_error("base: ring\n", "x.yaml:1: scenario: unknown scenario \"ring\"");
  expect_error("stages: [1, 2]\n", "x.yaml:1: scenario: stages must be a single value (allowed: 1..10000)");
  expect_error("rate: 5\nschedule: 1:1\n", "x.yaml:2: scenario: rate and schedule both set");
  expect_error("schedule:\n  - {rate: 5}\n", "x.yaml:2: scenario: schedule: a step without seconds");
  expect_error("schedule:\n  - {rate: 5, seconds: 1, spin: 2}\n", "x.yaml:2: scenario: schedule: unknown field \"spin\"");
  expect_error("schedule:\n  - {rate: 5, from: 1, to: 2, seconds: 1}\n",
               "x.yaml:2: scenario: schedule: a step has either rate, or from and to");
  expect_error("- just\n- a list\n", "x.yaml: scenario: expected a map of fields");
  expect_error("topology: [unclosed\n", "x.yaml:");
  expect_error("topology: fanout\nsubscribers: 2\nqueue_groups: 3\n",
               "x.yaml: scenario: queue_groups = 3 is out of range (allowed: 0..subscribers = 2)");
}

TEST(ScenarioYaml, MissingFileIsAnError) {
  auto s = load_scenario_file("/nonexistent/x.yaml");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), "scenario: cannot read \"/nonexistent/x.yaml\"");
}

TEST(ScenarioYaml, TheExampleFilesParse) {
  const std::filesystem::path dir = std::filesystem::path(SWARM_SOURCE_DIR) / "examples" / "load";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    auto s = resolve_scenario(entry.path().string());
    EXPECT_TRUE(s) << entry.path() << ": " << s.error();
    ++n;
  }
  EXPECT_GE(n, 2);
}

TEST(Scenario, JsonHasEveryField) {
  const nlohmann::json j = to_json(*builtin_scenario("mixed"));
  for (const FieldInfo& f : scenario_fields()) {
    if (f.name == "redis" || f.name == "postgres" || f.name == "admin") continue;  // credentials, local addresses
    EXPECT_TRUE(j.contains(std::string(f.name))) << f.name;
  }
  EXPECT_EQ(j["topology"], "mixed");
}

}  // namespace
}  // namespace swarm::load
