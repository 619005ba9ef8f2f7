// supervision: a crashing agent is restarted by its supervisor (Erlang/OTP style).
//
// A Supervisor (one_for_one) starts two children: "parser", which turns the
// text published on "numbers" into an int and crashes (throws) on anything
// else, and "ledger", which it reports each number to. The parser is fed
// "42", then "banana" (crash), then "7":
//   - the crash ends that parser: exit reason `crashed` with the exception's
//     what(), in Runtime::recent_crashes() and stats().crashed;
//   - the supervisor starts a new parser (a new AgentRef) and subscribes it
//     again (ChildSpec::subscriptions), so "7" reaches the new one;
//   - one_for_one restarts only the child that crashed: the ledger keeps its state.
// Exits 0 only if all of that happened.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "runtime/runtime.hpp"
#include "runtime/supervisor.hpp"

using namespace std::chrono_literals;

namespace {

// What main checks. The agents write it from their workers.
struct Board {
  std::atomic<int> parser_starts{0};
  std::atomic<int> ledger_starts{0};
  std::atomic<int> ledger_total{0};
  std::atomic<std::uint64_t> ledger_ref{0};  // AgentRef::bits() of the ledger
};

class Ledger : public swarm::Agent {
 public:
  explicit Ledger(Board& board) : board_(board) {}
  void on_start() override {
    board_.ledger_starts.fetch_add(1);
    board_.ledger_ref = self().bits();
  }
  void on_message(swarm::Message& m) override {
    total_ += m.as<int>();  // state that a restart of the parser must not touch
    board_.ledger_total = total_;
  }

 private:
  Board& board_;
  int total_ = 0;
};

class Parser : public swarm::Agent {
 public:
  explicit Parser(Board& board) : board_(board) {}
  void on_start() override { std::printf("  parser %s started\n", swarm::to_string(self()).c_str()); }
  void on_message(swarm::Message& m) override {
    const std::string text(m.text());
    std::size_t used = 0;
    int value = 0;
    try {
      value = std::stoi(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    // A handler that throws crashes its agent; the supervisor decides what next.
    if (used == 0 || used != text.size()) throw std::invalid_argument("parser: not a number: \"" + text + "\"");
    std::printf("  parser %s: %d\n", swarm::to_string(self()).c_str(), value);
    (void)send(swarm::AgentRef::from_bits(board_.ledger_ref), value);
  }
  void on_stop(const swarm::ExitReason& why) override {
    std::printf("  parser %s exits: %s (%s)\n", swarm::to_string(self()).c_str(),
                std::string(swarm::to_string(why.kind)).c_str(), why.detail.c_str());
  }

 private:
  Board& board_;
};

// Polls `done` until it holds or `timeout` passes.
template <class F>
bool eventually(F done, std::chrono::milliseconds timeout = 5000ms) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

bool check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  return ok;
}

}  // namespace

int main() {
  swarm::RuntimeConfig cfg;
  cfg.workers = 2;
  swarm::Runtime rt(cfg);
  Board board;

  swarm::SupervisorSpec spec;
  spec.strategy = swarm::Strategy::one_for_one;
  spec.max_restarts = 3;  // more than 3 restarts within 5 s: give up and escalate
  spec.period = 5000ms;
  // Started in this order; the ledger first, so it exists when the parser reports.
  spec.children.push_back(
      {"ledger", [&board](swarm::Supervisor& s, const swarm::Payload&) { return s.spawn<Ledger>(board); }});
  swarm::ChildSpec parser{"parser", [&board](swarm::Supervisor& s, const swarm::Payload&) {
                            board.parser_starts.fetch_add(1);
                            return s.spawn<Parser>(board);
                          }};
  parser.subscriptions.push_back({"numbers", ""});  // at every (re)start
  spec.children.push_back(std::move(parser));
  rt.spawn<swarm::Supervisor>(std::move(spec));

  auto feed = [&](const char* text) {
    // Wait until the supervisor has (re)started and subscribed everything.
    rt.wait_idle();
    auto r = rt.publish("numbers", swarm::Payload(std::string_view(text)));
    if (!r || r->delivered != 1) std::printf("  publish \"%s\": not delivered\n", text);
    rt.wait_idle();
  };
  if (!eventually([&] { return board.parser_starts == 1 && board.ledger_starts == 1; })) {
    std::printf("FAIL the supervisor did not start its children\n");
    return 1;
  }
  feed("42");
  feed("banana");
  eventually([&] { return board.parser_starts == 2; });
  feed("7");

  const swarm::RuntimeStats stats = rt.stats();
  const auto crashes = rt.recent_crashes();
  bool ok = true;
  ok &= check(stats.crashed == 1 && !crashes.empty() &&
                  crashes.back().reason.detail.find("banana") != std::string::npos,
              "the parser crashed once, and the crash says why");
  ok &= check(board.parser_starts == 2 && stats.restarts == 1, "the supervisor restarted it once");
  ok &= check(board.ledger_starts == 1, "one_for_one left the ledger running");
  ok &= check(board.ledger_total == 42 + 7, "the ledger got 42 from the first parser and 7 from the second");
  rt.shutdown();
  return ok ? 0 : 1;
}
