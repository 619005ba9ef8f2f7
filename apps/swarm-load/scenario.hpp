#pragma once
// Scenarios: the swarm swarm-load builds (topology, agents, payload, queue
// groups, storage, telemetry) and the load it drives through it (open loop at
// a rate schedule, or closed loop; warm-up; duration or message count).
//
//   Result<Scenario> s = builtin_scenario("pipeline");      // or load_scenario_file("x.yaml")
//   if (auto ok = set_field(*s, "rate", "200000"); !ok) fail(ok.error());
//   if (auto ok = validate(*s); !ok) fail(ok.error());
//
// Every field has a name (the YAML key and the value of `--set NAME=VALUE`);
// a bad value is an error naming the field, the value and what is allowed:
//   scenario: stages = 0 is out of range (allowed: 1..10000)
//   scenario: topology = "ring" is not allowed (allowed: pipeline, fanout, topics, request-reply, mixed)
// A YAML file adds its name and line: "x.yaml:4: scenario: stages = ...".

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "apps/swarm-load/schedule.hpp"
#include "base/result.hpp"
#include "runtime/config.hpp"

namespace swarm::load {

/// How messages travel through the swarm. Values are named as in YAML.
enum class Topology : std::uint8_t {
  pipeline,       // generator -> stage 1 -> ... -> stage N (direct sends), in `lanes` parallel chains
  fanout,         // generator publishes on one topic; `subscribers` receive each message
  topics,         // generator publishes on one of `topics` topics; each has `subscribers`
  request_reply,  // generator -> a client agent, which requests on a topic served by a queue group of `servers`
  mixed,          // all four side by side; each message takes one path, by `mix` weights
};
std::string_view to_string(Topology t);

/// Where persistent agents keep state and the runtime keeps its journal.
enum class StorageKind : std::uint8_t {
  none,      // no persistence
  memory,    // state and journal in memory
  redis,     // state in Redis (`redis`), journal in memory
  postgres,  // state in memory, journal in Postgres (`postgres`), topics audited
};
std::string_view to_string(StorageKind s);

enum class LoadMode : std::uint8_t {
  open,    // messages at the schedule's intended times, whatever the swarm does
  closed,  // as fast as possible with at most `in_flight` messages outstanding
};
std::string_view to_string(LoadMode m);

/// Relative weights of the paths of the mixed topology.
struct MixWeights {
  std::uint32_t pipeline = 40, fanout = 10, topics = 30, request_reply = 20;
  std::uint32_t total() const noexcept { return pipeline + fanout + topics + request_reply; }
  friend bool operator==(const MixWeights&, const MixWeights&) = default;
};

struct Scenario {
  std::string name;
  std::string description;

  // -- the swarm ---
  Topology topology = Topology::pipeline;
  std::uint32_t stages = 4;         // pipeline: agents per chain (the last one records)
  std::uint32_t lanes = 2;          // pipeline: parallel chains, taken in turn
  std::uint32_t subscribers = 16;   // fanout: on the topic; topics: per topic
  std::uint32_t topics = 1000;      // topics: how many
  std::uint32_t queue_groups = 0;   // fanout/topics: subscribers split into N queue groups (0 = none)
  std::uint32_t clients = 4;        // request-reply: agents that issue the requests
  std::uint32_t servers = 4;        // request-reply: responders, one queue group
  std::uint32_t idle_agents = 0;    // extra agents that only exist (a larger swarm)
  std::uint32_t payload_bytes = 16; // whole payload; the first 16 carry the send time and index
  std::uint64_t work_ns = 0;        // CPU each handler burns per message
  double request_timeout = 1.0;     // request-reply: seconds before a request counts as lost
  MixWeights mix;                   // mixed: path weights
  std::uint32_t mailbox_capacity = 65536;
  OverflowPolicy overflow = OverflowPolicy::reject;
  unsigned workers = 0;             // 0: the runtime's default (cores)
  std::uint32_t idle_spin_us = RuntimeConfig::kDefaultIdleSpin.count();  // RuntimeConfig::idle_spin
  bool telemetry = true;            // the runtime's telemetry (sampling, histograms)
  StorageKind storage = StorageKind::none;
  std::string redis;                // storage redis: URL
  std::string postgres;             // storage postgres: DSN

  // -- the load ---
  LoadMode mode = LoadMode::open;
  double rate = 100'000;            // open loop, constant rate (messages/s) when `schedule` is empty
  std::vector<RateSegment> schedule;  // open loop: steps/ramps; overrides `rate`
  std::uint32_t in_flight = 1000;   // closed loop: outstanding messages
  double warmup = 1.0;              // seconds before measurement starts (excluded from results)
  double seconds = 0;               // measured seconds (0: 10, or the schedule's length)
  std::uint64_t messages = 0;       // measured messages instead of seconds (0: by seconds)
  std::uint32_t generators = 1;     // threads sending the load
  double drain_timeout = 10.0;      // seconds to wait for in-flight messages after the last send
  std::string admin;                // HOST:PORT of the admin port during the run (empty: none)
  // NATS URLs, comma-separated (empty: one process). Set: a cross-node run —
  // the publishers (generators, request-reply clients) stay in this process,
  // the subscribers (pipeline chains, fanout/topics subscribers, request-reply
  // servers) run in a second swarm-load process, the two joined as cluster
  // nodes through these servers (driver.hpp).
  std::string nats;

  /// The measured seconds the run lasts (see `seconds`).
  double measured_seconds() const;
  /// The measured part of the open-loop schedule (rate or schedule, cut/extended to measured_seconds()).
  Schedule measured_schedule() const;
  /// Deliveries at the end of a path per generated message (fanout: subscribers
  /// without a group + groups); the mixed topology's weighted mean.
  double receivers_per_message() const;
};

/// One settable field: its name, the allowed values and what it means.
struct FieldInfo {
  std::string_view name;
  std::string_view allowed;
  std::string_view help;
};
/// Every field `set_field` and YAML files accept, in documentation order.
const std::vector<FieldInfo>& scenario_fields();

/// Sets one field from its text form (as in YAML or --set NAME=VALUE).
/// Durations take s/ms/us suffixes or plain seconds; booleans true/false/on/off.
/// `schedule` takes steps "R:S,R:S" or "ramp:FROM:TO:SECONDS"; `mix` takes
/// "pipeline=40,fanout=10,topics=30,request-reply=20".
Result<void> set_field(Scenario& s, std::string_view field, std::string_view value);

/// Cross-field checks (payload fits the header, groups <= subscribers,
/// storage has its URL, ...). The error names the field.
Result<void> validate(const Scenario& s);

/// The built-in scenarios, by name: pipeline, fanout, topics, request-reply, mixed.
const std::vector<Scenario>& builtin_scenarios();
Result<Scenario> builtin_scenario(std::string_view name);

/// A scenario from YAML text (`origin` names it in errors). The file may start
/// from a built-in (`base: pipeline`), and sets fields by name; `schedule` is a
/// list of {rate, seconds} or {from, to, seconds}; `mix` is a map of weights.
Result<Scenario> parse_scenario_yaml(std::string_view text, std::string_view origin);
Result<Scenario> load_scenario_file(const std::string& path);
/// A built-in name, or a path to a YAML file (ends in .yaml/.yml or names an existing file).
Result<Scenario> resolve_scenario(const std::string& name_or_path);

/// Every field, as JSON (recorded in results; user:password@ left out of the NATS URLs).
nlohmann::json to_json(const Scenario& s);
/// Comma-separated URLs without their user:password@ parts.
std::string without_credentials(std::string_view urls);

/// Parses "1ms", "250us", "2s", "1.5" (seconds). Error names `field`.
Result<double> parse_seconds(std::string_view text, std::string_view field);

}  // namespace swarm::load
