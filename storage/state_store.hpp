#pragma once
// Where persistent agents' state lives: in memory (tests, one process) or in
// Redis, written behind by background threads through pipelines.
//
//   auto store = storage::make_redis_state_store({.url = "redis://127.0.0.1:6379/0"});
//   if (!store) return fail(store.error());   // only bad options or a malformed URL
//   (*store)->put("counter/7", {.data = bytes, .version = 3, .updated_ms = now_ms});
//   (*store)->load("counter/7", [](Result<std::optional<StoredState>> r) { ... });
//   (void)(*store)->flush(std::chrono::seconds(5));
//
// Contract (runtime/persistence.hpp): put() only queues — it never blocks on
// I/O, never throws, never drops. A second put() of a key whose older state is
// still queued replaces it (coalescing), so the buffer holds at most one state
// per key, however long the server is away. A server that is down is not an
// error at creation: ready() says why not, puts buffer, loads wait, and both
// go out when it comes back.
//
// Redis layout: one hash per key, `<key_prefix><key>` (default prefix
// "swarm:state:"), fields
//   state       the bytes of StoredState::data (binary-safe, NULs included)
//   version     StoredState::version, decimal
//   updated_ms  StoredState::updated_ms, decimal (ms since the Unix epoch)
// written with one HSET per state (all three fields at once, atomically).
//
// Ordering: a newer state of a key is never overwritten by an older one put by
// the same process. A key always goes to the same connection (keys are sharded
// by hash), each connection's writer sends one batch at a time and finishes a
// batch (retries included) before taking the next, and a key appears at most
// once per batch. Two processes writing the same key are not ordered against
// each other: the last write wins.
//
// Batching is adaptive: an idle writer waits at most max_delay for a batch to
// fill (less when max_batch keys are queued or someone flushes); a busy writer
// sends, as its next batch, whatever was queued while its previous round trip
// was in flight, max_batch commands per round trip.
//
// Thread-safety: every store is thread-safe.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "runtime/persistence.hpp"

namespace swarm::metrics {
class Collector;
class Registry;
}

namespace swarm::storage {

// -- Redis URLs ---

/// redis://[[user]:password@]host[:port][/db]; host may be an [IPv6] literal.
struct RedisUrl {
  std::string host;
  std::uint16_t port = 6379;
  int db = 0;
  std::string user = {};      // empty: AUTH with the password alone
  std::string password = {};  // empty: no AUTH

  /// host:port/db, without credentials (for logs and errors).
  std::string endpoint() const;
};

/// Parses `url`; the error says what is wrong, e.g.
/// "storage: invalid Redis URL 'x': expected redis://host[:port][/db]" or
/// "storage: invalid Redis URL 'redis://h:0': bad port '0' (expected 1-65535)".
/// A password in the URL is shown as '***' in errors.
Result<RedisUrl> parse_redis_url(std::string_view url);

// -- options and statistics ---

struct RedisStateStoreOptions {
  std::string url = {};          // redis://[[user]:password@]host[:port][/db]
  std::size_t connections = 2;   // writer threads, each owning one hiredis connection
  std::size_t max_batch = 1024;  // commands per pipelined round trip
  std::chrono::milliseconds max_delay{5};  // longest an idle writer waits for a batch to fill
  std::chrono::milliseconds backoff_initial{50}, backoff_max{250};  // reconnect: doubles up to max
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{5000};  // one round trip; longer counts as a lost connection
  std::chrono::milliseconds close_timeout{5000};    // the destructor's last flush
  std::string key_prefix = "swarm:state:";
  /// true: a writer encodes each round trip's commands itself, into one buffer
  /// (RESP, binary-safe; about half the client CPU per state); false: hiredis
  /// formats every command (redisAppendCommandArgv), the plain version.
  bool encode_batches = true;
};

struct StateStoreStats {
  std::uint64_t puts = 0;          // put() calls
  std::uint64_t coalesced = 0;     // queued states replaced by a newer one before being written
  std::uint64_t written = 0;       // states the server acknowledged
  std::uint64_t batches = 0;       // round trips that wrote at least one state
  std::uint64_t write_errors = 0;  // failed writes: lost round trips, and states the server refused
  std::uint64_t reconnects = 0;    // connections opened after one was lost
  std::uint64_t server_restarts = 0;  // the server came back as a new process (Redis run_id changed)
  std::uint64_t unreadable = 0;    // values that were not state hashes, kept aside (<key>.unreadable.<ms>)
  std::size_t pending = 0;         // keys whose newest state is not written yet
  bool connected = false;          // every writer holds a working connection
};

/// A StateStore that reports on itself. Thread-safe.
class ObservableStateStore : public StateStore {
 public:
  virtual StateStoreStats stats() const = 0;
  /// Adds the store's series to a scrape (label backend="redis"|"memory"):
  /// swarm_state_pending_keys (saturation), swarm_state_puts_total,
  /// swarm_state_written_total, swarm_state_coalesced_total,
  /// swarm_state_write_errors_total, swarm_state_reconnects_total,
  /// swarm_state_server_restarts_total, swarm_state_unreadable_total, swarm_state_connected (0/1) and swarm_state_flush_seconds (one
  /// observation per pipelined round trip). A Runtime whose config holds the
  /// store calls this for its own /metrics.
  void collect(metrics::Collector& out) const override = 0;
  /// For a store used without a Runtime: a scrape callback that calls collect().
  /// REQUIRES: `registry` outlives this store (the destructor removes the callback).
  virtual void export_metrics(metrics::Registry& registry) = 0;
};

// -- factories ---

/// A store kept in a map: put() writes at once, load() answers at once, flush() is a no-op.
std::unique_ptr<ObservableStateStore> make_memory_state_store();

/// A store in Redis (hiredis, RESP2). An error only for bad options or a
/// malformed URL; a server that is down is not an error. load() answers from
/// the queue when the key has an unwritten state, else with HGETALL on the
/// key's connection (after the writes queued on it). A key holding something
/// other than a state hash (another type, fields missing or not numbers) is
/// renamed to `<key>.unreadable.<unix ms>`, said on stderr and counted
/// (StateStoreStats::unreadable), and the load answers "no state": its agent
/// starts fresh instead of crashing on every restart. A write refused because
/// the key holds another type moves that value aside the same way.
Result<std::unique_ptr<ObservableStateStore>> make_redis_state_store(RedisStateStoreOptions options);

}  // namespace swarm::storage
