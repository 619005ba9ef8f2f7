// The Postgres journal: a bounded queue, one writer thread that COPYs batches
// into swarm_journal, the schema migrations, and pooled queries.
//
// Why one writer: batches commit in append order, so "everything appended
// before flush() is durable" is a comparison of two counters; one COPY stream
// already writes ~10^5 rows/s, far above the journal's expected rate.
//
// Two ways to write a batch, both one transaction:
//   direct: COPY straight into swarm_journal. The fast path, taken by the
//     first attempt of every batch.
//   staged: COPY into a temporary table, then INSERT … SELECT … ON CONFLICT
//     (event_id) DO NOTHING. COPY cannot skip rows that already exist; this
//     can. Taken by every retry of a batch: an attempt that failed may have
//     committed (the acknowledgement lost with the connection), so its replay
//     must add nothing. Also taken at once, on the same connection, when a
//     direct attempt is refused with the connection still open (a duplicate
//     id: an event appended twice, or a replay of ids stored before).
// A lost batch is never possible either way: a batch leaves the writer only
// when its commit was acknowledged. PostgresJournalOptions::direct_copy = false
// stages every batch (the plain version, for comparison and as a fallback).

#include <libpq-fe.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <deque>
#include <limits>
#include <optional>
#include <stdexcept>
#include <pqxx/binarystring>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/row>
#include <pqxx/stream_to>
#include <pqxx/transaction>
#include <thread>
#include <tuple>

#include "base/mutex.hpp"
#include "metrics/registry.hpp"
#include "storage/journal.hpp"
#include "storage/pg_pool.hpp"

namespace swarm::storage {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// -- schema ---

// pg_advisory_xact_lock key: "SWRMJRNL". Two processes migrating at once take turns.
constexpr std::int64_t kMigrationLock = 0x5357524d4a524e4c;

struct Migration {
  int version;
  const char* sql;
};

// Append only: a released migration is never edited.
constexpr Migration kMigrations[] = {
    {1, R"sql(
      CREATE TABLE swarm_journal (
        event_id   bigint PRIMARY KEY,
        kind       text NOT NULL,
        agent      bigint NOT NULL,
        agent_type text NOT NULL,
        at         timestamptz NOT NULL,
        detail     text NOT NULL,
        payload    bytea
      );
      -- history(agent): oldest first
      CREATE INDEX swarm_journal_agent_at ON swarm_journal (agent, at, event_id);
      -- crashes(type, from, to) and crashes(any, from, to): crashes are few, so partial indexes
      CREATE INDEX swarm_journal_crashes_type_at ON swarm_journal (agent_type, at) WHERE kind = 'crashed';
      CREATE INDEX swarm_journal_crashes_at ON swarm_journal (at) WHERE kind = 'crashed';
    )sql"},
};

/// Applies pending migrations in one transaction under an advisory lock; returns how many.
int run_migrations(pqxx::connection& c) {
  pqxx::work tx(c);
  tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLock) + ")");
  tx.exec(
      "CREATE TABLE IF NOT EXISTS swarm_schema_version ("
      "version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
  int current = tx.exec("SELECT coalesce(max(version), 0) FROM swarm_schema_version")[0][0].as<int>();
  if (current > 0 && tx.exec("SELECT to_regclass('swarm_journal') IS NULL")[0][0].as<bool>()) {
    // Dropped by hand (or restored without it): build the schema again rather than lose every event.
    std::fprintf(stderr, "storage: journal table swarm_journal is missing; creating the schema again\n");
    tx.exec("DELETE FROM swarm_schema_version");
    current = 0;
  }
  int applied = 0;
  for (const Migration& m : kMigrations) {
    if (m.version <= current) continue;
    tx.exec(m.sql);
    tx.exec("INSERT INTO swarm_schema_version (version) VALUES (" + std::to_string(m.version) + ")");
    ++applied;
  }
  tx.commit();
  return applied;
}

// The columns both paths COPY, in this order (see copy_rows).
const std::vector<std::string> kColumns = {"event_id", "kind", "agent", "agent_type", "at", "detail", "payload"};

// The writer's staging table: one per session, created when first needed, emptied by every commit.
constexpr const char* kCreateStaging =
    "CREATE TEMP TABLE IF NOT EXISTS swarm_journal_in (LIKE swarm_journal) ON COMMIT DELETE ROWS";
constexpr const char* kMergeStaging =
    "INSERT INTO swarm_journal (event_id, kind, agent, agent_type, at, detail, payload) "
    "SELECT event_id, kind, agent, agent_type, at, detail, payload FROM swarm_journal_in "
    "ON CONFLICT (event_id) DO NOTHING";

// -- queries (prepared on every pooled connection) ---

#define SWARM_JOURNAL_COLUMNS \
  "event_id, kind, agent, agent_type, (extract(epoch FROM at) * 1000000)::bigint, detail, payload"
#define SWARM_JOURNAL_AT(p) "timestamptz 'epoch' + " p "::bigint * interval '1 microsecond'"

constexpr const char* kHistory = "swarm_journal_history";
constexpr const char* kCrashesAny = "swarm_journal_crashes_any";
constexpr const char* kCrashesOfType = "swarm_journal_crashes_of_type";

std::vector<std::pair<std::string, std::string>> prepared_statements() {
  return {
      {kHistory, "SELECT " SWARM_JOURNAL_COLUMNS
                 " FROM swarm_journal WHERE agent = $1 ORDER BY at, event_id LIMIT $2"},
      {kCrashesAny, "SELECT " SWARM_JOURNAL_COLUMNS " FROM swarm_journal WHERE kind = 'crashed' AND at >= " SWARM_JOURNAL_AT(
                        "$1") " AND at < " SWARM_JOURNAL_AT("$2") " ORDER BY at DESC, event_id DESC LIMIT $3"},
      {kCrashesOfType, "SELECT " SWARM_JOURNAL_COLUMNS
                       " FROM swarm_journal WHERE kind = 'crashed' AND agent_type = $1 AND at >= " SWARM_JOURNAL_AT(
                           "$2") " AND at < " SWARM_JOURNAL_AT("$3") " ORDER BY at DESC, event_id DESC LIMIT $4"},
  };
}

// -- encoding ---

// Length of the valid UTF-8 sequence at s[i], or 0 (NUL counts as invalid: text cannot hold it).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  const unsigned c = b(0);
  const auto cont = [&](std::size_t k) { return (b(k) & 0xC0u) == 0x80u; };
  if (c == 0) return 0;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    const unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;  // no overlongs, no surrogates
    return b(1) >= lo && b(1) <= hi && cont(2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return b(1) >= lo && b(1) <= hi && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

/// A text column takes valid UTF-8 without NUL: anything else becomes U+FFFD
/// (one bad byte would otherwise fail its whole batch forever).
std::string clean_text(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80 && s[i] != '\0') ++i;  // ASCII fast path
  if (i == s.size()) return s;
  std::string out = s.substr(0, i);
  while (i < s.size()) {
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  return out;
}

std::string bytea_hex(const std::string& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + 2 * bytes.size());
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

// Postgres' timestamptz starts at 4714-11-24 00:00 BC (Julian day 0) and ends
// in 294276 AD, beyond any int64 count of µs since 1970: only the low end can
// be out of range. An event before it is stored at the low end (one absurd
// time would otherwise fail its whole batch forever).
constexpr std::int64_t kMinAtUs = -210'866'803'200'000'000;

/// `at_us` (µs since the Unix epoch, UTC) as timestamptz input text, e.g.
/// "2023-11-14 22:13:20.123457+00", "0044-03-15 12:00:00.000000+00 BC":
/// ISO order, so the session's DateStyle and TimeZone do not matter.
std::string timestamptz_text(std::int64_t at_us) {
  constexpr std::int64_t kDayUs = 86'400'000'000;
  at_us = std::max(at_us, kMinAtUs);
  std::int64_t days = at_us / kDayUs, us = at_us % kDayUs;
  if (us < 0) {  // floor, not truncation: 1969-12-31 23:59:59.999999 is day -1
    us += kDayUs;
    --days;
  }
  // Gregorian date of a day count (Howard Hinnant's civil_from_days).
  const std::int64_t z = days + 719'468;
  const std::int64_t era = (z >= 0 ? z : z - 146'096) / 146'097;
  const std::int64_t doe = z - era * 146'097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t month = mp < 10 ? mp + 3 : mp - 9;
  std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const bool bc = year <= 0;  // astronomical year 0 is 1 BC
  if (bc) year = 1 - year;
  const std::int64_t secs = us / 1'000'000;
  std::string out;
  out.reserve(32);
  const auto put = [&out](std::int64_t v, int width) {  // zero-padded decimal; v >= 0
    char digits[20];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v > 0 || n < width);
    while (n > 0) out += digits[--n];
  };
  put(year, 4);
  out += '-';
  put(month, 2);
  out += '-';
  put(day, 2);
  out += ' ';
  put(secs / 3600, 2);
  out += ':';
  put(secs / 60 % 60, 2);
  out += ':';
  put(secs % 60, 2);
  out += '.';
  put(us % 1'000'000, 6);
  out += "+00";
  if (bc) out += " BC";
  return out;
}

// libpq's messages span lines ("…failed: Connection refused\n\tIs the server running…"): keep one.
std::string one_line(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool space = c == '\n' || c == '\t' || c == ' ';
    if (!space) {
      out += c;
    } else if (!out.empty() && out.back() != ' ') {
      out += ' ';
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

struct PoolError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::vector<JournalEvent> to_events(const pqxx::result& r) {
  std::vector<JournalEvent> out;
  out.reserve(r.size());
  for (const auto& row : r) {
    JournalEvent e;
    e.id = static_cast<std::uint64_t>(row[0].as<std::int64_t>());
    auto kind = parse_event_kind(row[1].c_str());
    e.kind = kind ? *kind : EventKind::message;
    e.agent = static_cast<std::uint64_t>(row[2].as<std::int64_t>());
    e.agent_type = row[3].c_str();
    e.at_us = row[4].as<std::int64_t>();
    e.detail = row[5].c_str();
    if (!row[6].is_null()) e.payload = pqxx::binarystring(row[6]).str();
    out.push_back(std::move(e));
  }
  return out;
}

std::int64_t sql_limit(std::size_t limit) {
  return static_cast<std::int64_t>(std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max()));
}

void observe(metrics::HistogramSnapshot& h, Clock::duration d) {
  const auto ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  ++h.counts[metrics::Buckets::index(ns)];
  h.sum_ns += ns;
}

// -- the journal ---

class PostgresJournal final : public Journal {
 public:
  explicit PostgresJournal(PostgresJournalOptions options)
      : options_(std::move(options)),
        pool_({.dsn = options_.dsn,
               .min_size = options_.pool_min,
               .max_size = options_.pool_max,
               .acquire_timeout = options_.acquire_timeout,
               .connect_timeout = options_.connect_timeout,
               .prepared = prepared_statements()}) {
    writer_ = std::thread([this] { run(); });
    watchdog_ = std::thread([this] { watch(); });
  }

  ~PostgresJournal() override {
    if (auto r = flush(options_.close_timeout); !r) std::fprintf(stderr, "%s; closing anyway\n", r.error().c_str());
    std::vector<std::pair<metrics::Registry*, std::uint64_t>> callbacks;
    {
      MutexLock lock(mu_);
      stop_ = true;
      callbacks.swap(callbacks_);
      cut_round_trip();  // a writer waiting on a silent server returns now
    }
    work_cv_.notify_all();
    done_cv_.notify_all();
    watch_cv_.notify_all();
    writer_.join();
    watchdog_.join();
    // Not under mu_: remove_callback waits for a running scrape, which takes mu_.
    for (auto [registry, id] : callbacks) registry->remove_callback(id);
  }

  // -- hot path ---

  void append(JournalEvent event) override {
    if (event.id == 0) event.id = next_event_id();
    if (event.at_us == 0) event.at_us = now_us();
    bool wake = false;
    {
      MutexLock lock(mu_);
      ++appended_;
      if (queue_.size() + in_flight_ >= options_.max_queue || stop_) {
        ++dropped_;
        return;
      }
      queue_.push_back(std::move(event));
      ++accepted_;
      wake = queue_.size() == 1 || queue_.size() == options_.max_batch;  // the writer waits for one of these
    }
    if (wake) work_cv_.notify_one();
  }

  // -- control ---

  Result<void> flush(milliseconds timeout) override {
    MutexLock lock(mu_);
    const std::uint64_t target = accepted_;
    if (written_ >= target) return {};
    ++flush_waiters_;
    work_cv_.notify_one();  // write a partial batch now
    const bool done =
        done_cv_.wait_until(mu_, Clock::now() + timeout, [&]() SWARM_REQUIRES(mu_) { return written_ >= target; });
    --flush_waiters_;
    if (done) return {};
    return unexpected("storage: journal flush timed out after " + std::to_string(timeout.count()) + " ms: " +
                      std::to_string(queue_.size() + in_flight_) + " events still queued" +
                      (last_error_.empty() ? std::string() : " (last error: " + last_error_ + ")"));
  }

  Result<std::vector<JournalEvent>> history(std::uint64_t agent, std::size_t limit) override {
    return query("history of agent " + std::to_string(agent), [&](pqxx::work& tx) {
      return tx.exec_prepared(kHistory, static_cast<std::int64_t>(agent), sql_limit(limit));
    });
  }

  Result<std::vector<JournalEvent>> crashes(std::string_view type, std::int64_t from_us, std::int64_t to_us,
                                            std::size_t limit) override {
    return query("crashes", [&](pqxx::work& tx) {
      const std::int64_t n = sql_limit(limit);
      return type.empty() ? tx.exec_prepared(kCrashesAny, from_us, to_us, n)
                          : tx.exec_prepared(kCrashesOfType, std::string(type), from_us, to_us, n);
    });
  }

  Result<void> ready() const override {
    MutexLock lock(mu_);
    if (connected_ && waiting_since_ != Clock::time_point{} && Clock::now() - waiting_since_ > kStalled) {
      return unexpected("storage: journal not ready: Postgres has not answered for " +
                        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - waiting_since_).count()) +
                        " s (a stalled server or network)");
    }
    if (connected_) return {};
    return unexpected("storage: journal not ready: " +
                      (last_error_.empty() ? std::string("not connected to Postgres yet") : last_error_));
  }

  JournalStats stats() const override {
    MutexLock lock(mu_);
    return stats_locked();
  }

  void collect(metrics::Collector& c) const override {
    JournalStats s;
    metrics::HistogramSnapshot flush;
    {
      MutexLock lock(mu_);
      s = stats_locked();
      flush = flush_hist_;
    }
    const metrics::Labels labels = {{"backend", "postgres"}};
    c.gauge("swarm_journal_queued", "Journal events waiting to be written.", labels, static_cast<double>(s.queued));
    c.counter("swarm_journal_written_total", "Journal events written.", labels, static_cast<double>(s.written));
    c.counter("swarm_journal_dropped_total", "Journal events dropped because the journal was full.", labels,
              static_cast<double>(s.dropped));
    c.counter("swarm_journal_write_errors_total", "Failed journal batch writes.", labels,
              static_cast<double>(s.write_errors));
    c.histogram("swarm_journal_flush_seconds", "Time to write one journal batch.", labels, flush);
    pool_.collect(c, labels);
  }

  void export_metrics(metrics::Registry& registry) override {
    const auto id = registry.add_callback([this](metrics::Collector& c) { collect(c); });
    MutexLock lock(mu_);
    callbacks_.emplace_back(&registry, id);
  }

 private:
  JournalStats stats_locked() const SWARM_REQUIRES(mu_) {
    JournalStats s;
    s.appended = appended_;
    s.written = written_;
    s.dropped = dropped_;
    s.batches = batches_;
    s.write_errors = write_errors_;
    s.retries = retries_;
    s.queued = queue_.size() + in_flight_;
    s.connected = connected_;
    return s;
  }

  template <class Exec>
  Result<std::vector<JournalEvent>> query(const std::string& what, Exec exec) {
    auto lease = pool_.acquire();
    if (!lease) return unexpected("storage: journal " + what + " failed: " + lease.error());
    try {
      pqxx::work tx(**lease);
      auto events = to_events(exec(tx));
      tx.commit();
      return events;
    } catch (const pqxx::broken_connection& e) {
      lease->discard();
      return unexpected("storage: journal " + what + " failed: lost the Postgres connection: " + one_line(e.what()));
    } catch (const std::exception& e) {
      if (!(*lease)->is_open()) lease->discard();
      return unexpected("storage: journal " + what + " failed: " + one_line(e.what()));
    }
  }

  // -- writer thread ---

  void run() {
    std::optional<PgPool::Lease> conn;
    bool staging_created = false;    // on `conn`
    std::deque<JournalEvent> batch;  // taken from the queue; kept (same ids) until committed
    bool batch_failed = false;       // an attempt failed: retries go staged
    milliseconds backoff = options_.backoff_initial;
    auto next_attempt = Clock::now();             // no connection: when to try again
    auto last_io = Clock::now();                  // a connection: when it last worked
    bool down = false;  // failing since down_since: one log line each way
    Clock::time_point down_since;

    for (;;) {
      {
        MutexLock lock(mu_);
        if (batch.empty()) {
          // Idle: wake for work, to reconnect, or to check the connection (heartbeat, keeps ready() true).
          work_cv_.wait_until(mu_, conn ? last_io + kHeartbeat : next_attempt,
                              [&]() SWARM_REQUIRES(mu_) { return stop_ || !queue_.empty(); });
          if (stop_) return;
          if (!queue_.empty() && queue_.size() < options_.max_batch && flush_waiters_ == 0) {
            // A partial batch waits up to max_delay to fill.
            work_cv_.wait_until(mu_, Clock::now() + options_.max_delay, [&]() SWARM_REQUIRES(mu_) {
              return stop_ || flush_waiters_ > 0 || queue_.size() >= options_.max_batch;
            });
            if (stop_) return;
          }
          if (queue_.size() <= options_.max_batch) {
            batch.swap(queue_);  // O(1): appenders never wait for a batch to be moved
          } else {                // a backlog (after an outage): take max_batch
            const auto end = queue_.begin() + static_cast<std::ptrdiff_t>(options_.max_batch);
            batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(end));
            queue_.erase(queue_.begin(), end);
          }
          in_flight_ = batch.size();
        }
        if (!conn) {  // back off before reconnecting
          work_cv_.wait_until(mu_, next_attempt, [&]() SWARM_REQUIRES(mu_) { return stop_; });
          if (stop_) return;
        }
      }

      std::string error;  // what failed, for the log and ready()
      {
        MutexLock lock(mu_);
        waiting_since_ = Clock::now();
      }
      try {
        if (!conn) {
          // Unchecked: the first statement below is the check, and the watchdog bounds it.
          auto lease = pool_.acquire(options_.acquire_timeout, false);
          if (!lease) throw PoolError(lease.error().substr(lease.error().rfind("storage: ", 0) == 0 ? 9 : 0));
          conn.emplace(std::move(*lease));
          {
            MutexLock lock(mu_);
            writer_fd_ = (**conn).sock();
          }
          staging_created = false;
          if (!migrated_) {
            run_migrations(**conn);
            migrated_ = true;
          }
          pool_.warm_up();  // best effort: connections for queries
        }
        if (batch.empty()) {
          pqxx::nontransaction tx(**conn);
          tx.exec("SELECT 1");
        } else {
          const auto start = Clock::now();
          bool direct = options_.direct_copy && !batch_failed;
          if (batch_failed) count_retry();
          if (direct) {
            try {
              write_direct(**conn, batch);
            } catch (const std::exception&) {
              if (!(*conn)->is_open()) throw;  // lost, maybe after committing: retried staged after a backoff
              // Refused, nothing written (most likely a duplicate id): merge it now, same connection.
              direct = false;
              batch_failed = true;
              count_refused_direct();
            }
          }
          if (!direct) {
            if (!staging_created) {
              pqxx::nontransaction tx(**conn);
              tx.exec(kCreateStaging);
              staging_created = true;
            }
            write_staged(**conn, batch);
          }
          MutexLock lock(mu_);
          observe(flush_hist_, Clock::now() - start);
          written_ += batch.size();
          in_flight_ = 0;
          ++batches_;
        }
      } catch (const PoolError& e) {
        error = e.what();
      } catch (const std::exception& e) {
        error = "Postgres: " + one_line(e.what());
      }
      last_io = Clock::now();
      {
        MutexLock lock(mu_);
        waiting_since_ = {};
        if (cut_ && !error.empty()) {
          error = "Postgres did not answer within statement_timeout (" +
                  std::to_string(options_.statement_timeout.count()) + " ms): connection cut";
        }
        cut_ = false;
      }

      if (error.empty()) {
        {
          MutexLock lock(mu_);
          connected_ = true;
          last_error_.clear();
        }
        if (!batch.empty()) done_cv_.notify_all();
        if (down) {
          std::fprintf(stderr, "storage: journal writes to Postgres again after %.1f s (%zu events queued)\n",
                       std::chrono::duration<double>(last_io - down_since).count(), stats().queued);
          down = false;
        }
        batch.clear();
        batch_failed = false;
        backoff = options_.backoff_initial;
        continue;
      }

      // Failed: the batch stays as it is (same ids) and is retried on a new connection after a backoff,
      // which checks the schema again (a dropped table is created anew).
      migrated_ = false;
      if (conn) {
        {
          MutexLock lock(mu_);  // before the socket closes: the watchdog must not cut a reused descriptor
          writer_fd_ = -1;
        }
        conn->discard();
        conn.reset();
        pool_.discard_idle();  // the writer's next connection is a new one, not another dead idle one
      }
      next_attempt = last_io + backoff;
      backoff = std::min(backoff * 2, options_.backoff_max);
      batch_failed = !batch.empty();
      {
        MutexLock lock(mu_);
        if (!batch.empty()) ++write_errors_;
        connected_ = false;
        last_error_ = error;
      }
      if (!down) {
        down = true;
        down_since = last_io;
        std::fprintf(stderr, "storage: journal cannot write: %s; retrying with backoff (%zu events queued)\n",
                     error.c_str(), stats().queued);
      }
    }
  }

  void count_retry() {
    MutexLock lock(mu_);
    ++retries_;
  }

  void count_refused_direct() {  // a failed attempt, and the staged one that follows at once
    MutexLock lock(mu_);
    ++write_errors_;
    ++retries_;
  }

  /// The fast path: one COPY into swarm_journal, one commit. Throws if any id is already stored.
  static void write_direct(pqxx::connection& c, const std::deque<JournalEvent>& batch) {
    pqxx::work tx(c);
    copy_rows(tx, "swarm_journal", batch);
    tx.commit();
  }

  /// The idempotent path: COPY into the session's staging table, merge what is new, one commit.
  /// REQUIRES: the staging table exists on `c`.
  static void write_staged(pqxx::connection& c, const std::deque<JournalEvent>& batch) {
    pqxx::work tx(c);
    copy_rows(tx, "swarm_journal_in", batch);
    tx.exec(kMergeStaging);
    tx.commit();
  }

  static void copy_rows(pqxx::work& tx, const std::string& table, const std::deque<JournalEvent>& batch) {
    pqxx::stream_to copy(tx, table, kColumns);
    std::string payload;
    for (const JournalEvent& e : batch) {
      if (!e.payload.empty()) payload = bytea_hex(e.payload);
      copy << std::make_tuple(static_cast<std::int64_t>(e.id), std::string(to_string(e.kind)),
                              static_cast<std::int64_t>(e.agent), clean_text(e.agent_type), timestamptz_text(e.at_us),
                              clean_text(e.detail), e.payload.empty() ? nullptr : payload.c_str());
    }
    copy.complete();
  }

  // The watchdog: cuts the writer's connection when a round trip outlasts statement_timeout.
  void watch() {
    const milliseconds every = std::clamp(options_.statement_timeout / 4, milliseconds(10), milliseconds(1000));
    MutexLock lock(mu_);
    while (!stop_) {
      watch_cv_.wait_until(mu_, Clock::now() + every, [&]() SWARM_REQUIRES(mu_) { return stop_; });
      if (stop_ || writer_fd_ < 0 || waiting_since_ == Clock::time_point{}) continue;
      if (Clock::now() - waiting_since_ >= options_.statement_timeout) cut_round_trip();  // the writer logs it
    }
  }

  // Shuts the writer's socket down: its round trip fails at once, as on a lost connection.
  void cut_round_trip() SWARM_REQUIRES(mu_) {
    if (writer_fd_ < 0) return;
    ::shutdown(writer_fd_, SHUT_RDWR);
    writer_fd_ = -1;
    cut_ = true;
  }

  static constexpr milliseconds kHeartbeat{1000};  // an idle writer checks its connection this often
  // A round trip (heartbeat, connect or batch) this long without an answer: not ready.
  static constexpr milliseconds kStalled{5000};

  // -- constant after construction ---
  const PostgresJournalOptions options_;

  // -- own synchronization ---
  PgPool pool_;
  std::thread writer_;
  std::thread watchdog_;

  // -- writer thread only ---
  bool migrated_ = false;

  // -- guarded by mu_ ---
  // Invariants: queue_.size() + in_flight_ <= options_.max_queue;
  // accepted_ = written_ + queue_.size() + in_flight_; appended_ = accepted_ + dropped_.
  mutable Mutex mu_;
  CondVar work_cv_;  // writer waits: events, flush requests, stop
  CondVar done_cv_;  // flush() waits: a batch committed
  CondVar watch_cv_;  // the watchdog waits: stop
  std::deque<JournalEvent> queue_ SWARM_GUARDED_BY(mu_);
  std::size_t in_flight_ SWARM_GUARDED_BY(mu_) = 0;  // taken by the writer, not committed yet
  std::uint64_t appended_ SWARM_GUARDED_BY(mu_) = 0;
  std::uint64_t accepted_ SWARM_GUARDED_BY(mu_) = 0;
  std::uint64_t written_ SWARM_GUARDED_BY(mu_) = 0;
  std::uint64_t dropped_ SWARM_GUARDED_BY(mu_) = 0;
  std::uint64_t batches_ SWARM_GUARDED_BY(mu_) = 0;
  std::uint64_t write_errors_ SWARM_GUARDED_BY(mu_) = 0;
  std::uint64_t retries_ SWARM_GUARDED_BY(mu_) = 0;
  int flush_waiters_ SWARM_GUARDED_BY(mu_) = 0;
  bool stop_ SWARM_GUARDED_BY(mu_) = false;
  bool connected_ SWARM_GUARDED_BY(mu_) = false;
  Clock::time_point waiting_since_ SWARM_GUARDED_BY(mu_);  // the writer's round trip in progress, if any
  int writer_fd_ SWARM_GUARDED_BY(mu_) = -1;  // the socket of the writer's connection, while it holds one
  bool cut_ SWARM_GUARDED_BY(mu_) = false;    // the watchdog (or shutdown) cut the round trip in progress
  std::string last_error_ SWARM_GUARDED_BY(mu_);
  metrics::HistogramSnapshot flush_hist_ SWARM_GUARDED_BY(mu_);
  std::vector<std::pair<metrics::Registry*, std::uint64_t>> callbacks_ SWARM_GUARDED_BY(mu_);
};

}  // namespace

// -- factories ---

namespace {

bool is_integer_in(std::string_view v, long long lo, long long hi) {
  long long n = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  return ec == std::errc() && end == v.data() + v.size() && n >= lo && n <= hi;
}

// libpq parses a DSN's syntax but checks these values only when it connects,
// so a typo would cost every event of the run; here it is a startup error.
std::optional<std::string> bad_value(std::string_view key, std::string_view value) {
  const auto one_of = [&](std::initializer_list<std::string_view> allowed) -> std::optional<std::string> {
    for (std::string_view a : allowed) {
      if (value == a) return std::nullopt;
    }
    std::string list;
    for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    return "expected one of " + list;
  };
  if (key == "port") {
    // A list, one per host: "5432" or "5432,5433"; an empty item means the default.
    for (std::size_t start = 0; start <= value.size();) {
      const std::size_t end = std::min(value.find(',', start), value.size());
      const std::string_view item = value.substr(start, end - start);
      if (!item.empty() && !is_integer_in(item, 1, 65535)) return std::string("expected a port number 1 to 65535");
      start = end + 1;
    }
    return std::nullopt;
  }
  if (key == "connect_timeout") {
    return is_integer_in(value, 0, 2'147'483) ? std::nullopt : std::optional<std::string>("expected whole seconds, 0 or more");
  }
  if (key == "keepalives" || key == "keepalives_idle" || key == "keepalives_interval" || key == "keepalives_count" ||
      key == "tcp_user_timeout") {
    return is_integer_in(value, 0, 2'147'483'647) ? std::nullopt : std::optional<std::string>("expected a whole number, 0 or more");
  }
  if (key == "sslmode") return one_of({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"});
  if (key == "gssencmode") return one_of({"disable", "prefer", "require"});
  if (key == "channel_binding") return one_of({"disable", "prefer", "require"});
  if (key == "target_session_attrs") {
    return one_of({"any", "read-write", "read-only", "primary", "standby", "prefer-standby"});
  }
  return std::nullopt;
}

}  // namespace

Result<void> validate_postgres_dsn(const std::string& dsn) {
  if (dsn.empty()) return unexpected(std::string("storage: invalid Postgres DSN: empty"));
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(dsn.c_str(), &error);
  if (parsed == nullptr) {
    std::string message = error != nullptr ? one_line(error) : "out of memory";
    if (error != nullptr) PQfreemem(error);
    return unexpected("storage: invalid Postgres DSN: " + message);
  }
  std::string problem;
  for (const PQconninfoOption* o = parsed; o->keyword != nullptr && problem.empty(); ++o) {
    if (o->val == nullptr) continue;
    if (auto why = bad_value(o->keyword, o->val)) {
      problem = std::string(o->keyword) + ": got \"" + o->val + "\"; " + *why;
    }
  }
  PQconninfoFree(parsed);
  if (!problem.empty()) return unexpected("storage: invalid Postgres DSN: " + problem);
  return {};
}

Result<std::unique_ptr<Journal>> make_postgres_journal(PostgresJournalOptions options) {
  if (auto r = validate_postgres_dsn(options.dsn); !r) return unexpected(r.error());
  const auto bad = [](const char* what) { return unexpected(std::string("storage: invalid journal options: ") + what); };
  if (options.pool_max < 2) return bad("pool_max must be at least 2 (the writer keeps one connection)");
  if (options.pool_min > options.pool_max) return bad("pool_min must not exceed pool_max");
  if (options.max_queue == 0 || options.max_batch == 0) return bad("max_queue and max_batch must be positive");
  if (options.backoff_initial.count() <= 0 || options.backoff_max < options.backoff_initial) {
    return bad("backoff_initial must be positive and at most backoff_max");
  }
  if (options.acquire_timeout.count() < 0 || options.max_delay.count() < 0 || options.close_timeout.count() < 0) {
    return bad("timeouts must not be negative");
  }
  if (options.statement_timeout.count() <= 0) return bad("statement_timeout must be positive");
  return std::unique_ptr<Journal>(std::make_unique<PostgresJournal>(std::move(options)));
}

Result<int> migrate_postgres_journal(const std::string& dsn) {
  if (auto r = validate_postgres_dsn(dsn); !r) return unexpected(r.error());
  try {
    pqxx::connection c(with_connect_timeout(dsn, PgPoolOptions{}.connect_timeout));
    return run_migrations(c);
  } catch (const std::exception& e) {
    return unexpected("storage: journal migration failed: " + one_line(e.what()));
  }
}

}  // namespace swarm::storage
