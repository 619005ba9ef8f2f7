#include "metrics/registry.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include <prometheus/text_serializer.h>

namespace swarm::metrics {

// -- per-thread cells (process-wide) ---

namespace detail {
namespace {

// Every thread's cells plus the slot allocator. Leaked on purpose: threads
// fold their cells into it while exiting, possibly after static destructors.
struct Store {
  Mutex mu;
  std::vector<ThreadCells*> threads SWARM_GUARDED_BY(mu);
  ThreadCells retired SWARM_GUARDED_BY(mu);  // what exited threads had counted
  std::uint32_t next_slot SWARM_GUARDED_BY(mu) = 1;  // slot 0 means "disabled"
  std::multimap<std::uint32_t, std::uint32_t> free_ranges SWARM_GUARDED_BY(mu);  // length -> first slot
};

Store& store() {
  static Store* s = new Store;
  return *s;
}

Cell* new_chunk() { return new Cell[kChunkSlots](); }

// Sums slot range [first, first + n) over every thread into out.
void sum_locked(Store& s, std::uint32_t first, std::uint32_t n, std::uint64_t* out) SWARM_REQUIRES(s.mu) {
  auto add = [&](const ThreadCells& t) {
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::uint32_t slot = first + i;
      if (Cell* c = t.chunks[slot >> kChunkBits].load(std::memory_order_acquire)) {
        out[i] += c[slot & (kChunkSlots - 1)].load(std::memory_order_relaxed);
      }
    }
  };
  add(s.retired);
  for (ThreadCells* t : s.threads) add(*t);
}

// Folds the exiting thread's cells into `retired` (the thread itself runs this).
struct ThreadExit {
  ThreadCells* cells = nullptr;
  ~ThreadExit() {
    Store& s = store();
    MutexLock lock(s.mu);
    for (std::uint32_t k = 0; k < kMaxChunks; ++k) {
      Cell* c = cells->chunks[k].load(std::memory_order_relaxed);
      if (c == nullptr) continue;
      Cell* r = s.retired.chunks[k].load(std::memory_order_relaxed);
      if (r == nullptr) {
        r = new_chunk();
        s.retired.chunks[k].store(r, std::memory_order_release);
      }
      for (std::uint32_t i = 0; i < kChunkSlots; ++i) {
        r[i].store(r[i].load(std::memory_order_relaxed) + c[i].load(std::memory_order_relaxed),
                   std::memory_order_relaxed);
      }
      delete[] c;
    }
    std::erase(s.threads, cells);
    delete cells;
    tls_cells = nullptr;
  }
};

thread_local bool tls_exited = false;

}  // namespace

ThreadCells* register_thread() {
  auto* cells = new ThreadCells;
  {
    Store& s = store();
    MutexLock lock(s.mu);
    s.threads.push_back(cells);
  }
  tls_cells = cells;
  if (!tls_exited) {
    // A write after this thread's exit handlers ran (from another thread_local's
    // destructor) keeps its cells registered for good rather than losing counts.
    thread_local struct Guard {
      ThreadExit exit;
      ~Guard() { tls_exited = true; }
    } guard;
    guard.exit.cells = cells;
  }
  return cells;
}

Cell* allocate_chunk(ThreadCells& cells, std::uint32_t chunk) {
  Cell* c = new_chunk();
  // Published under the lock so that a concurrent slot allocation that zeroes
  // ranges sees either no chunk (already zero) or this one.
  Store& s = store();
  MutexLock lock(s.mu);
  cells.chunks[chunk].store(c, std::memory_order_release);
  return c;
}

namespace {

std::uint32_t allocate_slots(std::uint32_t n) {
  Store& s = store();
  MutexLock lock(s.mu);
  std::uint32_t first;
  if (auto it = s.free_ranges.find(n); it != s.free_ranges.end()) {
    first = it->second;
    s.free_ranges.erase(it);
    // Reused slots may hold counts of their previous instrument: clear them.
    auto clear = [&](ThreadCells& t) {
      for (std::uint32_t slot = first; slot < first + n; ++slot) {
        if (Cell* c = t.chunks[slot >> kChunkBits].load(std::memory_order_relaxed)) {
          c[slot & (kChunkSlots - 1)].store(0, std::memory_order_relaxed);
        }
      }
    };
    clear(s.retired);
    for (ThreadCells* t : s.threads) clear(*t);
  } else {
    if (kMaxSlots - s.next_slot < n) {
      throw std::length_error("metrics: out of instrument slots (" + std::to_string(kMaxSlots) +
                              " per process); register fewer label combinations");
    }
    first = s.next_slot;
    s.next_slot += n;
  }
  return first;
}

void free_slots(std::uint32_t first, std::uint32_t n) {
  Store& s = store();
  MutexLock lock(s.mu);
  s.free_ranges.emplace(n, first);
}

}  // namespace
}  // namespace detail

// -- histogram snapshots ---

std::uint64_t HistogramSnapshot::count() const noexcept {
  std::uint64_t n = 0;
  for (auto c : counts) n += c;
  return n;
}

double HistogramSnapshot::quantile_ns(double q) const noexcept {
  const std::uint64_t n = count();
  if (n == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the quantile, 1-based: the smallest sample with at least q*n at or below it.
  const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(n))));
  std::uint64_t seen = 0;
  for (std::uint32_t i = 0; i < Buckets::kCount; ++i) {
    seen += counts[i];
    if (seen >= rank) {
      if (i == Buckets::kCount - 1) return static_cast<double>(Buckets::lower(i));
      // Integer buckets [lower, upper): the midpoint of the values it can hold.
      return (static_cast<double>(Buckets::lower(i)) + static_cast<double>(Buckets::upper(i) - 1)) / 2;
    }
  }
  return 0;
}

void HistogramSnapshot::merge(const HistogramSnapshot& other) noexcept {
  for (std::uint32_t i = 0; i < Buckets::kCount; ++i) counts[i] += other.counts[i];
  sum_ns += other.sum_ns;
}

// -- names ---

namespace {
bool valid_name(std::string_view n, bool allow_colon) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}
}  // namespace

void check_metric_name(std::string_view name) {
  if (!valid_name(name, true)) {
    throw std::invalid_argument("metrics: invalid metric name \"" + std::string(name) +
                                "\": use [a-zA-Z_:][a-zA-Z0-9_:]*");
  }
}

void check_label_name(std::string_view metric, std::string_view label) {
  if (!valid_name(label, false) || label.starts_with("__")) {
    throw std::invalid_argument("metrics: " + std::string(metric) + ": invalid label name \"" + std::string(label) +
                                "\": use [a-zA-Z_][a-zA-Z0-9_]* not starting with __");
  }
}

// -- collector ---

prometheus::ClientMetric* Collector::add(std::string_view name, std::string_view help, prometheus::MetricType type,
                                         const Labels& labels, std::size_t weight) {
  if (series_ + weight > max_series_) {
    cut_ += weight;
    return nullptr;
  }
  auto it = index_.find(name);
  if (it == index_.end()) {
    it = index_.emplace(std::string(name), families_.size()).first;
    families_.push_back({std::string(name), std::string(help), type, {}});
  }
  prometheus::MetricFamily& f = families_[it->second];
  if (f.type != type) {  // a name reused with another type: a bug in a callback; never export it
    cut_ += weight;
    return nullptr;
  }
  series_ += weight;
  prometheus::ClientMetric& m = f.metric.emplace_back();
  m.label.reserve(labels.size());
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  return &m;
}

void Collector::counter(std::string_view name, std::string_view help, const Labels& labels, double value) {
  if (auto* m = add(name, help, prometheus::MetricType::Counter, labels, 1)) m->counter.value = value;
}

void Collector::gauge(std::string_view name, std::string_view help, const Labels& labels, double value) {
  if (auto* m = add(name, help, prometheus::MetricType::Gauge, labels, 1)) m->gauge.value = value;
}

void Collector::histogram(std::string_view name, std::string_view help, const Labels& labels,
                          const HistogramSnapshot& h) {
  constexpr std::size_t kExported = kExportMaxShift - kExportMinShift + 2;  // finite bounds + Inf
  auto* m = add(name, help, prometheus::MetricType::Histogram, labels, kExported + 2);
  if (m == nullptr) return;
  m->histogram.sample_count = h.count();
  m->histogram.sample_sum = static_cast<double>(h.sum_ns) * 1e-9;
  m->histogram.bucket.reserve(kExported);
  std::uint64_t cumulative = 0;
  std::uint32_t i = 0;
  for (unsigned shift = kExportMinShift; shift <= kExportMaxShift; ++shift) {
    const std::uint64_t bound = std::uint64_t{1} << shift;
    for (; i < Buckets::kCount && Buckets::upper(i) <= bound; ++i) cumulative += h.counts[i];
    m->histogram.bucket.push_back({cumulative, static_cast<double>(bound) * 1e-9});
  }
  m->histogram.bucket.push_back({m->histogram.sample_count, std::numeric_limits<double>::infinity()});
}

// -- registry ---

Registry::Registry(RegistryOptions options) : options_(options) {}

std::optional<ProcessStats> read_process_stats() {
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 2));  // from field 3 (state) on
  std::vector<std::string> f{std::istream_iterator<std::string>(fields), std::istream_iterator<std::string>()};
  if (f.size() < 22) return std::nullopt;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  auto field = [&](int n) { return std::strtod(f[static_cast<std::size_t>(n - 3)].c_str(), nullptr); };  // man proc(5) numbering
  ProcessStats p;
  p.cpu_seconds = (field(14) + field(15)) / tick;
  p.threads = field(20);
  p.virtual_bytes = field(23);
  p.resident_bytes = field(24) * static_cast<double>(sysconf(_SC_PAGESIZE));
  std::ifstream proc_stat("/proc/stat");
  for (std::string key; proc_stat >> key;) {
    if (key == "btime") {
      double boot = 0;
      proc_stat >> boot;
      p.start_time_seconds = boot + field(22) / tick;
      break;
    }
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    ++p.open_fds;
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) p.max_fds = static_cast<double>(rl.rlim_cur);
  return p;
}

Registry::~Registry() {
  MutexLock lock(mu_);
  for (const Instrument& i : instruments_) {
    detail::free_slots(i.base, i.kind == Kind::histogram ? Histogram::kSlots : 1);
  }
}

std::uint32_t Registry::add_instrument(std::string_view name, std::string_view help, Labels labels, Kind kind) {
  check_metric_name(name);
  for (const auto& [k, v] : labels) check_label_name(name, k);
  std::sort(labels.begin(), labels.end());
  MutexLock lock(mu_);
  for (const Instrument& i : instruments_) {
    if (i.name != name) continue;
    if (i.kind != kind) {
      throw std::invalid_argument("metrics: " + std::string(name) + " is already registered with another type");
    }
    if (i.labels == labels) {
      throw std::invalid_argument("metrics: " + std::string(name) + " is already registered with these labels");
    }
  }
  const std::uint32_t base = detail::allocate_slots(kind == Kind::histogram ? Histogram::kSlots : 1);
  instruments_.push_back({std::string(name), std::string(help), std::move(labels), kind, base});
  return base;
}

Counter Registry::counter(std::string_view name, std::string_view help, Labels labels) {
  return Counter(add_instrument(name, help, std::move(labels), Kind::counter));
}

Gauge Registry::gauge(std::string_view name, std::string_view help, Labels labels) {
  return Gauge(add_instrument(name, help, std::move(labels), Kind::gauge));
}

Histogram Registry::histogram(std::string_view name, std::string_view help, Labels labels) {
  return Histogram(add_instrument(name, help, std::move(labels), Kind::histogram));
}

std::uint64_t Registry::add_callback(Callback fn) {
  MutexLock lock(mu_);
  const std::uint64_t id = next_callback_++;
  callbacks_.emplace_back(id, std::make_shared<Callback>(std::move(fn)));
  return id;
}

void Registry::remove_callback(std::uint64_t id) {
  MutexLock scrape(collect_mu_);  // a running scrape finishes with it first
  MutexLock lock(mu_);
  std::erase_if(callbacks_, [id](const auto& c) { return c.first == id; });
}

namespace {
std::uint64_t sum_of_slot(std::uint32_t slot) {
  if (slot == 0) return 0;
  std::uint64_t v = 0;
  auto& s = detail::store();
  MutexLock lock(s.mu);
  detail::sum_locked(s, slot, 1, &v);
  return v;
}
}  // namespace

std::uint64_t Registry::value(Counter c) const { return sum_of_slot(c.slot()); }

// Deltas wrap: the sum is right modulo 2^64.
std::int64_t Registry::value(Gauge g) const { return static_cast<std::int64_t>(sum_of_slot(g.slot())); }

HistogramSnapshot Registry::snapshot(Histogram h) const {
  HistogramSnapshot snap;
  if (!h) return snap;
  std::array<std::uint64_t, Histogram::kSlots> raw{};
  {
    auto& s = detail::store();
    MutexLock lock(s.mu);
    detail::sum_locked(s, h.base(), Histogram::kSlots, raw.data());
  }
  std::copy_n(raw.begin(), Buckets::kCount, snap.counts.begin());
  snap.sum_ns = raw[Buckets::kCount];
  return snap;
}

std::vector<prometheus::MetricFamily> Registry::Collect() const {
  MutexLock scrape(collect_mu_);
  // Two series of the registry's own are always exported, outside the cap.
  Collector c(options_.max_series > 2 ? options_.max_series - 2 : 0);
  std::vector<std::shared_ptr<Callback>> callbacks;
  {
    MutexLock lock(mu_);
    for (const Instrument& i : instruments_) {
      switch (i.kind) {
        case Kind::counter: c.counter(i.name, i.help, i.labels, static_cast<double>(value(Counter(i.base)))); break;
        case Kind::gauge: c.gauge(i.name, i.help, i.labels, static_cast<double>(value(Gauge(i.base)))); break;
        case Kind::histogram: c.histogram(i.name, i.help, i.labels, snapshot(Histogram(i.base))); break;
      }
    }
    for (const auto& cb : callbacks_) callbacks.push_back(cb.second);
  }
  // Callbacks run outside mu_: they take locks of their own (the runtime's).
  for (const auto& cb : callbacks) (*cb)(c);
  series_cut_total_ += c.cut();
  const double exported = static_cast<double>(c.series());
  const double cut_total = static_cast<double>(series_cut_total_);
  std::vector<prometheus::MetricFamily> out = std::move(c).take();
  auto own = [&](const char* name, const char* help, prometheus::MetricType type, double v) {
    prometheus::MetricFamily f{name, help, type, {prometheus::ClientMetric{}}};
    if (type == prometheus::MetricType::Counter) {
      f.metric[0].counter.value = v;
    } else {
      f.metric[0].gauge.value = v;
    }
    out.push_back(std::move(f));
  };
  own("swarm_metrics_series", "Series exported by the last scrape (after the cap, these two excluded).",
      prometheus::MetricType::Gauge, exported);
  own("swarm_metrics_series_dropped_total", "Series cut by the series cap (max_series), summed over scrapes.",
      prometheus::MetricType::Counter, cut_total);
  // The standard process series, as Prometheus' own client libraries name them (outside the cap too).
  if (const auto p = read_process_stats()) {
    own("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", prometheus::MetricType::Counter,
        p->cpu_seconds);
    own("process_resident_memory_bytes", "Resident memory size in bytes.", prometheus::MetricType::Gauge, p->resident_bytes);
    own("process_virtual_memory_bytes", "Virtual memory size in bytes.", prometheus::MetricType::Gauge, p->virtual_bytes);
    own("process_open_fds", "Number of open file descriptors.", prometheus::MetricType::Gauge, p->open_fds);
    own("process_max_fds", "Maximum number of open file descriptors.", prometheus::MetricType::Gauge, p->max_fds);
    own("process_threads", "Number of OS threads in the process.", prometheus::MetricType::Gauge, p->threads);
    own("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
        prometheus::MetricType::Gauge, p->start_time_seconds);
  }
  return out;
}

std::string Registry::render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, Collect());
  return out.str();
}

}  // namespace swarm::metrics
