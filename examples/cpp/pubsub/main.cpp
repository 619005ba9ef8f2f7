// pubsub: agents reach each other by topic instead of by reference.
//
// Shows:
//   - `*` matches one token, `>` the rest: "orders.>" sees every order event,
//     "orders.*.eu" only the European ones;
//   - a queue group: three workers subscribed to "orders.created.*" in the group
//     "billing" share the created orders, each one billed exactly once;
//   - a publish nobody subscribed to is counted, not lost silently.
// Exits 0 only if every agent got exactly what the patterns promise.

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtime/runtime.hpp"

namespace {

// What the agents saw; main reads it after the runtime is idle.
struct Tally {
  std::atomic<int> audit{0};         // "orders.>"
  std::atomic<int> eu{0};            // "orders.*.eu"
  std::array<std::atomic<int>, 3> billed{};  // "orders.created.*", group "billing"
};

// Counts every message it gets into one counter of the tally.
class Counter : public swarm::Agent {
 public:
  Counter(std::atomic<int>& count, std::string name) : count_(count), name_(std::move(name)) {}
  void on_message(swarm::Message& m) override {
    count_.fetch_add(1);
    std::printf("  %-8s got %-22.*s on %s\n", name_.c_str(), static_cast<int>(m.text().size()), m.text().data(),
                std::string(runtime().router().topic_name(m.topic)).c_str());
  }

 private:
  std::atomic<int>& count_;
  std::string name_;
};

bool check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  return ok;
}

}  // namespace

int main() {
  swarm::RuntimeConfig cfg;
  cfg.workers = 2;
  swarm::Runtime rt(cfg);
  Tally tally;

  // Subscribing from main is done when subscribe() returns; an agent may also
  // subscribe itself from on_start (then it gets only what is published later).
  auto subscribe = [&](swarm::AgentRef who, const char* pattern, const char* group = "") {
    auto sub = rt.subscribe(who, pattern, group);
    if (!sub) {
      std::fprintf(stderr, "subscribe %s: %s\n", pattern, sub.error().c_str());
      std::exit(1);
    }
  };
  subscribe(rt.spawn<Counter>(tally.audit, "audit"), "orders.>");
  subscribe(rt.spawn<Counter>(tally.eu, "eu-desk"), "orders.*.eu");
  for (int i = 0; i < 3; ++i) {
    subscribe(rt.spawn<Counter>(tally.billed[i], "billing" + std::to_string(i)), "orders.created.*", "billing");
  }

  // 6 created orders (4 EU, 2 US), 2 cancelled (1 EU, 1 US), 1 topic nobody wants.
  const char* events[][2] = {
      {"orders.created.eu", "order 1 (eu)"},  {"orders.created.us", "order 2 (us)"},
      {"orders.created.eu", "order 3 (eu)"},  {"orders.created.eu", "order 4 (eu)"},
      {"orders.created.us", "order 5 (us)"},  {"orders.created.eu", "order 6 (eu)"},
      {"orders.cancelled.eu", "order 3 (eu)"}, {"orders.cancelled.us", "order 5 (us)"},
  };
  for (auto& [topic, text] : events) {
    auto r = rt.publish(topic, swarm::Payload(std::string_view(text)));
    if (!r) {
      std::fprintf(stderr, "publish %s: %s\n", topic, r.error().c_str());
      return 1;
    }
  }
  auto nobody = rt.publish("shipments.sent.eu", swarm::Payload(std::string_view("parcel 9")));
  rt.wait_idle();

  const int billed = tally.billed[0] + tally.billed[1] + tally.billed[2];
  std::printf("audit %d, eu-desk %d, billing %d+%d+%d\n", tally.audit.load(), tally.eu.load(),
              tally.billed[0].load(), tally.billed[1].load(), tally.billed[2].load());
  bool ok = true;
  ok &= check(tally.audit == 8, "\"orders.>\" got all 8 order events");
  ok &= check(tally.eu == 5, "\"orders.*.eu\" got the 5 European ones");
  ok &= check(billed == 6, "the billing group got each of the 6 created orders once");
  ok &= check(nobody && nobody->no_subscriber, "a publish nobody subscribed to says so");
  ok &= check(rt.stats().dropped[static_cast<int>(swarm::DropReason::no_subscriber)] == 1,
              "... and is counted as dropped (no_subscriber)");
  rt.shutdown();
  return ok ? 0 : 1;
}
