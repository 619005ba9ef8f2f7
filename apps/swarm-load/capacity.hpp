#pragma once
// The saturation search: the highest open-loop rate a scenario sustains
// within a latency SLO.
//
//   CapacityOptions o{.slo_p99 = 1e-3};
//   Result<CapacityResult> c = find_capacity(o, scenario_trials(scenario, o), print_trial);
//   std::printf("sustains %.0f msgs/s\n", c->sustainable_rate);
//
// A trial runs the scenario at one constant rate and passes when p99 <= the
// SLO, the swarm completes at least min_throughput of the target, drops stay
// within max_drop_fraction and every message is accounted for. The search
// doubles the rate from start_rate until a trial fails (or halves it until
// one passes), then bisects geometrically between the highest pass and the
// lowest failure until they are within `precision`. The highest pass is
// then run `confirm` more times; if one of those fails, that rate counts as
// a failure and the search goes on below it. Machines are noisy: a failed
// trial is run again (`retries`) before its rate counts as failed, so one
// burst of noise does not send the search down to a trickle; the answer
// passed its first trial or its retry, and its confirmations.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "apps/swarm-load/driver.hpp"
#include "apps/swarm-load/scenario.hpp"
#include "base/result.hpp"

namespace swarm::load {

struct CapacityOptions {
  double slo_p99 = 1e-3;          // seconds
  double start_rate = 10'000;     // messages/s of the first trial
  double max_rate = 1e8;          // never tried above this
  double min_rate = 1;            // give up below this
  double precision = 0.05;        // stop when lowest failure / highest pass <= 1 + precision
  double min_throughput = 0.95;   // completed/s must reach this fraction of the target
  double max_drop_fraction = 0;   // dropped / sent allowed
  unsigned max_trials = 30;
  unsigned confirm = 1;           // extra runs of the final rate
  unsigned retries = 1;           // a failed trial is run again this often before its rate counts as failed
  double trial_seconds = 2;       // measured seconds per trial
  double trial_warmup = 0.5;      // warm-up seconds per trial
};

/// One trial: the scenario at one rate.
struct Trial {
  double rate = 0;
  double throughput = 0;
  double p50 = 0, p99 = 0, p999 = 0, max = 0;  // seconds
  std::uint64_t sent = 0, dropped = 0;
  bool drained = true;
  bool pass = false;
  std::string why;  // why it failed; empty when it passed
};

struct CapacityResult {
  std::vector<Trial> trials;   // in the order run
  double sustainable_rate = 0;  // the highest rate that passed every time (0: none)
  bool hit_max_rate = false;    // every rate up to max_rate passed
};

/// Runs one trial at `rate`.
using TrialRunner = std::function<Result<Trial>(double rate)>;

/// Pass or fail, with the reason, from a run's results.
Trial judge(const RunResult& run, double rate, const CapacityOptions& options);

/// Trials of `scenario` at a constant rate (trial_seconds after trial_warmup),
/// judged with `options`. Failures of the run itself are errors.
TrialRunner scenario_trials(const Scenario& scenario, const CapacityOptions& options);

/// The search described above; `on_trial` sees each trial as it ends.
Result<CapacityResult> find_capacity(const CapacityOptions& options, const TrialRunner& run,
                                     const std::function<void(const Trial&)>& on_trial = {});

nlohmann::json to_json(const CapacityResult& c, const CapacityOptions& o, const std::string& scenario);

}  // namespace swarm::load
