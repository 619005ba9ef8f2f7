// flow_control: a fast sender and a slow receiver, without losing a message.
//
// Mailboxes are bounded. The slow agent's type gets a mailbox of 4 with the
// policy `reject`: a send to a full mailbox is refused (SendResult::mailbox_full),
// nothing is queued and nothing is lost - the sender decides. Here both
// senders wait for room and send again:
//   - an agent (Producer) calls notify_when_room(receiver) and returns; its
//     on_room(receiver) runs once the receiver has room. A worker never blocks.
//   - main (outside the agents) calls Runtime::wait_for_room(receiver, timeout),
//     which blocks the calling thread.
// Exits 0 only if both senders were refused at least once (back-pressure
// happened) and the receiver still got every message, in order, none dropped.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

#include "runtime/runtime.hpp"

using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kFromProducer = 1;  // message kinds: who sent it
constexpr std::uint32_t kFromMain = 2;
constexpr int kCount = 200;  // messages from each sender

struct Tally {
  std::atomic<int> received[3]{};    // by kind
  std::atomic<int> out_of_order{0};
  std::atomic<int> producer_refused{0};
  std::atomic<bool> producer_done{false};
};

class Slow : public swarm::Agent {
 public:
  static constexpr std::string_view kTypeName = "slow";  // its mailbox is configured by this name
  explicit Slow(Tally& tally) : tally_(tally) {}
  void on_message(swarm::Message& m) override {
    // Each sender's messages arrive in the order it sent them (FIFO per pair).
    if (m.as<int>() != next_[m.kind]) tally_.out_of_order.fetch_add(1);
    next_[m.kind] = m.as<int>() + 1;
    tally_.received[m.kind].fetch_add(1);
    std::this_thread::sleep_for(100us);  // slow work (a real handler would not sleep)
  }

 private:
  Tally& tally_;
  int next_[3]{};
};

class Producer : public swarm::Agent {
 public:
  Producer(Tally& tally, swarm::AgentRef to) : tally_(tally), to_(to) {}
  void on_start() override { pump(); }
  void on_message(swarm::Message&) override {}
  // `to_` has room again: go on where the refusal stopped us.
  void on_room(swarm::AgentRef) override { pump(); }

 private:
  void pump() {
    while (next_ < kCount) {
      const swarm::SendResult r = send(to_, next_, kFromProducer);
      if (r == swarm::SendResult::mailbox_full) {
        tally_.producer_refused.fetch_add(1);
        notify_when_room(to_);  // on_room() runs when there is room; return meanwhile
        return;
      }
      if (r != swarm::SendResult::ok) {
        std::printf("  producer: send -> %s\n", std::string(swarm::to_string(r)).c_str());
        return;
      }
      ++next_;
    }
    tally_.producer_done = true;
  }

  Tally& tally_;
  swarm::AgentRef to_;
  int next_ = 0;
};

bool check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  return ok;
}

}  // namespace

int main() {
  swarm::RuntimeConfig cfg;
  cfg.workers = 2;
  cfg.mailbox_by_type["slow"] = {.capacity = 4, .overflow = swarm::OverflowPolicy::reject};
  swarm::Runtime rt(cfg);
  Tally tally;

  swarm::AgentRef slow = rt.spawn<Slow>(tally);
  rt.spawn<Producer>(tally, slow);

  // main is a sender too, at the same time as the producer.
  int main_refused = 0;
  bool main_gave_up = false;
  for (int i = 0; i < kCount && !main_gave_up;) {
    const swarm::SendResult r = rt.send(slow, i, kFromMain);
    if (r == swarm::SendResult::ok) {
      ++i;
    } else if (r == swarm::SendResult::mailbox_full) {
      ++main_refused;
      main_gave_up = !rt.wait_for_room(slow, 5s);  // blocks this thread, not a worker
    } else {
      std::printf("  main: send -> %s\n", std::string(swarm::to_string(r)).c_str());
      main_gave_up = true;
    }
  }
  rt.wait_idle();

  const swarm::RuntimeStats stats = rt.stats();
  std::printf("  producer refused %d times, main %d times; received %d + %d\n", tally.producer_refused.load(),
              main_refused, tally.received[kFromProducer].load(), tally.received[kFromMain].load());
  bool ok = true;
  ok &= check(tally.producer_refused > 0 && main_refused > 0, "the full mailbox refused both senders (back-pressure)");
  ok &= check(tally.producer_done && !main_gave_up, "both senders waited for room and sent everything");
  ok &= check(tally.received[kFromProducer] == kCount && tally.received[kFromMain] == kCount &&
                  tally.out_of_order == 0,
              "the receiver got all messages of each sender, in order");
  ok &= check(stats.dropped_total() == 0, "nothing was dropped (refusals are not losses)");
  ok &= check(stats.refused[static_cast<int>(swarm::RefuseReason::mailbox_full)] > 0,
              "the refusals were counted (stats().refused, mailbox_full)");
  rt.shutdown();
  return ok ? 0 : 1;
}
