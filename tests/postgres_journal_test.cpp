// The Postgres journal and its pool against a real server (a throwaway
// cluster on 127.0.0.1, see support/postgres_server.hpp): migrations, bulk
// writes from several threads, queries, the pool's limits and repairs, and
// the faults that matter — the server crashing mid-run and being down at start.
// Every wait polls with a generous deadline (a loaded 2-core machine), never a fixed sleep.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/transaction>
#include <thread>

#include "metrics/registry.hpp"
#include "runtime/runtime.hpp"
#include "storage/journal.hpp"
#include "storage/pg_pool.hpp"
#include "tests/support/postgres_server.hpp"

// libpqxx 6.4 leaks one PGresult (~2 KB) each time it meets a connection the
// server closed (connection_base::encoding_id throws before PQclear; fixed in
// libpqxx 7, jtv/libpqxx#500). The tests break connections on purpose.
#if defined(__SANITIZE_ADDRESS__)
extern "C" const char* __lsan_default_suppressions() { return "leak:libpqxx-6.4.so\n"; }
#endif

namespace swarm::storage {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kPatience = 60s;  // for anything that should take well under a second

// Polls `done` every 10 ms until it holds or `patience` passes.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds patience = kPatience) {
  const auto deadline = Clock::now() + patience;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

std::int64_t scalar(const std::string& dsn, const std::string& sql) {
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  return tx.exec(sql)[0][0].as<std::int64_t>();
}

JournalEvent event(EventKind kind, std::uint64_t agent, std::string type, std::int64_t at_us,
                   std::string detail = "", std::string payload = "") {
  return {.kind = kind,
          .agent = agent,
          .agent_type = std::move(type),
          .at_us = at_us,
          .detail = std::move(detail),
          .payload = std::move(payload)};
}

std::unique_ptr<Journal> journal(PostgresJournalOptions options) {
  auto j = make_postgres_journal(std::move(options));
  if (!j) throw std::runtime_error(j.error());
  return std::move(*j);
}

// One cluster per test suite; each test gets its own database.
class PostgresJournalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new test::PostgresServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    static int databases = 0;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    db_ = "t";
    for (char c : std::string(info->name()).substr(0, 40)) {
      db_ += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_';
    }
    db_ += "_" + std::to_string(++databases);  // under Postgres' 63-byte name limit
    server_->psql("CREATE DATABASE " + db_);
    dsn_ = server_->dsn(db_);
  }
  std::int64_t count(const std::string& sql) const { return scalar(dsn_, sql); }

  static test::PostgresServer* server_;
  std::string db_, dsn_;
};
test::PostgresServer* PostgresJournalTest::server_ = nullptr;

// Writing, both ways (PostgresJournalOptions::direct_copy): true, the first
// attempt of a batch COPYs straight into the table; false, every batch goes
// through the staging table. What a reader sees must not depend on it.
class PostgresJournalWriteTest : public PostgresJournalTest, public ::testing::WithParamInterface<bool> {
 protected:
  bool direct() const { return GetParam(); }
  PostgresJournalOptions options(PostgresJournalOptions o = {}) const {
    o.dsn = dsn_;
    o.direct_copy = direct();
    return o;
  }
};
INSTANTIATE_TEST_SUITE_P(Copy, PostgresJournalWriteTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "direct" : "staged"; });

// -- migrations ---

TEST_F(PostgresJournalTest, MigrationsCreateTheSchemaAndReRunAsNoOps) {
  auto first = migrate_postgres_journal(dsn_);
  ASSERT_TRUE(first) << first.error();
  EXPECT_EQ(*first, 1);
  auto again = migrate_postgres_journal(dsn_);
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(*again, 0);
  EXPECT_EQ(count("SELECT count(*) FROM swarm_schema_version"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM information_schema.columns WHERE table_name = 'swarm_journal'"), 7);
  EXPECT_EQ(count("SELECT count(*) FROM pg_indexes WHERE tablename = 'swarm_journal'"), 4);  // pkey + 3
  // A journal on a migrated database migrates nothing more.
  auto j = journal({.dsn = dsn_});
  ASSERT_TRUE(eventually([&] { return bool(j->ready()); }));
  EXPECT_EQ(count("SELECT count(*) FROM swarm_schema_version"), 1);
}

TEST_F(PostgresJournalTest, TwoProcessesMigratingAtOnceApplyEachMigrationOnce) {
  Result<int> a = 0, b = 0;
  std::thread ta([&] { a = migrate_postgres_journal(dsn_); });
  std::thread tb([&] { b = migrate_postgres_journal(dsn_); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a) << a.error();
  ASSERT_TRUE(b) << b.error();
  EXPECT_EQ(*a + *b, 1);
}

// -- writing ---

TEST_P(PostgresJournalWriteTest, HundredThousandEventsFromTwoThreadsAreWrittenExactlyOnce) {
  auto j = journal(options());
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50'000; ++i) {
        j->append(event(EventKind::message, static_cast<std::uint64_t>(t * 1000 + i % 100), "load", 0, "load.tick",
                        "payload"));
      }
    });
  }
  for (auto& t : threads) t.join();
  auto flushed = j->flush(kPatience);
  ASSERT_TRUE(flushed) << flushed.error();
  EXPECT_EQ(count("SELECT count(*) FROM swarm_journal"), 100'000);
  EXPECT_EQ(count("SELECT count(DISTINCT event_id) FROM swarm_journal"), 100'000);
  const JournalStats s = j->stats();
  EXPECT_EQ(s.appended, 100'000u);
  EXPECT_EQ(s.written, 100'000u);
  EXPECT_EQ(s.dropped, 0u);
  EXPECT_EQ(s.queued, 0u);
  EXPECT_GE(s.batches, 10u);  // max_batch = 10'000
  EXPECT_TRUE(s.connected);
}

TEST_P(PostgresJournalWriteTest, ARetriedEventWithTheSameIdIsStoredOnce) {
  auto j = journal(options());
  JournalEvent e = event(EventKind::crashed, 5, "w", 1000, "boom");
  e.id = next_event_id();
  j->append(e);
  ASSERT_TRUE(j->flush(kPatience));
  j->append(e);  // a second batch with the same id
  ASSERT_TRUE(j->flush(kPatience));
  EXPECT_EQ(count("SELECT count(*) FROM swarm_journal"), 1);
  // Direct, the second batch is refused for its duplicate and merged at once: one failed attempt, no outage.
  EXPECT_EQ(j->stats().write_errors, direct() ? 1u : 0u);
  EXPECT_TRUE(j->ready());
}

TEST_P(PostgresJournalWriteTest, ABatchWhoseIdsArePartlyStoredAddsTheNewOnesAndDuplicatesNone) {
  // max_delay of an hour: a batch is cut only at max_batch or by flush(), so each phase below is one batch.
  auto j = journal(options({.max_batch = 1000, .max_delay = std::chrono::hours(1)}));
  std::vector<JournalEvent> events;
  for (int i = 0; i < 1000; ++i) {
    JournalEvent e = event(EventKind::message, 100 + i % 10, "w", 1000 + i, "event " + std::to_string(i), "p");
    e.id = next_event_id();
    events.push_back(e);
  }
  for (std::size_t i = 0; i < events.size(); i += 2) j->append(events[i]);  // the first phase: every other one
  ASSERT_TRUE(j->flush(kPatience));
  ASSERT_EQ(count("SELECT count(*) FROM swarm_journal"), 500);
  for (const JournalEvent& e : events) j->append(e);  // the second: all, half of them already stored
  auto flushed = j->flush(kPatience);
  ASSERT_TRUE(flushed) << flushed.error();

  EXPECT_EQ(count("SELECT count(*) FROM swarm_journal"), 1000);
  EXPECT_EQ(count("SELECT count(DISTINCT event_id) FROM swarm_journal"), 1000);
  for (std::uint64_t agent = 100; agent < 110; ++agent) {
    std::vector<JournalEvent> expected;
    for (const JournalEvent& e : events) {
      if (e.agent == agent) expected.push_back(e);
    }
    auto h = j->history(agent);
    ASSERT_TRUE(h) << h.error();
    EXPECT_EQ(*h, expected) << "agent " << agent;
  }
  const JournalStats s = j->stats();
  EXPECT_EQ(s.batches, 2u);
  EXPECT_EQ(s.written, 1500u);  // committed events, the 500 that were already there included
  EXPECT_EQ(s.write_errors, direct() ? 1u : 0u);  // direct: refused for a duplicate, then merged
  EXPECT_EQ(s.retries, direct() ? 1u : 0u);
  EXPECT_TRUE(s.connected);
}

TEST_P(PostgresJournalWriteTest, ABatchRetriedAfterALostConnectionIsMergedNotCopied) {
  // The in-doubt case made to order: the writer's connection dies while its
  // batch waits for a table lock, and some of the batch's ids are committed
  // meanwhile (as if an attempt had committed and its acknowledgement been lost).
  auto j = journal(options({.max_batch = 100, .max_delay = std::chrono::hours(1), .backoff_initial = 20ms,
                            .backoff_max = 200ms, .close_timeout = 1s}));
  j->append(event(EventKind::spawned, 1, "w", 1));
  ASSERT_TRUE(j->flush(kPatience));  // connected and migrated

  std::vector<JournalEvent> events;
  for (int i = 0; i < 100; ++i) {
    JournalEvent e = event(EventKind::message, 2, "w", 10 + i, "event " + std::to_string(i));
    e.id = next_event_id();
    events.push_back(e);
  }
  pqxx::connection locker(dsn_);
  pqxx::work tx(locker);
  tx.exec("LOCK TABLE swarm_journal IN ACCESS EXCLUSIVE MODE");
  for (const JournalEvent& e : events) j->append(e);  // max_batch: the writer takes them as one batch
  std::int64_t writer = 0;
  ASSERT_TRUE(eventually([&] {
    writer = count("SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = '" +
                   db_ + "'");
    return writer != 0;
  })) << "the writer never waited for the lock";
  for (int i = 0; i < 50; ++i) {
    const JournalEvent& e = events[static_cast<std::size_t>(i)];
    tx.exec("INSERT INTO swarm_journal (event_id, kind, agent, agent_type, at, detail) VALUES (" +
            std::to_string(static_cast<std::int64_t>(e.id)) + ", 'message', 2, 'w', timestamptz 'epoch' + " +
            std::to_string(e.at_us) + " * interval '1 microsecond', " + tx.quote(e.detail) + ")");
  }
  tx.exec("SELECT pg_terminate_backend(" + std::to_string(writer) + ")");
  tx.commit();

  auto flushed = j->flush(kPatience);
  ASSERT_TRUE(flushed) << flushed.error();
  EXPECT_EQ(count("SELECT count(*) FROM swarm_journal WHERE agent = 2"), 100);
  EXPECT_EQ(count("SELECT count(DISTINCT event_id) FROM swarm_journal"), 101);
  auto h = j->history(2);
  ASSERT_TRUE(h) << h.error();
  EXPECT_EQ(*h, events);
  const JournalStats s = j->stats();
  EXPECT_EQ(s.write_errors, 1u);  // the lost connection; the retry went staged and did not trip on the 50
  EXPECT_EQ(s.retries, 1u);
  EXPECT_EQ(s.written, 101u);
}

TEST_P(PostgresJournalWriteTest, TimesRoundTripFromTheOldestPostgresStoresToTheLastInt64) {
  auto j = journal(options());
  constexpr std::int64_t kOldest = -210'866'803'200'000'000;  // 4714-11-24 00:00 BC, Postgres' first timestamp
  std::vector<std::int64_t> times = {
      1,                                   // 1970-01-01 00:00:00.000001
      -1,                                  // 1969-12-31 23:59:59.999999
      -86'400'000'000,                     // 1969-12-31
      951'782'400'000'000,                 // 2000-02-29, a leap day
      1'700'000'000'123'457,               // 2023
      -62'135'596'800'000'000,             // 0001-01-01 00:00 AD
      -62'135'596'800'000'001,             // the last µs of 1 BC
      253'402'300'800'000'000,             // 10000-01-01: five-digit years
      kOldest,
      // 294247-01-10 04:00:54.775806. (At INT64_MAX itself Postgres' extract(epoch) rounds to
      // 10 µs, so history() cannot return it exactly: checked in SQL below.)
      std::numeric_limits<std::int64_t>::max() - 1,
  };
  std::mt19937_64 rng(2024);
  std::uniform_int_distribution<std::int64_t> any(kOldest, std::numeric_limits<std::int64_t>::max() - 1);
  std::uniform_int_distribution<std::int64_t> near(-4'000'000'000'000'000, 4'000'000'000'000'000);  // ±127k years
  for (int i = 0; i < 500; ++i) {
    times.push_back(any(rng));
    times.push_back(near(rng));
  }
  std::sort(times.begin(), times.end());
  times.erase(std::unique(times.begin(), times.end()), times.end());
  std::vector<JournalEvent> expected;
  for (std::int64_t at : times) {
    JournalEvent e = event(EventKind::spawned, 3, "w", at);
    e.id = next_event_id();
    expected.push_back(e);
    j->append(e);
  }
  // Before Postgres' first timestamp: stored as that first one (an error would fail its batch forever).
  j->append(event(EventKind::exited, 4, "w", std::numeric_limits<std::int64_t>::min() + 1));
  j->append(event(EventKind::exited, 5, "w", std::numeric_limits<std::int64_t>::max()));
  auto flushed = j->flush(kPatience);
  ASSERT_TRUE(flushed) << flushed.error();

  auto h = j->history(3, SIZE_MAX);
  ASSERT_TRUE(h) << h.error();
  ASSERT_EQ(h->size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ((*h)[i].at_us, expected[i].at_us) << i;
  }
  auto old = j->history(4);
  ASSERT_TRUE(old) << old.error();
  ASSERT_EQ(old->size(), 1u);
  EXPECT_EQ((*old)[0].at_us, kOldest);
  EXPECT_EQ(count("SELECT count(*) FROM swarm_journal WHERE agent = 5 AND at = '294247-01-10 04:00:54.775807+00'"), 1);
}

TEST_P(PostgresJournalWriteTest, EveryFieldRoundTripsExactly) {
  auto j = journal(options());
  std::string bytes;
  for (int c = 0; c < 256; ++c) bytes += static_cast<char>(c);
  JournalEvent e = event(EventKind::message, ~std::uint64_t{0} - 1, "type\twith\ttabs", 1'700'000'000'123'457,
                         "topic\\with\nnewline \"quotes\" and ünïcödé", bytes);
  e.id = (std::uint64_t{0xFFFFFF} << 40) | 12345;  // the high bit set: negative as bigint
  j->append(e);
  ASSERT_TRUE(j->flush(kPatience));
  auto h = j->history(e.agent);
  ASSERT_TRUE(h) << h.error();
  ASSERT_EQ(h->size(), 1u);
  EXPECT_EQ((*h)[0], e);
}

TEST_P(PostgresJournalWriteTest, TextThatIsNotUtf8IsCleanedInsteadOfFailingTheBatch) {
  auto j = journal(options());
  j->append(event(EventKind::crashed, 9, "bad\xff", 10, std::string("nul\0byte", 8)));
  j->append(event(EventKind::crashed, 9, "fine", 20, "ok"));
  ASSERT_TRUE(j->flush(kPatience));
  auto h = j->history(9);
  ASSERT_TRUE(h) << h.error();
  ASSERT_EQ(h->size(), 2u);
  EXPECT_EQ((*h)[0].agent_type, "bad\xEF\xBF\xBD");
  EXPECT_EQ((*h)[0].detail, "nul\xEF\xBF\xBD"
                            "byte");
  EXPECT_EQ((*h)[1].detail, "ok");
}

// -- queries ---

TEST_F(PostgresJournalTest, HistoryAndCrashesReturnTheRightEventsInTheRightOrder) {
  auto j = journal({.dsn = dsn_});
  j->append(event(EventKind::exited, 7, "worker", 4000, "done"));
  j->append(event(EventKind::spawned, 7, "worker", 1000));
  j->append(event(EventKind::crashed, 7, "worker", 2000, "boom"));
  j->append(event(EventKind::restarted, 7, "worker", 3000));
  j->append(event(EventKind::crashed, 8, "parser", 2500, "bad input"));
  j->append(event(EventKind::crashed, 9, "worker", 5000, "late"));
  ASSERT_TRUE(j->flush(kPatience));

  auto h = j->history(7);
  ASSERT_TRUE(h) << h.error();
  ASSERT_EQ(h->size(), 4u);
  EXPECT_EQ((*h)[0].kind, EventKind::spawned);
  EXPECT_EQ((*h)[1].kind, EventKind::crashed);
  EXPECT_EQ((*h)[2].kind, EventKind::restarted);
  EXPECT_EQ((*h)[3].detail, "done");
  auto unlimited = j->history(7, SIZE_MAX);
  ASSERT_TRUE(unlimited) << unlimited.error();
  EXPECT_EQ(unlimited->size(), 4u);
  auto first_two = j->history(7, 2);
  ASSERT_TRUE(first_two);
  ASSERT_EQ(first_two->size(), 2u);
  EXPECT_EQ((*first_two)[1].at_us, 2000);

  auto workers = j->crashes("worker", 2000, 5000);  // half-open: 5000 excluded
  ASSERT_TRUE(workers) << workers.error();
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ((*workers)[0].detail, "boom");
  auto any = j->crashes("", 0, 10'000);
  ASSERT_TRUE(any) << any.error();
  ASSERT_EQ(any->size(), 3u);
  EXPECT_EQ((*any)[0].detail, "late");
  EXPECT_EQ((*any)[1].detail, "bad input");
  EXPECT_EQ((*any)[2].detail, "boom");
  auto newest = j->crashes("", 0, 10'000, 1);
  ASSERT_TRUE(newest);
  ASSERT_EQ(newest->size(), 1u);
  EXPECT_EQ((*newest)[0].detail, "late");
}

TEST_F(PostgresJournalTest, MetricsShowTheJournalAndItsPool) {
  metrics::Registry registry;  // outlives the journal
  auto j = journal({.dsn = dsn_});
  j->export_metrics(registry);
  for (int i = 0; i < 10; ++i) j->append(event(EventKind::spawned, 1, "w", 0));
  ASSERT_TRUE(j->flush(kPatience));
  ASSERT_TRUE(j->history(1));
  const std::string text = registry.render();
  for (const char* series :
       {"swarm_journal_queued{backend=\"postgres\"} 0", "swarm_journal_written_total{backend=\"postgres\"} 10",
        "swarm_journal_dropped_total{backend=\"postgres\"} 0", "swarm_journal_write_errors_total{backend=\"postgres\"} 0",
        "swarm_journal_flush_seconds_count{backend=\"postgres\"}", "swarm_pg_pool_connections{backend=\"postgres\",state=\"in_use\"} 1",
        "swarm_pg_pool_connections{backend=\"postgres\",state=\"idle\"}", "swarm_pg_pool_max{backend=\"postgres\"} 16",
        "swarm_pg_pool_acquire_wait_seconds_bucket{backend=\"postgres\"", "swarm_pg_pool_acquire_timeouts_total{backend=\"postgres\"} 0",
        "swarm_pg_pool_reconnects_total{backend=\"postgres\"} 0"}) {
    EXPECT_NE(text.find(series), std::string::npos) << series << "\n" << text;
  }
}

// -- with the runtime ---

// Publishes one audited message per message it is sent.
class OrderDesk : public Agent {
 public:
  static constexpr std::string_view kTypeName = "order_desk";
  void on_message(Message& m) override {
    (void)publish("orders.created", Payload(std::string_view(m.payload.text())));
  }
};

TEST_F(PostgresJournalTest, ARuntimesLifecycleAndAuditedMessagesAreStoredExactlyOnce) {
  constexpr int kAgents = 40, kMessagesEach = 25;
  std::vector<AgentRef> desks;
  {
    RuntimeConfig cfg;
    cfg.workers = 2;
    cfg.lifecycle = std::shared_ptr<Journal>(journal({.dsn = dsn_, .max_batch = 64}));
    cfg.audit_topics = {"orders.>"};
    Runtime rt(std::move(cfg));
    for (int i = 0; i < kAgents; ++i) desks.push_back(rt.spawn<OrderDesk>());
    for (int n = 0; n < kMessagesEach; ++n) {
      for (AgentRef d : desks) ASSERT_EQ(rt.send(d, std::string_view("order")), SendResult::ok);
    }
    ASSERT_TRUE(rt.wait_idle());
    // The journal's and its pool's series are part of the runtime's /metrics.
    const std::string text = rt.metrics().render();
    EXPECT_NE(text.find("swarm_journal_written_total{backend=\"postgres\"}"), std::string::npos) << text;
    EXPECT_NE(text.find("swarm_pg_pool_max{backend=\"postgres\"} 16"), std::string::npos) << text;
  }  // shutdown: the agents exit, then the journal is flushed
  EXPECT_EQ(count("SELECT count(*) FROM swarm_journal WHERE kind = 'spawned'"), kAgents);
  EXPECT_EQ(count("SELECT count(*) FROM swarm_journal WHERE kind = 'exited'"), kAgents);
  EXPECT_EQ(count("SELECT count(*) FROM swarm_journal WHERE kind = 'message' AND detail = 'orders.created' "
                  "AND payload = 'order'::bytea AND agent_type = 'order_desk'"),
            kAgents * kMessagesEach);
  EXPECT_EQ(count("SELECT count(*) FROM swarm_journal"), kAgents * (kMessagesEach + 2));
  // Each desk's history starts with its spawn and ends with its exit.
  auto j = journal({.dsn = dsn_});
  auto h = j->history(desks[7].bits());
  ASSERT_TRUE(h) << h.error();
  ASSERT_EQ(h->size(), static_cast<std::size_t>(kMessagesEach + 2));
  EXPECT_EQ(h->front().kind, EventKind::spawned);
  EXPECT_EQ(h->back().kind, EventKind::exited);
}

// -- pool ---

TEST_F(PostgresJournalTest, PoolAcquireTimesOutWhenEveryConnectionIsLeased) {
  PgPool pool({.dsn = dsn_, .min_size = 0, .max_size = 2});
  auto a = pool.acquire();
  auto b = pool.acquire();
  ASSERT_TRUE(a) << a.error();
  ASSERT_TRUE(b) << b.error();
  auto c = pool.acquire(100ms);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), "storage: Postgres pool exhausted: all 2 connections stayed in use for 100 ms");
  EXPECT_EQ(pool.stats().acquire_timeouts, 1u);
  EXPECT_EQ(pool.stats().in_use, 2u);
  // A waiter gets the connection another thread returns.
  std::optional<PgPool::Lease> held(std::move(*a));
  std::thread giver([&] { held.reset(); });
  auto d = pool.acquire(kPatience);
  giver.join();
  ASSERT_TRUE(d) << d.error();
  pqxx::nontransaction tx(**d);
  EXPECT_EQ(tx.exec("SELECT 41 + 1")[0][0].as<int>(), 42);
}

TEST_F(PostgresJournalTest, PoolReplacesAConnectionTheServerClosedWhileIdle) {
  PgPool pool({.dsn = dsn_, .min_size = 1, .max_size = 2, .check_after_idle = 0ms});
  ASSERT_EQ(pool.warm_up(), 1u);
  int pid = 0;
  {
    auto lease = pool.acquire();
    ASSERT_TRUE(lease) << lease.error();
    pid = (*lease)->backendpid();
  }
  server_->psql("SELECT pg_terminate_backend(" + std::to_string(pid) + ")", db_);
  ASSERT_TRUE(eventually([&] {
    return count("SELECT count(*) FROM pg_stat_activity WHERE pid = " + std::to_string(pid)) == 0;
  }));
  auto lease = pool.acquire();  // the health check finds it dead and opens another
  ASSERT_TRUE(lease) << lease.error();
  EXPECT_NE((*lease)->backendpid(), pid);
  pqxx::nontransaction tx(**lease);
  EXPECT_EQ(tx.exec("SELECT 1")[0][0].as<int>(), 1);
  const PgPoolStats s = pool.stats();
  EXPECT_EQ(s.discarded, 1u);
  EXPECT_EQ(s.reconnects, 1u);
}

TEST_F(PostgresJournalTest, PoolDiscardsAConnectionThatBrokeDuringALease) {
  PgPool pool({.dsn = dsn_, .min_size = 0, .max_size = 1, .check_after_idle = 1h});
  int pid = 0;
  {
    auto lease = pool.acquire();
    ASSERT_TRUE(lease) << lease.error();
    pid = (*lease)->backendpid();
    server_->psql("SELECT pg_terminate_backend(" + std::to_string(pid) + ")", db_);
    EXPECT_THROW(
        {
          pqxx::nontransaction tx(**lease);
          tx.exec("SELECT 1");
        },
        pqxx::broken_connection);
    lease->discard();
  }
  auto lease = pool.acquire();
  ASSERT_TRUE(lease) << lease.error();
  EXPECT_NE((*lease)->backendpid(), pid);
  EXPECT_EQ(pool.stats().reconnects, 1u);
}

TEST(PgPoolWithoutServer, AcquireIsAnErrorNotACrash) {
  PgPool pool({.dsn = "host=127.0.0.1 port=1 connect_timeout=2", .max_size = 2});
  EXPECT_EQ(pool.warm_up(), 0u);
  auto lease = pool.acquire(100ms);
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().rfind("storage: cannot connect to Postgres: ", 0), 0u) << lease.error();
  EXPECT_EQ(pool.stats().in_use, 0u);
  EXPECT_GE(pool.stats().connect_errors, 2u);
}

// -- faults (fsync on: what was committed must survive a crash) ---

TEST(PostgresJournalFault, TheServerOfTheseTestsSyncsEveryCommit) {
  test::PostgresServer pg({.fsync = true});
  EXPECT_EQ(pg.psql("SHOW fsync"), "on");
  EXPECT_EQ(pg.psql("SHOW synchronous_commit"), "on");
  EXPECT_EQ(pg.psql("SHOW full_page_writes"), "on");
  EXPECT_EQ(pg.psql("SHOW wal_sync_method"), "fdatasync");
}

// Appends ~20k events/s on its own thread until stopped.
struct Appender {
  Journal& journal;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> appended{0};
  std::thread thread;

  explicit Appender(Journal& j) : journal(j) {
    thread = std::thread([this] {
      std::uint64_t i = 0;
      while (!stop.load()) {
        for (int k = 0; k < 20; ++k, ++i) {
          journal.append(event(i % 10 == 0 ? EventKind::crashed : EventKind::message, i % 500, "load", 0, "t"));
        }
        appended += 20;
        std::this_thread::sleep_for(1ms);
      }
    });
  }
  ~Appender() { finish(); }
  void finish() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
};

void crash_mid_run(std::size_t max_queue, bool expect_drops, bool direct_copy = true) {
  test::PostgresServer pg({.fsync = true});
  const std::string dsn = pg.dsn();
  metrics::Registry registry;  // outlives the journal
  auto j = journal({.dsn = dsn,
                    .max_queue = max_queue,
                    .max_batch = 1000,
                    .direct_copy = direct_copy,
                    .backoff_initial = 20ms,
                    .backoff_max = 500ms,
                    .close_timeout = 1s});
  j->export_metrics(registry);
  Appender appender(*j);
  ASSERT_TRUE(eventually([&] { return j->stats().written >= 5000; })) << "no writes before the crash";

  pg.stop(/*immediate=*/true);
  ASSERT_TRUE(eventually([&] { return !j->ready(); })) << "ready() never noticed the crash";
  EXPECT_NE(j->ready().error().find("Postgres"), std::string::npos) << j->ready().error();
  // The queue grows while the server is down, and never beyond max_queue.
  const std::size_t target = expect_drops ? max_queue : 5000;
  std::size_t most = 0;
  ASSERT_TRUE(eventually([&] {
    most = std::max(most, j->stats().queued);
    EXPECT_LE(j->stats().queued, max_queue);
    return most >= target && (!expect_drops || j->stats().dropped > 0);
  }));
  EXPECT_FALSE(j->stats().connected);

  pg.start();
  ASSERT_TRUE(eventually([&] { return bool(j->ready()); })) << j->ready().error();
  appender.finish();
  auto flushed = j->flush(kPatience);
  ASSERT_TRUE(flushed) << flushed.error();

  const JournalStats s = j->stats();
  EXPECT_EQ(s.appended, appender.appended.load());
  EXPECT_EQ(s.queued, 0u);
  EXPECT_GE(s.write_errors, 1u);
  if (expect_drops) {
    EXPECT_GT(s.dropped, 0u);
  } else {
    EXPECT_EQ(s.dropped, 0u);
  }
  const auto rows = scalar(dsn, "SELECT count(*) FROM swarm_journal");
  EXPECT_EQ(rows, static_cast<std::int64_t>(s.appended - s.dropped));
  EXPECT_EQ(scalar(dsn, "SELECT count(DISTINCT event_id) FROM swarm_journal"), rows);
  EXPECT_EQ(s.written, s.appended - s.dropped);
  const std::string text = registry.render();
  EXPECT_NE(text.find("swarm_journal_dropped_total{backend=\"postgres\"} " + std::to_string(s.dropped)),
            std::string::npos)
      << text;
}

TEST(PostgresJournalFault, ACrashMidRunLosesAndDuplicatesNothing) {
  crash_mid_run(/*max_queue=*/1'000'000, /*expect_drops=*/false);
}

TEST(PostgresJournalFault, ACrashMidRunWithEveryBatchStagedLosesAndDuplicatesNothing) {
  crash_mid_run(/*max_queue=*/1'000'000, /*expect_drops=*/false, /*direct_copy=*/false);
}

TEST(PostgresJournalFault, ACrashWithASmallQueueCountsEveryDrop) {
  crash_mid_run(/*max_queue=*/2000, /*expect_drops=*/true);
}

TEST(PostgresJournalFault, AServerDownAtStartIsCaughtUpWhenItComes) {
  test::PostgresServer pg({.fsync = true});
  pg.stop();
  auto j = journal({.dsn = pg.dsn(), .backoff_initial = 20ms, .backoff_max = 500ms, .close_timeout = 1s});
  for (int i = 0; i < 1000; ++i) j->append(event(EventKind::spawned, static_cast<std::uint64_t>(i), "w", 0));
  auto ready = j->ready();
  ASSERT_FALSE(ready);
  EXPECT_FALSE(j->flush(200ms));
  EXPECT_EQ(j->stats().queued, 1000u);
  auto h = j->history(1);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().find("cannot connect to Postgres"), std::string::npos) << h.error();

  pg.start();
  auto flushed = j->flush(kPatience);
  ASSERT_TRUE(flushed) << flushed.error();
  EXPECT_TRUE(j->ready());
  EXPECT_EQ(scalar(pg.dsn(), "SELECT count(*) FROM swarm_journal"), 1000);
  auto after = j->history(1);
  ASSERT_TRUE(after) << after.error();
  EXPECT_EQ(after->size(), 1u);
}

// A table dropped mid-run (by hand, or a restore without it) is created again
// and writing resumes: the events appended since are not lost.
TEST(PostgresJournalFault, ADroppedTableIsCreatedAgainAndWritingResumes) {
  test::PostgresServer pg;
  auto j = journal({.dsn = pg.dsn(), .backoff_initial = 20ms, .backoff_max = 500ms, .close_timeout = 1s});
  for (int i = 0; i < 100; ++i) j->append(event(EventKind::spawned, static_cast<std::uint64_t>(i), "w", 0));
  ASSERT_TRUE(j->flush(kPatience));
  pg.psql("DROP TABLE swarm_journal");
  for (int i = 0; i < 100; ++i) j->append(event(EventKind::exited, static_cast<std::uint64_t>(i), "w", 0));
  auto flushed = j->flush(kPatience);
  ASSERT_TRUE(flushed) << flushed.error();
  EXPECT_EQ(scalar(pg.dsn(), "SELECT count(*) FROM swarm_journal WHERE kind = 'exited'"), 100);
  EXPECT_EQ(scalar(pg.dsn(), "SELECT count(*) FROM swarm_journal"), 100);  // the dropped rows are gone, as asked
  auto h = j->history(7);  // queries work on the new table
  ASSERT_TRUE(h) << h.error();
  EXPECT_EQ(h->size(), 1u);
}

// SIGSTOP of the server and its backends: the connection stays open and
// nothing answers. Readiness must not say ready for the whole freeze.
TEST(PostgresJournalFault, AFrozenServerIsNotReadyAndNothingIsLostWhenItThaws) {
  test::PostgresServer pg({.fsync = true});
  auto j = journal({.dsn = pg.dsn(), .backoff_initial = 20ms, .backoff_max = 500ms, .close_timeout = 1s});
  j->append(event(EventKind::spawned, 1, "w", 0));
  ASSERT_TRUE(j->flush(kPatience));
  ASSERT_TRUE(j->ready());
  pg.freeze();
  for (int i = 0; i < 100; ++i) j->append(event(EventKind::spawned, static_cast<std::uint64_t>(2 + i), "w", 0));
  // The batch's COPY (or the heartbeat) waits on the frozen server: not ready after 5 s of silence.
  Result<void> ready;
  ASSERT_TRUE(eventually([&] { return !(ready = j->ready()); }, 20s));
  EXPECT_NE(ready.error().find("Postgres has not answered for"), std::string::npos) << ready.error();
  pg.thaw();
  auto flushed = j->flush(kPatience);
  ASSERT_TRUE(flushed) << flushed.error();
  EXPECT_TRUE(eventually([&] { return bool(j->ready()); }, 20s));
  EXPECT_EQ(scalar(pg.dsn(), "SELECT count(*) FROM swarm_journal"), 101);
}

// A round trip that outlasts statement_timeout is cut and its batch retried on
// a new connection once the server answers: nothing lost, nothing twice.
TEST(PostgresJournalFault, AStatementOnAFrozenServerIsCutAfterStatementTimeoutAndRetriedExactlyOnce) {
  test::PostgresServer pg({.fsync = true});
  auto j = journal({.dsn = pg.dsn(),
                    .backoff_initial = 20ms,
                    .backoff_max = 200ms,
                    .close_timeout = 1s,
                    .connect_timeout = 1s,
                    .statement_timeout = 500ms});
  j->append(event(EventKind::spawned, 1, "w", 0));
  ASSERT_TRUE(j->flush(kPatience));
  pg.freeze();
  for (int i = 0; i < 100; ++i) j->append(event(EventKind::spawned, static_cast<std::uint64_t>(2 + i), "w", 0));
  // Cut, then reconnects that time out: not ready, a write error counted.
  ASSERT_TRUE(eventually([&] { return j->stats().write_errors >= 1 && !j->ready(); }, 20s));
  pg.thaw();
  auto flushed = j->flush(kPatience);
  ASSERT_TRUE(flushed) << flushed.error();
  EXPECT_EQ(scalar(pg.dsn(), "SELECT count(*) FROM swarm_journal"), 101);
  EXPECT_EQ(scalar(pg.dsn(), "SELECT count(DISTINCT event_id) FROM swarm_journal"), 101);
}

// Whatever the server does, the destructor returns within close_timeout plus
// one cut: it does not wait for a statement the server will never answer.
TEST(PostgresJournalFault, ClosingWhileTheServerIsFrozenMidStatementReturnsWithinItsBound) {
  test::PostgresServer pg({.fsync = true});
  auto j = journal({.dsn = pg.dsn(), .close_timeout = 1s, .connect_timeout = 1s});  // statement_timeout 30 s
  j->append(event(EventKind::spawned, 1, "w", 0));
  ASSERT_TRUE(j->flush(kPatience));
  pg.freeze();
  for (int i = 0; i < 100; ++i) j->append(event(EventKind::spawned, static_cast<std::uint64_t>(2 + i), "w", 0));
  ASSERT_TRUE(eventually([&] { return !j->ready(); }, 20s));  // the writer waits on the frozen server
  const auto start = std::chrono::steady_clock::now();
  j.reset();
  const auto took = std::chrono::steady_clock::now() - start;
  pg.thaw();
  EXPECT_LT(took, 5s) << "close_timeout is 1 s";
}

}  // namespace
}  // namespace swarm::storage
