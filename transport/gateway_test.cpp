// The gateway against real clients on 127.0.0.1: every command's round trip,
// local agents and remote clients mixed in wildcards and queue groups,
// requests (streamed, timed out, without responder), clients that vanish,
// never read, speak another version or send garbage, 1,000 clients, CURVE.

#include "transport/gateway.hpp"

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <dirent.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "base/mutex.hpp"
#include "metrics/registry.hpp"
#include "runtime/test_util.hpp"
#include "transport/client.hpp"

namespace swarm::transport {
namespace {

using namespace std::chrono_literals;
using test::eventually;

// Answers requests with their payload; republishes plain messages on "echoed".
class Echo : public Agent {
 public:
  void on_start() override {
    (void)register_name("echo");
    (void)subscribe("echo.>");
  }
  void on_message(Message& m) override {
    if (m.is_request()) {
      (void)reply(m, m.payload);
    } else {
      (void)publish("echoed", m.payload);
    }
  }
};

// Answers "N" with N partial replies, then "done".
class Streamer : public Agent {
 public:
  void on_start() override { (void)subscribe("stream.>"); }
  void on_message(Message& m) override {
    const int n = std::stoi(std::string(m.text()));
    for (int i = 0; i < n; ++i) (void)reply_partial(m, std::to_string(i));
    (void)reply(m, std::string("done"));
  }
};

// Never answers.
class Silent : public Agent {
 public:
  void on_start() override { (void)subscribe("silent"); }
  void on_message(Message&) override {}
};

// Counts what it receives on a topic pattern, in a queue group.
class Worker : public Agent {
 public:
  Worker(std::string pattern, std::string group, std::atomic<int>* got)
      : pattern_(std::move(pattern)), group_(std::move(group)), got_(got) {}
  void on_start() override { (void)subscribe(pattern_, group_); }
  void on_message(Message&) override { got_->fetch_add(1); }

 private:
  std::string pattern_, group_;
  std::atomic<int>* got_;
};

// Asks the holder of a name and records the parts of the answer.
class Asker : public Agent {
 public:
  struct Log {
    Mutex mu;
    std::vector<std::string> parts;
    std::atomic<bool> finished{false};
  };
  Asker(std::string name, Log* log) : name_(std::move(name)), log_(log) {}
  void on_start() override {
    ask(runtime().whereis(name_), Payload::of(std::string("question")), 0, 5s, [this](AskStatus s, Message* m) {
      MutexLock lock(log_->mu);
      if (s != AskStatus::ok) {
        log_->parts.push_back("status " + std::string(to_string(s)));
      } else {
        log_->parts.push_back(std::string(m->text()) + (m->partial ? "" : " (final)"));
      }
      if (s != AskStatus::ok || !m->partial) log_->finished = true;
    });
  }
  void on_message(Message&) override {}

 private:
  std::string name_;
  Log* log_;
};

RuntimeConfig two_workers() {
  RuntimeConfig c;
  c.workers = 2;
  return c;
}

GatewayConfig loopback() {
  GatewayConfig c;
  c.bind = "tcp://127.0.0.1:*";
  c.heartbeat = 200ms;
  return c;
}

ClientOptions client(const Gateway& gw, std::string name) {
  ClientOptions o;
  o.endpoint = gw.endpoint();
  o.name = std::move(name);
  o.heartbeat = 200ms;
  return o;
}

// The next message of a given command, skipping others; nullopt on timeout.
std::optional<Incoming> next_of(Client& c, Command command, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto in = c.next(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
    if (in && in->command == command) return in;
  }
  return std::nullopt;
}

// A subscription is in place once a probe published on it comes back.
void await_subscribed(Client& publisher, Client& subscriber, const std::string& topic) {
  ASSERT_TRUE(eventually([&] {
    publisher.publish(topic, "probe");
    auto in = subscriber.next(20ms);
    return in && in->command == Command::msg && in->payload == "probe";
  })) << topic;
  while (subscriber.next(50ms)) {
  }
}

// A raw DEALER, for frames the Client would not send.
struct RawClient {
  zmq::context_t ctx;
  zmq::socket_t socket{ctx, zmq::socket_type::dealer};
  RawClient(const std::string& endpoint, const std::string& routing_id) {
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::routing_id, routing_id);
    socket.connect(endpoint);
  }
  void send(const Frames& frames) {
    for (std::size_t i = 0; i < frames.size(); ++i) {
      (void)socket.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
  std::optional<Frames> receive(std::chrono::milliseconds timeout = 5s) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) == 0) return std::nullopt;
    Frames out;
    zmq::message_t m;
    do {
      (void)socket.recv(m);
      out.push_back(m.to_string());
    } while (m.more());
    return out;
  }
};

std::string hello_json(const std::string& name) { return nlohmann::json{{"name", name}, {"protocol", 1}}.dump(); }

TEST(Gateway, HandshakeWelcomesWithTheSessionsLimits) {
  Runtime rt(two_workers());
  Gateway gw(rt, loopback());
  Client c(client(gw, "alice"));
  const auto w = nlohmann::json::parse(c.welcome());
  EXPECT_EQ(w["protocol"], 1);
  EXPECT_EQ(w["node"], gw.node());
  EXPECT_EQ(w["max_outbound"], 10000);
  EXPECT_EQ(w["heartbeat_ms"], 200);
  EXPECT_EQ(w["credit"], false);
  EXPECT_TRUE(eventually([&] { return gw.stats().clients == 1; }));
  ASSERT_EQ(gw.clients().size(), 1u);
  EXPECT_EQ(gw.clients()[0].name, "alice");
  // The name is unique among live sessions (another routing id asks for it).
  RawClient impostor(gw.endpoint(), "c/impostor");
  impostor.send({header(Command::hello), hello_json("alice")});
  auto refused = impostor.receive();
  ASSERT_TRUE(refused);
  EXPECT_EQ((*refused)[1], std::string("\0\x04", 2));  // name_taken
  gw.stop();
}

TEST(Gateway, ClientsPublishAndSubscribeWithWildcards) {
  Runtime rt(two_workers());
  Gateway gw(rt, loopback());
  Client pub(client(gw, "pub"));
  Client star(client(gw, "star"));
  Client tail(client(gw, "tail"));
  star.subscribe(1, "orders.*.created");
  tail.subscribe(2, "orders.>");
  await_subscribed(pub, star, "orders.probe.created");
  await_subscribed(pub, tail, "orders.probe");
  pub.publish("orders.eu.created", "{\"id\":1}", "application/json");
  pub.publish("orders.eu.shipped.late", "late");
  auto a = next_of(star, Command::msg);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->topic, "orders.eu.created");
  EXPECT_EQ(a->sid, 1u);
  EXPECT_EQ(a->content_type, "application/json");
  EXPECT_EQ(a->sender, "client/pub");
  EXPECT_EQ(a->correlation_id, 0u);
  auto b1 = next_of(tail, Command::msg);
  auto b2 = next_of(tail, Command::msg);
  ASSERT_TRUE(b1 && b2);
  EXPECT_EQ(b1->payload, "{\"id\":1}");
  EXPECT_EQ(b2->topic, "orders.eu.shipped.late");
  EXPECT_FALSE(star.next(100ms));  // "*" is one token only
  // UNSUB stops them; an unknown sid is an error with the sid as context.
  star.unsubscribe(1);
  star.unsubscribe(99);
  auto err = next_of(star, Command::error);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->error, ErrorCode::unknown_sid);
  EXPECT_EQ(err->context, 99u);
  gw.stop();
}

TEST(Gateway, FlushReturnsOnceEarlierCommandsAreHandled) {
  Runtime rt(two_workers());
  Gateway gw(rt, loopback());
  Client c(client(gw, "flusher"));
  c.publish("bad..topic", "x");
  ASSERT_TRUE(c.flush(5s));
  auto err = c.next(0ms);  // already here: the gateway answered the PUB before the PING
  ASSERT_TRUE(err);
  EXPECT_EQ(err->command, Command::error);
  EXPECT_NE(err->message.find("PUB"), std::string::npos) << err->message;
  c.publish("good.topic", "x");
  ASSERT_TRUE(c.flush(5s));
  EXPECT_FALSE(c.next(0ms));  // nothing to say about a good one
  gw.stop();
}

TEST(Gateway, AQueueGroupOfAgentsAndClientsGetsEachMessageOnce) {
  Runtime rt(two_workers());
  Gateway gw(rt, loopback());
  std::atomic<int> agents{0};
  rt.spawn<Worker>("jobs.>", "w", &agents);
  rt.spawn<Worker>("jobs.>", "w", &agents);
  Client member(client(gw, "member"));
  Client pub(client(gw, "pub"));
  member.subscribe(1, "jobs.>", "w");
  // Wait until the client is a member: publish until one reaches it.
  int sent = 0;
  int at_client = 0;
  ASSERT_TRUE(eventually([&] {
    pub.publish("jobs.x", "warmup");
    ++sent;
    while (auto in = member.next(5ms)) at_client += in->command == Command::msg;
    return at_client > 0;
  }));
  constexpr int kMessages = 300;
  for (int i = 0; i < kMessages; ++i) pub.publish("jobs.y", std::to_string(i));
  sent += kMessages;
  ASSERT_TRUE(eventually([&] {
    while (auto in = member.next(5ms)) at_client += in->command == Command::msg;
    return agents.load() + at_client == sent;
  })) << "agents " << agents.load() << " + client " << at_client << " != " << sent;
  EXPECT_GT(at_client, 1);
  EXPECT_GT(agents.load(), 0);
  EXPECT_FALSE(member.next(100ms));  // and nothing twice
  EXPECT_EQ(agents.load() + at_client, sent);
  gw.stop();
}

TEST(Gateway, RequestsToTopicsAndNamesNoResponderAndTimeout) {
  Runtime rt(two_workers());
  rt.spawn<Echo>();
  rt.spawn<Silent>();
  ASSERT_TRUE(eventually([&] { return rt.whereis("echo").valid(); }));
  Gateway gw(rt, loopback());
  Client c(client(gw, "asker"));
  Answers by_name = c.request("echo", TargetKind::name, "hi", "text/plain");
  ASSERT_EQ(by_name.status, AskStatus::ok);
  EXPECT_EQ(by_name.final().payload, "hi");
  EXPECT_EQ(by_name.final().content_type, "text/plain");
  Answers by_topic = c.request("echo.a", TargetKind::topic, "{}", "application/json");
  ASSERT_EQ(by_topic.status, AskStatus::ok);
  EXPECT_EQ(by_topic.final().content_type, "application/json");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c.request("nobody.home", TargetKind::topic, "x").status, AskStatus::no_responder);
  EXPECT_EQ(c.request("nobody", TargetKind::name, "x").status, AskStatus::dead_agent);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);  // answered at once, not after a timeout
  EXPECT_EQ(c.request("silent", TargetKind::topic, "x", "text/plain", 150ms).status, AskStatus::timeout);
  gw.stop();
}

TEST(Gateway, StreamedRepliesReachTheClientInOrder) {
  Runtime rt(two_workers());
  rt.spawn<Streamer>();
  Gateway gw(rt, loopback());
  Client c(client(gw, "reader"));
  ASSERT_TRUE(eventually([&] { return c.request("stream.x", TargetKind::topic, "0").status == AskStatus::ok; }));
  Answers a = c.request("stream.x", TargetKind::topic, "5");
  ASSERT_EQ(a.status, AskStatus::ok);
  ASSERT_EQ(a.parts.size(), 6u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(a.parts[i].payload, std::to_string(i));
    EXPECT_FALSE(a.parts[i].final);
  }
  EXPECT_EQ(a.parts[5].payload, "done");
  EXPECT_TRUE(a.parts[5].final);
  gw.stop();
}

TEST(Gateway, AClientWithANameAnswersAgentsAndClientsWithStreams) {
  Runtime rt(two_workers());
  Gateway gw(rt, loopback());
  Client responder(client(gw, "responder"));
  responder.register_name("py-llm");
  ASSERT_TRUE(eventually([&] { return rt.whereis("py-llm").valid(); }));
  EXPECT_EQ(rt.whereis("py-llm").node, gw.node());
  // An agent asks it: the client streams two parts and a final one.
  Asker::Log log;
  rt.spawn<Asker>("py-llm", &log);
  auto q = next_of(responder, Command::deliver);
  ASSERT_TRUE(q);
  ASSERT_NE(q->correlation_id, 0u);
  EXPECT_EQ(q->payload, "question");
  EXPECT_EQ(q->name, "py-llm");  // the name it was sent to
  responder.reply(q->correlation_id, "tok1", "text/plain", false);
  responder.reply(q->correlation_id, "tok2", "text/plain", false);
  responder.reply(q->correlation_id, "end", "text/plain", true);
  ASSERT_TRUE(eventually([&] { return log.finished.load(); }));
  {
    MutexLock lock(log.mu);
    EXPECT_EQ(log.parts, (std::vector<std::string>{"tok1", "tok2", "end (final)"}));
  }
  // A reply nobody waits for any more is an error.
  responder.reply(q->correlation_id, "late");
  auto err = next_of(responder, Command::error);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->error, ErrorCode::unknown_request);
  // Another client asks it by name.
  Client asker(client(gw, "asker"));
  const std::uint64_t id = asker.request_async("py-llm", TargetKind::name, "q2");
  auto q2 = next_of(responder, Command::deliver);
  ASSERT_TRUE(q2);
  EXPECT_EQ(q2->sender, "client/asker");
  responder.reply(q2->correlation_id, "a2");
  auto answer = next_of(asker, Command::answer);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->correlation_id, id);
  EXPECT_EQ(answer->payload, "a2");
  // An in-process caller's future gets the final reply.
  auto future = rt.ask(rt.whereis("py-llm"), std::string("q3"), 5s);
  auto q3 = next_of(responder, Command::deliver);
  ASSERT_TRUE(q3);
  responder.reply(q3->correlation_id, "part", "text/plain", false);
  responder.reply(q3->correlation_id, "a3");
  swarm::Reply r = future.get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.message.as<std::string>(), "a3");
  gw.stop();
}

TEST(Gateway, SendToNamesAndTheirErrors) {
  Runtime rt(two_workers());
  rt.spawn<Echo>();
  ASSERT_TRUE(eventually([&] { return rt.whereis("echo").valid(); }));
  Gateway gw(rt, loopback());
  Client c(client(gw, "sender"));
  c.subscribe(1, "echoed");
  ASSERT_TRUE(eventually([&] {
    c.send("echo", "hello");
    auto in = c.next(20ms);
    return in && in->command == Command::msg && in->payload == "hello";
  }));
  c.send("nobody", "x");
  auto err = next_of(c, Command::error);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->error, ErrorCode::no_such_name);
  EXPECT_NE(err->message.find("\"nobody\""), std::string::npos) << err->message;
  // A bad topic is named, and the session stays usable.
  c.publish("orders..eu", "x");
  err = next_of(c, Command::error);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->error, ErrorCode::bad_field);
  EXPECT_NE(err->message.find("orders..eu"), std::string::npos) << err->message;
  c.publish("x", "y", "application/x-unknown");
  err = next_of(c, Command::error);
  ASSERT_TRUE(err);
  EXPECT_NE(err->message.find("application/x-unknown"), std::string::npos) << err->message;
  EXPECT_EQ(c.request("echo", TargetKind::name, "still here").final().payload, "still here");
  gw.stop();
}

TEST(Gateway, GarbageAndAnotherVersionAreAnsweredAndHarmNoOne) {
  Runtime rt(two_workers());
  rt.spawn<Echo>();
  ASSERT_TRUE(eventually([&] { return rt.whereis("echo").valid(); }));
  Gateway gw(rt, loopback());
  Client bystander(client(gw, "bystander"));
  RawClient raw(gw.endpoint(), "c/raw");
  raw.send({"garbage"});
  auto e = raw.receive();
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)[0], header(Command::error));
  raw.send(encode(Sub{1, "x", ""}));  // before HELLO
  e = raw.receive();
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)[1], std::string("\0\x02", 2));  // no_session
  raw.send({header(Command::hello), hello_json("raw")});
  ASSERT_TRUE(raw.receive());  // WELCOME
  for (const Frames& bad : std::vector<Frames>{{header(Command::sub)},
                                              {header(Command::pub), "t", "", "123"},
                                              {header(Command::request), "short"},
                                              {std::string("SW\x01\x33", 4)},
                                              {header(Command::welcome), "{}"},
                                              {header(Command::pub), std::string("\xc3\x28"), "", std::string(4, '\0'), ""}}) {
    raw.send(bad);
    auto reply = raw.receive();
    ASSERT_TRUE(reply);
    EXPECT_EQ((*reply)[0], header(Command::error));
  }
  // Another version: an error naming both versions, then BYE.
  RawClient v2(gw.endpoint(), "c/v2");
  v2.send({std::string("SW\x02\x01", 4), hello_json("v2")});
  auto mismatch = v2.receive();
  ASSERT_TRUE(mismatch);
  EXPECT_EQ((*mismatch)[1], std::string("\0\x01", 2));
  EXPECT_EQ((*mismatch)[2], "gateway speaks SWP/1, client sent SWP/2");
  auto bye = v2.receive();
  ASSERT_TRUE(bye);
  EXPECT_EQ((*bye)[0], header(Command::bye));
  EXPECT_GE(gw.stats().handshake_failures, 1u);
  // Everyone else carries on.
  EXPECT_EQ(bystander.request("echo", TargetKind::name, "fine").final().payload, "fine");
  raw.send({header(Command::request), std::string("\0\0\0\0\0\0\0\1", 8), std::string(1, '\1'), "echo",
            std::string(4, '\0'), "text/plain", "raw ok"});
  auto answer = raw.receive();
  ASSERT_TRUE(answer);
  EXPECT_EQ((*answer)[0], header(Command::answer));
  EXPECT_EQ(answer->back(), "raw ok");
  // Another version on a live session ends it.
  raw.send({std::string("SW\x02\x70", 4)});
  auto ended = raw.receive();
  ASSERT_TRUE(ended);
  EXPECT_EQ((*ended)[1], std::string("\0\x01", 2));
  ASSERT_TRUE(eventually([&] { return gw.stats().sessions_ended[static_cast<int>(SessionEnd::version_mismatch)] == 1; }));
  gw.stop();
}

// A client in another process, killed with SIGKILL while subscribed and
// holding a name: dropped after three silent heartbeats, everything released.
TEST(Gateway, AClientKilledMidStreamIsDroppedAndReleased) {
  Runtime rt(two_workers());
  Gateway gw(rt, loopback());
  ClientOptions patient = client(gw, "other");
  patient.heartbeat = 30s;  // it is not polled while the test waits
  Client other(patient);
  const std::string script = R"(
import json, struct, sys, zmq
s = zmq.Context().socket(zmq.DEALER)
s.setsockopt(zmq.ROUTING_ID, b"c/doomed")
s.connect(sys.argv[1])
H = lambda c: b"SW\x01" + bytes([c])
s.send_multipart([H(1), json.dumps({"name": "doomed", "protocol": 1, "heartbeat_ms": 200}).encode()])
s.recv_multipart()
s.send_multipart([H(2), struct.pack(">I", 1), b"feed.>", b""])
s.send_multipart([H(8), b"doomed-name"])
while True:
    if s.recv_multipart()[0] == H(0x70):
        s.send_multipart([H(0x71)])
)";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/usr/bin/python3", "python3", "-c", script.c_str(), gw.endpoint().c_str(), nullptr);
    _exit(127);
  }
  ASSERT_TRUE(eventually([&] { return rt.whereis("doomed-name").valid(); }, 20s));
  const auto topic = rt.router().intern("feed.x");
  ASSERT_TRUE(topic);
  // Mid-stream: messages flow to it when it dies.
  for (int i = 0; i < 100; ++i) (void)rt.publish(*topic, Payload::of(std::string("tick")));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  // Gone: noticed when a message to it cannot be routed, or when its heartbeats stop.
  auto ended = [&](SessionEnd e) { return gw.stats().sessions_ended[static_cast<int>(e)]; };
  ASSERT_TRUE(eventually([&] { return ended(SessionEnd::unroutable) + ended(SessionEnd::heartbeat) == 1; }, 10s));
  EXPECT_FALSE(rt.whereis("doomed-name").valid());
  EXPECT_EQ(rt.router().receivers(*topic), 0u);  // its subscription is gone
  EXPECT_EQ(gw.stats().clients, 1u);
  other.publish("feed.x", "after");  // nobody left: counted as no_subscriber, and "other" is unaffected
  EXPECT_EQ(other.request("nobody.here", TargetKind::topic, "x").status, AskStatus::no_responder);
  gw.stop();
}

// A client that never reads: its queue stays bounded, drops are counted and
// it is named, and after the grace period it is disconnected.
TEST(Gateway, ASlowClientIsBoundedNamedAndDisconnected) {
  Runtime rt(two_workers());
  GatewayConfig cfg = loopback();
  cfg.heartbeat = 10s;  // it must be dropped as slow, not as silent
  cfg.max_outbound = 100;
  cfg.slow_client_grace = 300ms;
  Gateway gw(rt, cfg);
  RawClient slow(gw.endpoint(), "c/slow");
  slow.socket.set(zmq::sockopt::rcvhwm, 10);
  slow.send({header(Command::hello), hello_json("slow")});
  ASSERT_TRUE(slow.receive());
  slow.send(encode(Sub{1, "firehose", ""}));
  const auto topic = rt.router().intern("firehose");
  ASSERT_TRUE(topic);
  ASSERT_TRUE(eventually([&] { return rt.router().receivers(*topic) == 1; }));
  const Payload big = Payload::of(std::string(4096, 'x'));
  std::uint64_t max_queued = 0;
  ASSERT_TRUE(eventually([&] {
    for (int i = 0; i < 200; ++i) (void)rt.publish(*topic, big);
    max_queued = std::max(max_queued, gw.stats().outbound_queued);
    return gw.stats().dropped[static_cast<int>(GatewayDrop::queue_full)] > 0;
  }, 20s));
  EXPECT_LE(max_queued, cfg.max_outbound);
  const auto named = gw.clients(1);
  if (!named.empty()) {
    EXPECT_EQ(named[0].name, "slow");
    EXPECT_GT(named[0].dropped, 0u);
  }
  ASSERT_TRUE(eventually([&] {
    (void)rt.publish(*topic, big);
    return gw.stats().sessions_ended[static_cast<int>(SessionEnd::slow_consumer)] == 1;
  }, 20s));
  EXPECT_EQ(gw.stats().clients, 0u);
  gw.stop();
}

int thread_count() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
  }
  return n;
}

TEST(Gateway, AThousandClientsWithAFixedNumberOfThreads) {
  rlimit fds{};
  getrlimit(RLIMIT_NOFILE, &fds);
  fds.rlim_cur = std::max<rlim_t>(fds.rlim_cur, std::min<rlim_t>(fds.rlim_max, 8192));
  setrlimit(RLIMIT_NOFILE, &fds);
  ASSERT_GE(fds.rlim_cur, 4096u) << "this test needs 4096 file descriptors";
  Runtime rt(two_workers());
  Gateway gw(rt, loopback());
  const int threads_before = thread_count();
  constexpr int kClients = 1000;
  zmq::context_t ctx;
  ctx.set(zmq::ctxopt::max_sockets, kClients + 16);
  std::vector<zmq::socket_t> sockets;
  for (int i = 0; i < kClients; ++i) {
    zmq::socket_t& s = sockets.emplace_back(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    s.connect(gw.endpoint());
    const std::string h = header(Command::hello);
    const std::string j = nlohmann::json{{"name", "c" + std::to_string(i)}, {"protocol", 1}, {"heartbeat_ms", 30000}}.dump();
    (void)s.send(zmq::buffer(h), zmq::send_flags::sndmore);
    (void)s.send(zmq::buffer(j), zmq::send_flags::none);
  }
  int welcomed = 0;
  std::vector<bool> done(kClients, false);
  ASSERT_TRUE(eventually([&] {
    for (int i = 0; i < kClients; ++i) {
      if (done[i]) continue;
      zmq::message_t m;
      if (!sockets[i].recv(m, zmq::recv_flags::dontwait)) continue;
      if (m.to_string_view() == header(Command::welcome)) {
        done[i] = true;
        ++welcomed;
      }
      while (m.more()) (void)sockets[i].recv(m);
    }
    return welcomed == kClients;
  }, 60s)) << welcomed << " of " << kClients << " welcomed";
  EXPECT_EQ(gw.stats().clients, static_cast<std::uint64_t>(kClients));
  // The gateway added no thread per client (the clients' own context: one I/O thread).
  EXPECT_LE(thread_count() - threads_before, 2);
  gw.stop();
}

std::pair<std::string, std::string> curve_keypair() {
  char pub[41], sec[41];
  EXPECT_EQ(zmq_curve_keypair(pub, sec), 0);
  return {pub, sec};
}

TEST(Gateway, CurveAdmitsAllowedKeysAndRefusesOthers) {
  ASSERT_TRUE(zmq_has("curve"));
  const auto dir = std::filesystem::temp_directory_path() / ("swarm-curve-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const auto server = curve_keypair();
  const auto allowed = curve_keypair();
  const auto stranger = curve_keypair();
  std::ofstream(dir / "server.key") << server.second << "\n";
  std::ofstream(dir / "allowed") << "# the workers\n" << allowed.first << "\n";
  Runtime rt(two_workers());
  rt.spawn<Echo>();
  ASSERT_TRUE(eventually([&] { return rt.whereis("echo").valid(); }));
  GatewayConfig cfg = loopback();
  cfg.curve_secret_key_file = (dir / "server.key").string();
  cfg.curve_allowed_keys_file = (dir / "allowed").string();
  Gateway gw(rt, cfg);
  ClientOptions ok = client(gw, "trusted");
  ok.curve_server_key = server.first;
  ok.curve_public_key = allowed.first;
  ok.curve_secret_key = allowed.second;
  Client trusted(ok);
  EXPECT_EQ(trusted.request("echo", TargetKind::name, "secret").final().payload, "secret");
  ClientOptions no = client(gw, "stranger");
  no.curve_server_key = server.first;
  no.curve_public_key = stranger.first;
  no.curve_secret_key = stranger.second;
  no.connect_timeout = 1s;
  EXPECT_THROW(Client refused(no), ClientError);
  EXPECT_GE(gw.stats().curve_refused, 1u);
  ClientOptions plain = client(gw, "plain");  // no CURVE at all: no session either
  plain.connect_timeout = 500ms;
  EXPECT_THROW(Client refused(plain), ClientError);
  gw.stop();
  std::filesystem::remove_all(dir);
}

TEST(Gateway, ATokenIsRequiredWhenConfigured) {
  Runtime rt(two_workers());
  GatewayConfig cfg = loopback();
  cfg.auth_token = "s3cret";
  Gateway gw(rt, cfg);
  ClientOptions right = client(gw, "right");
  right.token = "s3cret";
  Client ok(right);
  ClientOptions wrong = client(gw, "wrong");
  wrong.token = "guess";
  try {
    Client refused(wrong);
    ADD_FAILURE() << "a wrong token was admitted";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.code(), ErrorCode::auth_failed);
  }
  gw.stop();
}

TEST(Gateway, AReconnectWithTheSameRoutingIdTakesTheSessionOver) {
  Runtime rt(two_workers());
  Gateway gw(rt, loopback());
  RawClient first(gw.endpoint(), "c/phoenix");
  first.send({header(Command::hello), hello_json("phoenix")});
  ASSERT_TRUE(first.receive());
  first.send({header(Command::register_name), "phoenix-name"});
  ASSERT_TRUE(eventually([&] { return rt.whereis("phoenix-name").valid(); }));
  const AgentRef old_ref = rt.whereis("phoenix-name");
  RawClient second(gw.endpoint(), "c/phoenix");  // the same client after a crash
  second.send({header(Command::hello), hello_json("phoenix")});
  auto w = second.receive();
  ASSERT_TRUE(w);
  EXPECT_EQ((*w)[0], header(Command::welcome));
  EXPECT_FALSE(rt.alive(old_ref));
  EXPECT_FALSE(rt.whereis("phoenix-name").valid());  // the new session starts empty
  EXPECT_EQ(gw.stats().clients, 1u);
  gw.stop();
}

TEST(Gateway, CreditLimitsWhatIsSentUntilGranted) {
  Runtime rt(two_workers());
  Gateway gw(rt, loopback());
  ClientOptions o = client(gw, "careful");
  o.credit = 2;
  Client c(o);
  c.subscribe(1, "ticks");
  const auto topic = rt.router().intern("ticks");
  ASSERT_TRUE(topic);
  ASSERT_TRUE(eventually([&] { return rt.router().receivers(*topic) == 1; }));
  for (int i = 0; i < 5; ++i) (void)rt.publish(*topic, Payload::of(std::to_string(i)));
  ASSERT_TRUE(next_of(c, Command::msg));
  ASSERT_TRUE(next_of(c, Command::msg));
  EXPECT_FALSE(next_of(c, Command::msg, 200ms));  // out of credit: the rest waits
  c.credit(3);
  for (int i = 2; i < 5; ++i) {
    auto m = next_of(c, Command::msg);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->payload, std::to_string(i));
  }
  gw.stop();
}

TEST(Gateway, MetricsAndTheDebugPageDescribeTheGateway) {
  RuntimeConfig rc = two_workers();
  rc.telemetry.admin = "127.0.0.1:0";
  Runtime rt(rc);
  Gateway gw(rt, loopback());
  Client c(client(gw, "seen"));
  ASSERT_TRUE(eventually([&] { return gw.stats().clients == 1; }));
  httplib::Client http("127.0.0.1", rt.admin_port());
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("swarm_gateway_clients 1"), std::string::npos);
  EXPECT_NE(metrics->body.find("swarm_gateway_dropped_total{reason=\"queue_full\"} 0"), std::string::npos);
  EXPECT_NE(metrics->body.find("swarm_gateway_frames_total{direction=\"in\"}"), std::string::npos);
  EXPECT_NE(metrics->body.find("swarm_gateway_sessions_ended_total{reason=\"heartbeat\"} 0"), std::string::npos);
  auto page = http.Get("/debug/gateway");
  ASSERT_TRUE(page);
  ASSERT_EQ(page->status, 200);
  const auto j = nlohmann::json::parse(page->body);
  EXPECT_EQ(j["clients"], 1);
  EXPECT_EQ(j["slowest_clients"][0]["name"], "seen");
  gw.stop();
  auto gone = http.Get("/debug/gateway");
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->status, 404);
}

TEST(Gateway, BadConfigurationIsNamed) {
  Runtime rt(two_workers());
  GatewayConfig c = loopback();
  c.bind = "http://x";
  EXPECT_THROW(Gateway(rt, c), std::invalid_argument);
  c = loopback();
  c.max_outbound = 0;
  try {
    Gateway g(rt, c);
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("max_outbound"), std::string::npos);
  }
  c = loopback();
  c.curve_secret_key_file = "/nonexistent";
  EXPECT_THROW(Gateway(rt, c), std::invalid_argument);
  c = loopback();
  c.bind = "tcp://256.0.0.1:1";
  EXPECT_THROW(Gateway(rt, c), std::runtime_error);
}

}  // namespace
}  // namespace swarm::transport
