#include "apps/swarm-load/results_db.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "apps/swarm-load/report.hpp"
#include "storage/pg_pool.hpp"

namespace swarm::load {

namespace {

constexpr const char* kCreate = R"sql(
CREATE TABLE IF NOT EXISTS swarm_load_runs (
  id          bigserial PRIMARY KEY,
  started_at  timestamptz NOT NULL,
  scenario    text NOT NULL,
  target_rate double precision NOT NULL,
  throughput  double precision NOT NULL,
  p50         double precision NOT NULL,
  p90         double precision NOT NULL,
  p99         double precision NOT NULL,
  p999        double precision NOT NULL,
  max         double precision NOT NULL,
  dropped     jsonb NOT NULL,
  json        jsonb NOT NULL
))sql";

}  // namespace

Result<std::int64_t> store_run(const std::string& dsn, const RunResult& run) {
  const nlohmann::json j = to_json(run);
  try {
    pqxx::connection conn(storage::with_connect_timeout(dsn, storage::PgPoolOptions{}.connect_timeout));
    pqxx::work tx(conn);
    // Two runs creating the table at once: the loser's CREATE waits on the lock, then finds it.
    tx.exec("SELECT pg_advisory_xact_lock(7242001)");
    tx.exec0(kCreate);
    const nlohmann::json& lat = j["latency_seconds"];
    pqxx::result r = tx.exec_params(
        "INSERT INTO swarm_load_runs (started_at, scenario, target_rate, throughput, p50, p90, p99, p999, max, "
        "dropped, json) VALUES (COALESCE(NULLIF($1, '')::timestamptz, now()), $2, $3, $4, $5, $6, $7, $8, $9, "
        "$10::jsonb, $11::jsonb) RETURNING id",
        run.started_at, run.scenario, run.target_rate, run.throughput, lat["p50"].get<double>(),
        lat["p90"].get<double>(), lat["p99"].get<double>(), lat["p999"].get<double>(), lat["max"].get<double>(),
        j["dropped"].dump(), j.dump());
    tx.commit();
    return r[0][0].as<std::int64_t>();
  } catch (const std::exception& e) {
    return unexpected(std::string("swarm-load: results: cannot store the run in Postgres: ") + e.what());
  }
}

}  // namespace swarm::load
