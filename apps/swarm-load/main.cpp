// swarm-load: drives a swarm built on the Swarm runtime and reports what it
// sustains — throughput, latency percentiles (coordinated-omission
// corrected), drops, CPU and memory — as a table, JSON and SVG/PNG plots.
//
//   swarm-load run --scenario pipeline --rate 200k --seconds 10 --json base.json
//   swarm-load compare base.json new.json          # exit 1 on a regression beyond 10%
//   swarm-load capacity --scenario pipeline --slo-p99 1ms
//   swarm-load list
//   swarm-load run --scenario fanout --nats nats://127.0.0.1:4222   # subscribers in a second process, across NATS
//
// Exit status: 0 ok; 1 a regression, an SLO miss or a failed run; 2 bad input.

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/swarm-load/capacity.hpp"
#include "apps/swarm-load/driver.hpp"
#include "apps/swarm-load/plot.hpp"
#include "apps/swarm-load/report.hpp"
#include "apps/swarm-load/results_db.hpp"
#include "apps/swarm-load/scenario.hpp"
#include "storage/journal.hpp"

namespace {

using namespace swarm::load;

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kBadInput = 2;

std::atomic<bool> g_stop{false};

void on_interrupt(int) { g_stop.store(true); }

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sa.sa_flags = SA_RESETHAND;  // a second Ctrl-C ends the process
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

// Scenario flags shared by `run` and `capacity`: each sets one scenario field,
// applied in a fixed order after the scenario is loaded.
struct ScenarioFlags {
  std::string scenario;
  std::vector<std::pair<std::string, std::string>> values;  // field -> text, filled by CLI11
  std::vector<std::string> sets;                            // --set FIELD=VALUE
  bool closed_loop = false;
  std::string ramp;

  std::vector<std::pair<std::string, std::string*>> slots;
  std::vector<std::unique_ptr<std::string>> storage;

  void add(CLI::App& app, const std::string& flag, const std::string& field, const std::string& help) {
    storage.push_back(std::make_unique<std::string>());
    slots.emplace_back(field, storage.back().get());
    app.add_option(flag, *storage.back(), help);
  }

  void attach(CLI::App& app, bool with_load) {
    app.add_option("--scenario", scenario,
                   "A built-in scenario (pipeline, fanout, topics, request-reply, mixed; see `swarm-load list`) or a "
                   "YAML file")
        ->required();
    if (with_load) {
      add(app, "--rate", "rate", "Open loop: messages/s, constant (k and M suffixes: 200k, 1.5M)");
      add(app, "--seconds", "seconds", "Measured duration after the warm-up (1.5, 10s, 500ms); default 10 s");
      add(app, "--messages", "messages", "Measured messages instead of a duration");
      add(app, "--steps", "schedule", "Open loop: a step schedule RATE:SECONDS,RATE:SECONDS,...");
      app.add_option("--ramp", ramp, "Open loop: a ramp FROM:TO (messages/s) over the measured duration");
      app.add_flag("--closed-loop", closed_loop, "As fast as possible, with --in-flight messages outstanding");
      add(app, "--in-flight", "in_flight", "Closed loop: messages outstanding at once (default 1000)");
      add(app, "--warmup", "warmup", "Warm-up before measuring, excluded from results (default 1 s)");
    }
    add(app, "--stages", "stages", "pipeline: agents per chain");
    add(app, "--lanes", "lanes", "pipeline: parallel chains");
    add(app, "--subscribers", "subscribers", "fanout: subscribers of the topic; topics: per topic");
    add(app, "--topics", "topics", "topics: number of topics");
    add(app, "--queue-groups", "queue_groups", "fanout/topics: split subscribers into N queue groups");
    add(app, "--clients", "clients", "request-reply: requesting agents");
    add(app, "--servers", "servers", "request-reply: responders (one queue group)");
    add(app, "--idle-agents", "idle_agents", "Extra agents that only exist");
    add(app, "--payload", "payload_bytes", "Payload bytes (16..16777216)");
    add(app, "--work-ns", "work_ns", "CPU each handler burns per message, ns");
    add(app, "--workers", "workers", "Runtime worker threads (default: the cores the generators leave, at least 1)");
    add(app, "--idle-spin", "idle_spin_us",
        "Longest a worker with nothing to do spins before it parks, us (default 200; adaptive; 0 = park at once)");
    add(app, "--mailbox", "mailbox_capacity", "Mailbox capacity of every agent");
    add(app, "--overflow", "overflow", "Full mailbox policy: reject, drop_oldest, drop_newest");
    add(app, "--telemetry", "telemetry", "The runtime's telemetry: on or off");
    add(app, "--storage", "storage", "none, memory, redis (needs --redis), postgres (needs --postgres)");
    add(app, "--redis", "redis", "storage redis: redis://host[:port][/db]");
    add(app, "--postgres", "postgres", "storage postgres: a libpq DSN");
    add(app, "--generators", "generators", "Threads sending the load");
    add(app, "--admin", "admin", "Serve the admin port (/metrics, /debug/...) on HOST:PORT while running");
    add(app, "--nats", "nats",
        "Across nodes: subscribers in a second swarm-load process, joined to this one through these NATS servers "
        "(nats://HOST:PORT[,...], JetStream on); publishers here");
    app.add_option("--set", sets, "Any scenario field: --set FIELD=VALUE (repeatable; see `swarm-load list --fields`)");
  }

  // The scenario with every flag applied, validated.
  swarm::Result<Scenario> resolve() const {
    auto s = resolve_scenario(scenario);
    if (!s) return s;
    if (closed_loop) {
      if (auto ok = set_field(*s, "mode", "closed"); !ok) return swarm::unexpected(ok.error());
      s->schedule.clear();
    }
    for (const auto& [field, value] : slots) {
      if (value->empty()) continue;
      if (auto ok = set_field(*s, field, *value); !ok) return swarm::unexpected(ok.error());
    }
    for (const std::string& kv : sets) {
      const std::size_t eq = kv.find('=');
      if (eq == std::string::npos) {
        return swarm::unexpected("swarm-load: --set " + kv + " is not FIELD=VALUE");
      }
      if (auto ok = set_field(*s, kv.substr(0, eq), kv.substr(eq + 1)); !ok) return swarm::unexpected(ok.error());
    }
    if (!ramp.empty()) {
      const std::size_t colon = ramp.find(':');
      if (colon == std::string::npos) return swarm::unexpected("swarm-load: --ramp " + ramp + " is not FROM:TO");
      const std::string text = "ramp:" + ramp + ":" + std::to_string(s->measured_seconds());
      if (auto ok = set_field(*s, "schedule", text); !ok) return swarm::unexpected(ok.error());
    }
    if (auto ok = validate(*s); !ok) return swarm::unexpected(ok.error());
    return s;
  }
};

std::string progress_line(const IntervalStats& p, const LiveTotals& live) {
  std::string line = "[" + std::string(p.warmup ? "warm-up" : "measure") + " " +
                     [&] {
                       char b[16];
                       std::snprintf(b, sizeof b, "%6.1fs", p.t);
                       return std::string(b);
                     }() +
                     "] sent " + format_count(p.sent_rate()) + "/s  done " + format_count(p.completed_rate()) + "/s";
  // The drain's last sliver: rates over a few ms say little, so say how short it was.
  if (p.seconds < 0.5) line += " (over the last " + format_latency_ns(p.seconds * 1e9) + ")";
  if (p.observations > 0) {
    line += "  p50 " + format_latency_ns(p.p50 * 1e9) + "  p99 " + format_latency_ns(p.p99 * 1e9);
  } else {
    line += "  (no samples)";
  }
  if (!p.warmup && live.measured_p99 > 0) line += "  (run p99 " + format_latency_ns(live.measured_p99 * 1e9) + ")";
  line += "  drops " + format_count(static_cast<double>(live.dropped)) + "  in flight " +
          format_count(static_cast<double>(live.in_flight));
  return line;
}

void print_plots(const RunResult& r, const std::string& prefix, bool png) {
  const std::string title = r.scenario + (r.mode == "closed" ? " (closed loop)" : " at " + r.schedule);
  auto a = write_plot(prefix + "-spectrum.svg", spectrum_svg({{r.scenario, &r.latency}}, "Latency by percentile: " + title),
                      png);
  auto b = write_plot(prefix + "-timeline.svg", timeline_svg(r, "Over time: " + title), png);
  for (auto* w : {&a, &b}) std::fprintf(stderr, "swarm-load: %s\n", w->has_value() ? w->value().c_str() : w->error().c_str());
}

int cmd_run(const ScenarioFlags& flags, const std::string& json_path, const std::string& plot_prefix, bool no_png,
            const std::string& results_dsn, const std::string& slo_text, bool quiet) {
  auto s = flags.resolve();
  if (!s) {
    std::fprintf(stderr, "swarm-load: %s\n", s.error().c_str());
    return kBadInput;
  }
  double slo = 0;
  if (!slo_text.empty()) {
    auto v = parse_seconds(slo_text, "--slo-p99");
    if (!v || *v <= 0) {
      std::fprintf(stderr, "swarm-load: --slo-p99 = \"%s\" is not a duration above 0 (e.g. 1ms)\n", slo_text.c_str());
      return kBadInput;
    }
    slo = *v;
  }
  if (!results_dsn.empty()) {  // checked now: the rows are written after the run
    if (auto ok = swarm::storage::validate_postgres_dsn(results_dsn); !ok) {
      std::fprintf(stderr, "swarm-load: --results-dsn: %s\n", ok.error().c_str());
      return kBadInput;
    }
  }
  std::fprintf(stderr, "swarm-load: %s: %s; %s, %.3g s warm-up%s\n", s->name.c_str(), s->description.c_str(),
               s->mode == LoadMode::open ? s->measured_schedule().describe().c_str() : "closed loop",
               s->warmup, s->admin.empty() ? "" : ("; admin on " + s->admin).c_str());
  install_interrupt_handler();
  RunOptions opts;
  opts.stop = &g_stop;
  if (!quiet) {
    opts.progress = [](const IntervalStats& p, const LiveTotals& live) {
      std::fprintf(stderr, "%s\n", progress_line(p, live).c_str());
    };
  }
  auto r = run_scenario(*s, opts);
  if (!r) {
    std::fprintf(stderr, "swarm-load: %s\n", r.error().c_str());
    return kFailed;
  }
  std::fputs(format_table(*r).c_str(), stdout);
  std::fflush(stdout);
  int status = kOk;
  if (!json_path.empty()) {
    if (auto ok = write_json(*r, json_path); !ok) {
      std::fprintf(stderr, "%s\n", ok.error().c_str());
      status = kFailed;
    }
  }
  if (!plot_prefix.empty()) print_plots(*r, plot_prefix, !no_png);
  if (!results_dsn.empty()) {
    auto id = store_run(results_dsn, *r);
    if (!id) {
      std::fprintf(stderr, "%s\n", id.error().c_str());
      status = kFailed;
    } else {
      std::fprintf(stderr, "swarm-load: stored as swarm_load_runs.id = %lld\n", static_cast<long long>(*id));
    }
  }
  if (slo > 0 && r->latency.quantile(0.99) / 1e9 > slo) {
    std::fprintf(stderr, "swarm-load: p99 %s is above the SLO %s\n", format_latency_ns(r->latency.quantile(0.99)).c_str(),
                 format_latency_ns(slo * 1e9).c_str());
    status = kFailed;
  }
  if (!r->drained) status = kFailed;
  return status;
}

int cmd_compare(const std::string& a_path, const std::string& b_path, const std::string& threshold_text,
                const std::vector<std::string>& metrics, const std::string& plot_prefix, bool no_png) {
  CompareOptions o;
  auto t = parse_fraction(threshold_text, "--threshold");
  if (!t) {
    std::fprintf(stderr, "%s\n", t.error().c_str());
    return kBadInput;
  }
  o.threshold = *t;
  if (!metrics.empty()) {
    for (const std::string& m : metrics) {
      if (std::find(std::begin(kComparableMetrics), std::end(kComparableMetrics), m) == std::end(kComparableMetrics)) {
        std::fprintf(stderr,
                     "swarm-load: --metrics: unknown metric \"%s\" (allowed: throughput, p50, p90, p99, p999, max, "
                     "dropped, cpu)\n",
                     m.c_str());
        return kBadInput;
      }
    }
    o.metrics = metrics;
  }
  auto a = read_json(a_path);
  if (!a) {
    std::fprintf(stderr, "%s\n", a.error().c_str());
    return kBadInput;
  }
  auto b = read_json(b_path);
  if (!b) {
    std::fprintf(stderr, "%s\n", b.error().c_str());
    return kBadInput;
  }
  const Comparison c = compare(*a, *b, o);
  std::fputs(format_comparison(c, "A " + std::filesystem::path(a_path).filename().string(),
                               "B " + std::filesystem::path(b_path).filename().string())
                 .c_str(),
             stdout);
  if (!plot_prefix.empty()) {
    auto w = write_plot(plot_prefix + "-spectrum.svg",
                        spectrum_svg({{"A " + a_path, &a->latency}, {"B " + b_path, &b->latency}},
                                     "Latency by percentile: " + a->scenario + " vs " + b->scenario),
                        !no_png);
    std::fprintf(stderr, "swarm-load: %s\n", w ? w->c_str() : w.error().c_str());
  }
  return c.regression() ? kFailed : kOk;
}

// A rate as --rate takes it (k and M suffixes), checked as the scenario's rate field is.
swarm::Result<double> parse_rate(const std::string& text, const std::string& flag) {
  Scenario probe;
  if (auto ok = set_field(probe, "rate", text); !ok) return swarm::unexpected(flag + ": " + ok.error());
  return probe.rate;
}

int cmd_capacity(const ScenarioFlags& flags, CapacityOptions o, const std::string& slo_text,
                 const std::string& precision_text, const std::string& start_text, const std::string& max_text,
                 const std::string& json_path) {
  auto s = flags.resolve();
  if (!s) {
    std::fprintf(stderr, "swarm-load: %s\n", s.error().c_str());
    return kBadInput;
  }
  // The scenario's own rate is where a search starts unless told: light loads
  // are not the question, and on a VM their wake-ups make a poor first trial.
  if (s->rate > 0) o.start_rate = s->rate;
  for (auto [text, flag, dst] : {std::tuple{&start_text, "--start", &o.start_rate}, {&max_text, "--max", &o.max_rate}}) {
    if (text->empty()) continue;
    auto rate = parse_rate(*text, flag);
    if (!rate) {
      std::fprintf(stderr, "swarm-load: %s\n", rate.error().c_str());
      return kBadInput;
    }
    *dst = *rate;
  }
  auto slo = parse_seconds(slo_text, "--slo-p99");
  if (!slo || *slo <= 0) {
    std::fprintf(stderr, "swarm-load: --slo-p99 = \"%s\" is not a duration above 0 (e.g. 1ms)\n", slo_text.c_str());
    return kBadInput;
  }
  o.slo_p99 = *slo;
  auto p = parse_fraction(precision_text, "--precision");
  if (!p || *p <= 0) {
    std::fprintf(stderr, "swarm-load: --precision = \"%s\" must be above 0 (e.g. 5%%)\n", precision_text.c_str());
    return kBadInput;
  }
  o.precision = *p;
  if (o.start_rate > o.max_rate) {
    std::fprintf(stderr, "swarm-load: --start %.0f is above --max %.0f\n", o.start_rate, o.max_rate);
    return kBadInput;
  }
  std::fprintf(stderr,
               "swarm-load: capacity of %s with p99 <= %s (trials of %.3g s after %.3g s warm-up, precision %.0f%%)\n",
               s->name.c_str(), format_latency_ns(o.slo_p99 * 1e9).c_str(), o.trial_seconds, o.trial_warmup,
               o.precision * 100);
  install_interrupt_handler();
  auto c = find_capacity(o, scenario_trials(*s, o), [](const Trial& t) {
    std::fprintf(stderr, "  %12s/s  %-4s  done %12s/s  p50 %10s  p99 %10s  drops %s%s%s\n", format_count(t.rate).c_str(),
                 t.pass ? "pass" : "FAIL", format_count(t.throughput).c_str(), format_latency_ns(t.p50 * 1e9).c_str(),
                 format_latency_ns(t.p99 * 1e9).c_str(), format_count(static_cast<double>(t.dropped)).c_str(),
                 t.pass ? "" : "  ", t.why.c_str());
    if (g_stop.load()) std::exit(kFailed);
  });
  if (!c) {
    std::fprintf(stderr, "swarm-load: %s\n", c.error().c_str());
    return kFailed;
  }
  if (c->sustainable_rate == 0) {
    std::printf("%s: no rate down to %s/s kept p99 <= %s\n", s->name.c_str(), format_count(o.min_rate).c_str(),
                format_latency_ns(o.slo_p99 * 1e9).c_str());
  } else {
    std::printf("%s: sustains %s msgs/s with p99 <= %s%s (%zu trials)\n", s->name.c_str(),
                format_count(c->sustainable_rate).c_str(), format_latency_ns(o.slo_p99 * 1e9).c_str(),
                c->hit_max_rate ? " (the --max rate: the limit is higher)" : "", c->trials.size());
  }
  if (!json_path.empty()) {
    std::ofstream out(json_path, std::ios::trunc);
    out << to_json(*c, o, s->name).dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "swarm-load: cannot write %s\n", json_path.c_str());
      return kFailed;
    }
  }
  return c->sustainable_rate > 0 ? kOk : kFailed;
}

// The hidden child mode of cross-node runs (driver.hpp): the scenario comes
// as --set FIELD=VALUE, the link to the run is fd --link-fd.
int cmd_subscriber_node(const std::vector<std::string>& sets, int link_fd) {
  Scenario s;
  for (const std::string& kv : sets) {
    const std::size_t eq = kv.find('=');
    auto ok = eq == std::string::npos ? swarm::Result<void>(swarm::unexpected("--set " + kv + " is not FIELD=VALUE"))
                                      : set_field(s, kv.substr(0, eq), kv.substr(eq + 1));
    if (!ok) {
      std::fprintf(stderr, "swarm-load _subscriber-node: %s\n", ok.error().c_str());
      return kBadInput;
    }
  }
  if (auto ok = validate(s); !ok || s.nats.empty()) {
    std::fprintf(stderr, "swarm-load _subscriber-node: %s\n", ok ? "nats is not set" : ok.error().c_str());
    return kBadInput;
  }
  std::fflush(stdout);
  ::dup2(2, 1);  // nothing of this process mixes with the run's output
  return run_subscriber_node(s, link_fd);
}

int cmd_list(bool show_fields) {
  std::printf("built-in scenarios (swarm-load run --scenario NAME):\n");
  for (const Scenario& s : builtin_scenarios()) {
    std::printf("  %-14s %s (default rate %s/s)\n", s.name.c_str(), s.description.c_str(), format_count(s.rate).c_str());
  }
  std::printf("\nA YAML file works too: swarm-load run --scenario examples/load/orders.yaml\n");
  if (show_fields) {
    std::printf("\nscenario fields (YAML keys, --set FIELD=VALUE):\n");
    for (const FieldInfo& f : scenario_fields()) {
      std::printf("  %-17s %s\n  %-17s   allowed: %s\n", std::string(f.name).c_str(), std::string(f.help).c_str(), "",
                  std::string(f.allowed).c_str());
    }
  } else {
    std::printf("Fields of a scenario: swarm-load list --fields\n");
  }
  return kOk;
}

int cmd_plot(const std::vector<std::string>& files, const std::string& prefix, bool no_png) {
  std::vector<RunResult> runs;
  for (const std::string& f : files) {
    auto r = read_json(f);
    if (!r) {
      std::fprintf(stderr, "%s\n", r.error().c_str());
      return kBadInput;
    }
    runs.push_back(std::move(*r));
  }
  std::vector<SpectrumSeries> series;
  for (std::size_t i = 0; i < runs.size(); ++i) series.push_back({files[i], &runs[i].latency});
  auto a = write_plot(prefix + "-spectrum.svg", spectrum_svg(series, "Latency by percentile"), !no_png);
  std::fprintf(stderr, "swarm-load: %s\n", a ? a->c_str() : a.error().c_str());
  if (runs.size() == 1) {
    auto b = write_plot(prefix + "-timeline.svg", timeline_svg(runs[0], "Over time: " + runs[0].scenario), !no_png);
    std::fprintf(stderr, "swarm-load: %s\n", b ? b->c_str() : b.error().c_str());
  }
  return a ? kOk : kFailed;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "swarm-load: drives a swarm built on the Swarm runtime at a target rate (or as fast as it goes) and reports "
      "throughput, latency percentiles measured from each message's intended send time, drops, CPU and memory."};
  app.require_subcommand(1);

  // run
  CLI::App* run = app.add_subcommand("run", "Run a scenario and report the results");
  ScenarioFlags run_flags;
  run_flags.attach(*run, true);
  std::string json_path, plot_prefix, results_dsn, slo_text;
  bool no_png = false, quiet = false;
  run->add_option("--json", json_path, "Write the results, with the full histogram and time series, to FILE (- = stdout)");
  run->add_option("--plot", plot_prefix,
                  "Write PREFIX-spectrum.svg (latency by percentile) and PREFIX-timeline.svg (and .png when "
                  "rsvg-convert is installed)");
  run->add_flag("--no-png", no_png, "With --plot: SVG only");
  run->add_option("--results-dsn", results_dsn,
                  "Also store the run as a row of swarm_load_runs in this Postgres database (created if missing)");
  run->add_option("--slo-p99", slo_text, "Exit with status 1 when p99 is above this (e.g. 1ms)");
  run->add_flag("--quiet", quiet, "No progress line each second on stderr");

  // compare
  CLI::App* cmp = app.add_subcommand(
      "compare", "Compare two results files side by side; exit status 1 when B regressed beyond the threshold");
  std::string a_path, b_path, threshold_text = "10%", cmp_plot;
  std::vector<std::string> metrics;
  bool cmp_no_png = false;
  cmp->add_option("A", a_path, "Baseline results (swarm-load run --json)")->required();
  cmp->add_option("B", b_path, "New results")->required();
  cmp->add_option("--threshold", threshold_text, "A change worse than this is a regression (default 10%)");
  cmp->add_option("--metrics", metrics,
                  "Metrics judged (default throughput p50 p90 p99 p999 dropped; also max, cpu)")
      ->delimiter(',');
  cmp->add_option("--plot", cmp_plot, "Write both latency spectra overlaid to PREFIX-spectrum.svg (and .png)");
  cmp->add_flag("--no-png", cmp_no_png, "With --plot: SVG only");

  // capacity
  CLI::App* cap = app.add_subcommand(
      "capacity", "Raise the rate until p99 breaks the SLO; report the highest rate sustained");
  ScenarioFlags cap_flags;
  cap_flags.attach(*cap, false);
  CapacityOptions copt;
  std::string cap_slo = "1ms", precision_text = "5%", cap_json, start_text, max_text;
  cap->add_option("--slo-p99", cap_slo, "Latency SLO on p99 (default 1ms)");
  cap->add_option("--start", start_text, "First rate tried, messages/s (k and M suffixes; default: the scenario's rate)");
  cap->add_option("--max", max_text, "Highest rate tried, messages/s (default 100M)");
  cap->add_option("--precision", precision_text, "Stop when the bounds are this close (default 5%)");
  cap->add_option("--trial-seconds", copt.trial_seconds, "Measured seconds per trial (default 2)")
      ->check(CLI::Range(0.05, 3600.0));
  cap->add_option("--trial-warmup", copt.trial_warmup, "Warm-up seconds per trial (default 0.5)")
      ->check(CLI::Range(0.0, 3600.0));
  cap->add_option("--confirm", copt.confirm, "Extra runs of the final rate (default 1)")->check(CLI::Range(0u, 10u));
  cap->add_option("--retries", copt.retries, "Runs again of a failed trial before its rate counts as failed (default 1)")
      ->check(CLI::Range(0u, 10u));
  cap->add_option("--max-trials", copt.max_trials, "Give up after this many trials (default 30)")
      ->check(CLI::Range(1u, 1000u));
  cap->add_option("--min-throughput", copt.min_throughput,
                  "A trial must complete this fraction of its target rate (default 0.95)")
      ->check(CLI::Range(0.0, 1.0));
  cap->add_option("--max-drop-fraction", copt.max_drop_fraction, "Dropped/sent a trial may have (default 0)")
      ->check(CLI::Range(0.0, 1.0));
  cap->add_option("--json", cap_json, "Write every trial and the result to FILE");

  // list
  CLI::App* list = app.add_subcommand("list", "List the built-in scenarios (and, with --fields, every field)");
  bool show_fields = false;
  list->add_flag("--fields", show_fields, "Also list every scenario field with its allowed values");

  // plot
  CLI::App* plot = app.add_subcommand("plot", "Draw plots from results files (spectra overlaid; timeline of one run)");
  std::vector<std::string> plot_files;
  std::string plot_out;
  bool plot_no_png = false;
  plot->add_option("FILES", plot_files, "Results files (swarm-load run --json)")->required();
  plot->add_option("--out", plot_out, "Prefix of the files written (PREFIX-spectrum.svg, PREFIX-timeline.svg)")
      ->required();
  plot->add_flag("--no-png", plot_no_png, "SVG only");

  // _subscriber-node: hidden, spawned by `run --nats` (driver.hpp).
  CLI::App* sub_node = app.add_subcommand("_subscriber-node", "")->group("");
  std::vector<std::string> node_sets;
  int link_fd = -1;
  sub_node->add_option("--set", node_sets);
  sub_node->add_option("--link-fd", link_fd)->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    (void)app.exit(e);
    return kBadInput;
  }

  if (run->parsed()) return cmd_run(run_flags, json_path, plot_prefix, no_png, results_dsn, slo_text, quiet);
  if (cmp->parsed()) return cmd_compare(a_path, b_path, threshold_text, metrics, cmp_plot, cmp_no_png);
  if (cap->parsed()) return cmd_capacity(cap_flags, copt, cap_slo, precision_text, start_text, max_text, cap_json);
  if (list->parsed()) return cmd_list(show_fields);
  if (plot->parsed()) return cmd_plot(plot_files, plot_out, plot_no_png);
  if (sub_node->parsed()) return cmd_subscriber_node(node_sets, link_fd);
  return kBadInput;
}
