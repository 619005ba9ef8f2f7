// first_agent: the smallest Swarm program - read this one first.
//
// Shows:
//   - an agent: a class with on_message(), spawned on a Runtime;
//   - send() from main: returns at once and says whether the message was queued;
//   - ask() from main: the agent answers with reply(), and the answer comes
//     back to main through a std::future (with a timeout, so it never hangs);
//   - asking an agent that has stopped: answered dead_agent at once.
// Exits 0 only if the agent got the message and main got the right answer.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <string>

#include "runtime/runtime.hpp"

using namespace std::chrono_literals;

namespace {

// An agent owns its state and handles one message at a time, on some worker
// thread; its fields need no locks. (greeted_ is atomic only because main
// reads it at the end.)
class Greeter : public swarm::Agent {
 public:
  explicit Greeter(std::atomic<int>& greeted) : greeted_(greeted) {}

  void on_message(swarm::Message& m) override {
    const std::string name = m.as<std::string>();  // a string sent as text
    greeted_.fetch_add(1);
    std::printf("  greeter: message from %s\n", name.c_str());
    if (m.is_request()) (void)reply(m, "hello, " + name);  // only asks wait for an answer
  }

 private:
  std::atomic<int>& greeted_;
};

bool check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  return ok;
}

}  // namespace

int main() {
  swarm::Runtime rt;  // one worker thread per core
  std::atomic<int> greeted{0};
  swarm::AgentRef greeter = rt.spawn<Greeter>(greeted);

  // Fire and forget. Never blocks, never throws: the result says what happened
  // (ok, mailbox_full, dead_agent, shutting_down, ...).
  const swarm::SendResult sent = rt.send(greeter, std::string("main"));

  // Ask, and wait in main for the answer (or for why none will come).
  std::future<swarm::Reply> answer = rt.ask(greeter, std::string("world"), 1s);
  const swarm::Reply r = answer.get();
  const std::string text = r.ok() ? r.message.as<std::string>() : "";
  std::printf("  main: ask -> %s \"%s\"\n", std::string(swarm::to_string(r.status)).c_str(), text.c_str());

  // A stopped agent cannot answer: the ask says so at once, not after 5 s.
  rt.stop(greeter);
  const auto t0 = std::chrono::steady_clock::now();
  const swarm::Reply late = rt.ask(greeter, std::string("anyone?"), 5s).get();
  const auto waited = std::chrono::steady_clock::now() - t0;
  std::printf("  main: ask after stop -> %s\n", std::string(swarm::to_string(late.status)).c_str());

  rt.shutdown();  // handles what is queued, stops the agents, joins the threads
  bool ok = true;
  ok &= check(sent == swarm::SendResult::ok, "send from main was queued");
  ok &= check(r.ok() && text == "hello, world", "ask from main got the answer \"hello, world\"");
  ok &= check(greeted == 2, "the greeter handled both messages");
  ok &= check(late.status == swarm::AskStatus::dead_agent && waited < 1s,
              "asking the stopped greeter was answered dead_agent without waiting for the timeout");
  return ok ? 0 : 1;
}
