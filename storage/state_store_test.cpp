// The state store without a server: Redis URLs, option validation, the memory
// store, and what the Redis store does when nothing listens. (Against a real
// redis-server: tests/redis_state_test.cpp.)

#include "storage/state_store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "metrics/registry.hpp"

namespace swarm::storage {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Loads `key` and waits for the answer (the memory store answers before load returns).
Result<std::optional<StoredState>> load_now(StateStore& store, const std::string& key) {
  std::promise<Result<std::optional<StoredState>>> answer;
  auto f = answer.get_future();
  store.load(key, [&](Result<std::optional<StoredState>> r) { answer.set_value(std::move(r)); });
  return f.get();
}

std::string error_of(std::string_view url) {
  auto r = parse_redis_url(url);
  return r ? std::string("(parsed)") : r.error();
}

// -- Redis URLs ---

TEST(RedisUrl, HostAloneGetsTheDefaultPortAndDatabase) {
  auto u = parse_redis_url("redis://cache.internal");
  ASSERT_TRUE(u) << u.error();
  EXPECT_EQ(u->host, "cache.internal");
  EXPECT_EQ(u->port, 6379);
  EXPECT_EQ(u->db, 0);
  EXPECT_TRUE(u->password.empty());
  EXPECT_EQ(u->endpoint(), "cache.internal:6379/0");
}

TEST(RedisUrl, PortDatabaseAndCredentialsAreRead) {
  auto u = parse_redis_url("redis://:s3cret@127.0.0.1:6390/3");
  ASSERT_TRUE(u) << u.error();
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 6390);
  EXPECT_EQ(u->db, 3);
  EXPECT_EQ(u->user, "");
  EXPECT_EQ(u->password, "s3cret");

  auto acl = parse_redis_url("redis://swarm:p%40ss%2Fw:rd@localhost:7000/");
  ASSERT_TRUE(acl) << acl.error();
  EXPECT_EQ(acl->user, "swarm");
  EXPECT_EQ(acl->password, "p@ss/w:rd");  // percent-decoded; a raw ':' after the first is the password's
  EXPECT_EQ(acl->db, 0);
}

TEST(RedisUrl, AnIpv6HostIsWrittenInBrackets) {
  auto u = parse_redis_url("redis://[::1]:6380/1");
  ASSERT_TRUE(u) << u.error();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->endpoint(), "[::1]:6380/1");
}

TEST(RedisUrl, ErrorsSayWhatIsWrong) {
  EXPECT_EQ(error_of("127.0.0.1:6379"),
            "storage: invalid Redis URL '127.0.0.1:6379': expected redis://[[user]:password@]host[:port][/db]");
  EXPECT_EQ(error_of(""), "storage: invalid Redis URL '': expected redis://[[user]:password@]host[:port][/db]");
  EXPECT_EQ(error_of("redis://h:0"), "storage: invalid Redis URL 'redis://h:0': bad port '0' (expected 1-65535)");
  EXPECT_EQ(error_of("redis://h:65536"),
            "storage: invalid Redis URL 'redis://h:65536': bad port '65536' (expected 1-65535)");
  EXPECT_EQ(error_of("redis://h:http"),
            "storage: invalid Redis URL 'redis://h:http': bad port 'http' (expected 1-65535)");
  EXPECT_EQ(error_of("redis://h/x"), "storage: invalid Redis URL 'redis://h/x': bad db 'x' (expected a number >= 0)");
  EXPECT_EQ(error_of("redis://h/-1"),
            "storage: invalid Redis URL 'redis://h/-1': bad db '-1' (expected a number >= 0)");
  EXPECT_NE(error_of("redis://").find("missing host"), std::string::npos);
  EXPECT_NE(error_of("redis://:6379").find("missing host"), std::string::npos);
  EXPECT_NE(error_of("redis://h:").find("empty port"), std::string::npos);
  EXPECT_NE(error_of("redis://::1").find("IPv6 host needs brackets"), std::string::npos);
  EXPECT_NE(error_of("redis://[::1").find("unterminated '['"), std::string::npos);
  EXPECT_NE(error_of("rediss://h").find("TLS"), std::string::npos);
  EXPECT_NE(error_of("redis://pass@h").find("credentials must be"), std::string::npos);
  EXPECT_NE(error_of("redis://:@h").find("empty password"), std::string::npos);
  EXPECT_NE(error_of("redis://:a%zz@h").find("percent-encoding"), std::string::npos);
}

TEST(RedisUrl, ErrorsNeverShowThePassword) {
  const std::string e = error_of("redis://:hunter2@h:99999");
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
  EXPECT_NE(e.find("redis://:***@h:99999"), std::string::npos) << e;
}

// -- Redis store options ---

TEST(RedisStateStoreFactory, AMalformedUrlFailsCreation) {
  auto s = make_redis_state_store({.url = "localhost:6379"});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().rfind("storage: invalid Redis URL 'localhost:6379'", 0), 0u) << s.error();
}

TEST(RedisStateStoreFactory, BadOptionsFailCreation) {
  const std::string url = "redis://127.0.0.1:1";
  EXPECT_FALSE(make_redis_state_store({.url = url, .connections = 0}));
  EXPECT_FALSE(make_redis_state_store({.url = url, .connections = 65}));
  EXPECT_FALSE(make_redis_state_store({.url = url, .max_batch = 0}));
  EXPECT_FALSE(make_redis_state_store({.url = url, .max_delay = -1ms}));
  EXPECT_FALSE(make_redis_state_store({.url = url, .backoff_initial = 0ms}));
  EXPECT_FALSE(make_redis_state_store({.url = url, .backoff_initial = 100ms, .backoff_max = 10ms}));
  EXPECT_FALSE(make_redis_state_store({.url = url, .connect_timeout = 0ms}));
  auto e = make_redis_state_store({.url = url, .max_batch = 0});
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error(), "storage: invalid state store options: max_batch must be positive");
}

TEST(RedisStateStoreFactory, AServerThatIsDownIsNotAnErrorAndCloseIsBounded) {
  // Port 1 on loopback: nothing listens there.
  auto made = make_redis_state_store(
      {.url = "redis://127.0.0.1:1", .backoff_initial = 10ms, .backoff_max = 20ms, .close_timeout = 200ms});
  ASSERT_TRUE(made) << made.error();
  auto store = std::move(*made);
  store->put("a", {.data = "x", .version = 1});
  store->put("a", {.data = "y", .version = 2});
  // A queued state answers a load at once, server or not.
  auto queued = load_now(*store, "a");
  ASSERT_TRUE(queued && *queued);
  EXPECT_EQ((*queued)->data, "y");

  const auto deadline = Clock::now() + 60s;
  // First "not connected ... yet", then, once a writer has tried, why not.
  while (store->ready() || store->ready().error().find("Connection refused") == std::string::npos) {
    ASSERT_LT(Clock::now(), deadline) << "ready() never named the unreachable server";
    std::this_thread::sleep_for(5ms);
  }
  auto ready = store->ready();
  EXPECT_EQ(ready.error().rfind("storage: state store not ready: cannot connect to Redis at 127.0.0.1:1/0", 0), 0u)
      << ready.error();

  auto flushed = store->flush(20ms);
  ASSERT_FALSE(flushed);
  EXPECT_NE(flushed.error().find("1 keys still pending"), std::string::npos) << flushed.error();
  const StateStoreStats s = store->stats();
  EXPECT_EQ(s.puts, 2u);
  EXPECT_EQ(s.coalesced, 1u);
  EXPECT_EQ(s.written, 0u);
  EXPECT_EQ(s.pending, 1u);
  EXPECT_FALSE(s.connected);

  // A load the server must answer waits; closing answers it with an error.
  std::promise<Result<std::optional<StoredState>>> answer;
  store->load("b", [&](Result<std::optional<StoredState>> r) { answer.set_value(std::move(r)); });
  auto f = answer.get_future();
  const auto start = Clock::now();
  store.reset();
  EXPECT_LT(Clock::now() - start, 10s);  // close_timeout (200 ms) plus a loaded machine's slack
  ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
  auto r = f.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "storage: state store closed");
}

// -- the memory store ---

TEST(MemoryStateStore, LoadReturnsTheNewestStateOrNothing) {
  auto store = make_memory_state_store();
  auto none = load_now(*store, "k");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  store->put("k", {.data = "one", .version = 1, .updated_ms = 10});
  store->put("k", {.data = "two", .version = 2, .updated_ms = 20});
  auto two = load_now(*store, "k");
  ASSERT_TRUE(two && *two);
  EXPECT_EQ(**two, (StoredState{.data = "two", .version = 2, .updated_ms = 20}));
  EXPECT_TRUE(store->flush(0ms));
  EXPECT_TRUE(store->ready());
}

TEST(MemoryStateStore, BinaryStatesAndKeysRoundTrip) {
  auto store = make_memory_state_store();
  std::string bytes;
  for (int c = 0; c < 256; ++c) bytes += static_cast<char>(c);
  const std::string key("a\0b", 3);
  store->put(key, {.data = bytes, .version = 7});
  auto r = load_now(*store, key);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->data, bytes);
  auto other = load_now(*store, "a");
  ASSERT_TRUE(other);
  EXPECT_FALSE(*other);
}

TEST(MemoryStateStore, ALoadCallbackMayPut) {
  auto store = make_memory_state_store();
  store->put("k", {.data = "v", .version = 1});
  bool called = false;
  store->load("k", [&](Result<std::optional<StoredState>> r) {
    ASSERT_TRUE(r && *r);
    store->put("k", {.data = "w", .version = (*r)->version + 1});
    called = true;
  });
  EXPECT_TRUE(called);
  auto r = load_now(*store, "k");
  EXPECT_EQ((*r)->version, 2u);
}

TEST(MemoryStateStore, ConcurrentPutsAndLoadsAreSafe) {
  auto store = make_memory_state_store();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t i = 1; i <= 2000; ++i) {
        const std::string key = "k" + std::to_string(t) + "/" + std::to_string(i % 50);
        store->put(key, {.data = std::to_string(i), .version = i});
        store->load(key, [](Result<std::optional<StoredState>> r) { EXPECT_TRUE(r && *r); });
      }
    });
  }
  for (auto& th : threads) th.join();
  const StateStoreStats s = store->stats();
  EXPECT_EQ(s.puts, 8000u);
  EXPECT_EQ(s.written, 8000u);
  EXPECT_EQ(s.pending, 0u);
  for (int t = 0; t < 4; ++t) {
    auto r = load_now(*store, "k" + std::to_string(t) + "/0");
    ASSERT_TRUE(r && *r);
    EXPECT_EQ((*r)->version, 2000u);  // the last i with i % 50 == 0
  }
}

TEST(MemoryStateStore, ExportsItsSeriesWithTheMemoryLabel) {
  metrics::Registry registry;  // outlives the store
  auto store = make_memory_state_store();
  store->export_metrics(registry);
  store->put("a", {.data = "x", .version = 1});
  const std::string text = registry.render();
  EXPECT_NE(text.find("swarm_state_written_total{backend=\"memory\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_state_pending_keys{backend=\"memory\"} 0"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_state_connected{backend=\"memory\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_state_flush_seconds_count{backend=\"memory\"} 0"), std::string::npos) << text;
  store.reset();
  EXPECT_EQ(registry.render().find("swarm_state_written_total"), std::string::npos);  // the callback is gone
}

}  // namespace
}  // namespace swarm::storage
