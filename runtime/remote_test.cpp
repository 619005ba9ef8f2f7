// Remote nodes: a transport attached under a node number receives what the
// runtime has for its refs, sends and publishes on its participants' behalf,
// and answers their requests (streamed replies included).

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "base/mutex.hpp"
#include "runtime/runtime.hpp"
#include "runtime/test_util.hpp"

namespace swarm {
namespace {

using namespace std::chrono_literals;
using test::eventually;

// A transport that records what it is given; its participant 7 is alive
// until `gone` is set.
class RecordingNode : public RemoteNode {
 public:
  struct Got {
    AgentRef to;
    AgentRef reply_to;
    SystemKind system;
    std::uint64_t correlation_id;
    bool partial;
    std::uint8_t status;
    std::string text;
  };
  SendResult deliver(AgentRef to, Message& m) noexcept override {
    MutexLock lock(mu_);
    got_.push_back({to, m.reply_to, m.system, m.correlation_id, m.partial, m.status, std::string(m.payload.text())});
    return SendResult::ok;
  }
  bool alive(AgentRef ref) const noexcept override { return ref.index == 7 && !gone.load(); }
  std::vector<Got> got() const {
    MutexLock lock(mu_);
    return got_;
  }
  std::atomic<bool> gone{false};

 private:
  mutable Mutex mu_;
  std::vector<Got> got_;
};

// Sends what it receives to the ref in its payload's sender; answers requests
// with three parts and a final "done".
class Streamer : public Agent {
 public:
  void on_message(Message& m) override {
    if (!m.is_request()) {
      (void)send(m.sender, std::string("seen ") + std::string(m.text()));
      return;
    }
    for (int i = 0; i < 3; ++i) (void)reply_partial(m, std::to_string(i));
    (void)reply(m, std::string("done"));
  }
};

// Asks a Streamer and records every part its callback sees.
class Asker : public Agent {
 public:
  Asker(AgentRef target, std::vector<std::string>* parts, std::atomic<bool>* finished)
      : target_(target), parts_(parts), finished_(finished) {}
  void on_start() override {
    ask(target_, Payload::of(std::string("go")), 0, 5s, [this](AskStatus s, Message* m) {
      if (s != AskStatus::ok) {
        parts_->push_back(std::string("status ") + std::string(to_string(s)));
        finished_->store(true);
        return;
      }
      parts_->push_back(std::string(m->text()) + (m->partial ? "" : " (final)"));
      if (!m->partial) finished_->store(true);
    });
  }
  void on_message(Message&) override {}

 private:
  AgentRef target_;
  std::vector<std::string>* parts_;
  std::atomic<bool>* finished_;
};

RuntimeConfig two_workers() {
  RuntimeConfig c;
  c.workers = 2;
  return c;
}

TEST(RemoteNodes, RefsOnAnAttachedNodeReachItAndAreUnreachableAfterDetach) {
  Runtime rt(two_workers());
  RecordingNode node;
  const std::uint32_t n = rt.attach_node(node);
  ASSERT_NE(n, 0u);
  const AgentRef client{7, 1, n};
  const AgentRef streamer = rt.spawn<Streamer>();
  // The streamer answers a plain message by sending to its sender: the client.
  ASSERT_EQ(rt.forward(streamer, Payload::of(std::string("hello")), {client, 0, {}}), SendResult::ok);
  ASSERT_TRUE(eventually([&] { return node.got().size() == 1; }));
  EXPECT_EQ(node.got()[0].to, client);
  EXPECT_EQ(node.got()[0].text, "seen hello");
  rt.detach_node(n);
  EXPECT_EQ(rt.send(client, std::string("x")), SendResult::unreachable);
  EXPECT_FALSE(rt.alive(client));
}

TEST(RemoteNodes, AForwardedRequestGetsEveryPartOfAStreamedReplyInOrder) {
  Runtime rt(two_workers());
  RecordingNode node;
  const std::uint32_t n = rt.attach_node(node);
  const AgentRef client{7, 1, n};
  const AgentRef streamer = rt.spawn<Streamer>();
  ASSERT_TRUE(rt.subscribe(streamer, "work.*"));
  auto topic = rt.router().intern("work.a");
  ASSERT_TRUE(topic);
  const router::PublishResult r = rt.forward_publish(*topic, Payload::of(std::string("go")), {client, 42, {}});
  EXPECT_EQ(r.delivered, 1u);
  ASSERT_TRUE(eventually([&] { return node.got().size() == 4; }));
  const auto got = node.got();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(got[i].system, SystemKind::reply);
    EXPECT_EQ(got[i].correlation_id, 42u);
    EXPECT_EQ(got[i].partial, i < 3) << i;
    EXPECT_EQ(got[i].text, i < 3 ? std::to_string(i) : "done");
  }
  rt.detach_node(n);
}

TEST(RemoteNodes, AnAgentAskerSeesEachPartThenTheFinalReply) {
  Runtime rt(two_workers());
  const AgentRef streamer = rt.spawn<Streamer>();
  std::vector<std::string> parts;
  std::atomic<bool> finished{false};
  rt.spawn<Asker>(streamer, &parts, &finished);
  ASSERT_TRUE(eventually([&] { return finished.load(); }));
  EXPECT_EQ(parts, (std::vector<std::string>{"0", "1", "2", "done (final)"}));
  // A future holds the final reply only.
  Reply reply = rt.ask(streamer, std::string("go"), 5s).get();
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply.message.as<std::string>(), "done");
}

TEST(RemoteNodes, ARemoteParticipantAnswersAnAgentsRequestWithPartsThroughForwardReply) {
  Runtime rt(two_workers());
  RecordingNode node;
  const std::uint32_t n = rt.attach_node(node);
  const AgentRef client{7, 1, n};
  std::vector<std::string> parts;
  std::atomic<bool> finished{false};
  rt.spawn<Asker>(client, &parts, &finished);
  ASSERT_TRUE(eventually([&] { return node.got().size() == 1; }));
  const RecordingNode::Got request = node.got()[0];
  ASSERT_NE(request.correlation_id, 0u);
  EXPECT_EQ(request.text, "go");
  EXPECT_EQ(request.system, SystemKind::user);
  ASSERT_TRUE(request.reply_to.valid());
  EXPECT_EQ(rt.forward_reply(request.reply_to, request.correlation_id, AskStatus::ok, true, Payload(std::string_view("a"))),
            SendResult::ok);
  EXPECT_EQ(rt.forward_reply(request.reply_to, request.correlation_id, AskStatus::ok, false, Payload(std::string_view("b"))),
            SendResult::ok);
  ASSERT_TRUE(eventually([&] { return finished.load(); }));
  EXPECT_EQ(parts, (std::vector<std::string>{"a", "b (final)"}));
  rt.detach_node(n);
}

TEST(RemoteNodes, NamesOfRemoteRefsResolveWhileAliveAndAreReleasedByTheirHolderOnly) {
  Runtime rt(two_workers());
  RecordingNode node;
  const std::uint32_t n = rt.attach_node(node);
  const AgentRef client{7, 1, n};
  ASSERT_TRUE(rt.register_name(client, "py-worker"));
  EXPECT_EQ(rt.whereis("py-worker"), client);
  EXPECT_EQ(rt.send(rt.whereis("py-worker"), std::string("hi")), SendResult::ok);
  EXPECT_FALSE(rt.unregister_name("py-worker", AgentRef{8, 1, n}));
  node.gone = true;
  EXPECT_FALSE(rt.whereis("py-worker").valid());  // a gone participant's names are free
  EXPECT_TRUE(rt.unregister_name("py-worker", client));
  EXPECT_FALSE(rt.register_name(AgentRef{9, 1, n}, "x"));  // not alive: refused
  rt.detach_node(n);
}

}  // namespace
}  // namespace swarm
