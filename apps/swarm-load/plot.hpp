#pragma once
// Plots of swarm-load results, drawn as SVG by hand (no plotting library):
//
//  - the latency percentile spectrum, as HdrHistogram plots it: x is
//    1/(1 − p) on a log scale, labelled 50%, 90%, 99%, 99.9%, 99.99%, ...,
//    y the latency at that percentile; several runs overlay (compare).
//  - the run over time: throughput (completed, sent, target) per second,
//    p50/p99/max latency per second on a log scale, and drops per second;
//    the warm-up is shaded.
//
//   std::string svg = spectrum_svg({{"base", &a.latency}, {"new", &b.latency}}, "pipeline at 200k/s");
//   auto note = write_plot("run-spectrum.svg", svg, /*png=*/true);   // PNG via rsvg-convert when installed
//
// PNG: rendered by running `rsvg-convert` (Debian's librsvg2-bin) when it is
// on PATH; otherwise only the SVG is written and the note says so.

#include <string>
#include <vector>

#include "apps/swarm-load/driver.hpp"
#include "apps/swarm-load/latency.hpp"
#include "base/result.hpp"

namespace swarm::load {

struct SpectrumSeries {
  std::string label;
  const LatencyHistogram* histogram;
};

/// The percentile spectrum of one or more histograms. Empty histograms are skipped.
std::string spectrum_svg(const std::vector<SpectrumSeries>& series, const std::string& title);

/// Throughput, latency and drops over the run's time series.
std::string timeline_svg(const RunResult& run, const std::string& title);

/// Writes `svg` to `path`, and with `png` also path-with-.png through
/// rsvg-convert. Returns what was written ("wrote a.svg and a.png"), or
/// what was not and why; an error only when the SVG itself could not be written.
Result<std::string> write_plot(const std::string& path, const std::string& svg, bool png);

/// The path of rsvg-convert on PATH, or empty.
std::string find_rsvg_convert();

}  // namespace swarm::load
