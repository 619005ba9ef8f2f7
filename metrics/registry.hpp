#pragma once
// A registry of Swarm's metrics, exported through prometheus-cpp.
//
// Two kinds of series: instruments (Counter, Gauge, Histogram — see
// instruments.hpp) written on the hot path and summed at scrape time, and
// callbacks that compute values when scraped (queue depths, uptime, top-N
// lists). Collect() renders both as prometheus::MetricFamily, so the text
// exposition is prometheus-cpp's own TextSerializer.
//
//   metrics::Registry reg({.max_series = 5000});
//   auto drops = reg.counter("swarm_dropped_total", "Messages dropped.", {{"reason", "mailbox_full"}});
//   reg.add_callback([&](metrics::Collector& c) { c.gauge("swarm_live", "Live agents.", {}, live()); });
//   drops.inc();
//   std::string text = reg.render();   // what /metrics serves
//
// Series cap: at most `max_series` series are exported (a histogram counts
// its buckets + 2); the rest are cut and counted in
// swarm_metrics_series_dropped_total, which, with swarm_metrics_series, is
// always exported. Families keep registration order, so the first registered
// series survive a cut.
//
// Thread-safe. Instruments must not be used after their registry is destroyed.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "base/mutex.hpp"
#include "metrics/instruments.hpp"

namespace swarm::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

struct RegistryOptions {
  std::size_t max_series = 10000;  // hard cap on exported series
};

/// Histogram bucket bounds exported to Prometheus: every power of two of
/// nanoseconds from 2^8 (256 ns) to 2^35 (34 s), then +Inf. Exact unions of
/// the internal buckets, so nothing is interpolated at export.
inline constexpr unsigned kExportMinShift = 8;
inline constexpr unsigned kExportMaxShift = 35;

/// Receives series from callbacks during a scrape. Families of the same name
/// are merged; the type and help of the first one win.
/// The standard process figures (Prometheus clients' process_* series), from
/// /proc/self; nullopt where /proc cannot be read. Every render() exports them.
struct ProcessStats {
  double cpu_seconds = 0, resident_bytes = 0, virtual_bytes = 0, open_fds = 0, max_fds = 0, threads = 0,
         start_time_seconds = 0;
};
std::optional<ProcessStats> read_process_stats();

class Collector {
 public:
  void counter(std::string_view name, std::string_view help, const Labels& labels, double value);
  void gauge(std::string_view name, std::string_view help, const Labels& labels, double value);
  void histogram(std::string_view name, std::string_view help, const Labels& labels, const HistogramSnapshot& h);

  std::vector<prometheus::MetricFamily> take() && { return std::move(families_); }
  std::size_t series() const noexcept { return series_; }
  std::size_t cut() const noexcept { return cut_; }

 private:
  friend class Registry;
  explicit Collector(std::size_t max_series) : max_series_(max_series) {}
  prometheus::ClientMetric* add(std::string_view name, std::string_view help, prometheus::MetricType type,
                                const Labels& labels, std::size_t weight);

  std::size_t max_series_;
  std::size_t series_ = 0;
  std::size_t cut_ = 0;
  std::vector<prometheus::MetricFamily> families_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

class Registry final : public prometheus::Collectable {
 public:
  using Callback = std::function<void(Collector&)>;

  explicit Registry(RegistryOptions options = {});
  ~Registry() override;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // -- registration (control plane: throws std::invalid_argument on a bad or
  //    duplicate name, std::length_error when the process runs out of slots) ---

  Counter counter(std::string_view name, std::string_view help, Labels labels = {});
  Gauge gauge(std::string_view name, std::string_view help, Labels labels = {});
  Histogram histogram(std::string_view name, std::string_view help, Labels labels = {});
  /// Runs `fn` at every scrape; returns an id for remove_callback.
  std::uint64_t add_callback(Callback fn);
  void remove_callback(std::uint64_t id);

  // -- reading ---

  std::uint64_t value(Counter c) const;
  std::int64_t value(Gauge g) const;
  HistogramSnapshot snapshot(Histogram h) const;

  /// Every series, capped at max_series.
  std::vector<prometheus::MetricFamily> Collect() const override;
  /// Collect() in the Prometheus text format (prometheus::TextSerializer).
  std::string render() const;
  const RegistryOptions& options() const noexcept { return options_; }

 private:
  enum class Kind { counter, gauge, histogram };
  struct Instrument {
    std::string name, help;
    Labels labels;
    Kind kind;
    std::uint32_t base;
  };
  std::uint32_t add_instrument(std::string_view name, std::string_view help, Labels labels, Kind kind);

  const RegistryOptions options_;
  mutable Mutex collect_mu_;  // one scrape at a time; remove_callback waits for it
  mutable Mutex mu_;          // order: collect_mu_ -> mu_
  std::vector<Instrument> instruments_ SWARM_GUARDED_BY(mu_);
  std::vector<std::pair<std::uint64_t, std::shared_ptr<Callback>>> callbacks_ SWARM_GUARDED_BY(mu_);
  std::uint64_t next_callback_ SWARM_GUARDED_BY(mu_) = 1;
  mutable std::uint64_t series_cut_total_ SWARM_GUARDED_BY(collect_mu_) = 0;
};

/// Checks a metric or label name against Prometheus' rules; the error says which.
void check_metric_name(std::string_view name);
void check_label_name(std::string_view metric, std::string_view label);

}  // namespace swarm::metrics
