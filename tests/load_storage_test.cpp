// swarm-load against real servers: scenarios with storage redis and
// postgres, and results kept as rows of swarm_load_runs. Counts only, never timing.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>

#include "apps/swarm-load/driver.hpp"
#include "apps/swarm-load/report.hpp"
#include "apps/swarm-load/results_db.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/redis_server.hpp"

#if defined(__SANITIZE_ADDRESS__)
// libpqxx 6.4 leaks one PGresult when it meets a closed connection (see postgres_journal_test.cpp).
extern "C" const char* __lsan_default_suppressions() { return "leak:libpqxx-6.4.so\n"; }
#endif

namespace swarm::load {
namespace {

// The pipeline scenario, small: 2 chains of 3 stages, 600 measured messages.
Scenario small_pipeline() {
  Scenario s = *builtin_scenario("pipeline");
  s.stages = 3;
  s.lanes = 2;
  s.rate = 2000;
  s.warmup = 0.1;
  s.seconds = 0.3;
  s.workers = 2;
  s.drain_timeout = 30;
  return s;
}

std::int64_t scalar(const std::string& dsn, const std::string& sql) {
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  return tx.exec(sql)[0][0].as<std::int64_t>();
}

TEST(LoadStorage, EveryStageOfARedisBackedPipelineStoresItsCount) {
  test::RedisServer redis;
  Scenario s = small_pipeline();
  s.storage = StorageKind::redis;
  s.redis = redis.url();
  auto r = run_scenario(s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->completed, r->sent);
  EXPECT_EQ(r->dropped_total(), 0u);
  // Shutdown flushed each stage's newest count: every message, warm-up too, passed every stage of its chain.
  std::uint64_t handled = 0;
  for (int lane = 0; lane < 2; ++lane) {
    for (int k = 0; k < 3; ++k) {
      const std::string key = "swarm:state:swarm-load/pipeline/" + std::to_string(lane) + "/" + std::to_string(k);
      test::RedisReply reply = redis.command({"HGET", key, "state"});
      ASSERT_EQ(reply->type, REDIS_REPLY_STRING) << key;
      handled += std::stoull(std::string(reply->str, reply->len));
    }
  }
  std::uint64_t sent_in_all = 0;
  for (const IntervalStats& p : r->timeline) sent_in_all += p.sent;
  EXPECT_EQ(handled, 3 * sent_in_all);
}

TEST(LoadStorage, APostgresBackedRunJournalsItsMessagesAndItsResultsBecomeRows) {
  test::PostgresServer pg;
  pg.psql("CREATE DATABASE load");
  const std::string dsn = pg.dsn("load");
  Scenario s = small_pipeline();
  s.storage = StorageKind::postgres;
  s.postgres = dsn;
  auto r = run_scenario(s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->completed, r->sent);
  // Each stage's lifecycle: spawned, then exited at shutdown.
  EXPECT_EQ(scalar(dsn, "SELECT count(*) FROM swarm_journal WHERE kind = 'spawned' AND agent_type = 'load_stage'"), 6);
  EXPECT_EQ(scalar(dsn, "SELECT count(*) FROM swarm_journal WHERE kind = 'exited' AND agent_type = 'load_stage'"), 6);

  auto first = store_run(dsn, *r);
  ASSERT_TRUE(first) << first.error();
  auto second = store_run(dsn, *r);
  ASSERT_TRUE(second) << second.error();
  EXPECT_GT(*second, *first);
  EXPECT_EQ(scalar(dsn, "SELECT count(*) FROM swarm_load_runs WHERE scenario = 'pipeline'"), 2);
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  const auto row = tx.exec_params1("SELECT json::text, p99 FROM swarm_load_runs WHERE id = $1", *first);
  const nlohmann::json stored = nlohmann::json::parse(row[0].as<std::string>());
  EXPECT_EQ(stored.at("scenario"), "pipeline");
  EXPECT_EQ(stored.at("latency_seconds").at("p99").get<double>(), row[1].as<double>());
}

TEST(LoadStorage, AnUnreachableResultsDatabaseIsAClearError) {
  auto r = run_scenario(small_pipeline());
  ASSERT_TRUE(r) << r.error();
  auto id = store_run("host=127.0.0.1 port=1 dbname=x connect_timeout=2", *r);
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().rfind("swarm-load: results: cannot store the run in Postgres: ", 0), 0u) << id.error();
}

}  // namespace
}  // namespace swarm::load
