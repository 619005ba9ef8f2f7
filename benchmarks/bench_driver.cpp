#include "benchmarks/bench_driver.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "metrics/profiler.hpp"

extern char** environ;

namespace swarm::bench {
namespace {

using nlohmann::json;

constexpr std::string_view kPrefix = "swarm-bench: ";

// An on|off|default option's value, as given on the command line.
const char* switch_text(std::optional<bool> value) { return !value ? "default" : *value ? "on" : "off"; }

const Workload kWorkloads[] = {
    {"W1", "spawns/s", "spawn 100k idle agents; also resident bytes per agent", swarm_w1,
     caf_w1},
    {"W2", "msgs/s", "ping-pong 1M messages between two agents", swarm_w2, caf_w2},
    {"W3", "deliveries/s", "fan-out: 1 publisher, 1,000 subscribers on one topic, 1,000 messages",
     swarm_w3, caf_w3},
    {"W4", "msgs/s", "many topics: 10k agents each on its own topic, 1M messages to random topics",
     swarm_w4, caf_w4},
    {"W5", "hops/s", "thread ring: 503 agents pass a token 1M hops", swarm_w5, caf_w5},
    {"W6", "agents/s", "spawn tree: 10 children per agent down to 1M leaves, summed",
     swarm_w6, caf_w6},
    {"S1", "states/s", "state flush: 1M agents' 128-byte states into Redis (--redis URL)", swarm_s1, {}, raw_s1},
    {"S2", "events/s", "journal: 1M events with a 64-byte payload into Postgres (--postgres DSN)", swarm_s2, {},
     raw_s2},
    {"G1", "msgs/s", "gateway throughput: a client process publishes 1M 64-byte messages to one agent over TCP",
     swarm_g1, {}, raw_g1},
    {"G2", "requests/s", "gateway round trip: 100k sequential requests from a client process to an echo agent",
     swarm_g2, {}, raw_g2},
    {"G3", "deliveries/s", "gateway fan-out: 10k 64-byte messages published to 100 subscriber clients",
     swarm_g3, {}, raw_g3},
    {"C1", "msgs/s", "cluster throughput: node A publishes 1M 64-byte messages to one agent on node B (--nats URL)",
     swarm_c1, {}, raw_c1},
    {"C2", "requests/s", "cluster round trip: 20k sequential requests from node A to an echo agent on node B (--nats URL)",
     swarm_c2, {}, raw_c2},
    {"C3", "msgs/s", "local publish, joined to a cluster (raw: not joined): 1M messages to one local agent (--nats URL)",
     swarm_c3, {}, raw_c3},
};

std::string join(std::span<const std::string_view> names) {
  std::string out;
  for (std::string_view n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return "killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "ended with wait status " + std::to_string(status);
}

// "12.31 M": two decimals and a k/M/G prefix, short enough for a table cell.
std::string scaled(double value) {
  const char* prefix = "";
  double v = value;
  if (value >= 1e9) {
    v = value / 1e9, prefix = " G";
  } else if (value >= 1e6) {
    v = value / 1e6, prefix = " M";
  } else if (value >= 1e3) {
    v = value / 1e3, prefix = " k";
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f%s", v, prefix);
  return buf;
}

// RAII for pipe ends, so every error path closes them.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::span<const Workload> workloads() { return kWorkloads; }

Result<const Workload*> find_workload(std::string_view id) {
  for (const Workload& w : kWorkloads) {
    if (w.id == id) return &w;
  }
  std::vector<std::string_view> ids;
  for (const Workload& w : kWorkloads) ids.push_back(w.id);
  return unexpected("swarm-bench: unknown workload '" + std::string(id) +
                    "' (allowed: " + join(ids) + ")");
}

Result<void> check_servers(const Workload& w, const WorkloadParams& p) {
  if (w.id == "S1" && p.redis_url.empty()) return unexpected(std::string("swarm-bench: S1 needs --redis redis://HOST:PORT"));
  if (w.id == "S2" && p.postgres_dsn.empty()) {
    return unexpected(
        std::string("swarm-bench: S2 needs --postgres 'DSN' (e.g. 'host=127.0.0.1 port=5432 dbname=swarm')"));
  }
  if (w.id.starts_with("C") && p.nats_urls.empty()) {
    return unexpected("swarm-bench: " + std::string(w.id) +
                      " needs --nats nats://HOST:PORT[,nats://HOST:PORT...], a nats-server with JetStream "
                      "(e.g. nats-server -js -a 127.0.0.1 -p 4222)");
  }
  return {};
}

Result<WorkloadFn> workload_function(const Workload& w, std::string_view runtime) {
  WorkloadFn fn;
  if (runtime == "swarm") {
    fn = w.swarm;
  } else if (runtime == "caf") {
    fn = w.caf;
  } else if (runtime == "raw") {
    fn = w.raw;
  } else {
    return unexpected("swarm-bench: unknown runtime '" + std::string(runtime) +
                      "' (allowed: " + join(kRuntimes) + ")");
  }
  if (!fn) {
    return unexpected("swarm-bench: workload " + std::string(w.id) +
                      " is not available for runtime " + std::string(runtime));
  }
  return fn;
}

Result<std::vector<std::string>> parse_runtimes(std::string_view name, const Workload* w) {
  if (name == "both") return std::vector<std::string>{"swarm", std::string(w != nullptr ? w->peer() : "caf")};
  for (std::string_view r : kRuntimes) {
    if (r == name) return std::vector<std::string>{std::string(r)};
  }
  return unexpected("swarm-bench: unknown runtime '" + std::string(name) +
                    "' (allowed: " + join(kRuntimes) + ", both)");
}

Stats compute_stats(std::span<const double> values) {
  if (values.empty()) return {};
  std::vector<double> v(values.begin(), values.end());
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  double median = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {median, v.front(), v.back()};
}

std::string summary_json(const Summary& s) {
  std::vector<double> values, seconds, bytes, history, median_us, p99_us;
  std::vector<std::uint64_t> checksums, drops;
  for (const RunResult& r : s.runs) {
    values.push_back(r.value);
    seconds.push_back(r.seconds);
    checksums.push_back(r.checksum);
    if (r.bytes_per_agent) bytes.push_back(*r.bytes_per_agent);
    if (r.history_p95_ms) history.push_back(*r.history_p95_ms);
    if (r.latency_median_us) median_us.push_back(*r.latency_median_us);
    if (r.latency_p99_us) p99_us.push_back(*r.latency_p99_us);
    if (r.drops) drops.push_back(*r.drops);
  }
  Stats st = compute_stats(values);
  // ordered_json keeps the contract's field order, easier to read by eye.
  nlohmann::ordered_json j = {
      {"workload", s.workload}, {"runtime", s.runtime}, {"unit", s.unit},
      {"median", st.median},    {"min", st.min},        {"max", st.max},
      {"runs", values},
  };
  if (!bytes.empty()) j["bytes_per_agent"] = compute_stats(bytes).median;
  if (!history.empty()) j["history_p95_ms"] = compute_stats(history).median;
  if (!median_us.empty()) j["latency_median_us"] = compute_stats(median_us).median;
  if (!p99_us.empty()) j["latency_p99_us"] = compute_stats(p99_us).median;
  if (!drops.empty()) j["drops"] = drops;  // per run, as "runs"
  j["workers"] = s.params.workers;
  j["scale"] = s.params.scale;
  if (!s.params.redis_url.empty() || !s.params.postgres_dsn.empty()) {
    j["batch"] = s.params.batch;  // 0: the default of the store or the raw loop
    if (s.runtime == "swarm") j["max_delay_ms"] = s.params.max_delay_ms;
    if (s.runtime == "swarm" && !s.params.postgres_dsn.empty()) j["staged"] = s.params.staged;
    if (s.runtime == "swarm" && !s.params.redis_url.empty()) j["connections"] = s.params.connections;  // 0: default
  }
  if (!s.params.nats_urls.empty()) j["send_asap"] = send_asap_for(s.workload, s.params);  // not the URLs: they may carry a password
  if (s.runtime == "swarm") {
    j["pooling"] = to_string(s.params.pooling);
    j["telemetry"] = s.params.telemetry ? "on" : "off";
    j["profile_hz"] = s.params.profile_hz;
    j["idle_spin_us"] = s.params.idle_spin_us;  // -1: the runtime's default
    j["batch_fanout"] = switch_text(s.params.batch_fanout);
    j["shared_fanout"] = switch_text(s.params.shared_fanout);
    j["wake_handoff"] = switch_text(s.params.wake_handoff);
    j["fanout_handoff"] = switch_text(s.params.fanout_handoff);
  }
  j["seconds"] = seconds;
  j["checksums"] = checksums;
  return j.dump();
}

std::string run_result_json(const RunResult& r) {
  json j = {{"value", r.value}, {"seconds", r.seconds}, {"checksum", r.checksum}};
  if (r.bytes_per_agent) j["bytes_per_agent"] = *r.bytes_per_agent;
  if (r.history_p95_ms) j["history_p95_ms"] = *r.history_p95_ms;
  if (r.latency_median_us) j["latency_median_us"] = *r.latency_median_us;
  if (r.latency_p99_us) j["latency_p99_us"] = *r.latency_p99_us;
  if (r.drops) j["drops"] = *r.drops;
  return j.dump();
}

Result<RunResult> parse_run_result(std::string_view line) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](std::string_view why) {
    return unexpected("swarm-bench: bad run result (" + std::string(why) + "): '" +
                      std::string(line) + "'");
  };
  if (!j.is_object()) return bad("not a JSON object");
  RunResult r;
  auto value = j.find("value");
  auto seconds = j.find("seconds");
  if (value == j.end() || !value->is_number()) return bad("no numeric value");
  if (seconds == j.end() || !seconds->is_number()) return bad("no numeric seconds");
  r.value = value->get<double>();
  r.seconds = seconds->get<double>();
  if (auto c = j.find("checksum"); c != j.end()) {
    if (!c->is_number_unsigned()) return bad("checksum is not an unsigned integer");
    r.checksum = c->get<std::uint64_t>();
  }
  if (auto b = j.find("bytes_per_agent"); b != j.end() && !b->is_null()) {
    if (!b->is_number()) return bad("bytes_per_agent is not a number");
    r.bytes_per_agent = b->get<double>();
  }
  if (auto h = j.find("history_p95_ms"); h != j.end() && !h->is_null()) {
    if (!h->is_number()) return bad("history_p95_ms is not a number");
    r.history_p95_ms = h->get<double>();
  }
  for (auto [key, field] : {std::pair{"latency_median_us", &RunResult::latency_median_us},
                            std::pair{"latency_p99_us", &RunResult::latency_p99_us}}) {
    if (auto l = j.find(key); l != j.end() && !l->is_null()) {
      if (!l->is_number()) return bad(std::string(key) + " is not a number");
      r.*field = l->get<double>();
    }
  }
  if (auto d = j.find("drops"); d != j.end() && !d->is_null()) {
    if (!d->is_number_unsigned()) return bad("drops is not an unsigned integer");
    r.drops = d->get<std::uint64_t>();
  }
  return r;
}

std::string format_rate(double value, std::string_view unit) {
  return scaled(value) + " " + std::string(unit);
}

std::string format_table(std::span<const Summary> sums) {
  bool with_bytes = std::any_of(sums.begin(), sums.end(), [](const Summary& s) {
    return std::any_of(s.runs.begin(), s.runs.end(),
                       [](const RunResult& r) { return r.bytes_per_agent.has_value(); });
  });
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-8s %10s %10s %10s  %s%s\n", "runtime", "median", "min",
                "max", "unit", with_bytes ? "      bytes/agent" : "");
  std::string out = buf;
  std::optional<double> swarm_median, peer_median, swarm_latency, peer_latency;
  std::string peer;
  for (const Summary& s : sums) {
    std::vector<double> values, bytes;
    for (const RunResult& r : s.runs) {
      values.push_back(r.value);
      if (r.bytes_per_agent) bytes.push_back(*r.bytes_per_agent);
    }
    Stats st = compute_stats(values);
    std::snprintf(buf, sizeof buf, "%-8s %10s %10s %10s  %-8s", s.runtime.c_str(),
                  scaled(st.median).c_str(), scaled(st.min).c_str(), scaled(st.max).c_str(),
                  s.unit.c_str());
    out += buf;
    if (!bytes.empty()) {
      std::snprintf(buf, sizeof buf, " %12.0f", compute_stats(bytes).median);
      out += buf;
    }
    while (out.back() == ' ') out.pop_back();
    out += '\n';
    if (s.runtime == "swarm") swarm_median = st.median;
    std::vector<double> history;
    for (const RunResult& r : s.runs) {
      if (r.history_p95_ms) history.push_back(*r.history_p95_ms);
    }
    if (!history.empty()) {
      std::snprintf(buf, sizeof buf, "%-8s history(agent) p95 %.2f ms (median of runs)\n", s.runtime.c_str(),
                    compute_stats(history).median);
      out += buf;
    }
    std::vector<double> median_us, p99_us;
    std::uint64_t drops = 0, runs_with_drops = 0;
    bool counts_drops = false;
    for (const RunResult& r : s.runs) {
      if (r.latency_median_us) median_us.push_back(*r.latency_median_us);
      if (r.latency_p99_us) p99_us.push_back(*r.latency_p99_us);
      if (r.drops) {
        counts_drops = true;
        drops += *r.drops;
        runs_with_drops += *r.drops != 0 ? 1 : 0;
      }
    }
    std::optional<double> latency;
    if (!median_us.empty()) {
      latency = compute_stats(median_us).median;
      std::snprintf(buf, sizeof buf, "%-8s round trip median %.1f us, p99 %.1f us (medians of runs)\n",
                    s.runtime.c_str(), *latency, compute_stats(p99_us).median);
      out += buf;
    }
    if (counts_drops) {
      std::snprintf(buf, sizeof buf, "%-8s drops: %llu in %llu of %zu runs\n", s.runtime.c_str(),
                    static_cast<unsigned long long>(drops), static_cast<unsigned long long>(runs_with_drops),
                    s.runs.size());
      out += buf;
    }
    if (s.runtime == "swarm") swarm_latency = latency;
    if (s.runtime != "swarm") {
      peer_median = st.median;
      peer_latency = latency;
      peer = s.runtime;
    }
  }
  if (!sums.empty() && !sums.front().params.nats_urls.empty()) {
    std::snprintf(buf, sizeof buf, "NATS send_asap: %s (every connection: Swarm's nodes and the raw peer alike)\n",
                  send_asap_for(sums.front().workload, sums.front().params) ? "on" : "off");
    out += buf;
  }
  if (swarm_median && peer_median) {
    std::snprintf(buf, sizeof buf, "swarm/%s ratio of medians: %.2fx\n", peer.c_str(),
                  *swarm_median / *peer_median);
    out += buf;
  }
  if (swarm_latency && peer_latency) {
    std::snprintf(buf, sizeof buf, "swarm/%s ratio of round-trip medians: %.2fx (lower is better)\n", peer.c_str(),
                  *swarm_latency / *peer_latency);
    out += buf;
  }
  return out;
}

Result<RunResult> run_in_child(const Workload& w, std::string_view runtime,
                               const WorkloadParams& params) {
  return run_child_process("/proc/self/exe", w, runtime, params);
}

Result<RunResult> run_child_process(const std::string& exe, const Workload& w,
                                    std::string_view runtime, const WorkloadParams& params) {
  std::string what = "swarm-bench: " + std::string(w.id) + " " + std::string(runtime) + " child";
  std::vector<std::string> args = {"swarm-bench", std::string(w.id), "--child",
                                   "--runtime",   std::string(runtime), "--workers",
                                   std::to_string(params.workers),      "--scale",
                                   std::to_string(params.scale),        "--pooling",
                                   std::string(to_string(params.pooling)), "--telemetry",
                                   params.telemetry ? "on" : "off",     "--profile-hz",
                                   std::to_string(params.profile_hz)};
  if (!params.redis_url.empty()) args.insert(args.end(), {"--redis", params.redis_url});
  if (!params.postgres_dsn.empty()) args.insert(args.end(), {"--postgres", params.postgres_dsn});
  if (params.batch != 0) args.insert(args.end(), {"--batch", std::to_string(params.batch)});
  if (params.max_delay_ms != 0) args.insert(args.end(), {"--max-delay-ms", std::to_string(params.max_delay_ms)});
  if (params.staged) args.emplace_back("--staged");
  if (params.idle_spin_us >= 0) args.insert(args.end(), {"--idle-spin", std::to_string(params.idle_spin_us)});
  if (params.batch_fanout) args.insert(args.end(), {"--batch-fanout", *params.batch_fanout ? "on" : "off"});
  if (params.shared_fanout) args.insert(args.end(), {"--shared-fanout", *params.shared_fanout ? "on" : "off"});
  if (params.wake_handoff) args.insert(args.end(), {"--wake-handoff", *params.wake_handoff ? "on" : "off"});
  if (params.fanout_handoff) args.insert(args.end(), {"--fanout-handoff", *params.fanout_handoff ? "on" : "off"});
  if (params.connections != 0) args.insert(args.end(), {"--connections", std::to_string(params.connections)});
  if (!params.nats_urls.empty()) args.insert(args.end(), {"--nats", params.nats_urls});
  if (params.send_asap) args.insert(args.end(), {"--send-asap", *params.send_asap ? "on" : "off"});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) return unexpected(what + ": pipe: " + std::strerror(errno));
  Fd read_end{ends[0]};
  Fd write_end{ends[1]};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, write_end.fd, STDOUT_FILENO);
  pid_t pid = 0;
  int err = ::posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return unexpected(what + ": cannot run " + exe + ": " + std::strerror(err));
  ::close(write_end.fd);  // so read() sees EOF when the child exits
  write_end.fd = -1;

  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(read_end.fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return unexpected(what + ": waitpid: " + std::strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return unexpected(what + " " + describe_status(status));
  }
  // The result is the last non-empty line, should a workload chatter on stdout.
  std::string_view text = out;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  std::size_t nl = text.rfind('\n');
  std::string_view line = nl == std::string_view::npos ? text : text.substr(nl + 1);
  Result<RunResult> r = parse_run_result(line);
  if (!r) return unexpected(what + ": " + r.error().substr(kPrefix.size()));
  return r;
}

int run_child(const Workload& w, std::string_view runtime, const WorkloadParams& params) {
  Result<WorkloadFn> fn = workload_function(w, runtime);
  if (!fn) {
    std::cerr << fn.error() << '\n';
    return 2;
  }
  try {
    // --profile-hz: the built-in profiler samples the whole run, for its overhead.
    std::atomic<bool> stop_profile{false};
    std::thread profiler;
    if (params.profile_hz > 0) {
      profiler = std::thread([&] {
        metrics::ProfileOptions o;
        o.duration = std::chrono::hours(1);
        o.frequency_hz = params.profile_hz;
        o.stop = &stop_profile;
        if (auto p = metrics::profile_cpu(o); !p) std::cerr << "swarm-bench: " << p.error() << '\n';
      });
      // Until it samples (or failed, said why, and let the run go on unprofiled).
      for (int i = 0; i < 1000 && !metrics::cpu_profile_running(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    RunResult r = (*fn)(params);
    stop_profile = true;
    if (profiler.joinable()) profiler.join();
    std::cout << run_result_json(r) << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "swarm-bench: " << w.id << ' ' << runtime << " failed: " << e.what() << '\n';
    return 1;
  }
}

Result<std::vector<Summary>> run_benchmark(const Workload& w,
                                           std::span<const std::string> runtimes, int repeat,
                                           const WorkloadParams& params, const Runner& run,
                                           std::ostream& progress) {
  std::vector<Summary> sums;
  for (const std::string& rt : runtimes) {
    // Check every runtime first: failing after minutes of runs helps no one.
    if (Result<WorkloadFn> fn = workload_function(w, rt); !fn) return unexpected(fn.error());
    sums.push_back({std::string(w.id), rt, std::string(w.unit), params, {}});
  }
  // Interleaved (swarm, caf, swarm, ...) so machine noise hits both alike.
  for (int i = 1; i <= repeat; ++i) {
    for (Summary& s : sums) {
      Result<RunResult> r = run(w, s.runtime, params);
      if (!r) {
        return unexpected(r.error() + " (run " + std::to_string(i) + "/" +
                          std::to_string(repeat) + ")");
      }
      progress << w.id << ' ' << s.runtime << " run " << i << '/' << repeat << ": "
               << format_rate(r->value, w.unit) << std::endl;
      s.runs.push_back(*r);
    }
  }
  return sums;
}

}  // namespace swarm::bench
