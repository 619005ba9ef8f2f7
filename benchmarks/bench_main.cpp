// swarm-bench: runs a standard workload on swarm and/or CAF, each repeat in a
// fresh child process, and prints a table or the JSON contract of DESIGN.md.
//
//   swarm-bench W2 --runtime both --repeat 5 --json

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "benchmarks/bench_driver.hpp"

namespace {

using namespace swarm::bench;

constexpr int kBadInput = 2;

std::string workload_help() {
  std::string out = "Workloads:\n";
  char buf[256];
  for (const Workload& w : workloads()) {
    std::snprintf(buf, sizeof buf, "  %-4.*s %-10.*s %.*s\n", static_cast<int>(w.id.size()),
                  w.id.data(), static_cast<int>(w.unit.size()), w.unit.data(),
                  static_cast<int>(w.description.size()), w.description.data());
    out += buf;
  }
  return out + "All figures are higher-is-better.";
}

// An on|off|default option, read back with switch_value.
CLI::Option* add_switch(CLI::App& app, const std::string& name, std::string& value, const std::string& help) {
  return app.add_option(name, value, help)->check(CLI::IsMember({"on", "off", "default"}))->capture_default_str();
}

// nullopt for "default".
std::optional<bool> switch_value(const std::string& value) {
  if (value == "default") return std::nullopt;
  return value == "on";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"swarm-bench: standard workloads on Swarm and a peer (CAF; raw Redis/Postgres clients; raw ZeroMQ; raw "
               "libnats), one child process per run",
               "swarm-bench"};
  std::string workload_id;
  std::string runtime = "swarm";
  int repeat = 5;
  bool as_json = false;
  bool child = false;
  WorkloadParams params;
  app.add_option("workload", workload_id, "Workload id (see below)")->required();
  app.add_option("--runtime", runtime, "swarm, caf, raw, or both (swarm and the workload's peer)")
      ->capture_default_str();
  bool raw = false;
  app.add_flag("--raw", raw, "S1/S2/G1-G3/C1-C3: also run the raw client library baseline (same as --runtime both)");
  app.add_option("--redis", params.redis_url, "S1: the Redis server, redis://HOST:PORT[/DB]");
  app.add_option("--postgres", params.postgres_dsn, "S2: the Postgres server, a libpq DSN or postgresql:// URI");
  app.add_option("--batch", params.batch, "S1/S2: max batch of Swarm's store, or the raw loop's batch (0 = default)")
      ->capture_default_str();
  app.add_option("--max-delay-ms", params.max_delay_ms, "S1/S2: Swarm's max delay before a partial batch (0 = default)")
      ->check(CLI::Range(0, 60000))
      ->capture_default_str();
  app.add_option("--connections", params.connections,
                 "S1: writer connections (and threads) of Swarm's state store (0 = its default, which follows the cores)")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  app.add_flag("--staged", params.staged,
               "S2: Swarm's journal merges every batch through its staging table (ON CONFLICT DO NOTHING), "
               "as it does a retried batch: what idempotent writes cost");
  app.add_option("--nats", params.nats_urls,
                 "C1-C3: the NATS servers, nats://HOST:PORT[,nats://HOST:PORT...] (JetStream on: nats-server -js)");
  std::string send_asap = "default";
  add_switch(app, "--send-asap", send_asap,
             "C1-C3: libnats' SendAsap on every connection, Swarm's nodes and the raw peer alike "
             "(default: off for C1, on for C2 and C3)");
  app.add_option("--repeat", repeat, "Runs per runtime, each in a fresh process")
      ->capture_default_str();
  app.add_flag("--json", as_json, "Print only JSON: one object per runtime, one per line");
  app.add_option("--workers", params.workers, "Worker threads; 0 = hardware cores")
      ->capture_default_str();
  app.add_option("--scale", params.scale, "Problem size; 0 = the workload's standard size")
      ->capture_default_str();
  std::string pooling = "default";
  add_switch(app, "--pooling", pooling, "Swarm's per-type agent pools: on, off, or the runtime's default");
  std::string telemetry = "on";
  app.add_option("--telemetry", telemetry, "Swarm's metrics and latency sampling: on or off (for overhead figures)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--idle-spin", params.idle_spin_us,
                 "Swarm's idle spin before a worker parks, microseconds (-1 = the runtime's default)")
      ->check(CLI::Range(-1, 10'000))
      ->capture_default_str();
  std::string batch_fanout = "default";
  add_switch(app, "--batch-fanout", batch_fanout,
             "Swarm's fan-out wake-ups queued together (on), one by one (off), or the runtime's default");
  std::string shared_fanout = "default";
  add_switch(app, "--shared-fanout", shared_fanout,
             "Swarm's large publishes shared out to other workers (on), made by the publishing worker (off), "
             "or the runtime's default");
  std::string wake_handoff = "default";
  add_switch(app, "--wake-handoff", wake_handoff,
             "Swarm's message that wakes an idle agent handed over with its scheduling (on), queued in its "
             "mailbox like the rest (off), or the runtime's default");
  std::string fanout_handoff = "default";
  add_switch(app, "--fanout-handoff", fanout_handoff,
             "Swarm's publishes hand the idle subscribers they wake one shared message (on, with --wake-handoff), "
             "an envelope each (off), or the runtime's default");
  app.add_option("--profile-hz", params.profile_hz,
                 "Run Swarm's CPU profiler at this rate during each run (0 = off), for its overhead")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  // Internal: one run in this process, its RunResult as a JSON line on stdout.
  app.add_flag("--child", child)->group("");
  // Internal: the client process of G1..G3, connecting to this endpoint.
  std::string gateway_client;
  app.add_option("--gateway-client", gateway_client)->group("");
  // Internal: node A of C1..C3, joining with this subject and bucket prefix.
  std::string cluster_child;
  app.add_option("--cluster-child", cluster_child)->group("");
  app.footer(workload_help());

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "swarm-bench: " << e.what() << " (see --help)\n";
    return kBadInput;
  }
  params.telemetry = telemetry == "on";
  params.batch_fanout = switch_value(batch_fanout);
  params.shared_fanout = switch_value(shared_fanout);
  params.wake_handoff = switch_value(wake_handoff);
  params.fanout_handoff = switch_value(fanout_handoff);
  params.send_asap = switch_value(send_asap);
  if (auto on = switch_value(pooling)) params.pooling = *on ? WorkloadParams::Pooling::on : WorkloadParams::Pooling::off;

  auto workload = find_workload(workload_id);
  if (!workload) {
    std::cerr << workload.error() << '\n';
    return kBadInput;
  }
  const std::string_view id = (*workload)->id;
  if (auto servers = check_servers(**workload, params); !servers) {
    std::cerr << servers.error() << '\n';
    return kBadInput;
  }
  if (raw) {
    if (!(*workload)->raw) {
      std::cerr << "swarm-bench: --raw: workload " << id << " has no raw-library baseline (only S1, S2, G1-G3, C1-C3)\n";
      return kBadInput;
    }
    runtime = "both";
  }
  if (!gateway_client.empty()) return run_gateway_client(id, runtime, gateway_client, params);
  if (!cluster_child.empty()) return run_cluster_child(id, runtime, cluster_child, params);
  if (child) return run_child(**workload, runtime, params);

  auto runtimes = parse_runtimes(runtime, *workload);
  if (!runtimes) {
    std::cerr << runtimes.error() << '\n';
    return kBadInput;
  }
  if (repeat < 1) {
    std::cerr << "swarm-bench: --repeat must be at least 1, got " << repeat << '\n';
    return kBadInput;
  }

  auto sums = run_benchmark(**workload, *runtimes, repeat, params, run_in_child, std::cerr);
  if (!sums) {
    std::cerr << sums.error() << '\n';
    return 1;
  }
  if (as_json) {
    for (const Summary& s : *sums) std::cout << summary_json(s) << '\n';
  } else {
    std::cout << (*workload)->id << ": " << (*workload)->description << '\n'
              << format_table(*sums);
  }
  return 0;
}
