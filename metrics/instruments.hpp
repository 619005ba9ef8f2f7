#pragma once
// Hot-path instruments: counters, up-down gauges and log-linear histograms,
// each sharded per thread and summed only when scraped.
//
//   swarm::metrics::Registry reg;
//   auto sent = reg.counter("swarm_sent_total", "Messages sent.");
//   auto wait = reg.histogram("swarm_wait_seconds", "Queueing delay.");
//   sent.inc();                 // ~1 ns: a load and a store on this thread's own cell
//   wait.observe_ns(1500);      // two such adds
//
// How sharding works: every instrument owns a range of "slots". Each thread
// keeps its own array of 64-bit cells (in 4096-slot chunks, allocated on first
// touch), indexed by slot. Only the owning thread writes its cells (relaxed
// load + store, no read-modify-write, no lock); the scraper sums the cells of
// every thread under the registry lock (relaxed loads; a scrape may miss the
// adds of the last nanoseconds, never tear a value). A thread that exits folds
// its cells into a "retired" array first, so counters never go backwards.
//
// Instruments are trivially copyable handles; a default-constructed one
// (slot 0) is disabled and costs one predictable branch. Thread-safe.

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace swarm::metrics {

namespace detail {

inline constexpr unsigned kChunkBits = 12;
inline constexpr std::uint32_t kChunkSlots = 1u << kChunkBits;
inline constexpr std::uint32_t kMaxChunks = 256;  // 1M slots per process
inline constexpr std::uint32_t kMaxSlots = kChunkSlots * kMaxChunks;

using Cell = std::atomic<std::uint64_t>;

/// One thread's cells. Written by its thread only; read by scrapers.
struct ThreadCells {
  std::array<std::atomic<Cell*>, kMaxChunks> chunks{};
};

// Constant-initialized, so access compiles to one TLS load, no init guard.
inline thread_local ThreadCells* tls_cells = nullptr;

/// Slow paths: the first metric write of a thread, the first touch of a chunk.
ThreadCells* register_thread();
Cell* allocate_chunk(ThreadCells& cells, std::uint32_t chunk);

inline Cell& cell(std::uint32_t slot) noexcept {
  ThreadCells* t = tls_cells;
  if (t == nullptr) [[unlikely]] t = register_thread();
  Cell* chunk = t->chunks[slot >> kChunkBits].load(std::memory_order_relaxed);
  if (chunk == nullptr) [[unlikely]] chunk = allocate_chunk(*t, slot >> kChunkBits);
  return chunk[slot & (kChunkSlots - 1)];
}

// Owner-only write: no read-modify-write needed, nobody else stores here.
inline void bump(Cell& c, std::uint64_t n) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace detail

// -- histogram buckets ---

/// Log-linear buckets over nanoseconds (HDR-like): values below 16 get one
/// bucket each; above, every power of two is split into 8 equal buckets, so a
/// bucket is at most 12.5% of its lower bound wide. Values of 2^41 ns (~37
/// minutes) and more land in the last (overflow) bucket.
struct Buckets {
  static constexpr unsigned kSubBits = 3;
  static constexpr unsigned kSub = 1u << kSubBits;
  static constexpr unsigned kMaxExponent = 40;
  static constexpr std::uint32_t kCount = (kMaxExponent - kSubBits + 1) * kSub + kSub + 1;

  static constexpr std::uint32_t index(std::uint64_t v) noexcept {
    if (v < 2 * kSub) return static_cast<std::uint32_t>(v);
    const unsigned e = 63u - static_cast<unsigned>(std::countl_zero(v));
    if (e > kMaxExponent) return kCount - 1;
    const unsigned shift = e - kSubBits;
    return static_cast<std::uint32_t>(shift * kSub + (v >> shift));
  }
  /// Smallest value of bucket i.
  static constexpr std::uint64_t lower(std::uint32_t i) noexcept {
    if (i < 2 * kSub) return i;
    if (i == kCount - 1) return std::uint64_t{1} << (kMaxExponent + 1);
    const unsigned shift = i / kSub - 1;
    return std::uint64_t{i % kSub + kSub} << shift;
  }
  /// One past the largest value of bucket i (the overflow bucket has none: max).
  static constexpr std::uint64_t upper(std::uint32_t i) noexcept {
    return i == kCount - 1 ? ~std::uint64_t{0} : lower(i + 1);
  }
};

// -- instruments ---

/// A monotonically increasing count.
class Counter {
 public:
  Counter() = default;
  explicit Counter(std::uint32_t slot) : slot_(slot) {}
  void inc(std::uint64_t n = 1) const noexcept {
    if (slot_ != 0) detail::bump(detail::cell(slot_), n);
  }
  std::uint32_t slot() const noexcept { return slot_; }

 private:
  std::uint32_t slot_ = 0;
};

/// A value that goes up and down (a sum of per-thread deltas), e.g. items in flight.
class Gauge {
 public:
  Gauge() = default;
  explicit Gauge(std::uint32_t slot) : slot_(slot) {}
  void add(std::int64_t n) const noexcept {
    if (slot_ != 0) detail::bump(detail::cell(slot_), static_cast<std::uint64_t>(n));
  }
  std::uint32_t slot() const noexcept { return slot_; }

 private:
  std::uint32_t slot_ = 0;
};

/// A distribution of durations (observed in ns, exported in seconds). Slots:
/// Buckets::kCount bucket counts, then the sum.
class Histogram {
 public:
  static constexpr std::uint32_t kSlots = Buckets::kCount + 1;

  Histogram() = default;
  explicit Histogram(std::uint32_t base) : base_(base) {}
  void observe_ns(std::uint64_t ns) const noexcept {
    if (base_ == 0) return;
    detail::bump(detail::cell(base_ + Buckets::index(ns)), 1);
    detail::bump(detail::cell(base_ + Buckets::kCount), ns);
  }
  std::uint32_t base() const noexcept { return base_; }
  explicit operator bool() const noexcept { return base_ != 0; }

 private:
  std::uint32_t base_ = 0;
};

/// Summed histogram state, as read at scrape time.
struct HistogramSnapshot {
  std::array<std::uint64_t, Buckets::kCount> counts{};
  std::uint64_t sum_ns = 0;

  std::uint64_t count() const noexcept;
  /// The q-quantile (0..1) in ns: the midpoint of the bucket holding it, so
  /// the error is at most half a bucket width. 0 when empty.
  double quantile_ns(double q) const noexcept;
  void merge(const HistogramSnapshot& other) noexcept;
};

}  // namespace swarm::metrics
