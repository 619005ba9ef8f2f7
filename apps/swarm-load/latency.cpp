#include "apps/swarm-load/latency.hpp"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

namespace swarm::load {

// -- LatencyHistogram ---

LatencyHistogram::LatencyHistogram() : counts_(LatencyBuckets::kCount, 0) {}

void LatencyHistogram::record_n(std::uint64_t ns, std::uint64_t n) noexcept {
  if (n == 0) return;
  if (ns > LatencyBuckets::kMaxValue) {
    ns = LatencyBuckets::kMaxValue;
    saturated_ += n;
  }
  counts_[LatencyBuckets::index(ns)] += n;
  count_ += n;
  sum_ += ns * n;
  min_ = std::min(min_, ns);
  max_ = std::max(max_, ns);
}

void LatencyHistogram::merge(const LatencyHistogram& other) noexcept {
  if (other.count_ == 0) return;
  for (std::size_t i = 0; i < LatencyBuckets::kCount; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  saturated_ += other.saturated_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void LatencyHistogram::subtract(const LatencyHistogram& earlier) noexcept {
  count_ = 0;
  min_ = ~std::uint64_t{0};
  max_ = 0;
  for (std::size_t i = 0; i < LatencyBuckets::kCount; ++i) {
    // A torn snapshot (relaxed reads of a running recorder) may be ahead in
    // one bucket; never wrap around.
    counts_[i] -= std::min(counts_[i], earlier.counts_[i]);
    if (counts_[i] == 0) continue;
    count_ += counts_[i];
    if (min_ == ~std::uint64_t{0}) min_ = LatencyBuckets::lower(i);
    max_ = LatencyBuckets::lower(i) + LatencyBuckets::width(i) - 1;
  }
  sum_ -= std::min(sum_, earlier.sum_);
  saturated_ -= std::min(saturated_, earlier.saturated_);
}

void LatencyHistogram::clear() noexcept { *this = LatencyHistogram(); }

double LatencyHistogram::quantile(double q) const noexcept {
  if (count_ == 0) return 0;
  if (!(q > 0)) return static_cast<double>(min());
  if (q >= 1) return static_cast<double>(max_);
  // Nearest rank: the smallest sample with at least q of all samples at or below it.
  const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < LatencyBuckets::kCount; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const double mid = static_cast<double>(LatencyBuckets::lower(i)) +
                         static_cast<double>(LatencyBuckets::width(i) - 1) / 2.0;
      return std::clamp(mid, static_cast<double>(min()), static_cast<double>(max_));
    }
  }
  return static_cast<double>(max_);
}

nlohmann::json LatencyHistogram::to_json() const {
  nlohmann::json buckets = nlohmann::json::array();
  for (std::size_t i = 0; i < LatencyBuckets::kCount; ++i) {
    if (counts_[i] != 0) buckets.push_back({LatencyBuckets::lower(i), counts_[i]});
  }
  return {{"unit", "ns"},         {"sub_bucket_bits", LatencyBuckets::kSubBits},
          {"count", count_},      {"min", min()},
          {"max", max_},          {"sum", sum_},
          {"saturated", saturated_}, {"buckets", std::move(buckets)}};
}

Result<LatencyHistogram> LatencyHistogram::from_json(const nlohmann::json& j) {
  auto fail = [](const std::string& what) { return unexpected("histogram: " + what); };
  // Parsed JSON holds non-negative numbers as unsigned, but a document built in code may hold them as signed.
  auto non_negative = [](const nlohmann::json& v) {
    return v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0);
  };
  if (!j.is_object()) return fail("expected an object");
  for (const char* key : {"count", "min", "max", "sum", "buckets", "sub_bucket_bits"}) {
    if (!j.contains(key)) return fail(std::string("missing field \"") + key + "\"");
  }
  if (j.value("unit", "ns") != "ns") return fail("unit " + j["unit"].dump() + " is not supported (allowed: \"ns\")");
  if (!non_negative(j["sub_bucket_bits"]) || j["sub_bucket_bits"].get<unsigned>() != LatencyBuckets::kSubBits) {
    return fail("sub_bucket_bits = " + j["sub_bucket_bits"].dump() + " is not supported (allowed: " +
                std::to_string(LatencyBuckets::kSubBits) + ")");
  }
  for (const char* key : {"count", "min", "max", "sum"}) {
    if (!non_negative(j[key])) return fail(std::string("\"") + key + "\" must be a non-negative integer");
  }
  if (!j["buckets"].is_array()) return fail("\"buckets\" must be an array of [lowest_ns, count]");
  LatencyHistogram h;
  std::size_t last = 0;
  bool first = true;
  for (const nlohmann::json& b : j["buckets"]) {
    if (!b.is_array() || b.size() != 2 || !non_negative(b[0]) || !non_negative(b[1])) {
      return fail("bucket " + b.dump() + " is not [lowest_ns, count]");
    }
    const auto lowest = b[0].get<std::uint64_t>();
    const auto n = b[1].get<std::uint64_t>();
    if (lowest > LatencyBuckets::kMaxValue) return fail("bucket " + b.dump() + " is beyond the largest value");
    const std::size_t i = LatencyBuckets::index(lowest);
    if (LatencyBuckets::lower(i) != lowest) return fail("bucket " + b.dump() + " does not start on a bucket bound");
    if (!first && i <= last) return fail("bucket " + b.dump() + " is out of order");
    first = false;
    last = i;
    h.counts_[i] = n;
    h.count_ += n;
  }
  if (h.count_ != j["count"].get<std::uint64_t>()) {
    return fail("count " + j["count"].dump() + " differs from the sum of the buckets (" + std::to_string(h.count_) +
                ")");
  }
  h.sum_ = j["sum"].get<std::uint64_t>();
  h.max_ = j["max"].get<std::uint64_t>();
  h.min_ = h.count_ == 0 ? ~std::uint64_t{0} : j["min"].get<std::uint64_t>();
  h.saturated_ = j.value("saturated", std::uint64_t{0});
  return h;
}

bool operator==(const LatencyHistogram& a, const LatencyHistogram& b) {
  return a.count_ == b.count_ && a.sum_ == b.sum_ && a.min() == b.min() && a.max_ == b.max_ &&
         a.saturated_ == b.saturated_ && a.counts_ == b.counts_;
}

// -- LatencyRecorder ---

namespace {

std::atomic<std::uint64_t> g_next_recorder{1};
std::atomic<std::uint64_t> g_next_thread{1};

// The calling thread's shard of the recorder it used last.
struct ThreadCache {
  std::uint64_t recorder = 0;
  void* shard = nullptr;
};
thread_local ThreadCache t_cache;
thread_local const std::uint64_t t_thread_key = g_next_thread.fetch_add(1, std::memory_order_relaxed);

}  // namespace

LatencyRecorder::Shard::Shard() {
  for (PhaseCells& p : phases) {
    p.buckets = std::make_unique<Cell[]>(LatencyBuckets::kCount);
    for (std::size_t i = 0; i < LatencyBuckets::kCount; ++i) p.buckets[i].store(0, std::memory_order_relaxed);
  }
}

LatencyRecorder::LatencyRecorder()
    : id_(g_next_recorder.fetch_add(1, std::memory_order_relaxed)),
      shards_(std::make_unique<std::atomic<Shard*>[]>(kMaxShards)) {
  for (std::size_t i = 0; i < kMaxShards; ++i) shards_[i].store(nullptr, std::memory_order_relaxed);
}

LatencyRecorder::~LatencyRecorder() = default;

LatencyRecorder::Shard& LatencyRecorder::shard() noexcept {
  if (t_cache.recorder == id_) [[likely]] return *static_cast<Shard*>(t_cache.shard);
  return register_thread();
}

LatencyRecorder::Shard& LatencyRecorder::register_thread() {
  MutexLock lock(mu_);
  Shard* s = nullptr;
  for (auto& [key, shard] : by_thread_) {
    if (key == t_thread_key) s = shard;
  }
  if (s == nullptr) {
    const std::size_t n = shards_used_.load(std::memory_order_relaxed);
    // Beyond kMaxShards threads (more than any runtime has workers) share one
    // shard: still no crash, at worst a lost increment between two of them.
    if (n == kMaxShards) return overflow_shard_;
    owned_.push_back(std::make_unique<Shard>());
    s = owned_.back().get();
    by_thread_.emplace_back(t_thread_key, s);
    shards_[n].store(s, std::memory_order_relaxed);
    shards_used_.store(n + 1, std::memory_order_release);
  }
  t_cache = {id_, s};
  return *s;
}

void LatencyRecorder::record(std::uint64_t ns, Phase phase, bool completes, std::uint64_t now_ns) noexcept {
  Shard& s = shard();
  PhaseCells& p = s.phases[static_cast<int>(phase)];
  if (ns > LatencyBuckets::kMaxValue) [[unlikely]] {
    ns = LatencyBuckets::kMaxValue;
    bump(p.saturated, 1);
  }
  bump(p.buckets[LatencyBuckets::index(ns)], 1);
  bump(p.count, 1);
  bump(p.sum, ns);
  if (ns < p.min.load(std::memory_order_relaxed)) p.min.store(ns, std::memory_order_relaxed);
  if (ns > p.max.load(std::memory_order_relaxed)) p.max.store(ns, std::memory_order_relaxed);
  if (completes) {
    bump(p.completed, 1);
    if (phase == Phase::measured && now_ns > s.last_completion.load(std::memory_order_relaxed)) {
      s.last_completion.store(now_ns, std::memory_order_relaxed);
    }
  }
}

void LatencyRecorder::lose(Phase phase) noexcept { bump(shard().phases[static_cast<int>(phase)].lost, 1); }

void LatencyRecorder::add_phase(LatencyHistogram& out, Phase phase) const {
  auto add_shard = [&](const Shard& s) {
    const PhaseCells& p = s.phases[static_cast<int>(phase)];
    std::uint64_t count = 0;
    std::size_t first = LatencyBuckets::kCount, last = 0;
    for (std::size_t i = 0; i < LatencyBuckets::kCount; ++i) {
      const std::uint64_t n = p.buckets[i].load(std::memory_order_relaxed);
      if (n == 0) continue;
      out.counts_[i] += n;
      count += n;
      first = std::min(first, i);
      last = i;
    }
    if (count == 0) return;
    out.count_ += count;
    out.sum_ += p.sum.load(std::memory_order_relaxed);
    out.saturated_ += p.saturated.load(std::memory_order_relaxed);
    // A relaxed read may see a bucket before the min/max store of its sample,
    // or the reverse: keep them inside the first and last buckets seen.
    auto inside = [](std::uint64_t v, std::size_t i) {
      return std::clamp(v, LatencyBuckets::lower(i), LatencyBuckets::lower(i) + LatencyBuckets::width(i) - 1);
    };
    out.min_ = std::min(out.min_, inside(p.min.load(std::memory_order_relaxed), first));
    out.max_ = std::max(out.max_, inside(p.max.load(std::memory_order_relaxed), last));
  };
  const std::size_t n = shards_used_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i) add_shard(*shards_[i].load(std::memory_order_relaxed));
  add_shard(overflow_shard_);
}

LatencyHistogram LatencyRecorder::histogram(Phase phase) const {
  LatencyHistogram h;
  add_phase(h, phase);
  return h;
}

LatencyHistogram LatencyRecorder::histogram_all() const {
  LatencyHistogram h;
  add_phase(h, Phase::warmup);
  add_phase(h, Phase::measured);
  return h;
}

std::uint64_t LatencyRecorder::completed(Phase phase) const noexcept {
  std::uint64_t total = overflow_shard_.phases[static_cast<int>(phase)].completed.load(std::memory_order_relaxed);
  const std::size_t n = shards_used_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i) {
    total += shards_[i].load(std::memory_order_relaxed)->phases[static_cast<int>(phase)].completed.load(
        std::memory_order_relaxed);
  }
  return total;
}

std::uint64_t LatencyRecorder::lost(Phase phase) const noexcept {
  std::uint64_t total = overflow_shard_.phases[static_cast<int>(phase)].lost.load(std::memory_order_relaxed);
  const std::size_t n = shards_used_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i) {
    total +=
        shards_[i].load(std::memory_order_relaxed)->phases[static_cast<int>(phase)].lost.load(std::memory_order_relaxed);
  }
  return total;
}

std::uint64_t LatencyRecorder::last_measured_completion_ns() const noexcept {
  std::uint64_t last = overflow_shard_.last_completion.load(std::memory_order_relaxed);
  const std::size_t n = shards_used_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i) {
    last = std::max(last, shards_[i].load(std::memory_order_relaxed)->last_completion.load(std::memory_order_relaxed));
  }
  return last;
}

}  // namespace swarm::load
