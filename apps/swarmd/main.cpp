// swarmd: the daemon (docs/swarmd.md), with two in-process agent types that
// examples/swarm.yaml uses:
//   planner     every `every` (default 1s) sends `fan_out` (default 4) requests
//               on `topic` (default tools.work), one per task, and sends each
//               answer (or why none came) to the agent named `report_to`
//               (default aggregator).
//   aggregator  registers `name` (default aggregator); counts what planners
//               report and prints a line every `every` (default 5s).
// A program of your own registers its types the same way (daemon/daemon.hpp).

#include <cstdio>
#include <string>

#include "daemon/daemon.hpp"

namespace {

using namespace std::chrono_literals;
constexpr std::uint32_t kTick = 1;

swarm::Result<std::chrono::milliseconds> option_duration(const swarm::daemon::AgentSpec& a, const std::string& key,
                                                         std::chrono::milliseconds fallback) {
  auto it = a.options.find(key);
  if (it == a.options.end()) return fallback;
  return swarm::daemon::parse_duration(it->second, "options." + key);
}

std::string option(const swarm::daemon::AgentSpec& a, const std::string& key, std::string fallback) {
  auto it = a.options.find(key);
  return it == a.options.end() ? fallback : it->second;
}

struct PlannerSettings {
  std::string topic = "tools.work", report_to = "aggregator";
  std::chrono::milliseconds every{1000}, timeout{2000};
  int fan_out = 4;
};

class Planner : public swarm::Agent {
 public:
  static constexpr const char* kTypeName = "planner";
  explicit Planner(PlannerSettings s) : s_(std::move(s)) {}
  void on_start() override {
    topic_ = runtime().router().intern(s_.topic).value();
    send_periodic(s_.every, swarm::Payload::of(std::string("tick")), kTick);
  }
  void on_message(swarm::Message& m) override {
    if (m.kind != kTick) return;
    ++round_;
    for (int i = 0; i < s_.fan_out; ++i) {
      const std::string task = "task " + std::to_string(round_) + "." + std::to_string(i);
      request(topic_, swarm::Payload::of(task), 0, s_.timeout, [this, task](swarm::AskStatus status, swarm::Message* reply) {
        const swarm::AgentRef to = runtime().whereis(s_.report_to);
        const std::string report = status == swarm::AskStatus::ok
                                       ? std::string(reply->text())
                                       : "failed: " + task + ": " + std::string(swarm::to_string(status));
        if (to.valid()) (void)send(to, report);
      });
    }
  }

 private:
  PlannerSettings s_;
  swarm::router::TopicId topic_{};
  std::uint64_t round_ = 0;
};

class Aggregator : public swarm::Agent {
 public:
  static constexpr const char* kTypeName = "aggregator";
  Aggregator(std::string name, std::chrono::milliseconds every) : name_(std::move(name)), every_(every) {}
  void on_start() override {
    (void)register_name(name_);
    send_periodic(every_, swarm::Payload::of(std::string("tick")), kTick);
  }
  void on_message(swarm::Message& m) override {
    if (m.kind == kTick) {
      if (answers_ + failed_ > 0) {
        std::fprintf(stderr, "aggregator: %llu answers, %llu failed in the last %lld ms; last: %s\n",
                     static_cast<unsigned long long>(answers_), static_cast<unsigned long long>(failed_),
                     static_cast<long long>(every_.count()), last_.c_str());
      }
      answers_ = failed_ = 0;
      return;
    }
    last_ = std::string(m.text());
    (last_.starts_with("failed:") ? failed_ : answers_)++;
  }

 private:
  std::string name_;
  std::chrono::milliseconds every_;
  std::uint64_t answers_ = 0, failed_ = 0;
  std::string last_;
};

}  // namespace

int main(int argc, char** argv) {
  swarm::daemon::AgentTypes types;
  types.add("planner", [](swarm::Runtime& rt, const swarm::daemon::AgentSpec& a) -> swarm::Result<void> {
    PlannerSettings s;
    s.topic = option(a, "topic", s.topic);
    s.report_to = option(a, "report_to", s.report_to);
    auto every = option_duration(a, "every", s.every);
    auto timeout = option_duration(a, "timeout", s.timeout);
    if (!every) return swarm::unexpected(every.error());
    if (!timeout) return swarm::unexpected(timeout.error());
    s.every = *every;
    s.timeout = *timeout;
    const std::string fan_out = option(a, "fan_out", "4");
    s.fan_out = std::atoi(fan_out.c_str());
    if (s.fan_out < 1 || s.fan_out > 100'000) {
      return swarm::unexpected("options.fan_out: got \"" + fan_out + "\"; expected 1..100000");
    }
    if (auto t = rt.router().intern(s.topic); !t) return swarm::unexpected("options.topic: " + t.error());
    for (std::uint32_t i = 0; i < a.count; ++i) rt.spawn<Planner>(s);
    return {};
  });
  types.add("aggregator", [](swarm::Runtime& rt, const swarm::daemon::AgentSpec& a) -> swarm::Result<void> {
    auto every = option_duration(a, "every", std::chrono::milliseconds(5000));
    if (!every) return swarm::unexpected(every.error());
    if (a.count > 1) return swarm::unexpected("count: one aggregator per name (got " + std::to_string(a.count) + ")");
    for (std::uint32_t i = 0; i < a.count; ++i) rt.spawn<Aggregator>(option(a, "name", "aggregator"), *every);
    return {};
  });
  return swarm::daemon::main(argc, argv, types);
}
