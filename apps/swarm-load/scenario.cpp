#include "apps/swarm-load/scenario.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace swarm::load {

namespace {

std::string quote(std::string_view v) { return "\"" + std::string(v) + "\""; }

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

Unexpected<std::string> out_of_range(std::string_view field, std::string_view value, std::string_view allowed) {
  return unexpected("scenario: " + std::string(field) + " = " + std::string(value) + " is out of range (allowed: " +
                    std::string(allowed) + ")");
}

Unexpected<std::string> not_allowed(std::string_view field, std::string_view value, std::string_view allowed) {
  return unexpected("scenario: " + std::string(field) + " = " + quote(value) + " is not allowed (allowed: " +
                    std::string(allowed) + ")");
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A number with an optional k/M/G suffix (1e3, 1e6, 1e9).
bool parse_number(std::string_view text, double& out) {
  text = trim(text);
  double mult = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'k': case 'K': mult = 1e3; break;
      case 'M': mult = 1e6; break;
      case 'G': mult = 1e9; break;
      default: break;
    }
    if (mult != 1) text.remove_suffix(1);
  }
  if (text.empty()) return false;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec != std::errc() || p != text.data() + text.size() || !std::isfinite(out)) return false;
  out *= mult;
  return true;
}

Result<double> number_in(std::string_view field, std::string_view text, double lo, double hi, std::string_view allowed) {
  double v = 0;
  if (!parse_number(text, v)) return unexpected("scenario: " + std::string(field) + " = " + quote(trim(text)) +
                                                " is not a number (allowed: " + std::string(allowed) + ")");
  if (v < lo || v > hi) return out_of_range(field, trim(text), allowed);
  return v;
}

template <class T>
Result<void> set_integer(T& dst, std::string_view field, std::string_view text, double lo, double hi) {
  const std::string allowed = num(lo) + ".." + num(hi);
  auto v = number_in(field, text, lo, hi, allowed);
  if (!v) return unexpected(v.error());
  if (*v != std::floor(*v)) {
    return unexpected("scenario: " + std::string(field) + " = " + std::string(trim(text)) +
                      " is not a whole number (allowed: " + allowed + ")");
  }
  dst = static_cast<T>(*v);
  return {};
}

Result<void> set_seconds(double& dst, std::string_view field, std::string_view text, double lo, double hi) {
  auto v = parse_seconds(text, field);
  if (!v) return unexpected(v.error());
  if (*v < lo || *v > hi) return out_of_range(field, trim(text), num(lo) + ".." + num(hi) + " seconds");
  dst = *v;
  return {};
}

Result<bool> parse_bool(std::string_view field, std::string_view text) {
  text = trim(text);
  if (text == "true" || text == "on" || text == "yes" || text == "1") return true;
  if (text == "false" || text == "off" || text == "no" || text == "0") return false;
  return not_allowed(field, text, "true, false, on, off");
}

Result<MixWeights> parse_mix(std::string_view text) {
  MixWeights m{0, 0, 0, 0};
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string_view item = trim(text.substr(pos, comma - pos));
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return unexpected("scenario: mix = " + quote(text) +
                        " is not allowed (allowed: PATH=WEIGHT,... with paths pipeline, fanout, topics, "
                        "request-reply, e.g. pipeline=40,topics=30)");
    }
    const std::string_view path = trim(item.substr(0, eq));
    std::uint32_t* w = path == "pipeline"                                ? &m.pipeline
                       : path == "fanout"                                ? &m.fanout
                       : path == "topics"                                ? &m.topics
                       : path == "request-reply" || path == "request_reply" ? &m.request_reply
                                                                         : nullptr;
    if (w == nullptr) return not_allowed("mix", path, "pipeline, fanout, topics, request-reply");
    if (auto ok = set_integer(*w, "mix." + std::string(path), item.substr(eq + 1), 0, 1e6); !ok) {
      return unexpected(ok.error());
    }
    pos = comma + 1;
  }
  if (m.total() == 0) return out_of_range("mix", text, "at least one weight above 0");
  return m;
}

Result<std::vector<RateSegment>> parse_schedule_text(std::string_view text) {
  text = trim(text);
  if (text.rfind("ramp:", 0) == 0) {
    // ramp:FROM:TO:SECONDS
    std::vector<double> parts;
    std::size_t pos = 5;
    while (pos <= text.size()) {
      const std::size_t colon = std::min(text.find(':', pos), text.size());
      double v = 0;
      if (!parse_number(text.substr(pos, colon - pos), v)) {
        parts.clear();
        break;
      }
      parts.push_back(v);
      pos = colon + 1;
    }
    if (parts.size() != 3) return not_allowed("schedule", text, "RATE:SECONDS,... or ramp:FROM:TO:SECONDS");
    std::vector<RateSegment> segs{{parts[2], parts[0], parts[1]}};
    if (auto ok = Schedule::validate(segs); !ok) return unexpected("scenario: " + ok.error());
    return segs;
  }
  std::vector<RateSegment> segs;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string_view item = trim(text.substr(pos, comma - pos));
    const std::size_t colon = item.find(':');
    double rate = 0, seconds = 0;
    if (colon == std::string_view::npos || !parse_number(item.substr(0, colon), rate)) {
      return not_allowed("schedule", text, "RATE:SECONDS,... or ramp:FROM:TO:SECONDS");
    }
    auto sec = parse_seconds(item.substr(colon + 1), "schedule");
    if (!sec) return not_allowed("schedule", text, "RATE:SECONDS,... or ramp:FROM:TO:SECONDS");
    seconds = *sec;
    segs.push_back({seconds, rate, rate});
    pos = comma + 1;
  }
  if (auto ok = Schedule::validate(segs); !ok) return unexpected("scenario: " + ok.error());
  return segs;
}

struct Field {
  FieldInfo info;
  std::function<Result<void>(Scenario&, std::string_view)> set;
};

const std::vector<Field>& fields() {
  static const std::vector<Field> table = [] {
    std::vector<Field> f;
    auto add = [&](FieldInfo info, std::function<Result<void>(Scenario&, std::string_view)> set) {
      f.push_back({info, std::move(set)});
    };
    add({"name", "text", "scenario name (reported in results)"}, [](Scenario& s, std::string_view v) -> Result<void> {
      if (trim(v).empty()) return not_allowed("name", v, "a non-empty name");
      s.name = std::string(trim(v));
      return {};
    });
    add({"description", "text", "one line shown by `swarm-load list`"}, [](Scenario& s, std::string_view v) -> Result<void> {
      s.description = std::string(trim(v));
      return {};
    });
    add({"topology", "pipeline, fanout, topics, request-reply, mixed", "how messages travel"},
        [](Scenario& s, std::string_view v) -> Result<void> {
          v = trim(v);
          for (Topology t : {Topology::pipeline, Topology::fanout, Topology::topics, Topology::request_reply,
                             Topology::mixed}) {
            if (v == to_string(t) || (t == Topology::request_reply && v == "request_reply")) {
              s.topology = t;
              return {};
            }
          }
          return not_allowed("topology", v, "pipeline, fanout, topics, request-reply, mixed");
        });
    add({"stages", "1..10000", "pipeline: agents per chain; the last one records the latency"},
        [](Scenario& s, std::string_view v) { return set_integer(s.stages, "stages", v, 1, 10000); });
    add({"lanes", "1..10000", "pipeline: parallel chains, taken in turn by successive messages"},
        [](Scenario& s, std::string_view v) { return set_integer(s.lanes, "lanes", v, 1, 10000); });
    add({"subscribers", "1..1000000", "fanout: subscribers of the topic; topics: subscribers per topic"},
        [](Scenario& s, std::string_view v) { return set_integer(s.subscribers, "subscribers", v, 1, 1e6); });
    add({"topics", "1..1000000", "topics: how many topics the generator spreads messages over"},
        [](Scenario& s, std::string_view v) { return set_integer(s.topics, "topics", v, 1, 1e6); });
    add({"queue_groups", "0..subscribers",
         "fanout/topics: split each topic's subscribers into N queue groups (one delivery per group); 0 = none"},
        [](Scenario& s, std::string_view v) { return set_integer(s.queue_groups, "queue_groups", v, 0, 1e6); });
    add({"clients", "1..100000", "request-reply: agents issuing requests (taken in turn)"},
        [](Scenario& s, std::string_view v) { return set_integer(s.clients, "clients", v, 1, 1e5); });
    add({"servers", "1..100000", "request-reply: responders sharing one queue group"},
        [](Scenario& s, std::string_view v) { return set_integer(s.servers, "servers", v, 1, 1e5); });
    add({"idle_agents", "0..10000000", "extra agents that exist but get no messages"},
        [](Scenario& s, std::string_view v) { return set_integer(s.idle_agents, "idle_agents", v, 0, 1e7); });
    add({"payload_bytes", "16..16777216", "payload size; up to 32 bytes travel inline, larger ones are shared buffers"},
        [](Scenario& s, std::string_view v) { return set_integer(s.payload_bytes, "payload_bytes", v, 16, 16777216); });
    add({"work_ns", "0..1000000000", "CPU time each handler burns per message (ns)"},
        [](Scenario& s, std::string_view v) { return set_integer(s.work_ns, "work_ns", v, 0, 1e9); });
    add({"request_timeout", "0.0001..3600 seconds", "request-reply: a request unanswered this long counts as lost"},
        [](Scenario& s, std::string_view v) { return set_seconds(s.request_timeout, "request_timeout", v, 0.0001, 3600); });
    add({"mix", "pipeline=W,fanout=W,topics=W,request-reply=W", "mixed: relative weights of the paths"},
        [](Scenario& s, std::string_view v) -> Result<void> {
          auto m = parse_mix(v);
          if (!m) return unexpected(m.error());
          s.mix = *m;
          return {};
        });
    add({"mailbox_capacity", "1..16777216", "mailbox capacity of every agent"},
        [](Scenario& s, std::string_view v) {
          return set_integer(s.mailbox_capacity, "mailbox_capacity", v, 1, RuntimeConfig::kMaxMailboxCapacity);
        });
    add({"overflow", "reject, drop_oldest, drop_newest", "what a full mailbox does"},
        [](Scenario& s, std::string_view v) -> Result<void> {
          auto p = parse_overflow_policy(trim(v), "overflow");
          if (!p) return not_allowed("overflow", trim(v), "reject, drop_oldest, drop_newest");
          s.overflow = *p;
          return {};
        });
    add({"workers", "0..256", "runtime worker threads (0 = one per core left to the swarm after the generators, at least 1)"},
        [](Scenario& s, std::string_view v) { return set_integer(s.workers, "workers", v, 0, RuntimeConfig::kMaxWorkers); });
    add({"idle_spin_us", "0..10000",
         "longest a worker with nothing to do spins before it parks, us (adaptive; 0 = park after a brief search)"},
        [](Scenario& s, std::string_view v) { return set_integer(s.idle_spin_us, "idle_spin_us", v, 0, 10000); });
    add({"telemetry", "true, false", "the runtime's telemetry (latency sampling, histograms, watchdog)"},
        [](Scenario& s, std::string_view v) -> Result<void> {
          auto b = parse_bool("telemetry", v);
          if (!b) return unexpected(b.error());
          s.telemetry = *b;
          return {};
        });
    add({"storage", "none, memory, redis, postgres",
         "persistent agents (mark dirty on every message): memory = state and journal in memory; redis = state in "
         "Redis; postgres = journal in Postgres with the scenario's topics audited"},
        [](Scenario& s, std::string_view v) -> Result<void> {
          v = trim(v);
          for (StorageKind k : {StorageKind::none, StorageKind::memory, StorageKind::redis, StorageKind::postgres}) {
            if (v == to_string(k)) {
              s.storage = k;
              return {};
            }
          }
          return not_allowed("storage", v, "none, memory, redis, postgres");
        });
    add({"redis", "redis://host[:port][/db]", "storage redis: the server"},
        [](Scenario& s, std::string_view v) -> Result<void> {
          s.redis = std::string(trim(v));
          return {};
        });
    add({"postgres", "a libpq DSN", "storage postgres: the server"}, [](Scenario& s, std::string_view v) -> Result<void> {
      s.postgres = std::string(trim(v));
      return {};
    });
    add({"mode", "open, closed", "open: at the schedule's times; closed: as fast as possible, in_flight outstanding"},
        [](Scenario& s, std::string_view v) -> Result<void> {
          v = trim(v);
          if (v == "open") {
            s.mode = LoadMode::open;
          } else if (v == "closed") {
            s.mode = LoadMode::closed;
          } else {
            return not_allowed("mode", v, "open, closed");
          }
          return {};
        });
    add({"rate", "0.001..1e9 (k, M suffixes)", "open loop: messages/s (constant; see schedule)"},
        [](Scenario& s, std::string_view v) -> Result<void> {
          auto r = number_in("rate", v, 0.001, 1e9, "0.001..1e9 messages/s");
          if (!r) return unexpected(r.error());
          s.rate = *r;
          s.schedule.clear();
          return {};
        });
    add({"schedule", "RATE:SECONDS,... or ramp:FROM:TO:SECONDS", "open loop: steps or a ramp instead of a constant rate"},
        [](Scenario& s, std::string_view v) -> Result<void> {
          auto segs = parse_schedule_text(v);
          if (!segs) return unexpected(segs.error());
          s.schedule = std::move(*segs);
          return {};
        });
    add({"in_flight", "1..10000000", "closed loop: messages outstanding at once"},
        [](Scenario& s, std::string_view v) { return set_integer(s.in_flight, "in_flight", v, 1, 1e7); });
    add({"warmup", "0..3600 seconds", "run this long before measuring (excluded from results)"},
        [](Scenario& s, std::string_view v) { return set_seconds(s.warmup, "warmup", v, 0, 3600); });
    add({"seconds", "0..86400 seconds", "measured duration (0 = 10 s, or the schedule's length)"},
        [](Scenario& s, std::string_view v) { return set_seconds(s.seconds, "seconds", v, 0, 86400); });
    add({"messages", "0..1e12", "measured messages instead of a duration (0 = by duration)"},
        [](Scenario& s, std::string_view v) { return set_integer(s.messages, "messages", v, 0, 1e12); });
    add({"generators", "1..64", "threads sending the load (they split the schedule)"},
        [](Scenario& s, std::string_view v) { return set_integer(s.generators, "generators", v, 1, 64); });
    add({"drain_timeout", "0..3600 seconds", "how long to wait for in-flight messages after the last send"},
        [](Scenario& s, std::string_view v) { return set_seconds(s.drain_timeout, "drain_timeout", v, 0, 3600); });
    add({"admin", "HOST:PORT", "serve the runtime's admin port (/metrics, ...) during the run"},
        [](Scenario& s, std::string_view v) -> Result<void> {
          s.admin = std::string(trim(v));
          return {};
        });
    add({"nats", "nats://HOST:PORT[,nats://HOST:PORT...] (or tls://)",
         "a cross-node run: publishers here, subscribers in a second swarm-load process, the two joined through "
         "these NATS servers (JetStream on); empty = one process"},
        [](Scenario& s, std::string_view v) -> Result<void> {
          v = trim(v);
          std::size_t pos = 0;
          while (!v.empty() && pos <= v.size()) {
            const std::size_t comma = std::min(v.find(',', pos), v.size());
            const std::string_view url = trim(v.substr(pos, comma - pos));
            const bool scheme = url.rfind("nats://", 0) == 0 || url.rfind("tls://", 0) == 0;
            if (!scheme || url.size() == url.find("://") + 3) {
              return not_allowed("nats", url, "NATS URLs nats://HOST:PORT or tls://HOST:PORT, comma-separated");
            }
            pos = comma + 1;
          }
          s.nats = std::string(v);
          return {};
        });
    return f;
  }();
  return table;
}

std::string field_names() {
  std::string out;
  for (const Field& f : fields()) {
    if (!out.empty()) out += ", ";
    out += f.info.name;
  }
  return out;
}

Scenario make_builtin(std::string name, std::string description, Topology topology) {
  Scenario s;
  s.name = std::move(name);
  s.description = std::move(description);
  s.topology = topology;
  return s;
}

}  // namespace

std::string_view to_string(Topology t) {
  switch (t) {
    case Topology::pipeline: return "pipeline";
    case Topology::fanout: return "fanout";
    case Topology::topics: return "topics";
    case Topology::request_reply: return "request-reply";
    case Topology::mixed: return "mixed";
  }
  return "?";
}

std::string_view to_string(StorageKind s) {
  switch (s) {
    case StorageKind::none: return "none";
    case StorageKind::memory: return "memory";
    case StorageKind::redis: return "redis";
    case StorageKind::postgres: return "postgres";
  }
  return "?";
}

std::string_view to_string(LoadMode m) { return m == LoadMode::open ? "open" : "closed"; }

Result<double> parse_seconds(std::string_view text, std::string_view field) {
  std::string_view t = trim(text);
  double mult = 1;
  auto ends = [&](std::string_view suffix) {
    if (t.size() > suffix.size() && t.substr(t.size() - suffix.size()) == suffix) {
      t.remove_suffix(suffix.size());
      return true;
    }
    return false;
  };
  if (ends("ns")) {
    mult = 1e-9;
  } else if (ends("us") || ends("µs")) {
    mult = 1e-6;
  } else if (ends("ms")) {
    mult = 1e-3;
  } else if (ends("s")) {
    mult = 1;
  } else if (ends("m")) {
    mult = 60;
  }
  double v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size() || !std::isfinite(v) || v < 0) {
    return unexpected("scenario: " + std::string(field) + " = " + quote(trim(text)) +
                      " is not a duration (allowed: e.g. 1.5, 2s, 250ms, 100us)");
  }
  return v * mult;
}

double Scenario::measured_seconds() const {
  if (seconds > 0) return seconds;
  if (!schedule.empty()) return Schedule(schedule).duration();
  return 10.0;
}

Schedule Scenario::measured_schedule() const {
  const Schedule base = schedule.empty() ? Schedule::constant(rate, measured_seconds()) : Schedule(schedule);
  return base.with_duration(measured_seconds());
}

double Scenario::receivers_per_message() const {
  const double per_topic = queue_groups > 0 ? queue_groups : subscribers;
  switch (topology) {
    case Topology::pipeline:
    case Topology::request_reply: return 1;
    case Topology::fanout:
    case Topology::topics: return per_topic;
    case Topology::mixed: {
      const double total = mix.total();
      return total == 0 ? 1 : (mix.pipeline + mix.request_reply + (mix.fanout + mix.topics) * per_topic) / total;
    }
  }
  return 1;
}

const std::vector<FieldInfo>& scenario_fields() {
  static const std::vector<FieldInfo> infos = [] {
    std::vector<FieldInfo> out;
    for (const Field& f : fields()) out.push_back(f.info);
    return out;
  }();
  return infos;
}

Result<void> set_field(Scenario& s, std::string_view field, std::string_view value) {
  for (const Field& f : fields()) {
    if (f.info.name == field) return f.set(s, value);
  }
  return unexpected("scenario: unknown field " + quote(field) + " (allowed: " + field_names() + ")");
}

Result<void> validate(const Scenario& s) {
  const bool has_topics = s.topology == Topology::fanout || s.topology == Topology::topics || s.topology == Topology::mixed;
  if (has_topics && s.queue_groups > s.subscribers) {
    return out_of_range("queue_groups", std::to_string(s.queue_groups),
                        "0..subscribers = " + std::to_string(s.subscribers));
  }
  if (s.topology == Topology::mixed && s.mix.total() == 0) return out_of_range("mix", "0", "at least one weight above 0");
  if (s.storage == StorageKind::redis && s.redis.empty()) {
    return unexpected(std::string("scenario: storage = redis needs redis = URL (e.g. --redis redis://127.0.0.1:6379/0)"));
  }
  if (s.storage == StorageKind::postgres && s.postgres.empty()) {
    return unexpected(
        std::string("scenario: storage = postgres needs postgres = DSN (e.g. --postgres \"host=127.0.0.1 dbname=swarm\")"));
  }
  if (s.messages != 0 && s.seconds != 0) {
    return unexpected("scenario: messages = " + std::to_string(s.messages) + " and seconds = " + num(s.seconds) +
                      " both set (allowed: one of them; messages replaces the duration)");
  }
  if (s.mode == LoadMode::closed && !s.schedule.empty()) {
    return unexpected(std::string("scenario: schedule is set but mode = closed (allowed: a schedule with mode = open)"));
  }
  if (s.mode == LoadMode::open && s.measured_schedule().expected_messages() < 1 && s.messages == 0) {
    return out_of_range("rate", num(s.rate), "a rate and duration that send at least one message");
  }
  if (s.mode == LoadMode::open && s.messages != 0 && s.measured_schedule().rate_at(1e18) <= 0) {
    return unexpected(std::string("scenario: messages is set but the schedule ends at rate 0 (allowed: a last rate above 0)"));
  }
  std::uint64_t agents = s.idle_agents;
  const bool all = s.topology == Topology::mixed;
  if (s.topology == Topology::pipeline || all) agents += std::uint64_t{s.stages} * s.lanes;
  if (s.topology == Topology::fanout || all) agents += s.subscribers;
  if (s.topology == Topology::topics || all) agents += std::uint64_t{s.topics} * s.subscribers;
  if (s.topology == Topology::request_reply || all) agents += std::uint64_t{s.clients} + s.servers;
  if (agents > 20'000'000) {
    return out_of_range("agents", std::to_string(agents), "up to 20000000 agents in all (stages x lanes, topics x "
                                                          "subscribers, clients + servers, idle_agents)");
  }
  if (!s.admin.empty() && s.admin.find(':') == std::string::npos) {
    return not_allowed("admin", s.admin, "HOST:PORT or :PORT");
  }
  return {};
}

const std::vector<Scenario>& builtin_scenarios() {
  static const std::vector<Scenario> all = [] {
    std::vector<Scenario> v;
    Scenario p = make_builtin("pipeline", "2 chains of 4 agents; each message passes down one chain (direct sends)",
                              Topology::pipeline);
    p.rate = 200'000;
    v.push_back(p);

    Scenario f = make_builtin("fanout", "1 topic, 100 subscribers; every message reaches all of them", Topology::fanout);
    f.subscribers = 100;
    f.rate = 5'000;
    v.push_back(f);

    Scenario t = make_builtin("topics", "1000 topics, 1 subscriber each; each message goes to one topic",
                              Topology::topics);
    t.topics = 1000;
    t.subscribers = 1;
    t.rate = 100'000;
    v.push_back(t);

    Scenario r = make_builtin("request-reply",
                              "4 clients request on a topic served by a queue group of 4 servers; latency is the "
                              "round trip",
                              Topology::request_reply);
    r.rate = 50'000;
    v.push_back(r);

    Scenario m = make_builtin("mixed",
                              "all four paths side by side (pipeline 40%, topics 30%, request-reply 20%, fanout "
                              "10% to 8 subscribers)",
                              Topology::mixed);
    m.topics = 100;
    m.subscribers = 8;
    m.rate = 50'000;
    v.push_back(m);
    return v;
  }();
  return all;
}

Result<Scenario> builtin_scenario(std::string_view name) {
  for (const Scenario& s : builtin_scenarios()) {
    if (s.name == name) return s;
  }
  std::string names;
  for (const Scenario& s : builtin_scenarios()) names += (names.empty() ? "" : ", ") + s.name;
  return unexpected("scenario: unknown scenario " + quote(name) + " (allowed: " + names + ", or a .yaml file)");
}

Result<Scenario> parse_scenario_yaml(std::string_view text, std::string_view origin) {
  const std::string where = std::string(origin);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return unexpected(where + ":" + std::to_string(e.mark.line + 1) + ": scenario: not valid YAML: " + e.msg);
  }
  if (!root.IsMap()) return unexpected(where + ": scenario: expected a map of fields (e.g. \"topology: pipeline\")");
  auto at = [&](const YAML::Node& n) { return where + ":" + std::to_string(n.Mark().line + 1) + ": "; };

  Scenario s;
  s.name = std::filesystem::path(where).stem().string();
  if (const YAML::Node base = root["base"]) {
    if (!base.IsScalar()) return unexpected(at(base) + "scenario: base must be a built-in scenario name");
    auto b = builtin_scenario(base.Scalar());
    if (!b) return unexpected(at(base) + b.error());
    s = *b;
    s.name = std::filesystem::path(where).stem().string();
  }
  if (root["rate"] && root["schedule"]) {
    return unexpected(at(root["schedule"]) + "scenario: rate and schedule both set (allowed: one of them)");
  }
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    const YAML::Node value = it->second;  // a copy: `it->second` lives in a temporary proxy
    if (key == "base") continue;
    if (key == "schedule" && value.IsSequence()) {
      std::vector<RateSegment> segs;
      for (const YAML::Node& step : value) {
        if (!step.IsMap()) return unexpected(at(step) + "scenario: schedule: each step is {rate, seconds} or {from, to, seconds}");
        RateSegment seg;
        bool has_rate = false, has_from = false, has_to = false, has_seconds = false;
        for (auto f = step.begin(); f != step.end(); ++f) {
          const std::string k = f->first.as<std::string>();
          if (!f->second.IsScalar()) return unexpected(at(f->second) + "scenario: schedule." + k + " must be a number");
          if (k == "seconds") {
            auto v = parse_seconds(f->second.Scalar(), "schedule.seconds");
            if (!v) return unexpected(at(f->second) + v.error());
            seg.seconds = *v;
            has_seconds = true;
            continue;
          }
          double* dst = k == "rate" ? &seg.from : k == "from" ? &seg.from : k == "to" ? &seg.to : nullptr;
          if (dst == nullptr) {
            return unexpected(at(f->first) + "scenario: schedule: unknown field " + quote(k) +
                              " (allowed: rate, from, to, seconds)");
          }
          auto v = number_in("schedule." + k, f->second.Scalar(), 0, 1e9, "0..1e9 messages/s");
          if (!v) return unexpected(at(f->second) + v.error());
          *dst = *v;
          (k == "rate" ? has_rate : k == "from" ? has_from : has_to) = true;
        }
        if (!has_seconds) return unexpected(at(step) + "scenario: schedule: a step without seconds");
        if (has_rate == (has_from || has_to) || has_from != has_to) {
          return unexpected(at(step) + "scenario: schedule: a step has either rate, or from and to (a ramp)");
        }
        if (has_rate) seg.to = seg.from;
        segs.push_back(seg);
      }
      if (auto ok = Schedule::validate(segs); !ok) return unexpected(at(value) + "scenario: " + ok.error());
      s.schedule = std::move(segs);
      continue;
    }
    if (key == "mix" && value.IsMap()) {
      std::string weights;
      for (auto f = value.begin(); f != value.end(); ++f) {
        if (!f->second.IsScalar()) return unexpected(at(f->second) + "scenario: mix weights are numbers");
        weights += (weights.empty() ? "" : ",") + f->first.as<std::string>() + "=" + f->second.Scalar();
      }
      if (auto ok = set_field(s, "mix", weights); !ok) return unexpected(at(value) + ok.error());
      continue;
    }
    if (!value.IsScalar()) {
      bool known = false;
      for (const FieldInfo& f : scenario_fields()) known = known || f.name == key;
      if (!known) return unexpected(at(it->first) + set_field(s, key, "").error());
      return unexpected(at(value) + "scenario: " + key + " must be a single value (allowed: " +
                        std::string(std::find_if(scenario_fields().begin(), scenario_fields().end(),
                                                 [&](const FieldInfo& f) { return f.name == key; })->allowed) +
                        ")");
    }
    if (auto ok = set_field(s, key, value.Scalar()); !ok) return unexpected(at(it->first) + ok.error());
  }
  if (auto ok = validate(s); !ok) return unexpected(where + ": " + ok.error());
  return s;
}

Result<Scenario> load_scenario_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return unexpected("scenario: cannot read " + quote(path));
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_scenario_yaml(buf.str(), path);
}

Result<Scenario> resolve_scenario(const std::string& name_or_path) {
  const bool looks_like_file = name_or_path.ends_with(".yaml") || name_or_path.ends_with(".yml") ||
                               name_or_path.find('/') != std::string::npos;
  if (looks_like_file || (!builtin_scenario(name_or_path) && std::filesystem::exists(name_or_path))) {
    return load_scenario_file(name_or_path);
  }
  return builtin_scenario(name_or_path);
}

std::string without_credentials(std::string_view urls) {
  std::string out;
  std::size_t pos = 0;
  while (pos < urls.size()) {
    const std::size_t comma = std::min(urls.find(',', pos), urls.size());
    std::string_view url = urls.substr(pos, comma - pos);
    const std::size_t scheme = url.find("://");
    const std::size_t at = url.find('@');
    if (!out.empty()) out += ',';
    if (scheme != std::string_view::npos && at != std::string_view::npos && at > scheme) {
      out += std::string(url.substr(0, scheme + 3)) + std::string(url.substr(at + 1));
    } else {
      out += url;
    }
    pos = comma + 1;
  }
  return out;
}

nlohmann::json to_json(const Scenario& s) {
  nlohmann::json sched = nlohmann::json::array();
  for (const RateSegment& seg : s.schedule) sched.push_back({{"seconds", seg.seconds}, {"from", seg.from}, {"to", seg.to}});
  return {
      {"name", s.name},
      {"description", s.description},
      {"topology", to_string(s.topology)},
      {"stages", s.stages},
      {"lanes", s.lanes},
      {"subscribers", s.subscribers},
      {"topics", s.topics},
      {"queue_groups", s.queue_groups},
      {"clients", s.clients},
      {"servers", s.servers},
      {"idle_agents", s.idle_agents},
      {"payload_bytes", s.payload_bytes},
      {"work_ns", s.work_ns},
      {"request_timeout", s.request_timeout},
      {"mix",
       {{"pipeline", s.mix.pipeline}, {"fanout", s.mix.fanout}, {"topics", s.mix.topics},
        {"request-reply", s.mix.request_reply}}},
      {"mailbox_capacity", s.mailbox_capacity},
      {"overflow", to_string(s.overflow)},
      {"workers", s.workers},
      {"idle_spin_us", s.idle_spin_us},
      {"telemetry", s.telemetry},
      {"storage", to_string(s.storage)},
      {"mode", to_string(s.mode)},
      {"rate", s.rate},
      {"schedule", sched},
      {"in_flight", s.in_flight},
      {"warmup", s.warmup},
      {"seconds", s.measured_seconds()},
      {"messages", s.messages},
      {"generators", s.generators},
      {"drain_timeout", s.drain_timeout},
      {"nats", without_credentials(s.nats)},
  };
}

}  // namespace swarm::load
