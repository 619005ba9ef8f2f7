// The journal without a server: DSN and option validation, the memory
// journal, event ids, a server that never answers. (Postgres itself:
// tests/postgres_journal_test.cpp.)

#include "storage/journal.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>
#include <unordered_set>

#include "metrics/registry.hpp"
#include "storage/pg_pool.hpp"

namespace swarm::storage {
namespace {

using namespace std::chrono_literals;

JournalEvent event(EventKind kind, std::uint64_t agent, std::string type, std::int64_t at_us,
                   std::string detail = "") {
  JournalEvent e;
  e.kind = kind;
  e.agent = agent;
  e.agent_type = std::move(type);
  e.at_us = at_us;
  e.detail = std::move(detail);
  return e;
}

// -- DSN and options ---

TEST(PostgresDsn, KeyValueAndUriFormsAreAccepted) {
  EXPECT_TRUE(validate_postgres_dsn("host=127.0.0.1 port=5432 dbname=swarm user=swarm"));
  EXPECT_TRUE(validate_postgres_dsn("postgresql://swarm@127.0.0.1:5432/swarm?connect_timeout=5"));
}

TEST(PostgresDsn, AMalformedDsnIsAnErrorWithLibpqsMessage) {
  auto r = validate_postgres_dsn("host=127.0.0.1 port");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().rfind("storage: invalid Postgres DSN: ", 0), 0u) << r.error();
  EXPECT_NE(r.error().find("port"), std::string::npos) << r.error();  // libpq names the culprit
}

TEST(PostgresDsn, AnUnknownKeywordOrABadUriIsAnError) {
  auto unknown = validate_postgres_dsn("hots=127.0.0.1");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().find("hots"), std::string::npos) << unknown.error();
  EXPECT_FALSE(validate_postgres_dsn("postgresql://[::1/db"));
  EXPECT_FALSE(validate_postgres_dsn(""));
}

// libpq checks these only when it connects: every event of the run would be lost.
TEST(PostgresDsn, ValuesLibpqWouldRefuseAtConnectTimeAreErrorsNamingTheKey) {
  const std::pair<const char*, const char*> bad[] = {
      {"host=127.0.0.1 port=abc", "port: got \"abc\"; expected a port number 1 to 65535"},
      {"host=127.0.0.1 port=99999", "port: got \"99999\""},
      {"postgresql://127.0.0.1:99999/swarm", "port: got \"99999\""},
      {"host=a,b port=5432,x", "port: got \"5432,x\""},
      {"host=127.0.0.1 sslmode=bogus", "sslmode: got \"bogus\"; expected one of disable, allow, prefer, require"},
      {"host=127.0.0.1 connect_timeout=x", "connect_timeout: got \"x\"; expected whole seconds"},
      {"host=127.0.0.1 connect_timeout=-1", "connect_timeout: got \"-1\""},
      {"host=127.0.0.1 target_session_attrs=writable", "target_session_attrs: got \"writable\""},
      {"host=127.0.0.1 keepalives_idle=soon", "keepalives_idle: got \"soon\""},
  };
  for (const auto& [dsn, error] : bad) {
    auto r = validate_postgres_dsn(dsn);
    ASSERT_FALSE(r) << dsn;
    EXPECT_EQ(r.error().rfind("storage: invalid Postgres DSN: ", 0), 0u) << r.error();
    EXPECT_NE(r.error().find(error), std::string::npos) << dsn << ": " << r.error();
  }
  EXPECT_TRUE(validate_postgres_dsn("host=a,b port=5432,5433 sslmode=verify-full connect_timeout=0 keepalives=1"));
  EXPECT_TRUE(validate_postgres_dsn("host=a,b port=,5433"));  // an empty item: that host's default port
}

TEST(PostgresDsn, AConnectTimeoutIsAddedWhenTheDsnSetsNone) {
  EXPECT_EQ(with_connect_timeout("host=h dbname=d", 10s), "host=h dbname=d connect_timeout=10");
  EXPECT_EQ(with_connect_timeout("postgresql://h/d", 3s), "postgresql://h/d?connect_timeout=3");
  EXPECT_EQ(with_connect_timeout("postgresql://h/d?sslmode=disable", 3s), "postgresql://h/d?sslmode=disable&connect_timeout=3");
  EXPECT_EQ(with_connect_timeout("host=h connect_timeout=2", 10s), "host=h connect_timeout=2");
  EXPECT_EQ(with_connect_timeout("postgresql://h/d?connect_timeout=0", 10s), "postgresql://h/d?connect_timeout=0");
  EXPECT_EQ(with_connect_timeout("dbname='unterminated", 10s), "dbname='unterminated");  // its error comes later
}

// A port that takes connections and never answers (a frozen server, or
// something else listening): the journal still ends within its bounds, and
// says what it could not write.
TEST(PostgresJournalSilentServer, DestructionIsBoundedAndTheLossIsReported) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(listener, 16), 0);  // the kernel completes handshakes; nobody ever reads
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string dsn = "host=127.0.0.1 port=" + std::to_string(ntohs(a.sin_port)) + " dbname=swarm user=swarm";

  auto journal = make_postgres_journal({.dsn = dsn, .close_timeout = 1000ms, .connect_timeout = 1s});
  ASSERT_TRUE(journal) << journal.error();
  for (int i = 0; i < 100; ++i) (*journal)->append(event(EventKind::spawned, 1, "t", 1 + i));
  auto flushed = (*journal)->flush(500ms);
  ASSERT_FALSE(flushed);
  EXPECT_NE(flushed.error().find("100"), std::string::npos) << flushed.error();  // how many are still queued
  EXPECT_FALSE((*journal)->ready());
  EXPECT_EQ((*journal)->stats().written, 0u);
  const auto start = std::chrono::steady_clock::now();
  journal->reset();
  // close_timeout, plus a connect attempt in progress (connect_timeout), plus slack for a slow machine.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  ::close(listener);
}

TEST(PostgresJournalFactory, AMalformedDsnFailsCreation) {
  auto j = make_postgres_journal({.dsn = "dbname='unterminated"});
  ASSERT_FALSE(j);
  EXPECT_EQ(j.error().rfind("storage: invalid Postgres DSN: ", 0), 0u) << j.error();
}

TEST(PostgresJournalFactory, BadOptionsFailCreation) {
  const std::string dsn = "host=127.0.0.1 port=1";
  EXPECT_FALSE(make_postgres_journal({.dsn = dsn, .pool_max = 1}));
  EXPECT_FALSE(make_postgres_journal({.dsn = dsn, .pool_min = 5, .pool_max = 4}));
  EXPECT_FALSE(make_postgres_journal({.dsn = dsn, .max_queue = 0}));
  EXPECT_FALSE(make_postgres_journal({.dsn = dsn, .max_batch = 0}));
  EXPECT_FALSE(make_postgres_journal({.dsn = dsn, .backoff_initial = 100ms, .backoff_max = 10ms}));
}

TEST(PostgresJournalFactory, AServerThatIsDownIsNotAnError) {
  // Port 1 on loopback: nothing listens there.
  auto j = make_postgres_journal({.dsn = "host=127.0.0.1 port=1 connect_timeout=2",
                                  .backoff_initial = 10ms,
                                  .close_timeout = 100ms});
  ASSERT_TRUE(j) << j.error();
  (*j)->append(event(EventKind::spawned, 1, "worker", 0));
  auto ready = (*j)->ready();
  EXPECT_FALSE(ready);
  EXPECT_EQ(ready.error().rfind("storage: journal not ready", 0), 0u) << ready.error();
  auto flushed = (*j)->flush(50ms);
  ASSERT_FALSE(flushed);
  EXPECT_NE(flushed.error().find("1 events still queued"), std::string::npos) << flushed.error();
  auto history = (*j)->history(1);
  ASSERT_FALSE(history);
  EXPECT_NE(history.error().find("cannot connect to Postgres"), std::string::npos) << history.error();
  EXPECT_EQ((*j)->stats().queued, 1u);
}

// -- event kinds and ids ---

TEST(EventKindNames, RoundTripThroughTheirNames) {
  for (auto k : {EventKind::spawned, EventKind::exited, EventKind::crashed, EventKind::restarted, EventKind::message}) {
    auto parsed = parse_event_kind(to_string(k));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, k);
  }
  EXPECT_EQ(to_string(EventKind::crashed), "crashed");
  EXPECT_FALSE(parse_event_kind("exploded"));
}

TEST(EventIds, OneGeneratorNeverRepeatsAndKeepsItsPrefix) {
  EventIdGenerator g;
  std::unordered_set<std::uint64_t> seen;
  for (int i = 0; i < 200'000; ++i) {
    const std::uint64_t id = g.next();
    ASSERT_NE(id, 0u);
    ASSERT_EQ(id >> 40, g.prefix());
    ASSERT_TRUE(seen.insert(id).second);
  }
}

TEST(EventIds, TwoGeneratorsLikeTwoProcessesDoNotCollide) {
  EventIdGenerator a, b;
  EXPECT_NE(a.prefix(), b.prefix());  // 1 in 2^24 to fail by chance
  std::unordered_set<std::uint64_t> seen;
  for (int i = 0; i < 100'000; ++i) {
    ASSERT_TRUE(seen.insert(a.next()).second);
    ASSERT_TRUE(seen.insert(b.next()).second);
  }
}

TEST(EventIds, TwoJournalsInOneProcessAssignDistinctIdsFromManyThreads) {
  auto j1 = make_memory_journal();
  auto j2 = make_memory_journal();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) (t % 2 == 0 ? j1 : j2)->append(event(EventKind::message, t, "w", 0));
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::uint64_t> ids;
  for (auto* j : {j1.get(), j2.get()}) {
    for (std::uint64_t agent = 0; agent < 4; ++agent) {
      auto h = j->history(agent, 100'000);
      ASSERT_TRUE(h);
      for (const auto& e : *h) EXPECT_TRUE(ids.insert(e.id).second) << e.id;
    }
  }
  EXPECT_EQ(ids.size(), 20'000u);
}

// -- memory journal ---

TEST(MemoryJournal, HistoryIsOneAgentsEventsOldestFirst) {
  auto j = make_memory_journal();
  j->append(event(EventKind::exited, 7, "worker", 300, "done"));
  j->append(event(EventKind::spawned, 7, "worker", 100));
  j->append(event(EventKind::spawned, 8, "worker", 150));
  j->append(event(EventKind::crashed, 7, "worker", 200, "boom"));
  ASSERT_TRUE(j->flush(1s));
  auto h = j->history(7);
  ASSERT_TRUE(h);
  ASSERT_EQ(h->size(), 3u);
  EXPECT_EQ((*h)[0].kind, EventKind::spawned);
  EXPECT_EQ((*h)[1].detail, "boom");
  EXPECT_EQ((*h)[2].detail, "done");
  auto limited = j->history(7, 2);
  ASSERT_TRUE(limited);
  ASSERT_EQ(limited->size(), 2u);
  EXPECT_EQ((*limited)[1].at_us, 200);
}

TEST(MemoryJournal, CrashesFilterByTypeAndHalfOpenRangeNewestFirst) {
  auto j = make_memory_journal();
  j->append(event(EventKind::crashed, 1, "worker", 100, "a"));
  j->append(event(EventKind::crashed, 2, "worker", 200, "b"));
  j->append(event(EventKind::crashed, 3, "parser", 250, "c"));
  j->append(event(EventKind::exited, 4, "worker", 260, "not a crash"));
  j->append(event(EventKind::crashed, 5, "worker", 300, "d"));
  auto workers = j->crashes("worker", 100, 300);  // 300 is excluded
  ASSERT_TRUE(workers);
  ASSERT_EQ(workers->size(), 2u);
  EXPECT_EQ((*workers)[0].detail, "b");
  EXPECT_EQ((*workers)[1].detail, "a");
  auto any = j->crashes("", 0, 1000, 3);
  ASSERT_TRUE(any);
  ASSERT_EQ(any->size(), 3u);
  EXPECT_EQ((*any)[0].detail, "d");
  EXPECT_EQ((*any)[1].detail, "c");
  EXPECT_EQ((*any)[2].detail, "b");
}

TEST(MemoryJournal, AppendFillsIdAndTimeAndKeepsThemWhenGiven) {
  auto j = make_memory_journal();
  const std::int64_t before = now_us();
  j->append(event(EventKind::spawned, 1, "w", 0));
  JournalEvent given = event(EventKind::spawned, 1, "w", 5);
  given.id = 42;
  j->append(given);
  auto h = j->history(1);
  ASSERT_TRUE(h);
  ASSERT_EQ(h->size(), 2u);
  EXPECT_EQ((*h)[0].id, 42u);
  EXPECT_EQ((*h)[0].at_us, 5);
  EXPECT_NE((*h)[1].id, 0u);
  EXPECT_GE((*h)[1].at_us, before);
}

TEST(MemoryJournal, ARetryWithTheSameIdIsStoredOnce) {
  auto j = make_memory_journal();
  JournalEvent e = event(EventKind::crashed, 3, "w", 10, "boom");
  e.id = next_event_id();
  j->append(e);
  j->append(e);
  auto h = j->history(3);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->size(), 1u);
}

TEST(MemoryJournal, WhenFullEventsAreDroppedAndCounted) {
  metrics::Registry registry;  // outlives the journal
  auto j = make_memory_journal(3);
  for (int i = 0; i < 5; ++i) j->append(event(EventKind::message, 1, "w", i + 1));
  const JournalStats s = j->stats();
  EXPECT_EQ(s.appended, 5u);
  EXPECT_EQ(s.written, 3u);
  EXPECT_EQ(s.dropped, 2u);
  EXPECT_EQ(s.queued, 0u);
  auto h = j->history(1);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->size(), 3u);
  j->export_metrics(registry);
  const std::string text = registry.render();
  EXPECT_NE(text.find("swarm_journal_dropped_total{backend=\"memory\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("swarm_journal_written_total{backend=\"memory\"} 3"), std::string::npos) << text;
  EXPECT_TRUE(j->ready());
}

TEST(MemoryJournal, ConcurrentAppendsAndReadsAreSafe) {
  auto j = make_memory_journal();
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) {
      EXPECT_TRUE(j->history(1, 10));
      EXPECT_TRUE(j->crashes("w", 0, INT64_MAX, 10));
      (void)j->stats();
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; ++t) {
    writers.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) j->append(event(i % 2 ? EventKind::crashed : EventKind::spawned, 1, "w", 0));
    });
  }
  for (auto& t : writers) t.join();
  stop = true;
  reader.join();
  EXPECT_EQ(j->stats().written, 10'000u);
}

}  // namespace
}  // namespace swarm::storage
