#pragma once
// A pool of libpqxx connections (libpqxx 6.4 has none): bounded size, acquire
// with a timeout, a health check before lending a connection that sat idle,
// and broken connections discarded and replaced.
//
//   storage::PgPool pool({.dsn = "host=127.0.0.1 dbname=swarm", .max_size = 8});
//   auto lease = pool.acquire();                 // a RAII lease, or an error
//   if (!lease) return unexpected(lease.error()); // "storage: Postgres pool exhausted: …"
//   try { pqxx::work tx(**lease); … tx.commit(); }
//   catch (const pqxx::broken_connection&) { lease->discard(); }  // the pool opens a new one
//
// Contract: acquire() never throws; a server that is down is an error result
// ("storage: cannot connect to Postgres: …"), never a crash. A connection is
// opened when one is needed and no idle one exists; warm_up() opens min_size
// ahead of time. Idle connections stay open until the pool is destroyed.
// A connection that is no longer open when it comes back, or whose lease
// called discard(), is closed instead of lent again (counted as a reconnect
// once a replacement is opened).
//
// Thread-safety: the pool is thread-safe. A pqxx::connection is not: one
// lease belongs to one thread at a time (it may be moved to another thread
// between uses). Every lease must be returned before the pool is destroyed.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/connection>

#include "base/mutex.hpp"
#include "base/result.hpp"
#include "metrics/instruments.hpp"
#include "metrics/registry.hpp"

namespace swarm::storage {

struct PgPoolOptions {
  std::string dsn = {};  // libpq key=value string or postgresql:// URI
  std::size_t min_size = 2, max_size = 16;
  std::chrono::milliseconds acquire_timeout{2000};
  /// Used when the DSN sets no connect_timeout (nor PGCONNECT_TIMEOUT): libpq
  /// would otherwise wait forever for a server that accepts and never answers.
  std::chrono::seconds connect_timeout{10};
  /// A connection idle at least this long runs `SELECT 1` before it is lent.
  std::chrono::milliseconds check_after_idle{5000};
  /// Prepared statements (name, SQL) declared on every new connection.
  std::vector<std::pair<std::string, std::string>> prepared = {};
};

struct PgPoolStats {
  std::size_t in_use = 0, idle = 0, max = 0;
  std::uint64_t acquires = 0;          // leases handed out
  std::uint64_t acquire_timeouts = 0;  // acquire() gave up: every connection was leased
  std::uint64_t connect_errors = 0;    // failed attempts to open a connection
  std::uint64_t discarded = 0;         // broken connections closed
  std::uint64_t reconnects = 0;        // connections opened to replace discarded ones
};

/// `dsn` with connect_timeout = `timeout` added when it sets none (and
/// PGCONNECT_TIMEOUT is unset); unchanged otherwise, or if it does not parse.
std::string with_connect_timeout(const std::string& dsn, std::chrono::seconds timeout);

class PgPool {
 public:
  /// An idle connection and when it was last returned.
  struct Conn {
    explicit Conn(const std::string& dsn) : c(dsn) {}
    pqxx::connection c;
    std::chrono::steady_clock::time_point last_used;
  };

  /// Exclusive use of one connection until destroyed (then it goes back to the pool).
  class Lease {
   public:
    Lease(Lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), conn_(std::move(other.conn_)), broken_(other.broken_) {}
    Lease& operator=(Lease&& other) noexcept;
    ~Lease() { release(); }

    pqxx::connection& operator*() const noexcept { return conn_->c; }
    pqxx::connection* operator->() const noexcept { return &conn_->c; }
    /// Marks the connection broken: the pool closes it instead of lending it again.
    void discard() noexcept { broken_ = true; }

   private:
    friend class PgPool;
    Lease(PgPool* pool, std::unique_ptr<Conn> conn) : pool_(pool), conn_(std::move(conn)) {}
    void release() noexcept;

    PgPool* pool_;
    std::unique_ptr<Conn> conn_;
    bool broken_ = false;
  };

  /// Opens nothing yet (see warm_up()). REQUIRES: 1 <= max_size, min_size <= max_size.
  explicit PgPool(PgPoolOptions options);
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  /// A lease, or an error: the server cannot be reached, or every connection
  /// stayed leased for `timeout` (counted in acquire_timeouts). An idle
  /// connection is checked with a round trip first, unless `check_idle` is
  /// false (a caller that bounds its own first statement, as the journal's
  /// writer does: the check has no deadline, a frozen server holds it forever).
  Result<Lease> acquire(std::chrono::milliseconds timeout, bool check_idle = true);
  Result<Lease> acquire() { return acquire(options_.acquire_timeout); }

  /// Closes every idle connection (counted as discarded): when one connection
  /// was lost, the others to the same server most likely were too.
  void discard_idle();

  /// Opens connections until min_size are open (best effort: stops at the
  /// first error). Returns the number of idle connections.
  std::size_t warm_up();

  PgPoolStats stats() const;
  /// Emits swarm_pg_pool_connections{state="in_use"|"idle"}, swarm_pg_pool_max,
  /// swarm_pg_pool_acquire_wait_seconds, swarm_pg_pool_acquire_timeouts_total and
  /// swarm_pg_pool_reconnects_total, each with `labels` added. For a Registry callback.
  void collect(metrics::Collector& out, const metrics::Labels& labels) const;

  const PgPoolOptions& options() const noexcept { return options_; }

 private:
  Result<std::unique_ptr<Conn>> open();  // opens a connection; no lock held
  void give_back(std::unique_ptr<Conn> conn, bool broken) noexcept;

  // -- constant after construction ---
  const PgPoolOptions options_;

  // -- guarded by mu_ ---
  // Invariant: in_use_ + idle_.size() + opening_ <= options_.max_size.
  mutable Mutex mu_;
  CondVar cv_;  // a connection came back or a slot freed
  std::vector<std::unique_ptr<Conn>> idle_ SWARM_GUARDED_BY(mu_);  // most recently used last
  std::size_t in_use_ SWARM_GUARDED_BY(mu_) = 0;
  std::size_t opening_ SWARM_GUARDED_BY(mu_) = 0;        // slots reserved by a connect in progress
  std::size_t broken_pending_ SWARM_GUARDED_BY(mu_) = 0;  // discarded, not yet replaced
  PgPoolStats counters_ SWARM_GUARDED_BY(mu_);
  metrics::HistogramSnapshot wait_ SWARM_GUARDED_BY(mu_);  // acquire() wait, ns
};

}  // namespace swarm::storage
