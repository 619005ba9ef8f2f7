// persistent: an agent whose state outlives it.
//
// A Counter calls persist_as("counter/visits") in its constructor. After each
// message it calls mark_dirty(); the runtime then stores snapshot() (write-
// behind, off the hot path) in RuntimeConfig::state_store. When an agent with
// the same key is spawned again - after a supervisor restart, or in a new
// Runtime or process - restore() gets the last stored state before on_start
// and before any message.
//
// Here the store is in memory (storage::make_memory_state_store()) and shared
// by two Runtimes one after the other, standing in for two runs of a program;
// storage::make_redis_state_store({.url = "redis://127.0.0.1:6379/0"}) keeps
// it across processes instead (docs/storage.md).
// Exits 0 only if the second counter continued from where the first stopped.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "runtime/runtime.hpp"
#include "storage/state_store.hpp"

using namespace std::chrono_literals;

namespace {

struct Seen {
  std::atomic<int> restored{-1};  // the count restore() got; -1: restore() was not called
  std::atomic<int> count{0};      // the latest count
};

class Counter : public swarm::Agent {
 public:
  explicit Counter(Seen& seen) : seen_(seen) { persist_as("counter/visits"); }

  std::string snapshot() const override { return std::to_string(count_); }
  void restore(std::string_view state, std::uint64_t version) override {
    count_ = std::stoi(std::string(state));  // throwing here would crash the agent
    seen_.restored = count_;
    std::printf("  restored count %d (snapshot version %llu)\n", count_, static_cast<unsigned long long>(version));
  }
  void on_message(swarm::Message&) override {
    ++count_;
    seen_.count = count_;
    mark_dirty();  // one snapshot when this activation ends, however many marks
  }

 private:
  Seen& seen_;
  int count_ = 0;
};

// One "run of the program": a Runtime on `store`, a counter, `visits` messages.
int run(const std::shared_ptr<swarm::StateStore>& store, int visits, Seen& seen) {
  swarm::RuntimeConfig cfg;
  cfg.workers = 2;
  cfg.state_store = store;
  swarm::Runtime rt(cfg);
  swarm::AgentRef counter = rt.spawn<Counter>(seen);
  for (int i = 0; i < visits; ++i) {
    if (rt.send(counter, swarm::Payload{}) != swarm::SendResult::ok) std::printf("  send refused\n");
  }
  rt.shutdown();  // handles what is queued; the last dirty state is stored
  return seen.count;
}

bool check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  return ok;
}

}  // namespace

int main() {
  std::shared_ptr<swarm::storage::ObservableStateStore> store = swarm::storage::make_memory_state_store();

  std::printf("first run:\n");
  Seen first;
  const int after_first = run(store, 5, first);
  std::printf("  count %d\n", after_first);

  // What the store holds now, read directly (load() answers on any thread).
  std::promise<std::optional<swarm::StoredState>> loaded;
  store->load("counter/visits", [&](swarm::Result<std::optional<swarm::StoredState>> r) {
    loaded.set_value(r ? *r : std::nullopt);
  });
  const std::optional<swarm::StoredState> stored = loaded.get_future().get();
  if (stored) std::printf("  stored: \"%s\", version %llu\n", stored->data.c_str(),
                          static_cast<unsigned long long>(stored->version));

  std::printf("second run:\n");
  Seen second;
  const int after_second = run(store, 2, second);
  std::printf("  count %d\n", after_second);

  bool ok = true;
  ok &= check(first.restored == -1 && after_first == 5, "the first counter started from nothing and counted 5");
  ok &= check(stored && stored->data == "5", "its last state was stored under its key");
  ok &= check(second.restored == 5, "the second counter got that state back before any message");
  ok &= check(after_second == 7, "... and went on counting from it: 5 + 2 = 7");
  return ok ? 0 : 1;
}
