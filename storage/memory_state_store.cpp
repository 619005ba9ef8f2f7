// The in-memory state store: a map behind one mutex. put() is the write, so
// nothing is ever pending, and load() answers on the caller's thread.

#include <unordered_map>
#include <utility>
#include <vector>

#include "base/mutex.hpp"
#include "metrics/registry.hpp"
#include "storage/state_store.hpp"

namespace swarm::storage {

namespace {

// Lets find() take a string_view without building a std::string.
struct KeyHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

class MemoryStateStore final : public ObservableStateStore {
 public:
  ~MemoryStateStore() override {
    // Not under mu_: remove_callback waits for a running scrape, which takes mu_.
    std::vector<std::pair<metrics::Registry*, std::uint64_t>> callbacks;
    {
      MutexLock lock(mu_);
      callbacks.swap(callbacks_);
    }
    for (auto [registry, id] : callbacks) registry->remove_callback(id);
  }

  void put(std::string_view key, StoredState state) override {
    MutexLock lock(mu_);
    ++puts_;
    if (auto it = states_.find(key); it != states_.end()) {
      it->second = std::move(state);
    } else {
      states_.emplace(std::string(key), std::move(state));
    }
  }

  void load(std::string key, LoadCallback done) override {
    std::optional<StoredState> found;
    {
      MutexLock lock(mu_);
      if (auto it = states_.find(key); it != states_.end()) found = it->second;
    }
    done(std::move(found));  // not under mu_: the callback may put()
  }

  Result<void> flush(std::chrono::milliseconds) override { return {}; }
  Result<void> ready() const override { return {}; }

  StateStoreStats stats() const override {
    MutexLock lock(mu_);
    return {.puts = puts_, .written = puts_, .connected = true};
  }

  void collect(metrics::Collector& c) const override {
    const StateStoreStats s = stats();
    const metrics::Labels labels = {{"backend", "memory"}};
    c.gauge("swarm_state_pending_keys", "Keys whose newest state is not written yet.", labels, 0);
    c.counter("swarm_state_puts_total", "States put into the state store.", labels, static_cast<double>(s.puts));
    c.counter("swarm_state_written_total", "States written to the state store's backend.", labels,
              static_cast<double>(s.written));
    c.counter("swarm_state_coalesced_total", "Queued states replaced by a newer state of their key.", labels, 0);
    c.counter("swarm_state_write_errors_total", "Failed state writes.", labels, 0);
    c.counter("swarm_state_reconnects_total", "State store connections reopened after a loss.", labels, 0);
    c.gauge("swarm_state_connected", "1 when every state store connection works.", labels, 1);
    c.histogram("swarm_state_flush_seconds", "Time of one state store write round trip.", labels, {});
  }

  void export_metrics(metrics::Registry& registry) override {
    const auto id = registry.add_callback([this](metrics::Collector& c) { collect(c); });
    MutexLock lock(mu_);
    callbacks_.emplace_back(&registry, id);
  }

 private:
  // -- guarded by mu_ ---
  mutable Mutex mu_;
  std::unordered_map<std::string, StoredState, KeyHash, std::equal_to<>> states_ SWARM_GUARDED_BY(mu_);
  std::uint64_t puts_ SWARM_GUARDED_BY(mu_) = 0;
  std::vector<std::pair<metrics::Registry*, std::uint64_t>> callbacks_ SWARM_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<ObservableStateStore> make_memory_state_store() { return std::make_unique<MemoryStateStore>(); }

}  // namespace swarm::storage
