#include "apps/swarm-load/report.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

namespace swarm::load {

namespace {

using nlohmann::json;

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string pad(std::string s, std::size_t width) {
  // Width in characters, counting UTF-8 sequences (µ) as one.
  std::size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  if (chars < width) s.append(width - chars, ' ');
  return s;
}

std::string lpad(std::string s, std::size_t width) {
  std::size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  if (chars < width) s.insert(0, width - chars, ' ');
  return s;
}

std::string bytes(double b) {
  if (b >= 1024.0 * 1024 * 1024) return fmt("%.2f GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt("%.1f MiB", b / (1024.0 * 1024));
  return fmt("%.0f KiB", b / 1024.0);
}

Result<const json*> field(const json& j, const char* name) {
  if (!j.contains(name)) return unexpected(std::string("swarm-load: results: missing field \"") + name + "\"");
  return &j[name];
}

template <class T>
Result<void> get_number(const json& j, const char* name, T& out, bool required = true) {
  if (!j.contains(name)) {
    if (required) return unexpected(std::string("swarm-load: results: missing field \"") + name + "\"");
    return {};
  }
  if (!j[name].is_number()) {
    return unexpected(std::string("swarm-load: results: field \"") + name + "\" must be a number, not " + j[name].dump());
  }
  out = j[name].get<T>();
  return {};
}

}  // namespace

// -- JSON ---

json to_json(const RunResult& r) {
  json timeline = json::array();
  for (const IntervalStats& p : r.timeline) {
    timeline.push_back({{"t", p.t},
                        {"seconds", p.seconds},
                        {"warmup", p.warmup},
                        {"target_rate", p.target_rate},
                        {"sent", p.sent},
                        {"completed", p.completed},
                        {"observations", p.observations},
                        {"dropped", p.dropped},
                        {"p50", p.p50},
                        {"p99", p.p99},
                        {"max", p.max}});
  }
  json dropped = json::object();
  for (const auto& [k, v] : r.dropped) dropped[k] = v;
  json config = json::object();
  if (!r.scenario_json.empty()) config = json::parse(r.scenario_json, nullptr, false);
  json j = {
      {"format", "swarm-load/1"},
      {"scenario", r.scenario},
      {"scenario_config", config},
      {"mode", r.mode},
      {"target_rate", r.target_rate},
      {"schedule", r.schedule},
      {"started_at", r.started_at},
      {"warmup_seconds", r.warmup_seconds},
      {"measured_seconds", r.measured_seconds},
      {"sent", r.sent},
      {"completed", r.completed},
      {"observations", r.observations},
      {"throughput_msgs_per_s", r.throughput},
      {"latency_seconds",
       {{"p50", r.latency.quantile(0.50) / 1e9},
        {"p90", r.latency.quantile(0.90) / 1e9},
        {"p99", r.latency.quantile(0.99) / 1e9},
        {"p999", r.latency.quantile(0.999) / 1e9},
        {"max", static_cast<double>(r.latency.max()) / 1e9},
        {"min", static_cast<double>(r.latency.min()) / 1e9},
        {"mean", r.latency.mean() / 1e9}}},
      {"dropped", dropped},
      {"cpu_seconds", {{"user", r.cpu_user_seconds}, {"system", r.cpu_system_seconds}}},
      {"peak_rss_bytes", r.peak_rss_bytes},
      {"generator",
       {{"cpu_seconds", r.generator_cpu_seconds},
        {"ns_per_message", r.generator_ns_per_message},
        {"max_lag_seconds", r.generator_max_lag_seconds}}},
      {"workers", r.workers},
      {"cores", r.cores},
      {"host", r.host},
      {"drained", r.drained},
      {"notes", r.notes},
      {"histogram", r.latency.to_json()},
      {"timeline", timeline},
  };
  if (!r.cluster_json.empty()) j["cluster"] = json::parse(r.cluster_json, nullptr, false);  // cross-node runs
  return j;
}

Result<RunResult> run_from_json(const json& j) {
  if (!j.is_object()) return unexpected(std::string("swarm-load: results: expected a JSON object"));
  RunResult r;
  auto name = field(j, "scenario");
  if (!name) return unexpected(name.error());
  if (!(*name)->is_string()) return unexpected(std::string("swarm-load: results: field \"scenario\" must be a string"));
  r.scenario = (*name)->get<std::string>();
  for (auto ok : {get_number(j, "target_rate", r.target_rate), get_number(j, "throughput_msgs_per_s", r.throughput),
                  get_number(j, "warmup_seconds", r.warmup_seconds, false),
                  get_number(j, "measured_seconds", r.measured_seconds, false),
                  get_number(j, "sent", r.sent, false), get_number(j, "completed", r.completed, false),
                  get_number(j, "observations", r.observations, false),
                  get_number(j, "peak_rss_bytes", r.peak_rss_bytes, false),
                  get_number(j, "workers", r.workers, false), get_number(j, "cores", r.cores, false)}) {
    if (!ok) return unexpected(ok.error());
  }
  auto hist = field(j, "histogram");
  if (!hist) return unexpected(hist.error());
  auto h = LatencyHistogram::from_json(**hist);
  if (!h) return unexpected("swarm-load: results: " + h.error());
  r.latency = std::move(*h);
  auto lat = field(j, "latency_seconds");
  if (!lat) return unexpected(lat.error());
  for (const char* q : {"p50", "p90", "p99", "p999", "max"}) {
    if (!(*lat)->contains(q) || !(**lat)[q].is_number()) {
      return unexpected(std::string("swarm-load: results: latency_seconds.") + q + " is missing or not a number");
    }
  }
  auto dropped = field(j, "dropped");
  if (!dropped) return unexpected(dropped.error());
  if (!(*dropped)->is_object()) return unexpected(std::string("swarm-load: results: field \"dropped\" must be an object"));
  for (const auto& [k, v] : (*dropped)->items()) {
    if (!v.is_number_unsigned()) {
      return unexpected("swarm-load: results: dropped." + k + " must be a non-negative integer, not " + v.dump());
    }
    r.dropped[k] = v.get<std::uint64_t>();
  }
  if (!r.dropped.contains("total")) {
    std::uint64_t total = 0;
    for (const auto& [k, v] : r.dropped) total += v;
    r.dropped["total"] = total;
  }
  r.mode = j.value("mode", "open");
  r.schedule = j.value("schedule", "");
  r.started_at = j.value("started_at", "");
  r.host = j.value("host", "");
  r.drained = j.value("drained", true);
  if (j.contains("scenario_config")) r.scenario_json = j["scenario_config"].dump();
  if (j.contains("cluster") && j["cluster"].is_object()) r.cluster_json = j["cluster"].dump();
  if (j.contains("notes") && j["notes"].is_array()) {
    for (const json& n : j["notes"]) {
      if (n.is_string()) r.notes.push_back(n.get<std::string>());
    }
  }
  if (j.contains("cpu_seconds") && j["cpu_seconds"].is_object()) {
    r.cpu_user_seconds = j["cpu_seconds"].value("user", 0.0);
    r.cpu_system_seconds = j["cpu_seconds"].value("system", 0.0);
  }
  if (j.contains("generator") && j["generator"].is_object()) {
    r.generator_cpu_seconds = j["generator"].value("cpu_seconds", 0.0);
    r.generator_ns_per_message = j["generator"].value("ns_per_message", 0.0);
    r.generator_max_lag_seconds = j["generator"].value("max_lag_seconds", 0.0);
  }
  if (j.contains("timeline")) {
    if (!j["timeline"].is_array()) return unexpected(std::string("swarm-load: results: field \"timeline\" must be an array"));
    for (const json& p : j["timeline"]) {
      if (!p.is_object()) return unexpected("swarm-load: results: timeline point " + p.dump() + " is not an object");
      IntervalStats s;
      s.t = p.value("t", 0.0);
      s.seconds = p.value("seconds", 0.0);
      s.warmup = p.value("warmup", false);
      s.target_rate = p.value("target_rate", 0.0);
      s.sent = p.value("sent", std::uint64_t{0});
      s.completed = p.value("completed", std::uint64_t{0});
      s.observations = p.value("observations", std::uint64_t{0});
      s.dropped = p.value("dropped", std::uint64_t{0});
      s.p50 = p.value("p50", 0.0);
      s.p99 = p.value("p99", 0.0);
      s.max = p.value("max", 0.0);
      r.timeline.push_back(s);
    }
  }
  return r;
}

Result<void> write_json(const RunResult& r, const std::string& path) {
  const std::string text = to_json(r).dump(2) + "\n";
  if (path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return {};
  }
  std::ofstream out(path, std::ios::trunc);
  if (!out) return unexpected("swarm-load: cannot write " + path);
  out << text;
  out.close();
  if (!out) return unexpected("swarm-load: cannot write " + path);
  return {};
}

Result<RunResult> read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) return unexpected("swarm-load: cannot read " + path);
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return unexpected("swarm-load: " + path + " is not valid JSON");
  auto r = run_from_json(j);
  if (!r) return unexpected(r.error() + " (in " + path + ")");
  return r;
}

// -- human output ---

std::string format_latency_ns(double ns) {
  if (ns < 1e3) return fmt("%.0f ns", ns);
  if (ns < 1e4) return fmt("%.2f µs", ns / 1e3);
  if (ns < 1e6) return fmt("%.1f µs", ns / 1e3);
  if (ns < 1e7) return fmt("%.2f ms", ns / 1e6);
  if (ns < 1e9) return fmt("%.1f ms", ns / 1e6);
  return fmt("%.2f s", ns / 1e9);
}

std::string format_count(double v) {
  const std::string digits = fmt("%.0f", std::abs(v));
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string format_table(const RunResult& r) {
  std::ostringstream o;
  std::string load = r.mode == "closed" ? "closed loop" : "open loop, " + r.schedule;
  o << "swarm-load: " << r.scenario << " (" << load << "; " << fmt("%.3g", r.warmup_seconds) << " s warm-up; "
    << r.workers << (r.workers == 1 ? " worker" : " workers") << " on " << r.cores << " cores)\n";
  auto row = [&](const std::string& k, const std::string& v) { o << "  " << pad(k, 18) << v << "\n"; };
  std::string tp = format_count(r.throughput) + " msgs/s";
  if (r.mode != "closed") tp += " (target " + format_count(r.target_rate) + "/s)";
  row("throughput", tp);
  row("messages", format_count(static_cast<double>(r.sent)) + " sent, " + format_count(static_cast<double>(r.completed)) +
                      " completed, " + format_count(static_cast<double>(r.observations)) + " latency samples in " +
                      fmt("%.2f", r.measured_seconds) + " s");
  if (r.latency.empty()) {
    row("latency", "no samples");
  } else {
    row("latency p50", format_latency_ns(r.latency.quantile(0.50)));
    row("latency p90", format_latency_ns(r.latency.quantile(0.90)));
    row("latency p99", format_latency_ns(r.latency.quantile(0.99)));
    row("latency p99.9", format_latency_ns(r.latency.quantile(0.999)));
    row("latency max", format_latency_ns(static_cast<double>(r.latency.max())));
    row("latency mean", format_latency_ns(r.latency.mean()));
  }
  std::string drops = format_count(static_cast<double>(r.dropped_total()));
  std::string reasons;
  for (const auto& [k, v] : r.dropped) {
    if (k != "total" && v != 0) reasons += (reasons.empty() ? "" : ", ") + k + " " + format_count(static_cast<double>(v));
  }
  row("dropped", reasons.empty() ? drops : drops + " (" + reasons + ")");
  const double cpu = r.cpu_user_seconds + r.cpu_system_seconds;
  std::string cpu_text = fmt("%.2f s user + ", r.cpu_user_seconds) + fmt("%.2f s system", r.cpu_system_seconds);
  if (r.completed > 0) cpu_text += " (" + format_latency_ns(cpu * 1e9 / static_cast<double>(r.completed)) + " per message)";
  row("CPU time", cpu_text);
  row("peak RSS", bytes(static_cast<double>(r.peak_rss_bytes)));
  std::string gen = format_latency_ns(r.generator_ns_per_message) + " CPU per message sent";
  if (r.mode != "closed") gen += ", max lag behind schedule " + format_latency_ns(r.generator_max_lag_seconds * 1e9);
  row("generator", gen);
  if (!r.cluster_json.empty()) {
    // Cross-node runs: what each node sent the other through NATS.
    const json c = json::parse(r.cluster_json, nullptr, false);
    if (c.is_object() && c.contains("nodes") && c["nodes"].is_array()) {
      for (const json& n : c["nodes"]) {
        if (!n.is_object() || !n.contains("peers") || !n["peers"].is_array()) continue;
        for (const json& peer : n["peers"]) {
          if (!peer.is_object()) continue;
          row("cluster", n.value("node", std::string("?")) + " -> " + peer.value("node", std::string("?")) + ": " +
                             format_count(peer.value("sent", 0.0)) + " frames, " + bytes(peer.value("sent_bytes", 0.0)) +
                             " (warm-up included), heartbeat round trip " + format_latency_ns(peer.value("rtt_ms", 0.0) * 1e6));
        }
      }
    }
  }
  for (const std::string& n : r.notes) o << "  note: " << n << "\n";
  return o.str();
}

// -- comparison ---

std::string_view to_string(Verdict v) {
  switch (v) {
    case Verdict::ok: return "ok";
    case Verdict::better: return "better";
    case Verdict::regression: return "REGRESSION";
    case Verdict::not_judged: return "-";
  }
  return "?";
}

bool Comparison::regression() const {
  return std::any_of(rows.begin(), rows.end(), [](const CompareRow& r) { return r.verdict == Verdict::regression; });
}

Comparison compare(const RunResult& a, const RunResult& b, const CompareOptions& options) {
  Comparison c;
  c.threshold = options.threshold;
  auto judged = [&](std::string_view m) {
    return std::find(options.metrics.begin(), options.metrics.end(), m) != options.metrics.end();
  };
  auto add = [&](std::string name, double va, double vb, bool higher_is_better, double floor = 0) {
    CompareRow row{std::move(name), va, vb, 1.0, higher_is_better, Verdict::not_judged};
    if (va == 0 && vb == 0) {
      row.ratio = 1;
    } else if (va == 0) {
      row.ratio = std::numeric_limits<double>::infinity();
    } else {
      row.ratio = vb / va;
    }
    if (judged(row.metric)) {
      // Worse beyond the threshold (and beyond `floor` in absolute terms) is a regression.
      const bool worse = higher_is_better ? vb < va * (1 - options.threshold)
                                          : vb > va * (1 + options.threshold) && vb - va > floor;
      const bool better = higher_is_better ? vb > va * (1 + options.threshold) : vb < va * (1 - options.threshold);
      row.verdict = worse ? Verdict::regression : better ? Verdict::better : Verdict::ok;
    }
    c.rows.push_back(row);
  };
  add("throughput", a.throughput, b.throughput, true);
  add("p50", a.latency.quantile(0.50), b.latency.quantile(0.50), false);
  add("p90", a.latency.quantile(0.90), b.latency.quantile(0.90), false);
  add("p99", a.latency.quantile(0.99), b.latency.quantile(0.99), false);
  add("p999", a.latency.quantile(0.999), b.latency.quantile(0.999), false);
  add("max", static_cast<double>(a.latency.max()), static_cast<double>(b.latency.max()), false);
  auto drop_fraction = [](const RunResult& r) {
    const double sent = std::max<double>(1, static_cast<double>(r.sent));
    return static_cast<double>(r.dropped_total()) / sent;
  };
  // Drops: a fraction of one in a million more is not a regression by itself.
  add("dropped", drop_fraction(a), drop_fraction(b), false, 1e-6);
  auto cpu_per_message = [](const RunResult& r) {
    return r.completed == 0 ? 0.0 : (r.cpu_user_seconds + r.cpu_system_seconds) / static_cast<double>(r.completed);
  };
  add("cpu", cpu_per_message(a), cpu_per_message(b), false);

  if (a.scenario != b.scenario) c.warnings.push_back("different scenarios: " + a.scenario + " vs " + b.scenario);
  if (a.mode != b.mode) c.warnings.push_back("different modes: " + a.mode + " vs " + b.mode);
  if (a.mode != "closed" && b.mode != "closed" &&
      std::abs(a.target_rate - b.target_rate) > 1e-6 * std::max(a.target_rate, b.target_rate)) {
    c.warnings.push_back("different target rates: " + format_count(a.target_rate) + "/s vs " +
                         format_count(b.target_rate) + "/s");
  }
  if (a.workers != b.workers || a.cores != b.cores) {
    c.warnings.push_back("different machines or settings: " + std::to_string(a.workers) + " workers on " +
                         std::to_string(a.cores) + " cores vs " + std::to_string(b.workers) + " on " +
                         std::to_string(b.cores));
  }
  if (!a.drained) c.warnings.push_back("the baseline run did not drain");
  if (!b.drained) c.warnings.push_back("the new run did not drain");
  return c;
}

std::string format_comparison(const Comparison& c, const std::string& a_label, const std::string& b_label) {
  std::ostringstream o;
  auto value = [](const CompareRow& r, double v) -> std::string {
    if (r.metric == "throughput") return format_count(v) + "/s";
    if (r.metric == "dropped") return fmt("%.4g%%", v * 100);
    if (r.metric == "cpu") return format_latency_ns(v * 1e9);
    return format_latency_ns(v);
  };
  const std::size_t wa = std::max<std::size_t>(16, a_label.size() + 2), wb = std::max<std::size_t>(16, b_label.size() + 2);
  o << pad("metric", 12) << lpad(a_label, wa) << lpad(b_label, wb) << lpad("B/A", 9) << "  verdict\n";
  for (const CompareRow& r : c.rows) {
    std::string ratio = std::isinf(r.ratio) ? "new" : fmt("%.3f", r.ratio);
    std::string verdict(to_string(r.verdict));
    if (r.verdict == Verdict::regression) {
      verdict += r.higher_is_better ? " (< -" : " (> +";
      verdict += fmt("%.0f%%)", c.threshold * 100);
    }
    std::string name = r.metric == "dropped" ? "dropped" : r.metric == "cpu" ? "cpu/msg" : r.metric;
    o << pad(name, 12) << lpad(value(r, r.a), wa) << lpad(value(r, r.b), wb) << lpad(ratio, 9) << "  " << verdict
      << "\n";
  }
  for (const std::string& w : c.warnings) o << "warning: " << w << "\n";
  std::size_t n = 0;
  for (const CompareRow& r : c.rows) n += r.verdict == Verdict::regression;
  if (n == 0) {
    o << "no regression beyond " << fmt("%.0f%%", c.threshold * 100) << "\n";
  } else {
    o << n << " regression" << (n == 1 ? "" : "s") << " beyond " << fmt("%.0f%%", c.threshold * 100) << "\n";
  }
  return o.str();
}

Result<double> parse_fraction(std::string_view text, std::string_view flag) {
  std::string_view t = text;
  bool percent = false;
  if (!t.empty() && t.back() == '%') {
    percent = true;
    t.remove_suffix(1);
  }
  double v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size() || !std::isfinite(v)) {
    return unexpected("swarm-load: " + std::string(flag) + " = \"" + std::string(text) +
                      "\" is not a fraction (allowed: e.g. 10% or 0.1)");
  }
  if (percent) v /= 100;
  if (v < 0 || v > 10) {
    return unexpected("swarm-load: " + std::string(flag) + " = " + std::string(text) +
                      " is out of range (allowed: 0%..1000%)");
  }
  return v;
}

}  // namespace swarm::load
