// The in-memory journal, and what every backend shares: kind names, event ids, the clock.

#include <algorithm>
#include <array>
#include <cstdio>
#include <random>
#include <unordered_set>

#include "base/mutex.hpp"
#include "metrics/registry.hpp"
#include "storage/journal.hpp"

namespace swarm::storage {

// -- shared by every backend ---

namespace {
constexpr std::array<std::string_view, 5> kKindNames = {"spawned", "exited", "crashed", "restarted", "message"};
constexpr std::uint64_t kCounterBits = 40;
constexpr std::uint64_t kCounterMask = (std::uint64_t{1} << kCounterBits) - 1;
}  // namespace

std::string_view to_string(EventKind kind) noexcept {
  const auto i = static_cast<std::size_t>(kind);
  return i < kKindNames.size() ? kKindNames[i] : std::string_view("unknown");
}

Result<EventKind> parse_event_kind(std::string_view name) {
  for (std::size_t i = 0; i < kKindNames.size(); ++i) {
    if (kKindNames[i] == name) return static_cast<EventKind>(i);
  }
  return unexpected("storage: unknown journal event kind \"" + std::string(name) + "\"");
}

EventIdGenerator::EventIdGenerator() {
  std::uint64_t bits[2] = {0, 0};
  bool ok = false;
  if (std::FILE* f = std::fopen("/dev/urandom", "rb")) {
    ok = std::fread(bits, sizeof bits, 1, f) == 1;
    std::fclose(f);
  }
  if (!ok) {
    std::random_device rd;
    bits[0] = (std::uint64_t{rd()} << 32) | rd();
    bits[1] = (std::uint64_t{rd()} << 32) | rd();
  }
  prefix_ = static_cast<std::uint32_t>(bits[0] & 0xFFFFFF);
  start_ = bits[1] & kCounterMask;
}

std::uint64_t EventIdGenerator::next() noexcept {
  for (;;) {
    const std::uint64_t n = n_.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t id = (std::uint64_t{prefix_} << kCounterBits) | ((start_ + n) & kCounterMask);
    if (id != 0) return id;  // 0 means "assign one": skip it (prefix 0 and a wrapped counter)
  }
}

void Journal::record(const LifecycleEvent& event) noexcept {
  static_assert(static_cast<int>(LifecycleEvent::Kind::message) == static_cast<int>(EventKind::message));
  append({.kind = static_cast<EventKind>(event.kind),
          .agent = event.agent,
          .agent_type = std::string(event.agent_type),
          .detail = std::string(event.detail),
          .payload = std::string(event.payload)});
}

std::uint64_t next_event_id() noexcept {
  static EventIdGenerator generator;
  return generator.next();
}

std::int64_t now_us() noexcept {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// -- the memory journal ---

namespace {

class MemoryJournal final : public Journal {
 public:
  explicit MemoryJournal(std::size_t max_events) : max_events_(max_events) {}
  ~MemoryJournal() override {
    // Not under mu_: remove_callback waits for a running scrape, which takes mu_.
    std::vector<std::pair<metrics::Registry*, std::uint64_t>> callbacks;
    {
      MutexLock lock(mu_);
      callbacks.swap(callbacks_);
    }
    for (auto [registry, id] : callbacks) registry->remove_callback(id);
  }

  void append(JournalEvent event) override {
    if (event.id == 0) event.id = next_event_id();
    if (event.at_us == 0) event.at_us = now_us();
    MutexLock lock(mu_);
    ++appended_;
    if (ids_.contains(event.id)) {  // a retry of an event we have: idempotent
      ++written_;
      return;
    }
    if (events_.size() >= max_events_) {
      ++dropped_;
      return;
    }
    ids_.insert(event.id);
    events_.push_back(std::move(event));
    ++written_;
  }

  Result<void> flush(std::chrono::milliseconds) override { return {}; }

  Result<std::vector<JournalEvent>> history(std::uint64_t agent, std::size_t limit) override {
    std::vector<JournalEvent> out;
    {
      MutexLock lock(mu_);
      for (const JournalEvent& e : events_) {
        if (e.agent == agent) out.push_back(e);
      }
    }
    // Oldest first; equal times keep append order.
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.at_us < b.at_us; });
    if (out.size() > limit) out.resize(limit);
    return out;
  }

  Result<std::vector<JournalEvent>> crashes(std::string_view type, std::int64_t from_us, std::int64_t to_us,
                                            std::size_t limit) override {
    std::vector<JournalEvent> out;
    {
      MutexLock lock(mu_);
      for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
        if (it->kind == EventKind::crashed && (type.empty() || it->agent_type == type) && it->at_us >= from_us &&
            it->at_us < to_us) {
          out.push_back(*it);
        }
      }
    }
    // Newest first; equal times: the later append first.
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.at_us > b.at_us; });
    if (out.size() > limit) out.resize(limit);
    return out;
  }

  Result<void> ready() const override { return {}; }

  JournalStats stats() const override {
    MutexLock lock(mu_);
    JournalStats s;
    s.appended = appended_;
    s.written = written_;
    s.dropped = dropped_;
    s.connected = true;
    return s;
  }

  void collect(metrics::Collector& c) const override {
    const JournalStats s = stats();
    const metrics::Labels labels = {{"backend", "memory"}};
    c.gauge("swarm_journal_queued", "Journal events waiting to be written.", labels, 0);
    c.counter("swarm_journal_written_total", "Journal events written.", labels, static_cast<double>(s.written));
    c.counter("swarm_journal_dropped_total", "Journal events dropped because the journal was full.", labels,
              static_cast<double>(s.dropped));
    c.counter("swarm_journal_write_errors_total", "Failed journal batch writes.", labels, 0);
    c.histogram("swarm_journal_flush_seconds", "Time to write one journal batch.", labels, {});
  }

  void export_metrics(metrics::Registry& registry) override {
    const auto id = registry.add_callback([this](metrics::Collector& c) { collect(c); });
    MutexLock lock(mu_);
    callbacks_.emplace_back(&registry, id);
  }

 private:
  // -- constant after construction ---
  const std::size_t max_events_;

  // -- guarded by mu_ ---
  mutable Mutex mu_;
  std::vector<JournalEvent> events_ SWARM_GUARDED_BY(mu_);  // append order
  std::unordered_set<std::uint64_t> ids_ SWARM_GUARDED_BY(mu_);
  std::uint64_t appended_ SWARM_GUARDED_BY(mu_) = 0;
  std::uint64_t written_ SWARM_GUARDED_BY(mu_) = 0;
  std::uint64_t dropped_ SWARM_GUARDED_BY(mu_) = 0;
  std::vector<std::pair<metrics::Registry*, std::uint64_t>> callbacks_ SWARM_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<Journal> make_memory_journal(std::size_t max_events) {
  return std::make_unique<MemoryJournal>(max_events);
}

}  // namespace swarm::storage
