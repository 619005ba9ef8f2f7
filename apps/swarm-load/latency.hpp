#pragma once
// Latency histograms for swarm-load: an HDR-style log-linear histogram of
// nanoseconds, and a recorder that many threads write without locks or
// shared read-modify-writes.
//
//   LatencyHistogram h;
//   h.record(12'345);                       // ns
//   double p99 = h.quantile(0.99);          // within 0.4% of the exact p99
//   h.merge(other);                         // exact: bucket counts add up
//   nlohmann::json j = h.to_json();         // non-empty buckets only
//
//   LatencyRecorder rec;                     // one per run
//   rec.record(latency_ns, Phase::measured, /*completes=*/true, now_ns);  // any thread
//   LatencyHistogram total = rec.histogram(Phase::measured);             // any thread
//
// Buckets: values below 256 ns get one bucket each; above, every power of two
// is split into 128 equal buckets, so a bucket is at most 1/128 of its lower
// bound wide. A quantile is reported as the midpoint of the bucket that holds
// the exact (nearest-rank) sample, clamped to the exact min and max, so it is
// within 0.4% of the exact value. Values up to 2^43 ns (~2.4 hours) are kept;
// larger ones are clamped to that and counted in saturated().

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/mutex.hpp"
#include "base/result.hpp"

namespace swarm::load {

/// Log-linear bucket layout over nanoseconds. Constant, so histograms of
/// different runs merge and compare bucket by bucket.
struct LatencyBuckets {
  static constexpr unsigned kSubBits = 7;
  static constexpr std::uint64_t kSub = std::uint64_t{1} << kSubBits;  // buckets per power of two
  static constexpr unsigned kMaxExponent = 42;
  static constexpr std::uint64_t kMaxValue = (std::uint64_t{1} << (kMaxExponent + 1)) - 1;
  static constexpr std::size_t kCount = (kMaxExponent - kSubBits + 1) * kSub + kSub;

  /// REQUIRES: v <= kMaxValue.
  static constexpr std::size_t index(std::uint64_t v) noexcept {
    if (v < 2 * kSub) return static_cast<std::size_t>(v);
    const unsigned e = 63u - static_cast<unsigned>(std::countl_zero(v));
    const unsigned shift = e - kSubBits;
    return static_cast<std::size_t>(shift * kSub + (v >> shift));
  }
  /// Smallest value of bucket i.
  static constexpr std::uint64_t lower(std::size_t i) noexcept {
    if (i < 2 * kSub) return i;
    const unsigned shift = static_cast<unsigned>(i / kSub) - 1;
    return (i - shift * kSub) << shift;
  }
  /// Number of values bucket i holds.
  static constexpr std::uint64_t width(std::size_t i) noexcept {
    return i < 2 * kSub ? 1 : std::uint64_t{1} << (i / kSub - 1);
  }
};

/// A histogram of nanoseconds. Thread-compatible (one writer, or external
/// synchronization); LatencyRecorder is the thread-safe way to fill one.
class LatencyHistogram {
 public:
  LatencyHistogram();

  // -- recording ---

  void record(std::uint64_t ns) noexcept { record_n(ns, 1); }
  void record_n(std::uint64_t ns, std::uint64_t n) noexcept;
  /// Adds every sample of `other` (exact: same bucket layout).
  void merge(const LatencyHistogram& other) noexcept;
  /// Removes the samples of `earlier`, a snapshot of this same stream taken
  /// before (for interval histograms). min/max become bucket bounds.
  /// REQUIRES: every bucket of `earlier` <= the same bucket here.
  void subtract(const LatencyHistogram& earlier) noexcept;
  void clear() noexcept;

  // -- reading ---

  std::uint64_t count() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  /// Exact smallest/largest recorded value (0 when empty).
  std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_); }
  std::uint64_t sum() const noexcept { return sum_; }
  /// Values above LatencyBuckets::kMaxValue (recorded as that value).
  std::uint64_t saturated() const noexcept { return saturated_; }
  /// The q-quantile (0..1) in ns by nearest rank: the midpoint of the bucket
  /// holding the ceil(q * count)-th smallest sample, clamped to [min, max].
  /// quantile(0) is min(), quantile(1) is max(). 0 when empty.
  double quantile(double q) const noexcept;
  std::uint64_t bucket_count(std::size_t i) const noexcept { return counts_[i]; }

  // -- serialization ---

  /// {"unit":"ns","sub_bucket_bits":7,"count","min","max","sum","saturated",
  ///  "buckets":[[lowest_ns, count], ...]} with only non-empty buckets.
  nlohmann::json to_json() const;
  /// The histogram to_json() wrote; an error names what is malformed.
  static Result<LatencyHistogram> from_json(const nlohmann::json& j);

  friend bool operator==(const LatencyHistogram& a, const LatencyHistogram& b);

 private:
  friend class LatencyRecorder;  // sums its shards straight into the buckets

  std::vector<std::uint64_t> counts_;  // LatencyBuckets::kCount
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t min_ = ~std::uint64_t{0};
  std::uint64_t max_ = 0;
  std::uint64_t saturated_ = 0;
};

/// Which part of a run a sample belongs to, by its intended send time.
enum class Phase : std::uint8_t { warmup, measured };

/// Collects latencies from any number of threads for one run.
///
/// Each thread writes only its own shard, found through a thread_local cache:
/// a relaxed load and a relaxed store per cell (no lock, no read-modify-write,
/// no cache line shared with another writer). Readers (the progress sampler,
/// the admin scrape, the generator's closed-loop window) sum the shards with
/// relaxed loads, so a snapshot taken during a run may be a few samples
/// behind; counts never go backwards. The first record() of a thread takes a
/// mutex to create its shard. Thread-safe.
class LatencyRecorder {
 public:
  static constexpr std::size_t kMaxShards = 512;

  LatencyRecorder();
  ~LatencyRecorder();
  LatencyRecorder(const LatencyRecorder&) = delete;
  LatencyRecorder& operator=(const LatencyRecorder&) = delete;

  // -- hot path: any thread ---

  /// One observation of `ns` in `phase`; `completes` when it also completes a
  /// message (the counting receiver of its path); `now_ns` is when it
  /// completed (for the last-completion time). Never locks after the
  /// thread's first call.
  void record(std::uint64_t ns, Phase phase, bool completes, std::uint64_t now_ns) noexcept;
  /// A message of `phase` that will never complete (e.g. a request timed out).
  void lose(Phase phase) noexcept;

  // -- reading: any thread ---

  LatencyHistogram histogram(Phase phase) const;
  /// Both phases together (for interval histograms while a run goes).
  LatencyHistogram histogram_all() const;
  std::uint64_t completed(Phase phase) const noexcept;
  std::uint64_t completed_all() const noexcept { return completed(Phase::warmup) + completed(Phase::measured); }
  std::uint64_t lost(Phase phase) const noexcept;
  std::uint64_t lost_all() const noexcept { return lost(Phase::warmup) + lost(Phase::measured); }
  /// Largest now_ns passed with a measured completion (0: none yet).
  std::uint64_t last_measured_completion_ns() const noexcept;
  std::size_t shard_count() const noexcept { return shards_used_.load(std::memory_order_acquire); }

 private:
  using Cell = std::atomic<std::uint64_t>;
  struct PhaseCells {
    std::unique_ptr<Cell[]> buckets;  // LatencyBuckets::kCount
    Cell count{0}, sum{0}, min{~std::uint64_t{0}}, max{0}, saturated{0}, completed{0}, lost{0};
  };
  struct alignas(64) Shard {
    Shard();
    std::array<PhaseCells, 2> phases;
    Cell last_completion{0};
  };
  static void bump(Cell& c, std::uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  Shard& shard() noexcept;
  Shard& register_thread();
  void add_phase(LatencyHistogram& out, Phase phase) const;

  // -- constant after construction ---
  const std::uint64_t id_;  // tells this recorder from earlier ones at the same address

  // -- own synchronization: slots [0, shards_used_) are set once, before shards_used_ is bumped ---
  std::unique_ptr<std::atomic<Shard*>[]> shards_;
  std::atomic<std::size_t> shards_used_{0};

  Mutex mu_;  // registration
  std::vector<std::unique_ptr<Shard>> owned_ SWARM_GUARDED_BY(mu_);
  std::vector<std::pair<std::uint64_t, Shard*>> by_thread_ SWARM_GUARDED_BY(mu_);  // thread key -> shard
  Shard overflow_shard_;  // shared (racy but atomic) when kMaxShards threads already have one
};

}  // namespace swarm::load
