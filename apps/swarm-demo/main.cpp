// swarm-demo: a swarm of agents passing messages to random peers under a
// supervisor, with a progress line each second and a summary at the end.
// Each peer persists its hop count (in memory, or in Redis with --redis) and
// every spawn, exit, crash and restart goes to the journal (in memory, or in
// Postgres with --postgres): a restarted peer carries on from its last count.
//
//   swarm-demo --agents 100000 --seconds 5
//   swarm-demo --redis redis://127.0.0.1:6379 --postgres 'host=127.0.0.1 dbname=swarm'

#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "runtime/runtime.hpp"
#include "runtime/supervisor.hpp"
#include "storage/journal.hpp"
#include "storage/state_store.hpp"

namespace {

using namespace std::chrono_literals;
using swarm::AgentRef;

// Where every peer can be found; a restarted peer writes its new ref.
struct Directory {
  explicit Directory(std::size_t n) : refs(n) {}
  std::vector<std::atomic<std::uint64_t>> refs;
  std::atomic<std::uint64_t> hops{0};
  std::atomic<std::uint64_t> restored{0};  // peers that found a stored state
  std::atomic<std::uint64_t> started{0};   // peers past on_start (their state is loaded)
  double crash_rate = 0;
};

AgentRef from_bits(std::uint64_t b) { return AgentRef{static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(b >> 32)}; }

// Forwards each message to a random peer; now and then crashes on purpose.
class Peer : public swarm::Agent {
 public:
  static constexpr std::string_view kTypeName = "peer";
  Peer(Directory& dir, std::uint32_t slot) : dir_(dir), slot_(slot), rng_(slot * 2654435761u + 1) {
    persist_as("demo-peer-" + std::to_string(slot));
  }

  void restore(std::string_view state, std::uint64_t) override {
    total_ = std::stoull(std::string(state));
    dir_.restored.fetch_add(1, std::memory_order_relaxed);
  }
  std::string snapshot() const override { return std::to_string(total_); }

  void on_start() override {
    dir_.refs[slot_].store(self().bits(), std::memory_order_release);
    dir_.started.fetch_add(1, std::memory_order_relaxed);
  }

  void on_message(swarm::Message& m) override {
    hops_since_flush_ += 1;
    if (hops_since_flush_ == 16) flush();
    // A crash loses this message and what is queued here: counted as dead_agent.
    if (dir_.crash_rate > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < dir_.crash_rate) {
      throw std::runtime_error("injected crash");
    }
    AgentRef next = from_bits(dir_.refs[rng_() % dir_.refs.size()].load(std::memory_order_acquire));
    (void)send(next, m.payload);
  }
  void on_stop(const swarm::ExitReason&) override { flush(); }

 private:
  void flush() {
    dir_.hops.fetch_add(hops_since_flush_, std::memory_order_relaxed);
    total_ += hops_since_flush_;
    hops_since_flush_ = 0;
    mark_dirty();  // the state store gets the new total after this activation
  }
  Directory& dir_;
  std::uint32_t slot_;
  std::minstd_rand rng_;
  std::uint64_t hops_since_flush_ = 0;
  std::uint64_t total_ = 0;  // hops handled by this peer, across restarts
};

// The state store and journal chosen on the command line (memory by default).
struct Storage {
  std::shared_ptr<swarm::storage::ObservableStateStore> state;
  std::shared_ptr<swarm::storage::Journal> journal;
};

swarm::Result<Storage> open_storage(const std::string& redis_url, const std::string& postgres_dsn) {
  Storage s;
  if (redis_url.empty()) {
    s.state = swarm::storage::make_memory_state_store();
  } else {
    auto store = swarm::storage::make_redis_state_store({.url = redis_url});
    if (!store) return swarm::unexpected("--redis: " + store.error());
    s.state = std::move(*store);
  }
  if (postgres_dsn.empty()) {
    s.journal = swarm::storage::make_memory_journal();
  } else {
    auto journal = swarm::storage::make_postgres_journal({.dsn = postgres_dsn});
    if (!journal) return swarm::unexpected("--postgres: " + journal.error());
    s.journal = std::move(*journal);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"swarm-demo: agents passing messages to random peers, supervised; state and journal in memory "
               "unless --redis / --postgres say otherwise."};
  std::uint32_t agents = 100'000;
  double seconds = 5;
  unsigned workers = swarm::RuntimeConfig::default_workers();
  double crash_rate = 1e-6;
  std::uint32_t in_flight = 0;
  app.add_option("--agents", agents, "Number of peer agents")->check(CLI::Range(2u, 10'000'000u));
  app.add_option("--seconds", seconds, "How long to run")->check(CLI::Range(0.1, 86400.0));
  app.add_option("--workers", workers, "Worker threads (default: cores)")
      ->check(CLI::Range(1u, swarm::RuntimeConfig::kMaxWorkers));
  auto idle_spin_us = static_cast<std::uint32_t>(swarm::RuntimeConfig::kDefaultIdleSpin.count());
  app.add_option("--idle-spin", idle_spin_us,
                 "Microseconds an idle worker may spin before it parks (adaptive; 0 = park at once)")
      ->check(CLI::Range(0u, 10'000u));
  app.add_option("--crash-rate", crash_rate, "Probability that a peer crashes on a message (supervisor restarts it)")
      ->check(CLI::Range(0.0, 0.01));
  auto* in_flight_opt =
      app.add_option("--in-flight", in_flight, "Messages circulating (default: one per 10 agents; 0 = an idle swarm)");
  std::string admin;
  app.add_option("--admin", admin,
                 "Serve the admin HTTP port (/metrics, /debug/agents, /debug/flamegraph, ...) on HOST:PORT "
                 "(:PORT = 127.0.0.1) while running");
  double state_wait = 30;
  app.add_option("--state-wait", state_wait,
                 "Seconds to wait for every peer's state at start before giving up (exit status 3)")
      ->check(CLI::Range(0.1, 86400.0));
  app.footer("Exit status: 0 the run ended and everything it accepted was written; 1 agents were left after "
             "shutdown; 2 bad input; 3 state or journal entries it accepted could not be written, or the peers' "
             "state never came back (a Redis or Postgres that was unreachable); 4 the peers' supervisor gave up "
             "(they crashed faster than it may restart them) and the swarm is gone.");
  std::string redis_url, postgres_dsn;
  app.add_option("--redis", redis_url,
                 "Keep the peers' state in Redis at redis://HOST[:PORT][/DB] (default: in memory)");
  app.add_option("--postgres", postgres_dsn,
                 "Keep the journal of spawns, exits, crashes and restarts in Postgres: a libpq DSN such as "
                 "'host=127.0.0.1 port=5432 dbname=swarm' (default: in memory)");
  CLI11_PARSE(app, argc, argv);
  if (in_flight_opt->count() == 0) in_flight = std::max<std::uint32_t>(1, agents / 10);

  auto storage = open_storage(redis_url, postgres_dsn);
  if (!storage) {  // a malformed URL or DSN; a server that is down is not an error
    std::fprintf(stderr, "swarm-demo: %s\n", storage.error().c_str());
    return 2;
  }
  // Servers are connected in the background: give them a moment before saying they are not there.
  for (auto until = std::chrono::steady_clock::now() + 2s; std::chrono::steady_clock::now() < until;) {
    if (storage->state->ready() && storage->journal->ready()) break;
    std::this_thread::sleep_for(10ms);
  }
  for (auto [what, ready] : {std::pair{"state store", storage->state->ready()},
                             std::pair{"journal", storage->journal->ready()}}) {
    if (!ready) std::fprintf(stderr, "swarm-demo: %s not ready (%s); writes wait for it\n", what, ready.error().c_str());
  }

  swarm::RuntimeConfig cfg;
  cfg.workers = workers;
  cfg.idle_spin = std::chrono::microseconds(idle_spin_us);
  cfg.telemetry.admin = admin;
  cfg.state_store = storage->state;
  cfg.lifecycle = storage->journal;
  std::unique_ptr<swarm::Runtime> runtime;
  try {
    runtime = std::make_unique<swarm::Runtime>(cfg);
  } catch (const std::exception& e) {  // a bad --admin address, or its port is taken
    std::fprintf(stderr, "swarm-demo: %s\n", e.what());
    return 2;
  }
  swarm::Runtime& rt = *runtime;
  if (rt.admin_port() != 0) {
    const auto host = admin.substr(0, admin.rfind(':'));
    std::printf("swarm-demo: admin on http://%s:%u/ (/metrics, /debug/agents, /debug/topics, /debug/flamegraph)\n",
                host.empty() ? "127.0.0.1" : host.c_str(), rt.admin_port());
  }
  Directory dir(agents);
  dir.crash_rate = crash_rate;

  swarm::SupervisorSpec spec;
  spec.strategy = swarm::Strategy::simple_one_for_one;
  spec.max_restarts = 1000;
  spec.period = 1000ms;
  spec.children.push_back({"peer", [&dir](swarm::Supervisor& s, const swarm::Payload& args) {
                             return s.spawn<Peer>(dir, args.as<std::uint32_t>());
                           }});
  auto t_spawn = std::chrono::steady_clock::now();
  AgentRef sup = rt.spawn<swarm::Supervisor>(std::move(spec));
  for (std::uint32_t i = 0; i < agents; ++i) swarm::Supervisor::start_child(rt, sup, swarm::Payload::of(i));
  // Every peer must have its state back before messages flow (a Redis that is down holds them here).
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(state_wait);
  for (auto next_note = std::chrono::steady_clock::now() + 2s; dir.started.load() < agents;) {
    std::this_thread::sleep_for(1ms);
    if (rt.stats().supervisors_gave_up != 0) {  // the runtime said why on stderr
      rt.shutdown(swarm::ShutdownPolicy::discard);
      return 4;
    }
    if (std::chrono::steady_clock::now() > give_up) {
      auto ready = storage->state->ready();
      std::fprintf(stderr, "swarm-demo: %llu of %u peers did not get their state back within %.1f s (state store: %s); "
                   "giving up\n", static_cast<unsigned long long>(agents - dir.started.load()), agents, state_wait,
                   ready ? "ready" : ready.error().c_str());
      rt.shutdown(swarm::ShutdownPolicy::discard);
      return 3;
    }
    if (std::chrono::steady_clock::now() < next_note) continue;
    next_note += 2s;
    auto ready = storage->state->ready();
    std::fprintf(stderr, "swarm-demo: waiting for %llu peers to get their state back (state store: %s)\n",
                 static_cast<unsigned long long>(agents - dir.started.load()),
                 ready ? "ready" : ready.error().c_str());
  }
  rt.wait_idle();
  double spawn_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_spawn).count();
  std::printf("swarm-demo: %u agents on %u workers, spawned in %.3f s (%llu restored their state); "
              "%u messages circulating for %.1f s\n",
              agents, rt.worker_count(), spawn_s, static_cast<unsigned long long>(dir.restored.load()), in_flight,
              seconds);

  std::minstd_rand rng(42);
  for (std::uint32_t i = 0; i < in_flight; ++i) {
    (void)rt.send(from_bits(dir.refs[rng() % agents].load()), swarm::Payload::of(i));
  }
  auto t0 = std::chrono::steady_clock::now();
  auto deadline = t0 + std::chrono::duration<double>(seconds);
  std::uint64_t last_msgs = 0;
  auto last = t0;
  while (std::chrono::steady_clock::now() < deadline && rt.stats().supervisors_gave_up == 0) {
    std::this_thread::sleep_for(std::min<std::chrono::duration<double>>(1s, deadline - std::chrono::steady_clock::now()));
    auto now = std::chrono::steady_clock::now();
    swarm::RuntimeStats s = rt.stats();
    double dt = std::chrono::duration<double>(now - last).count();
    std::printf("  t=%5.1fs  %10.0f msgs/s  handled %12llu  live %8llu  restarts %6llu  dropped %llu  refused %llu\n",
                std::chrono::duration<double>(now - t0).count(), static_cast<double>(s.messages - last_msgs) / dt,
                static_cast<unsigned long long>(s.messages), static_cast<unsigned long long>(s.live),
                static_cast<unsigned long long>(s.restarts), static_cast<unsigned long long>(s.dropped_total()),
                static_cast<unsigned long long>(s.refused_total()));
    std::fflush(stdout);
    last_msgs = s.messages;
    last = now;
  }
  double run_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  swarm::RuntimeStats before = rt.stats();
  auto t_stop = std::chrono::steady_clock::now();
  rt.shutdown(swarm::ShutdownPolicy::discard);
  double stop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_stop).count();
  swarm::RuntimeStats s = rt.stats();

  std::printf("\nsummary\n");
  std::printf("  messages handled   %llu (%.2f M msgs/s over %.1f s)\n",
              static_cast<unsigned long long>(before.messages), static_cast<double>(before.messages) / run_s / 1e6,
              run_s);
  std::printf("  agents spawned     %llu (%llu restarts after %llu injected crashes)\n",
              static_cast<unsigned long long>(s.spawned), static_cast<unsigned long long>(s.restarts),
              static_cast<unsigned long long>(before.crashed));
  std::printf("  dropped            %llu total:", static_cast<unsigned long long>(s.dropped_total()));
  for (int i = 0; i < swarm::kDropReasonCount; ++i) {
    if (s.dropped[i] != 0) {
      std::printf(" %s=%llu", std::string(swarm::to_string(static_cast<swarm::DropReason>(i))).c_str(),
                  static_cast<unsigned long long>(s.dropped[i]));
    }
  }
  std::printf("%s\n", s.dropped_total() == 0 ? " none" : " (queued at crashed peers, or in flight at shutdown)");
  std::printf("  refused            %llu total:", static_cast<unsigned long long>(s.refused_total()));
  for (int i = 0; i < swarm::kRefuseReasonCount; ++i) {
    if (s.refused[i] != 0) {
      std::printf(" %s=%llu", std::string(swarm::to_string(static_cast<swarm::RefuseReason>(i))).c_str(),
                  static_cast<unsigned long long>(s.refused[i]));
    }
  }
  std::printf("%s\n", s.refused_total() == 0 ? " none"
                                             : " (sends the sender was told about; a peer lets such a message go)");
  std::printf("  worker steals      %llu, parks %llu\n", static_cast<unsigned long long>(s.steals),
              static_cast<unsigned long long>(s.parks));
  std::printf("  shutdown           %.3f s, %llu agents left\n", stop_s, static_cast<unsigned long long>(s.live));
  const auto st = storage->state->stats();
  std::printf("  state store        %s: %llu snapshots, %llu written, %llu coalesced, %zu pending\n",
              redis_url.empty() ? "memory" : "redis", static_cast<unsigned long long>(st.puts),
              static_cast<unsigned long long>(st.written), static_cast<unsigned long long>(st.coalesced), st.pending);
  const auto js = storage->journal->stats();
  std::printf("  journal            %s: %llu events, %llu written, %llu dropped, %zu queued\n",
              postgres_dsn.empty() ? "memory" : "postgres", static_cast<unsigned long long>(js.appended),
              static_cast<unsigned long long>(js.written), static_cast<unsigned long long>(js.dropped), js.queued);
  if (s.supervisors_gave_up != 0) return 4;
  // Accepted and not written: a run that lost data does not report success.
  const std::uint64_t unwritten = st.pending + js.queued + js.dropped;
  if (unwritten != 0) {
    std::fprintf(stderr, "swarm-demo: %zu states and %llu journal events it accepted were not written\n", st.pending,
                 static_cast<unsigned long long>(js.queued + js.dropped));
    return 3;
  }
  return s.live == 0 ? 0 : 1;
}
