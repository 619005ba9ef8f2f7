// S1, the state workload (see workloads.hpp): `scale` keys, one 128-byte
// state each, into Redis through Swarm's state store or through raw hiredis
// pipelines.
//
// Both sides write the same hashes (the store's layout: `swarm:state:<key>`
// with fields state, version, updated_ms) into an emptied database (FLUSHDB)
// and do the same client-side work per state: format the key, fill 128 bytes.
// State i: key "s1:<i>", bytes that vary with i (every byte value appears
// across states), version 1, updated_ms the run's start. The checksum is the
// number of keys in the database afterwards (DBSIZE): `scale` when every
// state arrived.

#include <hiredis/hiredis.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "benchmarks/workloads.hpp"
#include "storage/state_store.hpp"

namespace swarm::bench {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kStandardKeys = 1'000'000;
constexpr std::size_t kStateBytes = 128;
constexpr std::size_t kRawBatch = 1024;
constexpr std::string_view kPrefix = "swarm:state:";  // the store's default key_prefix

std::uint64_t key_count(const WorkloadParams& p) { return p.scale != 0 ? p.scale : kStandardKeys; }

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("S1: " + what); }

// "s1:<i>" appended to `out`.
void append_key(std::string& out, std::uint64_t i) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, i).ptr;
  out.append("s1:").append(digits, end);
}

// 128 bytes: the state number, then a pattern that varies with it.
void fill_state(std::string& out, std::uint64_t i) {
  out.resize(kStateBytes);
  for (std::size_t k = 0; k < 8; ++k) out[k] = static_cast<char>(i >> (8 * k));
  for (std::size_t k = 8; k < kStateBytes; ++k) out[k] = static_cast<char>((i + k * 37) & 0xFF);
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct RedisFree {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using Connection = std::unique_ptr<redisContext, RedisFree>;

struct ReplyFree {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

storage::RedisUrl parse_url(const WorkloadParams& p) {
  if (p.redis_url.empty()) fail("needs a Redis URL (swarm-bench S1 --redis redis://HOST:PORT)");
  auto url = storage::parse_redis_url(p.redis_url);
  if (!url) fail(url.error());
  return *url;
}

// Runs one command; throws with the server's words when it fails.
Reply command(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  Reply r(static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
  if (!r) fail("lost the connection to Redis: " + std::string(c->errstr));
  if (r->type == REDIS_REPLY_ERROR) fail(args[0] + " failed: " + std::string(r->str, r->len));
  return r;
}

// A connection to the URL's server and database (AUTH, SELECT done).
Connection open(const storage::RedisUrl& url) {
  Connection c(redisConnectWithTimeout(url.host.c_str(), url.port, timeval{5, 0}));
  if (!c || c->err != 0) {
    fail("cannot connect to Redis at " + url.endpoint() + ": " + (c ? c->errstr : "out of memory"));
  }
  redisSetTimeout(c.get(), timeval{60, 0});
  if (!url.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!url.user.empty()) auth.push_back(url.user);
    auth.push_back(url.password);
    command(c.get(), auth);
  }
  if (url.db != 0) command(c.get(), {"SELECT", std::to_string(url.db)});
  return c;
}

std::uint64_t dbsize(const storage::RedisUrl& url) {
  Connection c = open(url);
  return static_cast<std::uint64_t>(command(c.get(), {"DBSIZE"})->integer);
}

void flushdb(const storage::RedisUrl& url) {
  Connection c = open(url);
  command(c.get(), {"FLUSHDB"});
}

}  // namespace

RunResult swarm_s1(const WorkloadParams& p) {
  const storage::RedisUrl url = parse_url(p);
  flushdb(url);
  const std::uint64_t n = key_count(p);
  storage::RedisStateStoreOptions options{.url = p.redis_url};
  if (p.batch != 0) options.max_batch = p.batch;
  if (p.max_delay_ms > 0) options.max_delay = std::chrono::milliseconds(p.max_delay_ms);
  if (p.connections != 0) options.connections = p.connections;
  auto made = storage::make_redis_state_store(options);
  if (!made) fail(made.error());
  std::unique_ptr<storage::ObservableStateStore> store = std::move(*made);
  // Connected before the clock starts, as the raw side is.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!store->ready()) {
    if (Clock::now() > deadline) fail(store->ready().error());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }

  const std::int64_t updated_ms = now_ms();
  std::string key;
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    key.clear();
    append_key(key, i);
    StoredState state{.data = {}, .version = 1, .updated_ms = updated_ms};
    fill_state(state.data, i);
    store->put(key, std::move(state));
  }
  if (auto flushed = store->flush(std::chrono::minutes(10)); !flushed) fail(flushed.error());
  const double seconds = seconds_since(start);
  const storage::StateStoreStats stats = store->stats();
  store.reset();
  if (stats.written != n) {
    fail("the store wrote " + std::to_string(stats.written) + " states of " + std::to_string(n));
  }
  return RunResult{.value = static_cast<double>(n) / seconds,
                   .seconds = seconds,
                   .bytes_per_agent = std::nullopt,
                   .checksum = dbsize(url)};
}

RunResult raw_s1(const WorkloadParams& p) {
  const storage::RedisUrl url = parse_url(p);
  flushdb(url);
  const std::uint64_t n = key_count(p);
  const std::size_t batch = p.batch != 0 ? p.batch : kRawBatch;
  Connection c = open(url);

  char updated[24];
  const std::size_t updated_len =
      static_cast<std::size_t>(std::to_chars(updated, updated + sizeof updated, now_ms()).ptr - updated);
  std::string key(kPrefix), state;
  const auto start = Clock::now();
  for (std::uint64_t first = 0; first < n; first += batch) {
    const std::uint64_t end = std::min<std::uint64_t>(n, first + batch);
    for (std::uint64_t i = first; i < end; ++i) {
      key.resize(kPrefix.size());
      append_key(key, i);
      fill_state(state, i);
      const char* argv[8] = {"HSET", key.data(), "state", state.data(), "version", "1", "updated_ms", updated};
      const std::size_t lens[8] = {4, key.size(), 5, state.size(), 7, 1, 10, updated_len};
      if (redisAppendCommandArgv(c.get(), 8, argv, lens) != REDIS_OK) fail("out of memory");
    }
    for (std::uint64_t i = first; i < end; ++i) {
      void* reply = nullptr;
      if (redisGetReply(c.get(), &reply) != REDIS_OK) fail("lost the connection to Redis: " + std::string(c->errstr));
      Reply r(static_cast<redisReply*>(reply));
      if (r->type == REDIS_REPLY_ERROR) fail("HSET failed: " + std::string(r->str, r->len));
    }
  }
  const double seconds = seconds_since(start);
  c.reset();
  return RunResult{.value = static_cast<double>(n) / seconds,
                   .seconds = seconds,
                   .bytes_per_agent = std::nullopt,
                   .checksum = dbsize(url)};
}

}  // namespace swarm::bench
