// Flow control: a refused sender learns when its receiver has room (an agent
// through on_room, a thread through wait_for_room); refusals (told, nothing
// lost) are counted apart from drops (lost); and per-type settings whose key
// matches no agent type are reported.

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "metrics/registry.hpp"
#include "runtime/runtime.hpp"
#include "runtime/test_util.hpp"

namespace swarm {
namespace {

using namespace std::chrono_literals;
using test::eventually;

// Records the ints it receives, slowly enough that a producer fills its mailbox.
class Sink : public Agent {
 public:
  static constexpr std::string_view kTypeName = "sink";
  Sink(std::mutex& mu, std::vector<int>& got) : mu_(mu), got_(got) {}
  void on_message(Message& m) override {
    std::this_thread::sleep_for(20us);
    std::lock_guard lock(mu_);
    got_.push_back(m.as<int>());
  }

 private:
  std::mutex& mu_;
  std::vector<int>& got_;
};

// Sends 0..count-1 to `to` in one go; when refused, asks to be told about room
// and resumes from on_room. Never blocks a worker, never loses a message.
class Producer : public Agent {
 public:
  Producer(AgentRef to, int count, std::atomic<int>& refusals, std::atomic<bool>& done)
      : to_(to), count_(count), refusals_(refusals), done_(done) {}
  void on_message(Message&) override { pump(); }
  void on_room(AgentRef receiver) override {
    EXPECT_EQ(receiver, to_);
    pump();
  }

 private:
  void pump() {
    while (next_ < count_) {
      const SendResult r = send(to_, next_);
      if (r == SendResult::mailbox_full) {
        ++refusals_;
        notify_when_room(to_);
        return;
      }
      ASSERT_EQ(r, SendResult::ok);
      ++next_;
    }
    done_ = true;
  }
  AgentRef to_;
  int count_;
  int next_ = 0;
  std::atomic<int>& refusals_;
  std::atomic<bool>& done_;
};

// Blocks in its handler until opened.
class Stuck : public Agent {
 public:
  static constexpr std::string_view kTypeName = "stuck";
  explicit Stuck(std::atomic<bool>& open) : open_(open) {}
  void on_message(Message&) override {
    while (!open_.load()) std::this_thread::yield();
  }

 private:
  std::atomic<bool>& open_;
};

RuntimeConfig small_sink_mailbox() {
  RuntimeConfig c;
  c.workers = 2;
  c.mailbox_by_type["sink"] = MailboxOptions{8, OverflowPolicy::reject};
  return c;
}

std::uint64_t counter_value(metrics::Registry& reg, const std::string& name, const std::string& reason) {
  for (const auto& f : reg.Collect()) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      for (const auto& l : m.label) {
        if (l.name == "reason" && l.value == reason) return static_cast<std::uint64_t>(m.counter.value);
      }
    }
  }
  return ~std::uint64_t{0};
}

TEST(FlowControl, AnAgentToldAboutRoomSendsEverythingInOrderAndNothingIsLost) {
  Runtime rt(small_sink_mailbox());
  std::mutex mu;
  std::vector<int> got;
  std::atomic<int> refusals{0};
  std::atomic<bool> done{false};
  const AgentRef sink = rt.spawn<Sink>(mu, got);
  constexpr int kCount = 2000;
  const AgentRef producer = rt.spawn<Producer>(sink, kCount, refusals, done);
  ASSERT_EQ(rt.send(producer, 0), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return done.load(); }, 60s));
  ASSERT_TRUE(rt.wait_idle());
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(got.size(), static_cast<std::size_t>(kCount));
    for (int i = 0; i < kCount; ++i) ASSERT_EQ(got[i], i);
  }
  EXPECT_GT(refusals.load(), 0) << "the mailbox of 8 never filled: the test proves nothing";
  const RuntimeStats s = rt.stats();
  EXPECT_EQ(s.refused[static_cast<int>(RefuseReason::mailbox_full)], static_cast<std::uint64_t>(refusals.load()));
  EXPECT_EQ(s.dropped_total(), 0u);
  // The same split in /metrics.
  EXPECT_EQ(counter_value(rt.metrics(), "swarm_messages_refused_total", "mailbox_full"),
            s.refused[static_cast<int>(RefuseReason::mailbox_full)]);
  EXPECT_EQ(counter_value(rt.metrics(), "swarm_messages_dropped_total", "mailbox_full"), 0u);
}

TEST(FlowControl, OnRoomComesAtOnceWhenTheReceiverHasRoomOrIsGone) {
  struct Asker : Agent {
    Asker(AgentRef about, std::atomic<int>& told) : about_(about), told_(told) {}
    void on_message(Message&) override { notify_when_room(about_); }
    void on_room(AgentRef r) override {
      if (r == about_) ++told_;
    }
    AgentRef about_;
    std::atomic<int>& told_;
  };
  Runtime rt(small_sink_mailbox());
  std::mutex mu;
  std::vector<int> got;
  const AgentRef sink = rt.spawn<Sink>(mu, got);
  std::atomic<int> told{0};
  ASSERT_EQ(rt.send(rt.spawn<Asker>(sink, told), 0), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return told == 1; }));  // empty mailbox: room now
  ASSERT_TRUE(rt.stop(sink));
  ASSERT_TRUE(eventually([&] { return !rt.alive(sink); }));
  std::atomic<int> told_gone{0};
  ASSERT_EQ(rt.send(rt.spawn<Asker>(sink, told_gone), 0), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return told_gone == 1; }));  // gone: the next send says dead_agent
  EXPECT_EQ(rt.send(sink, 1), SendResult::dead_agent);
}

TEST(FlowControl, AThreadWaitsForRoomWithoutPolling) {
  Runtime rt(small_sink_mailbox());
  std::mutex mu;
  std::vector<int> got;
  const AgentRef sink = rt.spawn<Sink>(mu, got);
  constexpr int kCount = 500;
  int refused = 0;
  for (int i = 0; i < kCount;) {
    const SendResult r = rt.send(sink, i);
    if (r == SendResult::mailbox_full) {
      ++refused;
      ASSERT_TRUE(rt.wait_for_room(sink, 10s));
      continue;
    }
    ASSERT_EQ(r, SendResult::ok);
    ++i;
  }
  ASSERT_TRUE(rt.wait_idle());
  std::lock_guard lock(mu);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(got[i], i);
  EXPECT_GT(refused, 0);
  EXPECT_EQ(rt.stats().dropped_total(), 0u);
}

TEST(FlowControl, WaitForRoomTimesOutWhileTheReceiverStaysFull) {
  RuntimeConfig c;
  c.workers = 2;
  c.mailbox_by_type["stuck"] = MailboxOptions{2, OverflowPolicy::reject};
  std::atomic<bool> open{false};
  Runtime rt(c);
  const AgentRef s = rt.spawn<Stuck>(open);
  int ok = 0;
  while (rt.send(s, ok) == SendResult::ok) ++ok;
  EXPECT_EQ(ok, 2);
  EXPECT_FALSE(rt.wait_for_room(s, 30ms));
  open = true;
  EXPECT_TRUE(rt.wait_for_room(s, 10s));
  EXPECT_EQ(rt.stats().dropped_total(), 0u);
}

TEST(FlowControl, DropNewestIsALossAndCountedAsOne) {
  RuntimeConfig c;
  c.workers = 2;
  c.mailbox_by_type["stuck"] = MailboxOptions{2, OverflowPolicy::drop_newest};
  std::atomic<bool> open{false};
  Runtime rt(c);
  const AgentRef s = rt.spawn<Stuck>(open);
  EXPECT_EQ(rt.send(s, 1), SendResult::ok);
  EXPECT_EQ(rt.send(s, 2), SendResult::ok);
  EXPECT_EQ(rt.send(s, 3), SendResult::dropped);
  open = true;
  EXPECT_EQ(rt.stats().dropped[static_cast<int>(DropReason::mailbox_full)], 1u);
  EXPECT_EQ(rt.stats().refused_total(), 0u);
}

}  // namespace

// Outside the anonymous namespace on purpose: the type name is swarm::Named.
class Named : public Agent {
 public:
  void on_message(Message&) override {}
};

namespace {
class Anon : public Agent {  // in an anonymous namespace: its name is swarm::Anon
 public:
  void on_message(Message&) override {}
};

TEST(TypeSettings, AKeyThatMatchesNoTypeIsReportedWithTheKnownNames) {
  RuntimeConfig c;
  c.workers = 1;
  c.mailbox_by_type["Anon"] = MailboxOptions{4, OverflowPolicy::reject};          // near miss
  c.mailbox_by_type["swarm::Named"] = MailboxOptions{4, OverflowPolicy::reject};  // exact
  c.mailbox_by_type["nothing_like_it"] = MailboxOptions{4, OverflowPolicy::reject};
  Runtime rt(c);
  testing::internal::CaptureStderr();
  (void)rt.spawn<Anon>();
  const std::string at_spawn = testing::internal::GetCapturedStderr();
  EXPECT_NE(at_spawn.find("\"Anon\""), std::string::npos) << at_spawn;
  EXPECT_NE(at_spawn.find("\"swarm::Anon\""), std::string::npos) << at_spawn;
  (void)rt.spawn<Named>();
  EXPECT_EQ(rt.unmatched_type_keys(), (std::vector<std::string>{"Anon", "nothing_like_it"}));
  testing::internal::CaptureStderr();
  rt.shutdown();
  const std::string at_shutdown = testing::internal::GetCapturedStderr();
  EXPECT_NE(at_shutdown.find("\"nothing_like_it\" matched no agent type"), std::string::npos) << at_shutdown;
  EXPECT_NE(at_shutdown.find("swarm::Named"), std::string::npos) << at_shutdown;  // the known names
}

TEST(TypeSettings, AnonymousNamespacesAreLeftOutOfTypeNames) {
  RuntimeConfig c;
  c.workers = 1;
  c.mailbox_by_type["swarm::Anon"] = MailboxOptions{1, OverflowPolicy::reject};
  Runtime rt(c);
  EXPECT_EQ(rt.unmatched_type_keys(), std::vector<std::string>{"swarm::Anon"});
  (void)rt.spawn<Anon>();
  EXPECT_TRUE(rt.unmatched_type_keys().empty());  // the key matched the type
}

}  // namespace
}  // namespace swarm
