#pragma once
// Keeps run results in Postgres, one row per run, for dashboards and history.
//
//   auto id = store_run("host=127.0.0.1 dbname=swarm", run);   // creates the table if missing
//   if (!id) fail(id.error());                                  // "swarm-load: results: cannot connect ..."
//
// Table swarm_load_runs (created when missing):
//   id bigserial primary key, started_at timestamptz, scenario text,
//   target_rate double precision, throughput double precision,
//   p50, p90, p99, p999, max double precision (seconds),
//   dropped jsonb (by reason, and total), json jsonb (the whole results file).

#include <cstdint>
#include <string>

#include "apps/swarm-load/driver.hpp"
#include "base/result.hpp"

namespace swarm::load {

/// Inserts one row for `run` (one connection, one transaction); returns its id.
Result<std::int64_t> store_run(const std::string& dsn, const RunResult& run);

}  // namespace swarm::load
