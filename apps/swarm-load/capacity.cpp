#include "apps/swarm-load/capacity.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "apps/swarm-load/report.hpp"

namespace swarm::load {

Trial judge(const RunResult& run, double rate, const CapacityOptions& o) {
  Trial t;
  t.rate = rate;
  t.throughput = run.throughput;
  t.p50 = run.latency.quantile(0.50) / 1e9;
  t.p99 = run.latency.quantile(0.99) / 1e9;
  t.p999 = run.latency.quantile(0.999) / 1e9;
  t.max = static_cast<double>(run.latency.max()) / 1e9;
  t.sent = run.sent;
  t.dropped = run.dropped_total();
  t.drained = run.drained;
  std::vector<std::string> why;
  if (run.latency.empty()) why.push_back("no latency samples");
  if (t.p99 > o.slo_p99) why.push_back("p99 " + format_latency_ns(t.p99 * 1e9) + " > " + format_latency_ns(o.slo_p99 * 1e9));
  if (t.throughput < o.min_throughput * rate) {
    why.push_back("throughput " + format_count(t.throughput) + "/s < " +
                  format_count(o.min_throughput * 100) + "% of target");
  }
  if (static_cast<double>(t.dropped) > o.max_drop_fraction * static_cast<double>(std::max<std::uint64_t>(t.sent, 1))) {
    why.push_back(format_count(static_cast<double>(t.dropped)) + " dropped");
  }
  if (!t.drained) why.push_back("did not drain");
  for (const std::string& w : why) t.why += (t.why.empty() ? "" : "; ") + w;
  t.pass = why.empty();
  return t;
}

TrialRunner scenario_trials(const Scenario& scenario, const CapacityOptions& options) {
  return [scenario, options](double rate) -> Result<Trial> {
    Scenario s = scenario;
    s.mode = LoadMode::open;
    s.rate = rate;
    s.schedule.clear();
    s.messages = 0;
    s.seconds = options.trial_seconds;
    s.warmup = options.trial_warmup;
    // A saturated trial would otherwise drain for long; a second past the
    // SLO is already a failure.
    s.drain_timeout = std::min(s.drain_timeout, std::max(2.0, options.slo_p99 * 10));
    auto run = run_scenario(s);
    if (!run) return unexpected(run.error());
    return judge(*run, rate, options);
  };
}

Result<CapacityResult> find_capacity(const CapacityOptions& o, const TrialRunner& run,
                                     const std::function<void(const Trial&)>& on_trial) {
  CapacityResult res;
  std::set<double> failed;  // a rate that failed (with its retries) stays failed
  auto try_rate = [&](double rate) -> Result<bool> {
    for (unsigned attempt = 0;; ++attempt) {
      auto t = run(rate);
      if (!t) return unexpected(t.error());
      res.trials.push_back(*t);
      if (on_trial) on_trial(*t);
      if (t->pass) return true;
      if (attempt >= o.retries || res.trials.size() >= o.max_trials) break;
    }
    failed.insert(rate);
    return false;
  };
  // The highest rate below `limit` that passed and never failed.
  auto best_pass_below = [&](double limit) {
    double best = 0;
    for (const Trial& t : res.trials) {
      if (t.pass && t.rate < limit && !failed.contains(t.rate)) best = std::max(best, t.rate);
    }
    return best;
  };
  const double inf = std::numeric_limits<double>::infinity();
  double lo = 0, hi = inf;
  double rate = std::clamp(o.start_rate, o.min_rate, o.max_rate);
  while (res.trials.size() < o.max_trials) {
    auto pass = try_rate(rate);
    if (!pass) return unexpected(pass.error());
    if (*pass) {
      lo = std::max(lo, rate);
    } else {
      hi = std::min(hi, rate);
      lo = best_pass_below(hi);
    }
    if (hi == inf) {  // nothing failed yet: double
      if (rate >= o.max_rate) {
        res.hit_max_rate = true;
        break;
      }
      rate = std::min(rate * 2, o.max_rate);
      continue;
    }
    if (lo == 0) {  // nothing passed yet: halve
      rate = hi / 2;
      if (rate < o.min_rate) break;
      continue;
    }
    if (hi / lo > 1 + o.precision) {
      rate = std::sqrt(lo * hi);
      continue;
    }
    // Converged: confirm the highest pass.
    bool confirmed = true;
    for (unsigned k = 0; k < o.confirm && res.trials.size() < o.max_trials; ++k) {
      auto again = try_rate(lo);
      if (!again) return unexpected(again.error());
      if (!*again) {
        confirmed = false;
        break;
      }
    }
    if (confirmed) break;
    hi = lo;
    lo = best_pass_below(hi);
    rate = lo == 0 ? hi / 2 : std::sqrt(lo * hi);
    if (lo != 0 && hi / lo <= 1 + o.precision) rate = lo;  // re-confirm the next one down
  }
  res.sustainable_rate = best_pass_below(inf);
  return res;
}

nlohmann::json to_json(const CapacityResult& c, const CapacityOptions& o, const std::string& scenario) {
  nlohmann::json trials = nlohmann::json::array();
  for (const Trial& t : c.trials) {
    trials.push_back({{"rate", t.rate},
                      {"throughput_msgs_per_s", t.throughput},
                      {"latency_seconds", {{"p50", t.p50}, {"p99", t.p99}, {"p999", t.p999}, {"max", t.max}}},
                      {"sent", t.sent},
                      {"dropped", t.dropped},
                      {"drained", t.drained},
                      {"pass", t.pass},
                      {"why", t.why}});
  }
  return {{"format", "swarm-load-capacity/1"},
          {"scenario", scenario},
          {"slo_p99_seconds", o.slo_p99},
          {"precision", o.precision},
          {"trial_seconds", o.trial_seconds},
          {"trial_warmup_seconds", o.trial_warmup},
          {"retries", o.retries},
          {"sustainable_rate", c.sustainable_rate},
          {"hit_max_rate", c.hit_max_rate},
          {"trials", trials}};
}

}  // namespace swarm::load
