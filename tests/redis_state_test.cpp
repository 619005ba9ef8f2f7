// The Redis state store against a real server (a throwaway redis-server on
// 127.0.0.1, see support/redis_server.hpp): the layout it writes, binary
// states, coalescing, many writers, adaptive batching, credentials and
// databases, refused writes, and the faults that matter — the server down at
// start, killed mid-run (every key's newest state must arrive), down while a
// load waits, and down when the store closes.
// Every wait polls with a generous deadline (a loaded 2-core machine), never a fixed sleep.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <thread>
#include <vector>

#include "metrics/registry.hpp"
#include "runtime/runtime.hpp"
#include "storage/state_store.hpp"
#include "tests/support/redis_server.hpp"

namespace swarm::storage {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using LoadResult = Result<std::optional<StoredState>>;

constexpr auto kPatience = 60s;  // for anything that should take well under a second

// Polls `done` every 5 ms until it holds or `patience` passes.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds patience = kPatience) {
  const auto deadline = Clock::now() + patience;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::unique_ptr<ObservableStateStore> store(RedisStateStoreOptions options) {
  auto s = make_redis_state_store(std::move(options));
  if (!s) throw std::runtime_error(s.error());
  return std::move(*s);
}

// Fast reconnects, so fault tests do not wait for the default backoff.
RedisStateStoreOptions quick(const test::RedisServer& redis) {
  return {.url = redis.url(), .backoff_initial = 10ms, .backoff_max = 200ms};
}

// Starts a load; the future holds its answer.
std::future<LoadResult> load_async(StateStore& s, std::string key) {
  auto answer = std::make_shared<std::promise<LoadResult>>();
  auto f = answer->get_future();
  s.load(std::move(key), [answer](LoadResult r) { answer->set_value(std::move(r)); });
  return f;
}

LoadResult load(StateStore& s, std::string key) {
  auto f = load_async(s, std::move(key));
  if (f.wait_for(kPatience) != std::future_status::ready) throw std::runtime_error("load never answered");
  return f.get();
}

// Reads a state straight from Redis (the layout the header documents).
std::optional<StoredState> stored(const test::RedisServer& redis, const std::string& key) {
  auto r = redis.command({"HGETALL", "swarm:state:" + key});
  if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) return std::nullopt;
  std::map<std::string, std::string> fields;
  for (std::size_t i = 0; i + 1 < r->elements; i += 2) {
    fields[std::string(r->element[i]->str, r->element[i]->len)] =
        std::string(r->element[i + 1]->str, r->element[i + 1]->len);
  }
  EXPECT_EQ(fields.size(), 3u);
  return StoredState{.data = fields["state"],
                     .version = std::stoull(fields["version"]),
                     .updated_ms = std::stoll(fields["updated_ms"])};
}

// The version of each key in Redis (0 when absent), in one pipeline.
std::vector<std::uint64_t> stored_versions(const test::RedisServer& redis, const std::vector<std::string>& keys) {
  std::vector<std::vector<std::string>> commands;
  for (const auto& k : keys) commands.push_back({"HGET", "swarm:state:" + k, "version"});
  std::vector<std::uint64_t> out;
  for (auto& r : redis.pipeline(commands)) {
    out.push_back(r->type == REDIS_REPLY_STRING ? std::stoull(std::string(r->str, r->len)) : 0);
  }
  return out;
}

long long dbsize(const test::RedisServer& redis) { return redis.command({"DBSIZE"})->integer; }

std::string all_bytes() {
  std::string bytes;
  for (int c = 0; c < 256; ++c) bytes += static_cast<char>(c);
  return bytes + std::string("\0\0tail", 6);
}

// The tests of what goes over the wire run both ways: with the writers'
// own RESP encoder (the default) and with hiredis formatting each command.
class RedisStateStoreBothWays : public ::testing::TestWithParam<bool> {
 protected:
  RedisStateStoreOptions options(const test::RedisServer& redis) const {
    RedisStateStoreOptions o = quick(redis);
    o.encode_batches = GetParam();
    return o;
  }
};
INSTANTIATE_TEST_SUITE_P(Encoding, RedisStateStoreBothWays, ::testing::Bool(),
                         [](const auto& p) { return p.param ? "encoded" : "plain"; });

// -- layout and round trips ---

TEST_P(RedisStateStoreBothWays, WritesOneHashPerKeyAndLoadsItBackBinarySafe) {
  test::RedisServer redis;
  const StoredState state{.data = all_bytes(), .version = 42, .updated_ms = 1'700'000'000'123};
  {
    auto s = store(options(redis));
    s->put("agent/7", state);
    ASSERT_TRUE(s->flush(kPatience));
  }
  // The documented layout: hash swarm:state:<key>, fields state, version, updated_ms.
  EXPECT_EQ(redis.command({"TYPE", "swarm:state:agent/7"})->str, std::string("hash"));
  auto raw = stored(redis, "agent/7");
  ASSERT_TRUE(raw);
  EXPECT_EQ(*raw, state);

  // A new store (a restarted process) reads it from the server.
  auto s = store(options(redis));
  auto r = load(*s, "agent/7");
  ASSERT_TRUE(r) << r.error();
  ASSERT_TRUE(*r);
  EXPECT_EQ(**r, state);
  auto none = load(*s, "agent/unknown");
  ASSERT_TRUE(none) << none.error();
  EXPECT_FALSE(*none);
}

TEST(RedisStateStore, AQueuedStateAnswersALoadBeforeItIsWritten) {
  test::RedisServer redis;
  auto opts = quick(redis);
  opts.max_delay = 60s;  // the writer holds the batch until a flush
  auto s = store(opts);
  ASSERT_TRUE(eventually([&] { return bool(s->ready()); }));
  s->put("k", {.data = "queued", .version = 3});
  auto r = load(*s, "k");
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->data, "queued");
  EXPECT_FALSE(stored(redis, "k"));  // not written yet
  ASSERT_TRUE(s->flush(kPatience));
  EXPECT_EQ(stored(redis, "k")->data, "queued");
}

// The keys of `redis` that match `pattern`, sorted.
std::vector<std::string> keys(const test::RedisServer& redis, const std::string& pattern) {
  auto r = redis.command({"KEYS", pattern});
  std::vector<std::string> out;
  for (std::size_t i = 0; i < r->elements; ++i) out.emplace_back(r->element[i]->str, r->element[i]->len);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(RedisStateStore, AKeyThatIsNotAStateHashIsKeptAsideAndLoadsAsNoState) {
  test::RedisServer redis;
  redis.command({"SET", "swarm:state:str", "x"});
  redis.command({"HSET", "swarm:state:partial", "version", "x"});
  auto s = store({.url = redis.url()});
  auto wrong_type = load(*s, "str");
  ASSERT_TRUE(wrong_type) << wrong_type.error();
  EXPECT_FALSE(*wrong_type);  // the agent starts fresh
  auto partial = load(*s, "partial");
  ASSERT_TRUE(partial) << partial.error();
  EXPECT_FALSE(*partial);
  EXPECT_EQ(s->stats().unreadable, 2u);
  // Nothing deleted: both values are kept under a name of their own.
  const auto aside = keys(redis, "swarm:state:*.unreadable.*");
  ASSERT_EQ(aside.size(), 2u);
  EXPECT_EQ(aside[0].rfind("swarm:state:partial.unreadable.", 0), 0u) << aside[0];
  EXPECT_EQ(aside[1].rfind("swarm:state:str.unreadable.", 0), 0u) << aside[1];
  EXPECT_EQ(redis.command({"GET", aside[1]})->str, std::string("x"));
  // The key is free again: the next state goes where it belongs.
  s->put("str", {.data = "fresh", .version = 1});
  ASSERT_TRUE(s->flush(kPatience));
  EXPECT_EQ(stored(redis, "str")->data, "fresh");
}

TEST(RedisStateStore, AWriteToAKeyOfAnotherTypeMovesThatValueAsideAndArrives) {
  test::RedisServer redis;
  redis.command({"RPUSH", "swarm:state:list", "a"});
  auto s = store(quick(redis));
  s->put("list", {.data = "mine", .version = 1});
  auto flushed = s->flush(kPatience);
  ASSERT_TRUE(flushed) << flushed.error();
  EXPECT_EQ(stored(redis, "list")->data, "mine");
  EXPECT_EQ(keys(redis, "swarm:state:list.unreadable.*").size(), 1u);
  EXPECT_EQ(s->stats().unreadable, 1u);
}

// -- coalescing, many writers, batching ---

TEST(RedisStateStore, ThousandPutsOfOneKeyWriteOnceAndTheNewestWins) {
  test::RedisServer redis;
  auto opts = quick(redis);
  opts.max_delay = 60s;  // every put lands before the writer takes the batch (at flush)
  auto s = store(opts);
  ASSERT_TRUE(eventually([&] { return bool(s->ready()); }));
  for (std::uint64_t v = 1; v <= 1000; ++v) s->put("hot", {.data = "v" + std::to_string(v), .version = v});
  ASSERT_TRUE(s->flush(kPatience));
  const StateStoreStats st = s->stats();
  EXPECT_EQ(st.puts, 1000u);
  EXPECT_EQ(st.coalesced, 999u);
  EXPECT_EQ(st.written, 1u);
  EXPECT_EQ(st.pending, 0u);
  EXPECT_EQ(stored(redis, "hot")->version, 1000u);
  EXPECT_EQ(stored(redis, "hot")->data, "v1000");
}

TEST_P(RedisStateStoreBothWays, ManyKeysFromFourThreadsAllArriveWithTheirNewestState) {
  test::RedisServer redis;
  auto s = store(options(redis));
  constexpr int kThreads = 4, kKeys = 5000, kRounds = 3;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t round = 1; round <= kRounds; ++round) {
        for (int i = 0; i < kKeys; ++i) {
          s->put("t" + std::to_string(t) + "/" + std::to_string(i), {.data = std::to_string(round), .version = round});
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(s->flush(kPatience));
  EXPECT_EQ(dbsize(redis), kThreads * kKeys);
  std::vector<std::string> keys;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kKeys; ++i) keys.push_back("t" + std::to_string(t) + "/" + std::to_string(i));
  }
  for (std::uint64_t v : stored_versions(redis, keys)) ASSERT_EQ(v, std::uint64_t{kRounds});
  const StateStoreStats st = s->stats();
  EXPECT_EQ(st.puts, std::uint64_t{kThreads * kKeys * kRounds});
  EXPECT_EQ(st.written + st.coalesced, st.puts);  // every put was written or replaced by a newer one
  EXPECT_EQ(st.pending, 0u);
  EXPECT_EQ(st.write_errors, 0u);
}

TEST(RedisStateStore, UnderLoadBatchesGrowSoRoundTripsAreFarFewerThanWrites) {
  test::RedisServer redis;
  metrics::Registry registry;  // outlives the store
  auto s = store({.url = redis.url()});
  s->export_metrics(registry);
  constexpr std::uint64_t kKeys = 50'000;
  for (std::uint64_t i = 0; i < kKeys; ++i) s->put("k" + std::to_string(i), {.data = std::string(128, 'x'), .version = 1});
  ASSERT_TRUE(s->flush(kPatience));
  const StateStoreStats st = s->stats();
  EXPECT_EQ(st.written, kKeys);
  EXPECT_EQ(dbsize(redis), static_cast<long long>(kKeys));
  EXPECT_GE(st.batches, kKeys / 1024);  // at most max_batch per round trip
  EXPECT_LT(st.batches, kKeys / 10) << "batches should fill while a round trip is in flight";
  EXPECT_TRUE(st.connected);

  const std::string text = registry.render();
  EXPECT_NE(text.find("swarm_state_written_total{backend=\"redis\"} 50000"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_state_pending_keys{backend=\"redis\"} 0"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_state_connected{backend=\"redis\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_state_flush_seconds_count{backend=\"redis\"} " + std::to_string(st.batches)),
            std::string::npos)
      << text;
  for (const char* name : {"swarm_state_coalesced_total", "swarm_state_write_errors_total",
                           "swarm_state_reconnects_total", "swarm_state_puts_total"}) {
    EXPECT_NE(text.find(std::string(name) + "{backend=\"redis\"}"), std::string::npos) << name;
  }
}

// -- credentials, databases, refusals ---

TEST(RedisStateStore, UsesThePasswordAndDatabaseOfItsUrl) {
  test::RedisServer redis;
  redis.command({"CONFIG", "SET", "requirepass", "s3cret"});
  {
    auto wrong = store({.url = "redis://:nope@127.0.0.1:" + std::to_string(redis.port()), .backoff_initial = 10ms});
    ASSERT_TRUE(eventually([&] {
      auto r = wrong->ready();
      return !r && r.error().find("refused AUTH") != std::string::npos;
    }));
    auto r = wrong->ready();
    EXPECT_EQ(r.error().find("nope"), std::string::npos) << r.error();  // the password stays secret
    auto flushed = wrong->flush(10ms);  // nothing put: nothing to wait for
    EXPECT_TRUE(flushed);
  }
  auto s = store({.url = "redis://:s3cret@127.0.0.1:" + std::to_string(redis.port()) + "/2"});
  s->put("k", {.data = "in db 2", .version = 1});
  ASSERT_TRUE(s->flush(kPatience));
  auto replies = redis.pipeline({{"AUTH", "s3cret"}, {"SELECT", "2"}, {"HGET", "swarm:state:k", "state"}, {"SELECT", "0"},
                                 {"EXISTS", "swarm:state:k"}});
  EXPECT_EQ(std::string(replies[2]->str, replies[2]->len), "in db 2");
  EXPECT_EQ(replies[4]->integer, 0);
  auto r = load(*s, "k");
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->data, "in db 2");
  redis.pipeline({{"AUTH", "s3cret"}, {"CONFIG", "SET", "requirepass", ""}});
}

TEST(RedisStateStore, WritesTheServerRefusesAreRetriedNeverDropped) {
  test::RedisServer redis;
  redis.command({"CONFIG", "SET", "maxmemory-policy", "noeviction"});
  redis.command({"CONFIG", "SET", "maxmemory", "1"});  // every write refused: OOM
  auto s = store(quick(redis));
  s->put("a", {.data = "a", .version = 1});
  s->put("b", {.data = "b", .version = 1});
  auto flushed = s->flush(300ms);
  ASSERT_FALSE(flushed);
  EXPECT_NE(flushed.error().find("2 keys still pending"), std::string::npos) << flushed.error();
  EXPECT_NE(flushed.error().find("OOM"), std::string::npos) << flushed.error();
  EXPECT_GE(s->stats().write_errors, 1u);
  EXPECT_FALSE(s->ready());
  redis.command({"CONFIG", "SET", "maxmemory", "0"});  // the operator makes room
  ASSERT_TRUE(s->flush(kPatience));
  EXPECT_EQ(stored(redis, "a")->data, "a");
  EXPECT_EQ(stored(redis, "b")->data, "b");
  ASSERT_TRUE(eventually([&] { return bool(s->ready()); }));
}

// -- faults ---

TEST(RedisStateStore, AServerDownAtCreationGetsEverythingOnceItStarts) {
  test::RedisServer redis({.start = false});
  auto s = store(quick(redis));
  ASSERT_TRUE(eventually([&] {
    auto r = s->ready();
    return !r && r.error().find("Connection refused") != std::string::npos;
  }));
  EXPECT_EQ(s->ready().error().rfind("storage: state store not ready: cannot connect to Redis at 127.0.0.1:", 0), 0u)
      << s->ready().error();
  for (std::uint64_t i = 0; i < 100; ++i) s->put("k" + std::to_string(i), {.data = "d", .version = i + 1});
  auto early = s->flush(20ms);
  ASSERT_FALSE(early);
  EXPECT_NE(early.error().find("100 keys still pending"), std::string::npos) << early.error();
  EXPECT_EQ(s->stats().pending, 100u);

  redis.start();
  ASSERT_TRUE(s->flush(kPatience));
  ASSERT_TRUE(eventually([&] { return bool(s->ready()); }));
  EXPECT_EQ(dbsize(redis), 100);
  EXPECT_EQ(stored(redis, "k99")->version, 100u);
  EXPECT_EQ(s->stats().reconnects, 0u);  // a first connection is not a reconnect
}

// SIGSTOP: the connection stays open and nothing answers. Readiness must not
// say ready for the whole freeze, and nothing put meanwhile is lost.
TEST(RedisStateStore, AFrozenServerIsNotReadyAndEveryPutArrivesAfterTheThaw) {
  test::RedisServer redis;
  RedisStateStoreOptions options = quick(redis);
  options.command_timeout = 1s;
  auto s = store(options);
  ASSERT_TRUE(eventually([&] { return bool(s->ready()); }));
  redis.freeze();
  for (std::uint64_t i = 0; i < 100; ++i) s->put("k" + std::to_string(i), {.data = "d", .version = i + 1});
  ASSERT_TRUE(eventually([&] { return !s->ready(); }, 20s)) << "ready during a freeze";
  redis.thaw();
  ASSERT_TRUE(s->flush(kPatience));
  ASSERT_TRUE(eventually([&] { return bool(s->ready()); }));
  EXPECT_EQ(dbsize(redis), 100);
  EXPECT_EQ(stored(redis, "k99")->version, 100u);
}

TEST_P(RedisStateStoreBothWays, ServerKilledMidRunEveryKeysNewestStateArrives) {
  test::RedisServer redis({.appendonly = true});  // what was acknowledged survives the kill
  auto s = store(options(redis));
  constexpr int kKeys = 500;
  std::vector<std::uint64_t> newest(kKeys, 0);  // the producer's; read after it joined
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    for (std::uint64_t n = 0; !stop.load(std::memory_order_relaxed); ++n) {
      const int k = static_cast<int>((n * 7919) % kKeys);
      const std::uint64_t v = ++newest[k];
      s->put("k" + std::to_string(k), {.data = "k" + std::to_string(k) + "@" + std::to_string(v), .version = v});
      if (n % 64 == 0) std::this_thread::sleep_for(100us);  // leave the two cores some room
    }
  });
  const auto puts_now = [&] { return s->stats().puts; };

  ASSERT_TRUE(eventually([&] { return s->stats().written > 2000; }));
  redis.stop(true);  // SIGKILL, mid-run
  const auto at_kill = puts_now();
  ASSERT_TRUE(eventually([&] { return !s->stats().connected; }));
  ASSERT_TRUE(eventually([&] { return puts_now() > at_kill + 5000; }));  // puts go on while it is down
  EXPECT_GT(s->stats().pending, 0u);

  redis.start();
  ASSERT_TRUE(eventually([&] { return s->stats().connected; }));
  const auto written_back = s->stats().written;
  ASSERT_TRUE(eventually([&] { return s->stats().written > written_back + 2000; }));
  stop = true;
  producer.join();

  auto flushed = s->flush(kPatience);
  ASSERT_TRUE(flushed) << flushed.error();
  std::vector<std::string> keys;
  for (int k = 0; k < kKeys; ++k) keys.push_back("k" + std::to_string(k));
  const auto versions = stored_versions(redis, keys);
  for (int k = 0; k < kKeys; ++k) ASSERT_EQ(versions[k], newest[k]) << "key k" << k;
  EXPECT_EQ(stored(redis, "k7")->data, "k7@" + std::to_string(newest[7]));
  const StateStoreStats st = s->stats();
  EXPECT_GE(st.reconnects, 1u);
  EXPECT_GE(st.write_errors, 1u);
  EXPECT_EQ(st.pending, 0u);
  EXPECT_TRUE(s->ready());
}

TEST_P(RedisStateStoreBothWays, ALoadWaitsWhileTheServerIsDownAndIsAnsweredWhenItIsBack) {
  test::RedisServer redis({.appendonly = true});
  auto s = store(options(redis));
  s->put("k", {.data = "before the crash", .version = 5});
  ASSERT_TRUE(s->flush(kPatience));
  redis.stop(true);
  auto answer = load_async(*s, "k");
  // Only the server knows "k" now: no answer while it is down (not an error either).
  EXPECT_EQ(answer.wait_for(300ms), std::future_status::timeout);
  redis.start();
  ASSERT_EQ(answer.wait_for(kPatience), std::future_status::ready);
  auto r = answer.get();
  ASSERT_TRUE(r) << r.error();
  ASSERT_TRUE(*r);
  EXPECT_EQ((*r)->data, "before the crash");
  EXPECT_EQ((*r)->version, 5u);
}

TEST(RedisStateStore, ClosingWithTheServerDownReturnsWithinCloseTimeoutAndFailsWaitingLoads) {
  test::RedisServer redis;
  auto opts = quick(redis);
  opts.close_timeout = 300ms;
  auto s = store(opts);
  ASSERT_TRUE(eventually([&] { return bool(s->ready()); }));
  redis.stop(true);
  for (int i = 0; i < 100; ++i) s->put("k" + std::to_string(i), {.data = "lost", .version = 1});
  auto answer = load_async(*s, "unknown");
  const auto start = Clock::now();
  s.reset();
  EXPECT_LT(Clock::now() - start, 10s);  // close_timeout (300 ms) plus a loaded machine's slack
  ASSERT_EQ(answer.wait_for(0s), std::future_status::ready);
  auto r = answer.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "storage: state store closed");
}

// -- with the runtime ---

// Sums what it is sent; its total is its state, and `seen` shows it.
class Counter : public Agent {
 public:
  static constexpr std::string_view kTypeName = "counter";
  Counter(std::string key, std::atomic<long>* seen) : seen_(seen) { persist_as(std::move(key)); }
  void restore(std::string_view state, std::uint64_t) override { total_ = std::stol(std::string(state)); }
  void on_start() override { seen_->store(total_); }
  void on_message(Message& m) override {
    total_ += m.payload.as<int>();
    seen_->store(total_);
    mark_dirty();
  }
  std::string snapshot() const override { return std::to_string(total_); }

 private:
  long total_ = 0;
  std::atomic<long>* seen_;
};

TEST(RedisStateStore, APersistentAgentGetsItsStateBackInTheNextProcess) {
  test::RedisServer redis;
  std::atomic<long> seen{-1};
  {
    RuntimeConfig cfg;
    cfg.workers = 2;
    cfg.state_store = store({.url = redis.url()});
    Runtime rt(std::move(cfg));
    const AgentRef c = rt.spawn<Counter>("counter/1", &seen);
    for (int i = 1; i <= 10; ++i) ASSERT_EQ(rt.send(c, i), SendResult::ok);
    ASSERT_TRUE(eventually([&] { return seen.load() == 55; }));
    // The store's series are part of the runtime's /metrics.
    EXPECT_NE(rt.metrics().render().find("swarm_state_puts_total{backend=\"redis\"}"), std::string::npos);
  }  // shutdown flushes the state store
  auto raw = stored(redis, "counter/1");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->data, "55");
  EXPECT_GE(raw->version, 1u);

  seen = -1;
  RuntimeConfig cfg;
  cfg.workers = 2;
  cfg.state_store = store({.url = redis.url()});
  Runtime rt(std::move(cfg));
  rt.spawn<Counter>("counter/1", &seen);
  ASSERT_TRUE(eventually([&] { return seen.load() != -1; }));
  EXPECT_EQ(seen.load(), 55);
}

TEST(RedisStateStore, AServerThatComesBackEmptyIsNoticedAndEveryLiveAgentStoresItsStateAgain) {
  test::RedisServer redis;  // no persistence: a restart comes back empty
  constexpr int kAgents = 200;
  std::vector<std::atomic<long>> seen(kAgents);
  for (auto& s : seen) s = -1;
  RuntimeConfig cfg;
  cfg.workers = 2;
  cfg.state_store = store(quick(redis));
  auto* st = static_cast<ObservableStateStore*>(cfg.state_store.get());
  Runtime rt(std::move(cfg));
  std::vector<AgentRef> agents;
  for (int i = 0; i < kAgents; ++i) agents.push_back(rt.spawn<Counter>("counter/" + std::to_string(i), &seen[i]));
  for (int i = 0; i < kAgents; ++i) ASSERT_EQ(rt.send(agents[i], i + 1), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return st->stats().written >= kAgents && st->stats().pending == 0; }));
  ASSERT_EQ(dbsize(redis), kAgents);
  EXPECT_EQ(st->stats().server_restarts, 0u);

  redis.stop(true);
  redis.start();  // the same address, nothing in it
  ASSERT_EQ(dbsize(redis), 0);
  ASSERT_TRUE(eventually([&] { return st->stats().server_restarts == 1; }));
  ASSERT_TRUE(eventually([&] { return dbsize(redis) == kAgents; }));
  for (int i = 0; i < kAgents; ++i) {
    auto raw = stored(redis, "counter/" + std::to_string(i));
    ASSERT_TRUE(raw) << i;
    EXPECT_EQ(raw->data, std::to_string(i + 1)) << i;
    EXPECT_GE(raw->version, 2u) << i;  // a new snapshot, not a replay of the lost one
  }
  EXPECT_NE(rt.metrics().render().find("swarm_state_server_restarts_total{backend=\"redis\"} 1"), std::string::npos);
}

TEST(RedisStateStore, AServerRestartedWithItsDataStillMakesLiveAgentsStoreAgain) {
  // Even a durable server may have lost its last fsync interval: a new run id is enough.
  test::RedisServer redis({.appendonly = true});
  auto s = store(quick(redis));
  std::atomic<int> rewrites{0};
  s->on_written_state_lost([&] { ++rewrites; });
  s->put("k", {.data = "v", .version = 1});
  ASSERT_TRUE(s->flush(kPatience));
  redis.stop(true);
  redis.start();
  s->put("k", {.data = "w", .version = 2});
  ASSERT_TRUE(s->flush(kPatience));
  ASSERT_TRUE(eventually([&] { return rewrites.load() == 1; }));
  EXPECT_EQ(s->stats().server_restarts, 1u);
  EXPECT_EQ(stored(redis, "k")->data, "w");
}

}  // namespace
}  // namespace swarm::storage
