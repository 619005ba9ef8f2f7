#include "runtime/supervisor.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <map>
#include <mutex>
#include <stdexcept>

#include "runtime/test_util.hpp"
#include "runtime/testing.hpp"

namespace swarm {
namespace {

using namespace std::chrono_literals;
using test::DeterministicRuntime;
using test::eventually;

// What the children of a test supervisor did, in order.
struct Log {
  std::mutex mu;
  std::vector<std::string> events;
  std::map<std::string, AgentRef> current;
  std::map<std::string, int> starts;

  void add(const std::string& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  }
  AgentRef ref(const std::string& id) {
    std::lock_guard lock(mu);
    return current[id];
  }
  int started(const std::string& id) {
    std::lock_guard lock(mu);
    return starts[id];
  }
  std::vector<std::string> take() {
    std::lock_guard lock(mu);
    auto out = std::move(events);
    events.clear();
    return out;
  }
};

constexpr std::uint32_t kCrash = 1;
constexpr std::uint32_t kQuit = 2;

class Child : public Agent {
 public:
  // Constructed synchronously by the supervisor, so construction order is start order.
  Child(std::string id, Log& log, bool ignore_stop = false) : id_(std::move(id)), log_(log), ignore_stop_(ignore_stop) {
    log_.add("start " + id_);
  }
  void on_start() override {
    std::lock_guard lock(log_.mu);
    log_.current[id_] = self();
    ++log_.starts[id_];
  }
  void on_message(Message& m) override {
    if (m.kind == kCrash) throw std::runtime_error(id_ + " crashed");
    if (m.kind == kQuit) stop();
  }
  void on_shutdown_request() override {
    if (!ignore_stop_) Agent::on_shutdown_request();
  }
  void on_stop(const ExitReason& r) override { log_.add("stop " + id_ + " " + std::string(to_string(r.kind))); }

 private:
  std::string id_;
  Log& log_;
  bool ignore_stop_;
};

ChildSpec child(const std::string& id, Log& log, Restart restart = Restart::permanent, bool ignore_stop = false,
                std::chrono::milliseconds shutdown = 5000ms) {
  return ChildSpec{id,
                   [id, &log, ignore_stop](Supervisor& s, const Payload&) { return s.spawn<Child>(id, log, ignore_stop); },
                   restart, shutdown};
}

SupervisorSpec spec_of(Strategy s, Log& log, unsigned max_restarts = 10) {
  SupervisorSpec spec;
  spec.strategy = s;
  spec.max_restarts = max_restarts;
  spec.period = 10000ms;
  for (const char* id : {"a", "b", "c"}) spec.children.push_back(child(id, log));
  return spec;
}

RuntimeConfig config() {
  RuntimeConfig c;
  c.workers = 2;
  return c;
}

bool all_started(Log& log, int n) {
  std::lock_guard lock(log.mu);
  return log.current.size() == static_cast<std::size_t>(n);
}

// The supervision tests run on the deterministic runtime: agents run when the
// test says (run_until_idle) and time moves only when it advances the clock.

TEST(Supervisor, StartsChildrenInOrder) {
  Log log;
  DeterministicRuntime rt;
  rt->spawn<Supervisor>(spec_of(Strategy::one_for_one, log));
  rt.run_until_idle();
  ASSERT_TRUE(all_started(log, 3));
  EXPECT_EQ(log.take(), (std::vector<std::string>{"start a", "start b", "start c"}));
}

TEST(Supervisor, OneForOneRestartsOnlyTheCrashedChild) {
  Log log;
  DeterministicRuntime rt;
  rt->spawn<Supervisor>(spec_of(Strategy::one_for_one, log));
  rt.run_until_idle();
  ASSERT_TRUE(all_started(log, 3));
  log.take();
  AgentRef old_b = log.ref("b");
  EXPECT_EQ(rt->send(old_b, Payload{}, kCrash), SendResult::ok);
  rt.run_until_idle();
  EXPECT_EQ(log.started("b"), 2);
  EXPECT_EQ(log.take(), (std::vector<std::string>{"stop b crashed", "start b"}));
  EXPECT_NE(log.ref("b"), old_b);
  EXPECT_TRUE(rt->alive(log.ref("b")));
  EXPECT_EQ(log.started("a"), 1);
  EXPECT_EQ(log.started("c"), 1);
  EXPECT_EQ(rt->stats().restarts, 1u);
}

TEST(Supervisor, OneForAllStopsOthersInReverseOrderAndRestartsAll) {
  Log log;
  DeterministicRuntime rt;
  rt->spawn<Supervisor>(spec_of(Strategy::one_for_all, log));
  rt.run_until_idle();
  ASSERT_TRUE(all_started(log, 3));
  log.take();
  EXPECT_EQ(rt->send(log.ref("b"), Payload{}, kCrash), SendResult::ok);
  rt.run_until_idle();
  EXPECT_EQ(log.started("c"), 2);
  EXPECT_EQ(log.take(), (std::vector<std::string>{"stop b crashed", "stop c shutdown", "stop a shutdown", "start a",
                                                  "start b", "start c"}));
  EXPECT_EQ(rt.elapsed(), 0ms);  // the others stopped when asked: no stop timeout ran out
}

TEST(Supervisor, RestForOneRestartsTheChildAndThoseStartedAfterIt) {
  Log log;
  DeterministicRuntime rt;
  rt->spawn<Supervisor>(spec_of(Strategy::rest_for_one, log));
  rt.run_until_idle();
  ASSERT_TRUE(all_started(log, 3));
  log.take();
  EXPECT_EQ(rt->send(log.ref("b"), Payload{}, kCrash), SendResult::ok);
  rt.run_until_idle();
  EXPECT_EQ(log.started("c"), 2);
  EXPECT_EQ(log.take(), (std::vector<std::string>{"stop b crashed", "stop c shutdown", "start b", "start c"}));
  EXPECT_EQ(log.started("a"), 1);
}

TEST(Supervisor, SimpleOneForOneStartsDynamicChildrenWithArgs) {
  Log log;
  DeterministicRuntime rt;
  SupervisorSpec spec;
  spec.strategy = Strategy::simple_one_for_one;
  spec.children.push_back(ChildSpec{"worker", [&log](Supervisor& s, const Payload& args) {
                                      return s.spawn<Child>("w" + std::to_string(args.as<int>()), log);
                                    }});
  AgentRef sup = rt->spawn<Supervisor>(std::move(spec));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Supervisor::start_child(*rt, sup, Payload::of(i)));
  rt.run_until_idle();
  ASSERT_TRUE(all_started(log, 5));
  AgentRef w3 = log.ref("w3");
  EXPECT_EQ(rt->send(w3, Payload{}, kCrash), SendResult::ok);
  rt.run_until_idle();
  EXPECT_EQ(log.started("w3"), 2);  // same args again
  EXPECT_EQ(log.started("w2"), 1);
}

TEST(Supervisor, TransientRestartsAfterACrashButNotAfterANormalExit) {
  Log log;
  DeterministicRuntime rt;
  SupervisorSpec spec;
  spec.children.push_back(child("t", log, Restart::transient));
  rt->spawn<Supervisor>(std::move(spec));
  rt.run_until_idle();
  ASSERT_TRUE(all_started(log, 1));
  EXPECT_EQ(rt->send(log.ref("t"), Payload{}, kCrash), SendResult::ok);
  rt.run_until_idle();
  EXPECT_EQ(log.started("t"), 2);
  AgentRef t2 = log.ref("t");
  EXPECT_EQ(rt->send(t2, Payload{}, kQuit), SendResult::ok);
  rt.run_until_idle();
  EXPECT_FALSE(rt->alive(t2));
  EXPECT_EQ(log.started("t"), 2);
}

TEST(Supervisor, TemporaryIsNeverRestarted) {
  Log log;
  DeterministicRuntime rt;
  SupervisorSpec spec;
  spec.children.push_back(child("tmp", log, Restart::temporary));
  rt->spawn<Supervisor>(std::move(spec));
  rt.run_until_idle();
  ASSERT_TRUE(all_started(log, 1));
  AgentRef t = log.ref("tmp");
  EXPECT_EQ(rt->send(t, Payload{}, kCrash), SendResult::ok);
  rt.run_until_idle();
  EXPECT_FALSE(rt->alive(t));
  EXPECT_EQ(log.started("tmp"), 1);
}

TEST(Supervisor, PermanentIsRestartedEvenAfterANormalExit) {
  Log log;
  DeterministicRuntime rt;
  SupervisorSpec spec;
  spec.children.push_back(child("p", log, Restart::permanent));
  rt->spawn<Supervisor>(std::move(spec));
  rt.run_until_idle();
  ASSERT_TRUE(all_started(log, 1));
  EXPECT_EQ(rt->send(log.ref("p"), Payload{}, kQuit), SendResult::ok);
  rt.run_until_idle();
  EXPECT_EQ(log.started("p"), 2);
}

// Watches one supervisor as its parent and records how it exits.
class Watcher : public Agent {
 public:
  Watcher(Log& log, std::atomic<int>& crashed, std::string& detail) : log_(log), crashed_(crashed), detail_(detail) {
    set_supervising(true);
  }
  void on_start() override {
    SupervisorSpec spec;
    spec.max_restarts = 2;
    spec.period = 60000ms;
    spec.children.push_back(child("x", log_));
    spawn<Supervisor>(std::move(spec));
  }
  void on_message(Message&) override {}
  void on_child_exit(AgentRef, const ExitReason& r) override {
    detail_ = r.detail;
    if (r.kind == ExitKind::crashed) ++crashed_;
  }

 private:
  Log& log_;
  std::atomic<int>& crashed_;
  std::string& detail_;
};

TEST(Supervisor, TooManyRestartsEscalateToTheParent) {
  Log log;
  std::atomic<int> crashed{0};
  std::string detail;
  DeterministicRuntime rt;
  rt->spawn<Watcher>(log, crashed, detail);
  rt.run_until_idle();
  for (int round = 1; round <= 3; ++round) {
    ASSERT_EQ(log.started("x"), round);
    EXPECT_EQ(crashed, 0) << "round " << round;
    EXPECT_EQ(rt->send(log.ref("x"), Payload{}, kCrash), SendResult::ok);
    rt.run_until_idle();
  }
  EXPECT_EQ(crashed, 1);
  EXPECT_EQ(log.started("x"), 3);  // two restarts allowed, the third crash escalates
  EXPECT_NE(detail.find("restart intensity reached"), std::string::npos) << detail;
  EXPECT_EQ(rt->stats().live, 1u);  // only the watcher is left
}

// A root supervisor with max_restarts = 2 in a 1 s period, whose child "x" the
// test crashes at chosen times.
struct IntensityFixture {
  Log log;
  DeterministicRuntime rt;
  IntensityFixture() {
    SupervisorSpec spec;
    spec.max_restarts = 2;
    spec.period = 1000ms;
    spec.children.push_back(child("x", log));
    rt->spawn<Supervisor>(std::move(spec));
    rt.run_until_idle();
  }
  void crash_x() {
    EXPECT_EQ(rt->send(log.ref("x"), Payload{}, kCrash), SendResult::ok);
    rt.run_until_idle();
  }
};

TEST(Supervisor, ARestartExactlyOnePeriodAfterTheFirstStillCountsInTheWindow) {
  IntensityFixture f;
  f.crash_x();
  f.crash_x();  // two restarts at t = 0
  EXPECT_EQ(f.log.started("x"), 3);
  f.rt.advance(1000ms);
  f.crash_x();  // at t = period: both still count, so this is one too many
  EXPECT_EQ(f.log.started("x"), 3);
  EXPECT_EQ(f.rt->stats().supervisors_gave_up, 1u);
  EXPECT_EQ(f.rt->stats().live, 0u);
}

TEST(Supervisor, RestartsOlderThanThePeriodNoLongerCount) {
  IntensityFixture f;
  f.crash_x();
  f.crash_x();  // two restarts at t = 0
  f.rt.advance(1001ms);
  f.crash_x();  // the two have left the window
  EXPECT_EQ(f.log.started("x"), 4);
  f.crash_x();  // the second in this window
  EXPECT_EQ(f.log.started("x"), 5);
  EXPECT_EQ(f.rt->stats().supervisors_gave_up, 0u);
  f.crash_x();  // the third within 1 s: gives up
  EXPECT_EQ(f.log.started("x"), 5);
  EXPECT_EQ(f.rt->stats().supervisors_gave_up, 1u);
  EXPECT_EQ(f.rt->stats().restarts, 4u);
}

// A root supervisor has nobody to escalate to: its giving up is counted and
// makes the runtime not ready, instead of a swarm that died quietly.
TEST(Supervisor, ARootSupervisorThatGivesUpIsCountedAndMakesTheRuntimeNotReady) {
  Log log;
  RuntimeConfig cfg;
  cfg.telemetry.admin = "127.0.0.1:0";
  DeterministicRuntime rt(cfg);
  SupervisorSpec spec;
  spec.max_restarts = 2;
  spec.period = 60000ms;
  spec.children.push_back(child("x", log));
  rt->spawn<Supervisor>(std::move(spec));
  rt.run_until_idle();
  httplib::Client http("127.0.0.1", rt->admin_port());
  EXPECT_EQ(http.Get("/readyz")->status, 200);
  for (int round = 1; round <= 3; ++round) {
    ASSERT_EQ(log.started("x"), round);
    EXPECT_EQ(rt->stats().supervisors_gave_up, 0u) << "round " << round;
    EXPECT_EQ(rt->send(log.ref("x"), Payload{}, kCrash), SendResult::ok);
    rt.run_until_idle();
  }
  EXPECT_EQ(rt->stats().supervisors_gave_up, 1u);
  EXPECT_EQ(rt->stats().live, 0u);
  auto ready = http.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_NE(ready->body.find("gave up: supervisor: restart intensity reached"), std::string::npos) << ready->body;
}

TEST(Supervisor, ShutdownStopsChildrenInReverseOrderAndKillsThoseThatHang) {
  Log log;
  {
    DeterministicRuntime rt;
    SupervisorSpec spec;
    spec.children.push_back(child("a", log));
    spec.children.push_back(child("hang", log, Restart::permanent, /*ignore_stop=*/true, 30ms));
    spec.children.push_back(child("c", log));
    rt->spawn<Supervisor>(std::move(spec));
    rt.run_until_idle();
    ASSERT_TRUE(all_started(log, 3));
    log.take();
    rt->shutdown();
    EXPECT_EQ(rt.elapsed(), 30ms);  // waited for "hang" exactly its shutdown time, then killed it
    EXPECT_EQ(rt->stats().live, 0u);
  }
  // "hang" is killed without on_stop; the others stop in reverse order.
  EXPECT_EQ(log.take(), (std::vector<std::string>{"stop c shutdown", "stop a shutdown"}));
}

// The same on worker threads and the real clock.
TEST(Supervisor, ShutdownOnWorkerThreadsKillsAChildThatHangsAfterItsShutdownTime) {
  Log log;
  {
    Runtime rt(config());
    SupervisorSpec spec;
    spec.children.push_back(child("a", log));
    spec.children.push_back(child("hang", log, Restart::permanent, /*ignore_stop=*/true, 30ms));
    spec.children.push_back(child("c", log));
    rt.spawn<Supervisor>(std::move(spec));
    ASSERT_TRUE(eventually([&] { return all_started(log, 3); }));
    ASSERT_TRUE(rt.wait_idle());
    log.take();
    auto t0 = std::chrono::steady_clock::now();
    rt.shutdown();
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);  // waited for "hang" before killing it
    EXPECT_EQ(rt.stats().live, 0u);
  }
  EXPECT_EQ(log.take(), (std::vector<std::string>{"stop c shutdown", "stop a shutdown"}));
}

// A restart on worker threads: the supervisor's messages cross workers.
TEST(Supervisor, OneForAllOnWorkerThreadsRestartsAll) {
  Log log;
  Runtime rt(config());
  rt.spawn<Supervisor>(spec_of(Strategy::one_for_all, log));
  ASSERT_TRUE(eventually([&] { return all_started(log, 3); }));
  ASSERT_TRUE(rt.wait_idle());
  log.take();
  EXPECT_EQ(rt.send(log.ref("b"), Payload{}, kCrash), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return log.started("c") == 2; }));
  ASSERT_TRUE(rt.wait_idle());
  EXPECT_EQ(log.take(), (std::vector<std::string>{"stop b crashed", "stop c shutdown", "stop a shutdown", "start a",
                                                  "start b", "start c"}));
}

TEST(SupervisorSpec, BadSpecsAreRejectedWithTheField) {
  Log log;
  SupervisorSpec spec;
  spec.strategy = Strategy::simple_one_for_one;
  auto r = spec.validate();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("exactly one child spec"), std::string::npos);

  SupervisorSpec dup;
  dup.children.push_back(child("a", log));
  dup.children.push_back(child("a", log));
  r = dup.validate();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("children[1].id \"a\" is used twice"), std::string::npos) << r.error();

  EXPECT_FALSE(parse_strategy("one_for_some").has_value());
  EXPECT_EQ(*parse_restart("transient"), Restart::transient);
}

}  // namespace
}  // namespace swarm
