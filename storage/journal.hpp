#pragma once
// The journal: an append-only history of agents (spawned, exited, crashed,
// restarted, and optionally audited messages), kept in memory or in Postgres.
//
//   auto journal = storage::make_postgres_journal({.dsn = "host=127.0.0.1 dbname=swarm"});
//   if (!journal) return fail(journal.error());    // only bad options or a malformed DSN
//   (*journal)->append({.kind = storage::EventKind::crashed, .agent = ref, .agent_type = "worker", .detail = "boom"});
//   (void)(*journal)->flush(std::chrono::seconds(5));
//   auto crashes = (*journal)->crashes("worker", from_us, to_us);  // newest first
//
// Contract: append() only queues — it never blocks on I/O and never throws.
// The queue is bounded; an event that does not fit is dropped and counted in
// stats().dropped and swarm_journal_dropped_total, never silently. Background
// writers retry failed batches with the same event ids, and the database
// ignores ids it already has, so a replay after a lost connection never
// duplicates an event. A server that is down is not an error at creation:
// ready() says why not, and queued events are written when it comes back.
//
// Thread-safety: every Journal is thread-safe.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "runtime/persistence.hpp"

namespace swarm::metrics {
class Registry;
}

namespace swarm::storage {

/// Values equal their names in the database (column `kind`) and in metrics.
enum class EventKind : std::uint8_t { spawned, exited, crashed, restarted, message };

std::string_view to_string(EventKind kind) noexcept;
/// The kind named `name`; an error for an unknown name.
Result<EventKind> parse_event_kind(std::string_view name);

struct JournalEvent {
  std::uint64_t id = 0;  // unique per event; assigned by append() when 0; a retry reuses it (idempotency)
  EventKind kind = EventKind::message;
  std::uint64_t agent = 0;  // AgentRef bits
  std::string agent_type = {};
  std::int64_t at_us = 0;  // wall clock, µs since the Unix epoch (append() fills it when 0)
  std::string detail = {};  // exit/crash reason, or the topic of a `message`
  std::string payload = {}; // message audit: the bytes (bytea; empty = NULL)

  friend bool operator==(const JournalEvent&, const JournalEvent&) = default;
};

struct JournalStats {
  std::uint64_t appended = 0;      // append() calls, dropped ones included
  std::uint64_t written = 0;       // durable (committed) events
  std::uint64_t dropped = 0;       // refused because the queue was full
  std::uint64_t batches = 0;       // committed batches
  std::uint64_t write_errors = 0;  // failed batch attempts
  std::uint64_t retries = 0;       // attempts of a batch that had failed before
  std::size_t queued = 0;          // appended - dropped - written
  bool connected = false;          // the writer holds a working connection
};

/// A journal of agent history. Thread-safe. As a LifecycleSink it takes the
/// runtime's lifecycle events (RuntimeConfig::lifecycle).
class Journal : public LifecycleSink {
 public:
  /// Flushes what it can within a bounded time (PostgresJournalOptions::close_timeout), then stops.
  virtual ~Journal() = default;

  /// Queues `event`; never blocks on I/O, never throws. When the queue is
  /// full the event is dropped and counted.
  virtual void append(JournalEvent event) = 0;
  /// Returns when everything appended before the call is durable, or an error
  /// after `timeout` saying how many events are still queued and why.
  Result<void> flush(std::chrono::milliseconds timeout) override = 0;
  /// append() of the runtime's event.
  void record(const LifecycleEvent& event) noexcept override;
  /// The oldest `limit` events of `agent`, oldest first.
  virtual Result<std::vector<JournalEvent>> history(std::uint64_t agent, std::size_t limit = 1000) = 0;
  /// Crashes of agents of `type` (empty = any type) with from_us <= at_us < to_us, newest first.
  virtual Result<std::vector<JournalEvent>> crashes(std::string_view type, std::int64_t from_us, std::int64_t to_us,
                                                    std::size_t limit = 1000) = 0;
  /// For /readyz: OK, or why the journal cannot write now.
  Result<void> ready() const override = 0;
  virtual JournalStats stats() const = 0;
  /// The journal's series (label backend="postgres"|"memory"): swarm_journal_queued,
  /// swarm_journal_written_total, swarm_journal_dropped_total,
  /// swarm_journal_write_errors_total, swarm_journal_flush_seconds (one observation per
  /// committed batch) and, for Postgres, the pool's swarm_pg_pool_* series. A Runtime
  /// whose lifecycle sink this is calls it on each scrape.
  void collect(metrics::Collector& out) const override = 0;
  /// For a journal used without a Runtime: a scrape callback that calls collect().
  /// REQUIRES: `registry` outlives this journal (the destructor removes the callback).
  virtual void export_metrics(metrics::Registry& registry) = 0;
};

struct PostgresJournalOptions {
  std::string dsn = {};  // libpq key=value string or postgresql:// URI
  std::size_t pool_min = 2, pool_max = 16;  // the writer holds one pooled connection; queries use the others
  std::chrono::milliseconds acquire_timeout{2000};
  std::size_t max_queue = 1'000'000;  // bounded buffer; events beyond it are dropped and counted
  std::size_t max_batch = 10'000;     // events per COPY
  /// The first attempt of a batch COPYs straight into the table (fast); only a
  /// retry, or a batch refused for a duplicate id, goes through a temporary
  /// table and INSERT … ON CONFLICT DO NOTHING. false: every batch goes that way.
  bool direct_copy = true;
  std::chrono::milliseconds max_delay{20};  // a partial batch waits at most this long
  std::chrono::milliseconds backoff_initial{50}, backoff_max{250};
  std::chrono::milliseconds close_timeout{5000};  // the destructor's last flush
  std::chrono::seconds connect_timeout{10};       // when the DSN sets none (PgPoolOptions::connect_timeout)
  /// One round trip of the writer (a COPY batch, the migrations, a heartbeat)
  /// without an answer for this long: its connection is cut and the batch is
  /// retried on a new one (a frozen server or a silent network; libpq itself
  /// would wait forever). Shutdown cuts it at once after close_timeout.
  std::chrono::milliseconds statement_timeout{30000};
};

/// A journal kept in memory (tests, single-process runs): at most `max_events`
/// events, then drops counted. Appends are written at once (flush() is a no-op).
std::unique_ptr<Journal> make_memory_journal(std::size_t max_events = 1'000'000);

/// A journal in Postgres, written by one background thread in COPY batches.
/// The schema is migrated when the writer first connects. An error only for
/// bad options or a malformed DSN ("storage: invalid Postgres DSN: <libpq's message>");
/// a server that is down is not an error.
Result<std::unique_ptr<Journal>> make_postgres_journal(PostgresJournalOptions options);

/// Applies the journal's pending schema migrations to the database at `dsn`
/// (the journal does this itself; for tools and tests). Returns how many were
/// applied (0 when up to date). Safe to run from several processes at once.
Result<int> migrate_postgres_journal(const std::string& dsn);

/// Checks a DSN with libpq's parser: OK or "storage: invalid Postgres DSN: …".
Result<void> validate_postgres_dsn(const std::string& dsn);

// -- event ids ---

/// Event ids are unique across processes without coordination:
///
///   id = prefix << 40 | (start + n) mod 2^40
///
/// `prefix` (24 bits) and `start` (40 bits) are drawn from /dev/urandom when
/// the generator is made; n counts ids handed out. Within a generator ids
/// repeat only after 2^40 (10^12) ids. Two generators collide only if they
/// drew the same prefix (1 in 2^24) *and* their counter ranges overlap
/// (about (n1 + n2) / 2^40): for a thousand process lifetimes of a billion
/// events each, the chance of any collision is about 5e-5. The prefix also
/// tells which process wrote an event. The database stores ids as bigint (the
/// same 64 bits, read as signed); 0 is never returned (it means "assign one").
/// Thread-safe.
class EventIdGenerator {
 public:
  EventIdGenerator();  // reads /dev/urandom (falls back to std::random_device)
  std::uint64_t next() noexcept;
  std::uint32_t prefix() const noexcept { return prefix_; }

 private:
  std::uint32_t prefix_;
  std::uint64_t start_;
  std::atomic<std::uint64_t> n_{0};
};

/// The process-wide generator every journal uses.
std::uint64_t next_event_id() noexcept;

/// Microseconds since the Unix epoch, from the system clock.
std::int64_t now_us() noexcept;

}  // namespace swarm::storage
