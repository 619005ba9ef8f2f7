#include "storage/pg_pool.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <string_view>
#include <pqxx/except>
#include <pqxx/nontransaction>

#include "base/check.hpp"

namespace swarm::storage {

namespace {

using Clock = std::chrono::steady_clock;

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

void observe(metrics::HistogramSnapshot& h, Clock::duration d) {
  const auto ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  ++h.counts[metrics::Buckets::index(ns)];
  h.sum_ns += ns;
}

bool healthy(pqxx::connection& c) noexcept {
  try {
    pqxx::nontransaction tx(c);
    tx.exec("SELECT 1");
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

// -- lease ---

PgPool::Lease& PgPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
    conn_ = std::move(other.conn_);
    broken_ = other.broken_;
  }
  return *this;
}

void PgPool::Lease::release() noexcept {
  if (pool_ != nullptr && conn_ != nullptr) pool_->give_back(std::move(conn_), broken_);
  pool_ = nullptr;
}

// -- construction ---

std::string with_connect_timeout(const std::string& dsn, std::chrono::seconds timeout) {
  if (std::getenv("PGCONNECT_TIMEOUT") != nullptr) return dsn;
  PQconninfoOption* parsed = PQconninfoParse(dsn.c_str(), nullptr);
  if (parsed == nullptr) return dsn;
  bool set = false;
  for (const PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (std::string_view(o->keyword) == "connect_timeout" && o->val != nullptr && *o->val != '\0') set = true;
  }
  PQconninfoFree(parsed);
  if (set) return dsn;
  const std::string value = "connect_timeout=" + std::to_string(timeout.count());
  if (dsn.starts_with("postgresql://") || dsn.starts_with("postgres://")) {
    return dsn + (dsn.find('?') == std::string::npos ? "?" : "&") + value;
  }
  return dsn + " " + value;
}

namespace {
PgPoolOptions bounded(PgPoolOptions o) {
  o.dsn = with_connect_timeout(o.dsn, o.connect_timeout);
  return o;
}
}  // namespace

PgPool::PgPool(PgPoolOptions options) : options_(bounded(std::move(options))) {
  SWARM_CHECK(options_.max_size >= 1 && options_.min_size <= options_.max_size);
}

PgPool::~PgPool() {
  MutexLock lock(mu_);
  SWARM_BUG(in_use_ == 0 && opening_ == 0);  // a lease outlives its pool
}

// -- leasing ---

Result<std::unique_ptr<PgPool::Conn>> PgPool::open() {
  try {
    auto conn = std::make_unique<Conn>(options_.dsn);
    {
      // The writer's CREATE TEMP TABLE IF NOT EXISTS would print a NOTICE on stderr.
      pqxx::nontransaction tx(conn->c);
      tx.exec("SET client_min_messages TO warning");
    }
    for (const auto& [name, sql] : options_.prepared) conn->c.prepare(name, sql);
    return conn;
  } catch (const std::exception& e) {
    return unexpected("storage: cannot connect to Postgres: " + one_line(e.what()));
  }
}

Result<PgPool::Lease> PgPool::acquire(std::chrono::milliseconds timeout, bool check_idle) {
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  std::unique_ptr<Conn> conn;
  {
    MutexLock lock(mu_);
    auto available = [&]() SWARM_REQUIRES(mu_) {
      return !idle_.empty() || in_use_ + idle_.size() + opening_ < options_.max_size;
    };
    if (!cv_.wait_until(mu_, deadline, available)) {
      ++counters_.acquire_timeouts;
      observe(wait_, Clock::now() - start);
      return unexpected("storage: Postgres pool exhausted: all " + std::to_string(options_.max_size) +
                        " connections stayed in use for " + std::to_string(timeout.count()) + " ms");
    }
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
    ++opening_;  // the slot is ours while we check or connect
  }
  // The server may have closed a connection that sat idle (restart, idle timeout).
  if (check_idle && conn != nullptr && Clock::now() - conn->last_used >= options_.check_after_idle &&
      !healthy(conn->c)) {
    conn.reset();
    MutexLock lock(mu_);
    ++counters_.discarded;
    ++broken_pending_;
  }
  bool opened = false;
  if (conn == nullptr) {
    auto fresh = open();
    if (!fresh) {
      MutexLock lock(mu_);
      --opening_;
      ++counters_.connect_errors;
      cv_.notify_one();
      return unexpected(fresh.error());
    }
    conn = std::move(*fresh);
    opened = true;
  }
  MutexLock lock(mu_);
  --opening_;
  ++in_use_;
  ++counters_.acquires;
  if (opened && broken_pending_ > 0) {
    --broken_pending_;
    ++counters_.reconnects;
  }
  observe(wait_, Clock::now() - start);
  return Lease(this, std::move(conn));
}

void PgPool::give_back(std::unique_ptr<Conn> conn, bool broken) noexcept {
  broken = broken || !conn->c.is_open();
  if (!broken) conn->last_used = Clock::now();
  {
    MutexLock lock(mu_);
    --in_use_;
    if (broken) {
      ++counters_.discarded;
      ++broken_pending_;
    } else {
      idle_.push_back(std::move(conn));
    }
  }
  cv_.notify_one();
  // A broken connection is closed here, outside the lock.
}

void PgPool::discard_idle() {
  std::vector<std::unique_ptr<Conn>> closing;
  {
    MutexLock lock(mu_);
    closing.swap(idle_);
    counters_.discarded += closing.size();
    broken_pending_ += closing.size();
  }
  cv_.notify_all();  // room to open new ones
  // The connections close here, outside the lock.
}

std::size_t PgPool::warm_up() {
  for (;;) {
    {
      MutexLock lock(mu_);
      if (idle_.size() + in_use_ + opening_ >= options_.min_size) return idle_.size();
      ++opening_;
    }
    auto fresh = open();
    MutexLock lock(mu_);
    --opening_;
    if (!fresh) {
      ++counters_.connect_errors;
      cv_.notify_one();
      return idle_.size();
    }
    if (broken_pending_ > 0) {
      --broken_pending_;
      ++counters_.reconnects;
    }
    (*fresh)->last_used = Clock::now();
    idle_.push_back(std::move(*fresh));
    cv_.notify_one();
  }
}

// -- observing ---

PgPoolStats PgPool::stats() const {
  MutexLock lock(mu_);
  PgPoolStats s = counters_;
  s.in_use = in_use_;
  s.idle = idle_.size();
  s.max = options_.max_size;
  return s;
}

void PgPool::collect(metrics::Collector& out, const metrics::Labels& labels) const {
  PgPoolStats s;
  metrics::HistogramSnapshot wait;
  {
    MutexLock lock(mu_);
    s = counters_;
    s.in_use = in_use_;
    s.idle = idle_.size();
    wait = wait_;
  }
  auto with = [&](const char* key, const char* value) {
    metrics::Labels l = labels;
    l.emplace_back(key, value);
    return l;
  };
  out.gauge("swarm_pg_pool_connections", "Postgres connections by state.", with("state", "in_use"),
            static_cast<double>(s.in_use));
  out.gauge("swarm_pg_pool_connections", "Postgres connections by state.", with("state", "idle"),
            static_cast<double>(s.idle));
  out.gauge("swarm_pg_pool_max", "Most Postgres connections the pool opens.", labels,
            static_cast<double>(options_.max_size));
  out.histogram("swarm_pg_pool_acquire_wait_seconds", "Time to get a Postgres connection from the pool.", labels,
                wait);
  out.counter("swarm_pg_pool_acquire_timeouts_total", "Pool acquires that timed out with every connection in use.",
              labels, static_cast<double>(s.acquire_timeouts));
  out.counter("swarm_pg_pool_reconnects_total", "Connections opened to replace broken ones.", labels,
              static_cast<double>(s.reconnects));
}

}  // namespace swarm::storage
