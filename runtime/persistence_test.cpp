// Persistent agents and lifecycle events, against a StateStore and a
// LifecycleSink kept in this file (storage/ has the real backends; the runtime
// must work with any implementation, including one whose loads are slow).

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "metrics/registry.hpp"
#include "runtime/runtime.hpp"
#include "runtime/supervisor.hpp"
#include "runtime/test_util.hpp"

namespace swarm {
namespace {

using namespace std::chrono_literals;
using test::eventually;

// Keeps states in a map. With `hold_loads`, loads wait until release_loads().
class TestStore final : public StateStore {
 public:
  void put(std::string_view key, StoredState state) override {
    std::lock_guard lock(mu_);
    states_[std::string(key)] = std::move(state);
    ++puts_;
  }
  void load(std::string key, LoadCallback done) override {
    std::unique_lock lock(mu_);
    if (hold_loads_) {
      held_.emplace_back(std::move(key), std::move(done));
      return;
    }
    auto answer = find(key);
    lock.unlock();
    done(std::move(answer));
  }
  Result<void> flush(std::chrono::milliseconds) override {
    std::lock_guard lock(mu_);
    ++flushes_;
    return {};
  }
  Result<void> ready() const override {
    if (down_) return unexpected(std::string("not connected to Redis at 127.0.0.1:1"));
    return {};
  }
  void collect(metrics::Collector& out) const override { out.gauge("test_store_keys", "Keys.", {}, 3); }
  std::atomic<bool> down_{false};

  void hold_loads() {
    std::lock_guard lock(mu_);
    hold_loads_ = true;
  }
  // Answers every held load (with `error` instead, when given).
  void release_loads(std::string error = {}) {
    std::vector<std::pair<std::string, LoadCallback>> held;
    {
      std::lock_guard lock(mu_);
      hold_loads_ = false;
      held.swap(held_);
    }
    for (auto& [key, done] : held) {
      if (error.empty()) {
        std::unique_lock lock(mu_);
        auto answer = find(key);
        lock.unlock();
        done(std::move(answer));
      } else {
        done(unexpected(error));
      }
    }
  }
  std::size_t held_loads() {
    std::lock_guard lock(mu_);
    return held_.size();
  }
  std::optional<StoredState> get(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = states_.find(key);
    if (it == states_.end()) return std::nullopt;
    return it->second;
  }
  int puts() {
    std::lock_guard lock(mu_);
    return puts_;
  }
  // The first key at or after `prefix` that starts with it, if any.
  std::optional<std::pair<std::string, StoredState>> first_with_prefix(const std::string& prefix) {
    std::lock_guard lock(mu_);
    auto it = states_.lower_bound(prefix);
    if (it == states_.end() || it->first.rfind(prefix, 0) != 0) return std::nullopt;
    return *it;
  }
  int flushes() {
    std::lock_guard lock(mu_);
    return flushes_;
  }

 private:
  Result<std::optional<StoredState>> find(const std::string& key) {
    auto it = states_.find(key);
    if (it == states_.end()) return std::optional<StoredState>{};
    return std::optional<StoredState>{it->second};
  }

  std::mutex mu_;
  std::map<std::string, StoredState> states_;
  std::vector<std::pair<std::string, LoadCallback>> held_;
  bool hold_loads_ = false;
  int puts_ = 0, flushes_ = 0;
};

struct Recorded {
  LifecycleEvent::Kind kind;
  AgentRef agent;
  std::string type, detail, payload;
};

class RecordingSink final : public LifecycleSink {
 public:
  void record(const LifecycleEvent& e) noexcept override {
    std::lock_guard lock(mu_);
    events_.push_back({e.kind, AgentRef::from_bits(e.agent), std::string(e.agent_type), std::string(e.detail),
                       std::string(e.payload)});
  }
  std::vector<Recorded> of(LifecycleEvent::Kind kind) {
    std::lock_guard lock(mu_);
    std::vector<Recorded> out;
    for (const Recorded& r : events_) {
      if (r.kind == kind) out.push_back(r);
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<Recorded> events_;
};

// Sums what it is sent; its total is its state. Kind 1 crashes it.
class Tally : public Agent {
 public:
  static constexpr std::string_view kTypeName = "tally";
  Tally(std::string key, std::vector<std::string>* log = nullptr, std::mutex* log_mu = nullptr)
      : log_(log), log_mu_(log_mu) {
    persist_as(std::move(key));
  }
  void restore(std::string_view state, std::uint64_t version) override {
    total_ = std::stol(std::string(state));
    note("restore " + std::string(state) + " v" + std::to_string(version));
  }
  void on_start() override { note("start " + std::to_string(total_)); }
  void on_message(Message& m) override {
    if (m.kind == 1) throw std::runtime_error("boom");
    total_ += m.payload.as<int>();
    note("add " + std::to_string(m.payload.as<int>()));
    mark_dirty();
  }
  std::string snapshot() const override { return std::to_string(total_); }

 private:
  void note(std::string line) {
    if (log_ == nullptr) return;
    std::lock_guard lock(*log_mu_);
    log_->push_back(std::move(line));
  }
  long total_ = 0;
  std::vector<std::string>* log_;
  std::mutex* log_mu_;
};

RuntimeConfig with(std::shared_ptr<StateStore> store, std::shared_ptr<LifecycleSink> sink = nullptr) {
  RuntimeConfig cfg;
  cfg.workers = 2;
  cfg.state_store = std::move(store);
  cfg.lifecycle = std::move(sink);
  return cfg;
}

TEST(Persistence, DirtyAgentsAreSnapshottedOncePerActivationWithRisingVersions) {
  auto store = std::make_shared<TestStore>();
  Runtime rt(with(store));
  AgentRef t = rt.spawn<Tally>("t1");
  for (int i = 1; i <= 10; ++i) ASSERT_EQ(rt.send(t, i), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return store->get("t1") && store->get("t1")->data == "55"; }));
  const StoredState s = *store->get("t1");
  EXPECT_GE(s.version, 1u);
  EXPECT_LE(s.version, 10u);  // marks coalesce within an activation
  EXPECT_EQ(static_cast<int>(s.version), store->puts());
  EXPECT_GT(s.updated_ms, 1'600'000'000'000);
}

TEST(Persistence, ANewAgentWithTheSameKeyRestoresBeforeStartAndMessages) {
  auto store = std::make_shared<TestStore>();
  store->put("k", {"40", 7, 1});
  std::vector<std::string> log;
  std::mutex mu;
  Runtime rt(with(store));
  AgentRef t = rt.spawn<Tally>("k", &log, &mu);
  ASSERT_EQ(rt.send(t, 2), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return store->get("k")->data == "42"; }));
  EXPECT_EQ(store->get("k")->version, 8u);  // continues from the restored version
  std::lock_guard lock(mu);
  EXPECT_EQ(log, (std::vector<std::string>{"restore 40 v7", "start 40", "add 2"}));
}

TEST(Persistence, MessagesThatArriveBeforeTheStateWaitInOrder) {
  auto store = std::make_shared<TestStore>();
  store->put("slow", {"100", 1, 1});
  store->hold_loads();
  std::vector<std::string> log;
  std::mutex mu;
  Runtime rt(with(store));
  AgentRef t = rt.spawn<Tally>("slow", &log, &mu);
  for (int i = 1; i <= 3; ++i) ASSERT_EQ(rt.send(t, i), SendResult::ok);
  ASSERT_TRUE(rt.wait_idle());
  {
    std::lock_guard lock(mu);
    EXPECT_TRUE(log.empty()) << "nothing runs before the restore";
  }
  store->release_loads();
  ASSERT_TRUE(eventually([&] { return store->get("slow")->data == "106"; }));
  std::lock_guard lock(mu);
  EXPECT_EQ(log, (std::vector<std::string>{"restore 100 v1", "start 100", "add 1", "add 2", "add 3"}));
}

TEST(Persistence, WaitingMessagesBeyondTheMailboxCapacityAreDroppedAndCounted) {
  auto store = std::make_shared<TestStore>();
  store->hold_loads();
  RuntimeConfig cfg = with(store);
  cfg.mailbox_by_type["tally"] = {.capacity = 4};
  Runtime rt(cfg);
  AgentRef t = rt.spawn<Tally>("full");
  int accepted = 0;
  for (int i = 0; i < 20; ++i) {
    if (rt.send(t, 1) == SendResult::ok) ++accepted;
    ASSERT_TRUE(rt.wait_idle());  // each send is moved to the waiting list before the next
  }
  ASSERT_EQ(accepted, 20);
  EXPECT_EQ(rt.stats().dropped[static_cast<int>(DropReason::mailbox_full)], 16u);
  store->release_loads();
  ASSERT_TRUE(eventually([&] { return store->get("full") && store->get("full")->data == "4"; }));
}

TEST(Persistence, AFailedLoadCrashesTheAgentWithTheReason) {
  auto store = std::make_shared<TestStore>();
  store->hold_loads();
  Runtime rt(with(store));
  AgentRef t = rt.spawn<Tally>("x");
  ASSERT_EQ(rt.send(t, 5), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return store->held_loads() == 1; }));
  store->release_loads("storage: state store closed");
  ASSERT_TRUE(eventually([&] { return !rt.alive(t); }));
  auto crashes = rt.recent_crashes();
  ASSERT_EQ(crashes.size(), 1u);
  EXPECT_EQ(crashes[0].reason.detail, "state restore failed: storage: state store closed");
  EXPECT_EQ(rt.stats().dropped[static_cast<int>(DropReason::dead_agent)], 1u) << "the waiting message is counted";
  EXPECT_FALSE(store->get("x")) << "a crash before the restore writes nothing";
}

TEST(Persistence, ASupervisorRestartGetsTheLastStoredStateAndIsJournaled) {
  auto store = std::make_shared<TestStore>();
  auto sink = std::make_shared<RecordingSink>();
  Runtime rt(with(store, sink));
  SupervisorSpec spec;
  spec.children.push_back({"tally", [](Supervisor& s, const Payload&) { return s.spawn<Tally>("sup-k"); }});
  rt.spawn<Supervisor>(std::move(spec));
  ASSERT_TRUE(eventually([&] { return sink->of(LifecycleEvent::Kind::spawned).size() == 2; }));
  AgentRef first = sink->of(LifecycleEvent::Kind::spawned)[1].agent;
  // A spawn is logged just before the agent takes messages: wait for that.
  ASSERT_TRUE(eventually([&] { return rt.alive(first); }));
  ASSERT_EQ(rt.send(first, 30), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return store->get("sup-k") && store->get("sup-k")->data == "30"; }));
  ASSERT_EQ(rt.send(first, Payload{}, 1), SendResult::ok);  // crash
  ASSERT_TRUE(eventually([&] { return sink->of(LifecycleEvent::Kind::restarted).size() == 1; }));
  AgentRef second = sink->of(LifecycleEvent::Kind::restarted)[0].agent;
  EXPECT_NE(second, first);
  ASSERT_TRUE(eventually([&] { return rt.alive(second); }));
  ASSERT_EQ(rt.send(second, 12), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return store->get("sup-k")->data == "42"; }));

  auto crashed = sink->of(LifecycleEvent::Kind::crashed);
  ASSERT_EQ(crashed.size(), 1u);
  EXPECT_EQ(crashed[0].agent, first);
  EXPECT_EQ(crashed[0].type, "tally");
  EXPECT_EQ(crashed[0].detail, "boom");
  EXPECT_EQ(sink->of(LifecycleEvent::Kind::restarted)[0].type, "tally");
}

TEST(Persistence, AStateThatRestoreThrowsOnIsKeptAsideAndTheRestartStartsFreshInsteadOfLooping) {
  auto store = std::make_shared<TestStore>();
  store->put("bad-k", {.data = "not a number", .version = 7});  // Tally's restore() throws on it
  auto sink = std::make_shared<RecordingSink>();
  std::vector<std::string> log;
  std::mutex log_mu;
  Runtime rt(with(store, sink));
  SupervisorSpec spec;
  spec.children.push_back(
      {"tally", [&](Supervisor& s, const Payload&) { return s.spawn<Tally>("bad-k", &log, &log_mu); }});
  rt.spawn<Supervisor>(std::move(spec));
  ASSERT_TRUE(eventually([&] { return sink->of(LifecycleEvent::Kind::restarted).size() == 1; }));
  AgentRef second = sink->of(LifecycleEvent::Kind::restarted)[0].agent;
  ASSERT_TRUE(eventually([&] { return rt.alive(second); }));
  ASSERT_EQ(rt.send(second, 5), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return store->get("bad-k")->data == "5"; }));
  EXPECT_EQ(store->get("bad-k")->version, 8u) << "versions go on from the unreadable one";

  auto crashed = sink->of(LifecycleEvent::Kind::crashed);
  ASSERT_EQ(crashed.size(), 1u) << "one crash, not a loop";
  EXPECT_EQ(crashed[0].detail.rfind("state restore failed: restore() threw on 'bad-k' version 7: ", 0), 0u)
      << crashed[0].detail;
  EXPECT_EQ(rt.stats().restores_failed, 1u);
  auto aside = store->first_with_prefix("bad-k.unreadable.");
  ASSERT_TRUE(aside) << "the unreadable bytes are kept";
  EXPECT_EQ(aside->second.data, "not a number");
  EXPECT_EQ(aside->second.version, 7u);
  std::lock_guard lock(log_mu);
  EXPECT_EQ(log, (std::vector<std::string>{"start 0", "add 5"})) << "the restart starts fresh";
}

// Spawns a child as it starts, on a worker, possibly while the runtime's
// spawn() of this parent is still running on the test's thread.
class Parent : public Agent {
 public:
  using Links = std::map<std::uint64_t, std::uint64_t>;  // child -> parent, as AgentRef::bits()
  Parent(Links* links, std::mutex* mu) : links_(links), mu_(mu) {}
  void on_start() override {
    AgentRef child = spawn<Tally>("child-" + std::to_string(self().bits()));
    std::lock_guard lock(*mu_);
    (*links_)[child.bits()] = self().bits();
  }
  void on_message(Message&) override {}

 private:
  Links* links_;
  std::mutex* mu_;
};

TEST(Lifecycle, AnAgentsSpawnIsRecordedBeforeAnythingItDoes) {
  auto sink = std::make_shared<RecordingSink>();
  Parent::Links links;
  std::mutex mu;
  Runtime rt(with(std::make_shared<TestStore>(), sink));
  constexpr std::size_t kParents = 300;
  for (std::size_t i = 0; i < kParents; ++i) rt.spawn<Parent>(&links, &mu);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return links.size() == kParents && sink->of(LifecycleEvent::Kind::spawned).size() == 2 * kParents;
  }));
  std::map<std::uint64_t, std::size_t> position;
  auto spawned = sink->of(LifecycleEvent::Kind::spawned);
  for (std::size_t i = 0; i < spawned.size(); ++i) position[spawned[i].agent.bits()] = i;
  std::lock_guard lock(mu);
  for (const auto& [child, parent] : links) {
    ASSERT_TRUE(position.contains(child) && position.contains(parent));
    EXPECT_LT(position[parent], position[child]) << "a child's spawn was recorded before its parent's";
  }
}

TEST(Persistence, ShutdownStoresDirtyStatesRecordsExitsAndFlushes) {
  auto store = std::make_shared<TestStore>();
  auto sink = std::make_shared<RecordingSink>();
  {
    Runtime rt(with(store, sink));
    for (int i = 0; i < 50; ++i) (void)rt.send(rt.spawn<Tally>("k" + std::to_string(i)), i);
    rt.shutdown();
  }
  for (int i = 0; i < 50; ++i) {
    auto s = store->get("k" + std::to_string(i));
    ASSERT_TRUE(s) << i;
    EXPECT_EQ(s->data, std::to_string(i));
  }
  EXPECT_EQ(store->flushes(), 1);
  auto exits = sink->of(LifecycleEvent::Kind::exited);
  ASSERT_EQ(exits.size(), 50u);
  EXPECT_EQ(exits[0].detail, "shutdown");
}

TEST(Persistence, TheStoresSeriesAreInTheRuntimesMetrics) {
  Runtime rt(with(std::make_shared<TestStore>()));
  EXPECT_NE(rt.metrics().render().find("test_store_keys 3"), std::string::npos);
}

TEST(Persistence, ReadyzReportsAStoreThatIsDown) {
  auto store = std::make_shared<TestStore>();
  RuntimeConfig cfg = with(store, std::make_shared<RecordingSink>());
  cfg.telemetry.admin = "127.0.0.1:0";
  Runtime rt(cfg);
  httplib::Client http("127.0.0.1", rt.admin_port());
  EXPECT_EQ(http.Get("/readyz")->status, 200);
  store->down_ = true;
  auto r = http.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("state_store"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("not connected to Redis"), std::string::npos) << r->body;
}

TEST(Persistence, PersistingWithoutAStoreIsAnErrorAndLeaksNothing) {
  Runtime rt(with(nullptr));
  try {
    rt.spawn<Tally>("k");
    FAIL() << "spawn must throw";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("state_store is not set"), std::string::npos) << e.what();
  }
  EXPECT_EQ(rt.stats().live, 0u);
}

TEST(Persistence, LoadsAnsweredAfterTheRuntimeIsGoneAreIgnored) {
  auto store = std::make_shared<TestStore>();
  store->hold_loads();
  {
    Runtime rt(with(store));
    rt.spawn<Tally>("late");
  }
  store->release_loads();  // must not touch the destroyed runtime (ASan would say)
  EXPECT_FALSE(store->get("late"));
}

class Publisher : public Agent {
 public:
  static constexpr std::string_view kTypeName = "publisher";
  void on_message(Message& m) override { (void)publish(m.payload.text(), Payload(std::string_view("body"))); }
};

TEST(Audit, MessagesOnAuditedTopicsAreRecordedWithSenderAndPayload) {
  auto sink = std::make_shared<RecordingSink>();
  RuntimeConfig cfg = with(nullptr, sink);
  cfg.audit_topics = {"orders.>"};
  Runtime rt(cfg);
  AgentRef p = rt.spawn<Publisher>();
  EXPECT_EQ(rt.send(p, std::string_view("orders.eu.created")), SendResult::ok);
  EXPECT_EQ(rt.send(p, std::string_view("metrics.cpu")), SendResult::ok);
  ASSERT_TRUE(rt.wait_idle());
  auto messages = sink->of(LifecycleEvent::Kind::message);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].detail, "orders.eu.created");
  EXPECT_EQ(messages[0].payload, "body");
  EXPECT_EQ(messages[0].agent, p);
  EXPECT_EQ(messages[0].type, "publisher");
}

TEST(Audit, ConfigErrorsNameTheProblem) {
  RuntimeConfig cfg;
  cfg.audit_topics = {"a.b"};
  auto r = cfg.validate();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("needs a lifecycle sink"), std::string::npos) << r.error();
  cfg.lifecycle = std::make_shared<RecordingSink>();
  cfg.audit_topics = {"a..b"};
  r = cfg.validate();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("audit_topics: 'a..b'"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace swarm
