// The gateway: one I/O thread owns the ROUTER socket (and the ZAP socket when
// CURVE is on); workers hand it messages for clients through a queue and an
// eventfd it polls beside the sockets. Sessions, subscriptions, pending
// requests and heartbeats live on the I/O thread; what workers read of a
// session (its generation and queue depth) sits in a fixed array of slots.

#include "transport/gateway.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <zmq.hpp>

#include "base/mutex.hpp"
#include "base/secret.hpp"
#include "metrics/registry.hpp"

namespace swarm::transport {

std::string_view to_string(GatewayDrop d) noexcept {
  switch (d) {
    case GatewayDrop::queue_full: return "queue_full";
    case GatewayDrop::not_encodable: return "not_encodable";
    case GatewayDrop::session_ended: return "session_ended";
    case GatewayDrop::unroutable: return "unroutable";
    case GatewayDrop::late_reply: return "late_reply";
  }
  return "unknown";
}

std::string_view to_string(SessionEnd e) noexcept {
  switch (e) {
    case SessionEnd::bye: return "bye";
    case SessionEnd::heartbeat: return "heartbeat";
    case SessionEnd::slow_consumer: return "slow_consumer";
    case SessionEnd::unroutable: return "unroutable";
    case SessionEnd::reconnected: return "reconnected";
    case SessionEnd::version_mismatch: return "version_mismatch";
    case SessionEnd::gateway_stopped: return "gateway_stopped";
  }
  return "unknown";
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMaxClientsLimit = (std::size_t{1} << 20) - 1;
constexpr std::size_t kReceiveBatch = 256;  // messages read per wake-up before other work
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";

// A client's address is AgentRef{index, generation, node}: the low 20 bits of
// the index are its session's slot, the bits above say which of its names it
// was found by (0: none), so a message to a name arrives as DELIVER naming it.
constexpr std::uint32_t kSlotBits = 20;
constexpr std::uint32_t kSlotMask = (1u << kSlotBits) - 1;
constexpr std::size_t kMaxNamesPerClient = (std::size_t{1} << (32 - kSlotBits)) - 1;

// A subscription's address in the router: the session's slot index, the low
// 12 bits of its generation, and the client's sid.
std::uint64_t sub_address(std::uint32_t index, std::uint32_t generation, std::uint32_t sid) {
  return std::uint64_t{index} | (std::uint64_t{generation & 0xfffu} << 20) | (std::uint64_t{sid} << 32);
}

std::string read_file(const std::string& path, const char* field) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(std::string("gateway: ") + field + ": cannot read \"" + path + "\"");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A Z85 key (40 characters) as its 32 bytes.
std::string decode_key(std::string_view z85, const std::string& where) {
  std::string text(z85);
  if (text.size() != 40) {
    throw std::invalid_argument(where + ": a CURVE key is 40 Z85 characters, got " + std::to_string(text.size()));
  }
  std::string key(32, '\0');
  if (zmq_z85_decode(reinterpret_cast<std::uint8_t*>(key.data()), text.c_str()) == nullptr) {
    throw std::invalid_argument(where + ": \"" + text + "\" is not a Z85 key");
  }
  return key;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<void> GatewayConfig::validate() const {
  auto bad = [](std::string field, std::string what) { return unexpected("gateway: " + field + ": " + what); };
  if (bind.rfind("tcp://", 0) != 0 && bind.rfind("ipc://", 0) != 0 && bind.rfind("inproc://", 0) != 0) {
    return bad("bind", "\"" + bind + "\" is not a ZeroMQ endpoint (tcp://HOST:PORT, ipc:///path or inproc://name)");
  }
  if (heartbeat.count() < 10 || heartbeat.count() > 3'600'000) {
    return bad("heartbeat", std::to_string(heartbeat.count()) + " ms is outside 10..3600000");
  }
  if (max_outbound == 0) return bad("max_outbound", "must be at least 1");
  if (slow_client_grace.count() < 0) return bad("slow_client_grace", "must not be negative");
  if (max_request_timeout.count() <= 0) return bad("max_request_timeout", "must be positive");
  if (max_clients == 0 || max_clients > kMaxClientsLimit) {
    return bad("max_clients", std::to_string(max_clients) + " is outside 1.." + std::to_string(kMaxClientsLimit));
  }
  if (limits.max_payload_bytes == 0 || limits.max_payload_bytes > (std::size_t{1} << 30)) {
    return bad("limits.max_payload_bytes", "must be 1..1073741824");
  }
  if (curve_secret_key_file.empty() != curve_allowed_keys_file.empty()) {
    return bad(curve_secret_key_file.empty() ? "curve_secret_key_file" : "curve_allowed_keys_file",
               "CURVE needs both the secret key file and the allowed keys file");
  }
  return {};
}

// -- the state behind Gateway ---

struct Gateway::State {
  // A message for a client, handed from any thread to the I/O thread.
  struct Outbound {
    Command kind = Command::msg;  // msg, deliver or answer
    std::uint32_t index = 0, generation = 0;  // the session
    std::uint32_t name_slot = 0;               // DELIVER: the name it was sent to (0: none)
    std::uint32_t sid = 0;
    router::TopicId topic = 0;
    AgentRef sender, reply_to;
    std::uint64_t correlation_id = 0;
    std::uint8_t status = 0;
    bool partial = false;
    Payload payload;
  };

  // What workers read of a session.
  struct Slot {
    std::atomic<std::uint32_t> generation{0};  // of the live session; 0: free
    std::atomic<std::int64_t> queued{0};       // its MSG/DELIVER not yet handed to ZeroMQ
    std::atomic<std::uint64_t> dropped{0};
  };

  // I/O thread only.
  struct Session {
    std::uint32_t index = 0, generation = 0;
    AgentRef ref;
    std::string routing_id, name;
    Clock::duration heartbeat{};
    Clock::time_point last_in, last_out, full_since{};
    bool credit_on = false;
    std::uint64_t credit = 0;
    std::unordered_map<std::uint32_t, router::SubscriptionId> subs;  // by sid
    std::vector<std::string> names;  // registered names by name slot - 1 ("": free)
    std::deque<Outbound> pending;  // MSG/DELIVER waiting for credit or for ZeroMQ
    std::deque<Outbound> answers;  // answers to its requests: not subject to credit
    struct Inbound {               // a request it received and has not answered
      AgentRef reply_to;
      std::uint64_t correlation_id;
      Clock::time_point since;
    };
    std::unordered_map<std::uint64_t, Inbound> inbound;  // by the id the client sees
    std::uint64_t next_inbound = 0;
    std::unordered_map<std::uint64_t, std::uint64_t> requests;  // its request id -> the gateway's id
    std::uint64_t frames_in = 0, frames_out = 0;
    bool named_slow = false;  // logged once as a slow client
  };

  // A client's request waiting for its answer, by the gateway's id.
  struct PendingRequest {
    std::uint32_t index, generation;
    std::uint64_t request_id;
    Clock::time_point deadline;
  };

  // Takes what the runtime has for clients' refs.
  struct ClientNode final : RemoteNode {
    explicit ClientNode(State& s) : s_(s) {}
    SendResult deliver(AgentRef to, Message& m) noexcept override { return s_.deliver_to_client(to, m); }
    bool alive(AgentRef ref) const noexcept override { return s_.client_alive(ref); }
    State& s_;
  };
  // Takes what is published to clients' subscriptions.
  struct Subscriptions final : router::Endpoint {
    explicit Subscriptions(State& s) : s_(s) {}
    router::DeliverStatus deliver(const router::Delivery& d) noexcept override { return s_.deliver_published(d); }
    std::size_t depth(std::uint64_t address) const noexcept override {
      const auto index = static_cast<std::uint32_t>(address & 0xfffff);
      return index < s_.slots.size() ? static_cast<std::size_t>(std::max<std::int64_t>(0, s_.slots[index].queued.load(std::memory_order_relaxed))) : 0;
    }
    State& s_;
  };

  State(Runtime& runtime, GatewayConfig c) : rt(runtime), config(std::move(c)), slots(config.max_clients) {}

  Runtime& rt;
  const GatewayConfig config;
  std::string endpoint;
  std::uint32_t node = 0;
  std::vector<Slot> slots;
  ClientNode client_node{*this};
  Subscriptions subscriptions{*this};

  zmq::context_t ctx;
  zmq::socket_t router{ctx, zmq::socket_type::router};
  zmq::socket_t zap;
  std::unordered_set<std::string> allowed_keys;  // 32-byte CURVE public keys
  int wake_fd = -1;

  // From any thread to the I/O thread.
  Mutex inbox_mu;
  std::vector<Outbound> inbox SWARM_GUARDED_BY(inbox_mu);
  bool wake_pending SWARM_GUARDED_BY(inbox_mu) = false;

  // Sessions: changed by the I/O thread under mu (clients() reads them).
  mutable Mutex mu;
  std::vector<std::unique_ptr<Session>> sessions SWARM_GUARDED_BY(mu);  // by slot index
  std::unordered_map<std::string, std::uint32_t> by_routing_id SWARM_GUARDED_BY(mu);
  std::unordered_map<std::string, std::uint32_t, std::hash<std::string>> by_name SWARM_GUARDED_BY(mu);
  std::vector<std::uint32_t> free_slots SWARM_GUARDED_BY(mu);
  std::vector<std::uint32_t> generations SWARM_GUARDED_BY(mu);  // last generation per slot

  // I/O thread only.
  std::unordered_map<std::uint64_t, PendingRequest> requests;
  std::set<std::pair<Clock::time_point, std::uint64_t>> deadlines;  // of `requests`, soonest first
  std::uint64_t next_request = 0;
  std::set<std::uint32_t> blocked;  // sessions with messages waiting
  Clock::time_point next_tick{};

  std::atomic<bool> stopping{false};
  std::thread io;
  std::uint64_t metrics_callback = 0;

  // Counters (GatewayStats).
  std::atomic<std::uint64_t> clients{0}, opened{0}, frames_in{0}, frames_out{0}, bytes_in{0}, bytes_out{0},
      errors_sent{0}, handshake_failures{0}, curve_refused{0};
  std::array<std::atomic<std::uint64_t>, kSessionEndCount> ended{};
  std::array<std::atomic<std::uint64_t>, kGatewayDropCount> dropped{};

  void count_drop(GatewayDrop reason, std::uint32_t index = ~0u) noexcept {
    dropped[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
    if (index < slots.size()) slots[index].dropped.fetch_add(1, std::memory_order_relaxed);
  }

  // -- any thread ---

  bool live(std::uint32_t index, std::uint32_t generation) const noexcept {
    return index < slots.size() && generation != 0 && slots[index].generation.load(std::memory_order_acquire) == generation;
  }
  bool client_alive(AgentRef ref) const noexcept { return ref.node == node && live(ref.index & kSlotMask, ref.generation); }

  void post(Outbound&& o) {
    bool wake = false;
    {
      MutexLock lock(inbox_mu);
      inbox.push_back(std::move(o));
      if (!wake_pending) wake = wake_pending = true;
    }
    if (wake) {
      const std::uint64_t one = 1;
      [[maybe_unused]] ssize_t n = ::write(wake_fd, &one, sizeof one);
    }
  }

  // Reserves room in the client's queue; false (and counted) when full.
  bool reserve(std::uint32_t index) noexcept {
    Slot& slot = slots[index];
    if (slot.queued.fetch_add(1, std::memory_order_relaxed) >= static_cast<std::int64_t>(config.max_outbound)) {
      slot.queued.fetch_sub(1, std::memory_order_relaxed);
      count_drop(GatewayDrop::queue_full, index);
      return false;
    }
    return true;
  }

  router::DeliverStatus deliver_published(const router::Delivery& d) noexcept {
    const auto index = static_cast<std::uint32_t>(d.address & 0xfffff);
    const auto gen12 = static_cast<std::uint32_t>((d.address >> 20) & 0xfff);
    if (index >= slots.size()) return router::DeliverStatus::dead;
    const std::uint32_t generation = slots[index].generation.load(std::memory_order_acquire);
    if (generation == 0 || (generation & 0xfff) != gen12) return router::DeliverStatus::dead;
    if (d.payload.content_type() == ContentType::value) {
      count_drop(GatewayDrop::not_encodable, index);
      return router::DeliverStatus::dead;
    }
    if (!reserve(index)) return router::DeliverStatus::mailbox_full;
    try {
      Outbound o;
      o.kind = Command::msg;
      o.index = index;
      o.generation = generation;
      o.sid = static_cast<std::uint32_t>(d.address >> 32);
      o.topic = d.topic;
      o.sender = AgentRef::from_bits(d.sender, d.sender_node);
      o.correlation_id = d.correlation_id;
      if (d.correlation_id != 0) o.reply_to = o.sender;
      o.payload = d.payload;
      post(std::move(o));
    } catch (...) {  // out of memory: refused, not lost silently
      slots[index].queued.fetch_sub(1, std::memory_order_relaxed);
      return router::DeliverStatus::mailbox_full;
    }
    return router::DeliverStatus::ok;
  }

  SendResult deliver_to_client(AgentRef to, Message& m) noexcept {
    if (!client_alive(to)) return SendResult::dead_agent;
    const std::uint32_t index = to.index & kSlotMask;
    const bool reply = m.system == SystemKind::reply;
    if (!reply && m.system != SystemKind::user) return SendResult::dead_agent;  // clients take no runtime messages
    if (m.payload.content_type() == ContentType::value && (!reply || m.status == 0)) {
      count_drop(GatewayDrop::not_encodable, index);
      return SendResult::dead_agent;
    }
    if (!reply && !reserve(index)) return SendResult::mailbox_full;
    try {
      Outbound o;
      o.kind = reply ? Command::answer : Command::deliver;
      o.index = index;
      o.generation = to.generation;
      o.name_slot = to.index >> kSlotBits;
      o.sender = m.sender;
      o.reply_to = m.reply_to;
      o.correlation_id = m.correlation_id;
      o.status = m.status;
      o.partial = m.partial;
      o.payload = std::move(m.payload);
      post(std::move(o));
    } catch (...) {
      if (!reply) slots[index].queued.fetch_sub(1, std::memory_order_relaxed);
      return SendResult::mailbox_full;
    }
    return SendResult::ok;
  }

  // -- I/O thread ---

  std::string sender_text(AgentRef sender) SWARM_REQUIRES(mu) {
    if (!sender.valid()) return {};
    if (sender.node == node) {
      const std::uint32_t index = sender.index & kSlotMask;
      if (index < sessions.size() && sessions[index] && sessions[index]->generation == sender.generation) {
        return "client/" + sessions[index]->name;
      }
      return "client/?";
    }
    return to_string(sender);
  }

  bool send_frames(const std::string& routing_id, const Frames& frames) {
    zmq::message_t id(routing_id.data(), routing_id.size());
    auto sent = router.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    if (!sent) return false;  // EAGAIN: the client's pipe is full
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < frames.size(); ++i) {
      bytes += frames[i].size();
      zmq::message_t part(frames[i].data(), frames[i].size());
      (void)router.send(part, i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
    frames_out.fetch_add(1, std::memory_order_relaxed);
    bytes_out.fetch_add(bytes, std::memory_order_relaxed);
    return true;
  }

  // Sends a control message (WELCOME, ERROR, PONG, BYE) to a routing id,
  // session or not. EHOSTUNREACH (the peer is gone) and a full pipe drop it.
  void send_control(const std::string& routing_id, const Body& body) {
    try {
      if (send_frames(routing_id, encode(body))) {
        if (std::holds_alternative<Error>(body)) errors_sent.fetch_add(1, std::memory_order_relaxed);
      }
    } catch (const zmq::error_t&) {
    }
  }
  void send_error(const std::string& routing_id, ErrorCode code, std::string_view message, std::uint64_t context = 0) {
    send_control(routing_id, Error{code, message, context});
  }

  void bind_and_configure() {
    router.set(zmq::sockopt::router_mandatory, 1);
    router.set(zmq::sockopt::router_handover, 1);
    router.set(zmq::sockopt::linger, 0);
    router.set(zmq::sockopt::maxmsgsize,
               static_cast<std::int64_t>(std::min<std::size_t>(config.limits.max_payload_bytes * 16, std::size_t{1} << 31)));
    if (!config.curve_secret_key_file.empty()) {
      const std::string secret = decode_key(trim(read_file(config.curve_secret_key_file, "curve_secret_key_file")),
                                            "gateway: curve_secret_key_file");
      std::istringstream keys(read_file(config.curve_allowed_keys_file, "curve_allowed_keys_file"));
      std::string line;
      for (int n = 1; std::getline(keys, line); ++n) {
        // Whole-line comments only: '#' is one of Z85's characters.
        const std::string_view t = trim(line);
        if (t.empty() || t.front() == '#') continue;
        allowed_keys.insert(decode_key(t, "gateway: curve_allowed_keys_file line " + std::to_string(n)));
      }
      zap = zmq::socket_t(ctx, zmq::socket_type::rep);
      zap.set(zmq::sockopt::linger, 0);
      zap.bind(kZapEndpoint);
      router.set(zmq::sockopt::curve_server, 1);
      router.set(zmq::sockopt::curve_secretkey, zmq::buffer(secret));
      router.set(zmq::sockopt::zap_domain, "swarm");
    }
    try {
      router.bind(config.bind);
    } catch (const zmq::error_t& e) {
      throw std::runtime_error("gateway: cannot bind " + config.bind + ": " + e.what());
    }
    endpoint = router.get(zmq::sockopt::last_endpoint);
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) throw std::runtime_error("gateway: eventfd failed");
  }

  void run() {
    std::vector<zmq::message_t> parts;
    std::vector<std::string_view> views;
    while (!stopping.load(std::memory_order_acquire)) {
      zmq::pollitem_t items[3] = {{router.handle(), 0, ZMQ_POLLIN, 0},
                                  {nullptr, wake_fd, ZMQ_POLLIN, 0},
                                  {zap ? zap.handle() : nullptr, zap ? 0 : -1, ZMQ_POLLIN, 0}};
      const int count = zap ? 3 : 2;
      zmq::poll(items, static_cast<std::size_t>(count), poll_timeout());
      MutexLock lock(mu);
      if ((items[2].revents & ZMQ_POLLIN) != 0) answer_zap();
      if ((items[1].revents & ZMQ_POLLIN) != 0) {
        std::uint64_t n;
        [[maybe_unused]] ssize_t r = ::read(wake_fd, &n, sizeof n);
      }
      take_inbox();
      for (std::size_t i = 0; i < kReceiveBatch && receive(parts, views); ++i) {
      }
      flush_blocked();
      if (Clock::now() >= next_tick) tick();
    }
    MutexLock lock(mu);
    for (auto& s : sessions) {
      if (!s) continue;
      send_error(s->routing_id, ErrorCode::shutting_down, "the gateway is stopping");
      send_control(s->routing_id, Bye{"shutting down"});
      end_session(*s, SessionEnd::gateway_stopped);
    }
    take_inbox();  // count what arrived for sessions that are gone now
  }

  std::chrono::milliseconds poll_timeout() const {
    if (!blocked.empty()) return std::chrono::milliseconds(1);
    // Rounded up: rounded down, the last fraction of a millisecond before a tick was a busy loop.
    auto until = std::chrono::ceil<std::chrono::milliseconds>(next_tick - Clock::now());
    return std::clamp(until, std::chrono::milliseconds(0), std::chrono::milliseconds(100));
  }

  bool receive(std::vector<zmq::message_t>& parts, std::vector<std::string_view>& views) SWARM_REQUIRES(mu) {
    parts.clear();
    for (;;) {
      zmq::message_t part;
      auto got = router.recv(part, parts.empty() ? zmq::recv_flags::dontwait : zmq::recv_flags::none);
      if (!got) return false;
      const bool more = part.more();
      parts.push_back(std::move(part));
      if (!more) break;
    }
    if (parts.size() < 2) return true;  // a routing id alone: nothing to answer
    views.clear();
    std::size_t bytes = 0;
    for (std::size_t i = 1; i < parts.size(); ++i) {
      views.emplace_back(static_cast<const char*>(parts[i].data()), parts[i].size());
      bytes += parts[i].size();
    }
    frames_in.fetch_add(1, std::memory_order_relaxed);
    bytes_in.fetch_add(bytes, std::memory_order_relaxed);
    std::string routing_id(static_cast<const char*>(parts[0].data()), parts[0].size());
    handle(routing_id, views);
    return true;
  }

  Session* session_of(const std::string& routing_id) SWARM_REQUIRES(mu) {
    auto it = by_routing_id.find(routing_id);
    return it == by_routing_id.end() ? nullptr : sessions[it->second].get();
  }

  void handle(const std::string& routing_id, std::span<const std::string_view> frames) SWARM_REQUIRES(mu) {
    Session* s = session_of(routing_id);
    auto decoded = decode(frames, config.limits);
    if (!decoded) {
      const DecodeError& e = decoded.error();
      send_error(routing_id, e.code, e.message, e.context);
      if (e.code == ErrorCode::version_mismatch) {
        handshake_failures.fetch_add(1, std::memory_order_relaxed);
        send_control(routing_id, Bye{"version mismatch"});
        if (s != nullptr) end_session(*s, SessionEnd::version_mismatch);
      } else if (s != nullptr) {
        s->last_in = Clock::now();  // a bad frame is still a sign of life
      }
      return;
    }
    Body& body = decoded->body;
    if (auto* hello = std::get_if<Hello>(&body)) {
      // A HELLO from a routing id with a live session is that client
      // reconnecting (ROUTER_HANDOVER gave it the old connection's place):
      // the old session ends as if it had said BYE.
      if (s != nullptr) end_session(*s, SessionEnd::reconnected);
      open_session(routing_id, *hello);
      return;
    }
    if (s == nullptr) {
      if (!std::holds_alternative<Bye>(body) && !std::holds_alternative<Pong>(body)) {
        send_error(routing_id, ErrorCode::no_session, "say HELLO first: " + std::string(to_string(decoded->command)) +
                                                          " before a session was opened");
      }
      return;
    }
    s->last_in = Clock::now();
    ++s->frames_in;
    std::visit([&](auto& b) SWARM_REQUIRES(mu) { on_command(*s, b); }, body);
  }

  // -- sessions ---

  void open_session(const std::string& routing_id, const Hello& hello) SWARM_REQUIRES(mu) {
    auto refuse = [&](ErrorCode code, const std::string& why) {
      handshake_failures.fetch_add(1, std::memory_order_relaxed);
      send_error(routing_id, code, "HELLO: " + why);
      if (fatal(code) || code == ErrorCode::name_taken) send_control(routing_id, Bye{why});
    };
    nlohmann::json j = nlohmann::json::parse(hello.json, nullptr, false);
    if (!j.is_object()) return refuse(ErrorCode::bad_field, "hello is not a JSON object");
    if (!j.contains("name") || !j["name"].is_string()) return refuse(ErrorCode::bad_field, "\"name\" (a string) is missing");
    const std::string name = j["name"].get<std::string>();
    if (!j.contains("protocol") || !j["protocol"].is_number_integer()) {
      return refuse(ErrorCode::bad_field, "\"protocol\" (an integer) is missing");
    }
    if (j["protocol"].get<std::int64_t>() != kProtocolVersion) {
      return refuse(ErrorCode::version_mismatch, "gateway speaks SWP/1, client asked for protocol " +
                                                     j["protocol"].dump());
    }
    if (!config.auth_token.empty()) {
      const std::string token = j.contains("token") && j["token"].is_string() ? j["token"].get<std::string>() : "";
      if (!equal_constant_time(token, config.auth_token)) {
        return refuse(ErrorCode::auth_failed, token.empty() ? "this gateway requires a token" : "wrong token");
      }
    }
    if (name.empty() || name.size() > config.limits.max_name_bytes ||
        std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; })) {
      return refuse(ErrorCode::bad_field, "\"name\" \"" + name + "\" must be 1.." +
                                              std::to_string(config.limits.max_name_bytes) +
                                              " bytes without spaces or control characters");
    }
    if (auto it = by_name.find(name); it != by_name.end()) {
      return refuse(ErrorCode::name_taken, "name \"" + name + "\" is held by another live session");
    }
    std::int64_t heartbeat_ms = config.heartbeat.count();
    if (j.contains("heartbeat_ms")) {
      if (!j["heartbeat_ms"].is_number_integer() || j["heartbeat_ms"].get<std::int64_t>() <= 0) {
        return refuse(ErrorCode::bad_field, "\"heartbeat_ms\" must be a positive integer");
      }
      heartbeat_ms = std::max(heartbeat_ms, std::min<std::int64_t>(j["heartbeat_ms"].get<std::int64_t>(), 3'600'000));
    }
    bool credit_on = false;
    std::uint64_t credit = 0;
    if (j.contains("credit") && !j["credit"].is_null()) {
      if (!j["credit"].is_number_unsigned()) return refuse(ErrorCode::bad_field, "\"credit\" must be a non-negative integer");
      credit_on = true;
      credit = j["credit"].get<std::uint64_t>();
    }
    if (free_slots.empty()) {
      return refuse(ErrorCode::bad_state, "the gateway has its maximum of " + std::to_string(config.max_clients) +
                                              " sessions (max_clients)");
    }
    const std::uint32_t index = free_slots.back();
    free_slots.pop_back();
    std::uint32_t generation = ++generations[index];
    if (generation == 0) generation = ++generations[index];
    auto s = std::make_unique<Session>();
    s->index = index;
    s->generation = generation;
    s->ref = AgentRef{index, generation, node};
    s->routing_id = routing_id;
    s->name = name;
    s->heartbeat = std::chrono::milliseconds(heartbeat_ms);
    s->last_in = s->last_out = Clock::now();
    s->credit_on = credit_on;
    s->credit = credit;
    s->frames_in = 1;
    slots[index].queued.store(0, std::memory_order_relaxed);
    slots[index].dropped.store(0, std::memory_order_relaxed);
    slots[index].generation.store(generation, std::memory_order_release);
    by_routing_id[routing_id] = index;
    by_name[name] = index;
    Session& session = *s;
    sessions[index] = std::move(s);
    clients.fetch_add(1, std::memory_order_relaxed);
    opened.fetch_add(1, std::memory_order_relaxed);
    nlohmann::json welcome = {{"protocol", kProtocolVersion},
                              {"server", "swarm/0.1.0"},
                              {"node", node},
                              {"session", name + "#" + std::to_string(generation)},
                              {"heartbeat_ms", heartbeat_ms},
                              {"max_payload", config.limits.max_payload_bytes},
                              {"max_outbound", config.max_outbound},
                              {"max_request_timeout_ms", config.max_request_timeout.count()},
                              {"credit", credit_on}};
    const std::string text = welcome.dump();
    send_now(session, encode(Welcome{text}));
    if (config.on_session) config.on_session(name, true);
  }

  // Ends a session for whatever reason: its subscriptions and names are
  // released, requests it received are answered dead_agent, what was queued
  // for it is dropped and counted.
  void end_session(Session& s, SessionEnd reason) SWARM_REQUIRES(mu) {
    slots[s.index].generation.store(0, std::memory_order_release);  // workers stop queuing first
    for (auto& [sid, id] : s.subs) rt.router().unsubscribe(id);
    for (std::size_t k = 0; k < s.names.size(); ++k) {
      if (!s.names[k].empty()) rt.unregister_name(s.names[k], name_ref(s, k));
    }
    for (auto& [id, in] : s.inbound) {
      (void)rt.forward_reply(in.reply_to, in.correlation_id, AskStatus::dead_agent, false, {});
    }
    for (auto& [client_id, id] : s.requests) {
      if (auto it = requests.find(id); it != requests.end()) forget_request(it);
    }
    for (std::size_t i = 0; i < s.pending.size(); ++i) count_drop(GatewayDrop::session_ended);
    slots[s.index].queued.store(0, std::memory_order_relaxed);
    blocked.erase(s.index);
    by_routing_id.erase(s.routing_id);
    by_name.erase(s.name);
    if (config.on_session) config.on_session(s.name, false);
    const std::uint32_t index = s.index;
    sessions[index].reset();
    free_slots.push_back(index);
    clients.fetch_sub(1, std::memory_order_relaxed);
    ended[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
  }

  // A client's request is over (answered, timed out, or its session ended).
  void forget_request(std::unordered_map<std::uint64_t, PendingRequest>::iterator it) {
    deadlines.erase({it->second.deadline, it->first});
    requests.erase(it);
  }

  // -- commands from a client ---

  void on_command(Session& s, Sub& c) SWARM_REQUIRES(mu) {
    if (s.subs.count(c.sid) != 0) {
      return send_error(s.routing_id, ErrorCode::bad_field, "SUB: sid " + std::to_string(c.sid) + " is in use", c.sid);
    }
    auto id = rt.router().subscribe(c.pattern, {&subscriptions, sub_address(s.index, s.generation, c.sid)}, c.queue_group);
    if (!id) return send_error(s.routing_id, ErrorCode::bad_field, "SUB: " + id.error(), c.sid);
    s.subs[c.sid] = *id;
  }
  void on_command(Session& s, Unsub& c) SWARM_REQUIRES(mu) {
    auto it = s.subs.find(c.sid);
    if (it == s.subs.end()) {
      return send_error(s.routing_id, ErrorCode::unknown_sid, "UNSUB: sid " + std::to_string(c.sid) + " is not subscribed", c.sid);
    }
    rt.router().unsubscribe(it->second);
    s.subs.erase(it);
  }

  std::optional<Payload> payload_of(Session& s, std::string_view command, std::string_view content_type,
                                    std::string_view bytes, std::uint64_t context) SWARM_REQUIRES(mu) {
    ContentType type = ContentType::octet_stream;
    if (!content_type.empty()) {
      auto parsed = parse_content_type(content_type);
      if (!parsed) {
        send_error(s.routing_id, ErrorCode::bad_field,
                   std::string(command) + ": content type \"" + std::string(content_type) +
                       "\" is not one of application/json, application/msgpack, application/cbor, text/plain, "
                       "application/octet-stream",
                   context);
        return std::nullopt;
      }
      type = *parsed;
    }
    return Payload(std::as_bytes(std::span(bytes.data(), bytes.size())), type);
  }

  void on_command(Session& s, Pub& c) SWARM_REQUIRES(mu) {
    auto topic = rt.router().intern(c.topic);
    if (!topic) return send_error(s.routing_id, ErrorCode::bad_field, "PUB: " + topic.error());
    auto payload = payload_of(s, "PUB", c.content_type, c.payload, 0);
    if (!payload) return;
    ForwardOptions o{s.ref, 0, {0, std::chrono::milliseconds(c.ttl_ms)}};
    (void)rt.forward_publish(*topic, *payload, o);  // undelivered copies are counted by the runtime
  }

  void on_command(Session& s, Send& c) SWARM_REQUIRES(mu) {
    const AgentRef to = rt.whereis(c.name);
    if (!to.valid()) {
      return send_error(s.routing_id, ErrorCode::no_such_name, "SEND: nobody holds the name \"" + std::string(c.name) + "\"");
    }
    auto payload = payload_of(s, "SEND", c.content_type, c.payload, 0);
    if (!payload) return;
    const SendResult r = rt.forward(to, std::move(*payload), {s.ref, 0, {0, std::chrono::milliseconds(c.ttl_ms)}});
    if (r == SendResult::ok || r == SendResult::dropped) return;
    const ErrorCode code = r == SendResult::mailbox_full ? ErrorCode::mailbox_full
                           : r == SendResult::shutting_down ? ErrorCode::shutting_down
                                                            : ErrorCode::dead_agent;
    send_error(s.routing_id, code, "SEND to \"" + std::string(c.name) + "\": " + std::string(to_string(r)));
  }

  void answer_now(Session& s, std::uint64_t request_id, AskStatus status) SWARM_REQUIRES(mu) {
    Outbound o;
    o.kind = Command::answer;
    o.status = static_cast<std::uint8_t>(status);
    o.correlation_id = request_id;
    s.answers.push_back(std::move(o));
    flush(s);
  }

  void on_command(Session& s, Request& c) SWARM_REQUIRES(mu) {
    if (s.requests.count(c.request_id) != 0) {
      return send_error(s.routing_id, ErrorCode::bad_field,
                        "REQUEST: request id " + std::to_string(c.request_id) + " is pending already", c.request_id);
    }
    auto payload = payload_of(s, "REQUEST", c.content_type, c.payload, c.request_id);
    if (!payload) return;
    auto timeout = c.timeout_ms == 0 ? config.max_request_timeout
                                     : std::min(config.max_request_timeout, std::chrono::milliseconds(c.timeout_ms));
    const std::uint64_t id = ++next_request;
    const Clock::time_point deadline = Clock::now() + timeout;
    // Registered before it goes out: an answer may arrive from a worker at once.
    requests[id] = PendingRequest{s.index, s.generation, c.request_id, deadline};
    s.requests[c.request_id] = id;
    const ForwardOptions o{s.ref, id, {}};
    AskStatus failed = AskStatus::ok;
    if (c.target_kind == TargetKind::topic) {
      auto topic = rt.router().intern(c.target);
      if (!topic) {
        requests.erase(id);
        s.requests.erase(c.request_id);
        return send_error(s.routing_id, ErrorCode::bad_field, "REQUEST: " + topic.error(), c.request_id);
      }
      const router::PublishResult r = rt.forward_publish(*topic, *payload, o);
      if (r.delivered == 0) {
        failed = ask_status(r);
      }
    } else {
      const AgentRef to = rt.whereis(c.target);
      const SendResult r = to.valid() ? rt.forward(to, std::move(*payload), o) : SendResult::dead_agent;
      if (r != SendResult::ok) failed = ask_status(r);
    }
    if (failed != AskStatus::ok) {
      requests.erase(id);
      s.requests.erase(c.request_id);
      return answer_now(s, c.request_id, failed);
    }
    deadlines.emplace(deadline, id);
  }

  void on_command(Session& s, ClientReply& c) SWARM_REQUIRES(mu) {
    auto it = s.inbound.find(c.id);
    if (it == s.inbound.end()) {
      return send_error(s.routing_id, ErrorCode::unknown_request,
                        "REPLY: nobody waits for correlation id " + std::to_string(c.id) + " (any more)", c.id);
    }
    if (c.status > static_cast<std::uint8_t>(AskStatus::unreachable)) {
      return send_error(s.routing_id, ErrorCode::bad_field, "REPLY: status " + std::to_string(c.status) + " is not 0..7", c.id);
    }
    std::optional<Payload> payload;
    if (c.status == 0) {
      payload = payload_of(s, "REPLY", c.content_type, c.payload, c.id);
      if (!payload) return;
    }
    const auto status = static_cast<AskStatus>(c.status);
    (void)rt.forward_reply(it->second.reply_to, it->second.correlation_id, status, !c.final,
                           payload ? std::move(*payload) : Payload{});
    if (c.final || status != AskStatus::ok) s.inbound.erase(it);
  }

  // The address under which the session's name k is registered.
  AgentRef name_ref(const Session& s, std::size_t k) const {
    return AgentRef{s.index | static_cast<std::uint32_t>((k + 1) << kSlotBits), s.generation, node};
  }

  void on_command(Session& s, RegisterName& c) SWARM_REQUIRES(mu) {
    if (std::find(s.names.begin(), s.names.end(), c.name) != s.names.end()) return;  // holds it already
    const AgentRef holder = rt.whereis(c.name);
    if (holder.valid()) {
      return send_error(s.routing_id, ErrorCode::name_taken,
                        "REGISTER: \"" + std::string(c.name) + "\" is held by " +
                            (holder.node == node ? sender_text(holder) : to_string(holder)));
    }
    auto free = std::find(s.names.begin(), s.names.end(), std::string());
    if (free == s.names.end() && s.names.size() == kMaxNamesPerClient) {
      return send_error(s.routing_id, ErrorCode::bad_field,
                        "REGISTER: a client holds at most " + std::to_string(kMaxNamesPerClient) + " names");
    }
    const std::size_t k = free != s.names.end() ? static_cast<std::size_t>(free - s.names.begin()) : s.names.size();
    if (auto r = rt.register_name(name_ref(s, k), c.name); !r) {
      return send_error(s.routing_id, ErrorCode::bad_field, "REGISTER: " + r.error());
    }
    if (k == s.names.size()) s.names.emplace_back();
    s.names[k] = c.name;
  }
  void on_command(Session& s, UnregisterName& c) SWARM_REQUIRES(mu) {
    auto it = std::find(s.names.begin(), s.names.end(), c.name);
    if (it == s.names.end()) return;
    rt.unregister_name(c.name, name_ref(s, static_cast<std::size_t>(it - s.names.begin())));
    it->clear();
  }
  void on_command(Session& s, Credit& c) SWARM_REQUIRES(mu) {
    s.credit += c.messages;
    flush(s);
  }
  void on_command(Session& s, Ping&) SWARM_REQUIRES(mu) { send_now(s, encode(Pong{})); }
  void on_command(Session&, Pong&) {}
  void on_command(Session& s, Bye&) SWARM_REQUIRES(mu) { end_session(s, SessionEnd::bye); }
  void on_command(Session&, Error&) {}  // a client's error report: counted with the frames, nothing to do
  void on_command(Session&, Hello&) {}  // handled before dispatch
  template <class T>
  void on_command(Session& s, T&) SWARM_REQUIRES(mu) {  // WELCOME, MSG, DELIVER, answers: gateway -> client only
    send_error(s.routing_id, ErrorCode::bad_frame,
               std::string(to_string(command_of(Body{T{}}))) + " is sent by the gateway, not by clients");
  }

  // -- to clients ---

  // Sends now, ignoring the queue (WELCOME, PONG, PING). A full pipe drops it:
  // these matter only while the client reads.
  void send_now(Session& s, const Frames& frames) SWARM_REQUIRES(mu) {
    try {
      if (send_frames(s.routing_id, frames)) {
        s.last_out = Clock::now();
        ++s.frames_out;
      }
    } catch (const zmq::error_t&) {
    }
  }

  void take_inbox() SWARM_REQUIRES(mu) {
    std::vector<Outbound> batch;
    {
      MutexLock lock(inbox_mu);
      batch.swap(inbox);
      wake_pending = false;
    }
    std::vector<std::uint32_t> touched;
    for (Outbound& o : batch) {
      if (o.kind == Command::answer) {
        route_answer(o, touched);
        continue;
      }
      Session* s = o.index < sessions.size() ? sessions[o.index].get() : nullptr;
      if (s == nullptr || s->generation != o.generation) {
        count_drop(GatewayDrop::session_ended);
        continue;
      }
      s->pending.push_back(std::move(o));
      touched.push_back(s->index);
    }
    for (std::uint32_t index : touched) {
      if (sessions[index]) flush(*sessions[index]);
    }
  }

  // A reply for a client's request (by the gateway's id), or one from the
  // runtime's side that came too late.
  void route_answer(Outbound& o, std::vector<std::uint32_t>& touched) SWARM_REQUIRES(mu) {
    auto it = requests.find(o.correlation_id);
    if (it == requests.end()) {
      count_drop(GatewayDrop::late_reply);
      return;
    }
    const PendingRequest p = it->second;
    Session* s = sessions[p.index].get();
    if (s == nullptr || s->generation != p.generation) {
      forget_request(it);
      count_drop(GatewayDrop::session_ended);
      return;
    }
    const bool last = !o.partial || o.status != 0;
    if (last) {
      forget_request(it);
      s->requests.erase(p.request_id);
    }
    o.correlation_id = p.request_id;
    s->answers.push_back(std::move(o));
    touched.push_back(s->index);
  }

  Frames frames_of(Session& s, Outbound& o) SWARM_REQUIRES(mu) {
    const ContentType type = o.payload.content_type();
    const std::string_view content_type = type == ContentType::octet_stream && o.payload.size() == 0 ? "" : to_string(type);
    const std::string_view bytes = o.payload.text();
    if (o.kind == Command::answer) {
      Answer a;
      a.id = o.correlation_id;
      a.status = o.status;
      a.final = !o.partial || o.status != 0;
      if (o.status == 0) {
        a.content_type = content_type;
        a.payload = bytes;
      }
      return encode(a);
    }
    std::uint64_t correlation = 0;
    if (o.correlation_id != 0) {  // a request: the client answers with this id
      correlation = ++s.next_inbound;
      s.inbound[correlation] = Session::Inbound{o.reply_to, o.correlation_id, Clock::now()};
    }
    const std::string sender = sender_text(o.sender);
    if (o.kind == Command::msg) {
      return encode(Msg{o.sid, rt.router().topic_name(o.topic), sender, correlation, content_type, bytes});
    }
    std::string_view name;
    if (o.name_slot != 0 && o.name_slot <= s.names.size()) name = s.names[o.name_slot - 1];
    return encode(Deliver{name, sender, correlation, content_type, bytes});
  }

  // Hands the session's answers, then its messages (within its credit), to
  // ZeroMQ until its pipe is full.
  void flush(Session& s) SWARM_REQUIRES(mu) {
    try {
      while (!s.answers.empty()) {
        if (!send_frames(s.routing_id, frames_of(s, s.answers.front()))) return mark_blocked(s);
        s.answers.pop_front();
        ++s.frames_out;
        s.last_out = Clock::now();
      }
      while (!s.pending.empty() && (!s.credit_on || s.credit > 0)) {
        if (!send_frames(s.routing_id, frames_of(s, s.pending.front()))) return mark_blocked(s);
        s.pending.pop_front();
        slots[s.index].queued.fetch_sub(1, std::memory_order_relaxed);
        if (s.credit_on) --s.credit;
        ++s.frames_out;
        s.last_out = Clock::now();
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == EHOSTUNREACH) {  // the client is gone (ROUTER_MANDATORY tells)
        for (std::size_t i = 0; i < s.pending.size(); ++i) count_drop(GatewayDrop::unroutable);
        s.pending.clear();
        end_session(s, SessionEnd::unroutable);
        return;
      }
      throw;
    }
    if (s.pending.empty()) {
      blocked.erase(s.index);
      s.full_since = {};
    } else if (s.credit_on && s.credit == 0) {
      blocked.erase(s.index);  // waits for CREDIT, not for ZeroMQ
    }
  }
  void mark_blocked(Session& s) { blocked.insert(s.index); }

  void flush_blocked() SWARM_REQUIRES(mu) {
    if (blocked.empty()) return;
    std::vector<std::uint32_t> now(blocked.begin(), blocked.end());
    for (std::uint32_t index : now) {
      if (sessions[index]) flush(*sessions[index]);
    }
  }

  // Heartbeats, request timeouts, slow clients; about ten times a second.
  void tick() SWARM_REQUIRES(mu) {
    const Clock::time_point now = Clock::now();
    next_tick = now + std::min<Clock::duration>(config.heartbeat / 4, std::chrono::milliseconds(100));
    while (!deadlines.empty() && deadlines.begin()->first <= now) {
      auto it = requests.find(deadlines.begin()->second);
      const PendingRequest p = it->second;
      forget_request(it);
      Session* s = sessions[p.index].get();
      if (s == nullptr || s->generation != p.generation) continue;
      s->requests.erase(p.request_id);
      answer_now(*s, p.request_id, AskStatus::timeout);
    }
    std::vector<std::pair<Session*, SessionEnd>> expired;
    for (const auto& [routing_id, index] : by_routing_id) {  // the live sessions, not every slot of max_clients
      Session& s = *sessions[index];
      if (now - s.last_in > 3 * s.heartbeat) {
        expired.emplace_back(&s, SessionEnd::heartbeat);
        continue;
      }
      if (slots[s.index].queued.load(std::memory_order_relaxed) >= static_cast<std::int64_t>(config.max_outbound)) {
        if (s.full_since == Clock::time_point{}) s.full_since = now;
        if (now - s.full_since > config.slow_client_grace) {
          send_error(s.routing_id, ErrorCode::slow_consumer,
                     "client \"" + s.name + "\": its outbound queue stayed full (" + std::to_string(config.max_outbound) +
                         " messages) for over " + std::to_string(config.slow_client_grace.count()) + " ms");
          send_control(s.routing_id, Bye{"slow consumer"});
          expired.emplace_back(&s, SessionEnd::slow_consumer);
          continue;
        }
      } else {
        s.full_since = {};
      }
      if (!s.named_slow && slots[s.index].dropped.load(std::memory_order_relaxed) > 0) {
        s.named_slow = true;
        std::fprintf(stderr,
                     "swarm gateway: client \"%s\" does not keep up: messages for it are dropped once its outbound queue "
                     "holds max_outbound (%zu). Logged once per session; swarm_gateway_dropped_total{reason=\"queue_full\"} "
                     "counts every one, /debug/gateway names the slowest clients.\n",
                     s.name.c_str(), config.max_outbound);
      }
      // Requests it never answered: their askers time out on their own side.
      if (!s.inbound.empty()) {
        std::erase_if(s.inbound, [&](const auto& kv) { return now - kv.second.since > config.max_request_timeout; });
      }
      if (now - s.last_out >= s.heartbeat) send_now(s, encode(Ping{}));
    }
    for (auto [s, reason] : expired) end_session(*s, reason);
  }

  // -- CURVE: the ZAP handler (RFC 27), on the I/O thread ---

  void answer_zap() {
    std::vector<zmq::message_t> req;
    for (;;) {
      zmq::message_t part;
      if (!zap.recv(part, zmq::recv_flags::dontwait)) break;
      const bool more = part.more();
      req.push_back(std::move(part));
      if (!more) break;
    }
    if (req.size() < 6) return;
    const std::string mechanism = req[5].to_string();
    bool ok = false;
    if (mechanism == "CURVE" && req.size() >= 7) ok = allowed_keys.count(req[6].to_string()) != 0;
    if (!ok) curve_refused.fetch_add(1, std::memory_order_relaxed);
    const std::string status = ok ? "200" : "400";
    const std::string text = ok ? "OK" : "client key not allowed";
    zap.send(zmq::buffer(std::string_view("1.0")), zmq::send_flags::sndmore);
    zap.send(req[1], zmq::send_flags::sndmore);
    zap.send(zmq::buffer(status), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(text), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(std::string_view("")), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(std::string_view("")), zmq::send_flags::none);
  }

  void publish_metrics(metrics::Collector& c) const {
    c.gauge("swarm_gateway_clients", "Clients connected to the gateway now", {}, static_cast<double>(clients.load()));
    c.counter("swarm_gateway_sessions_total", "Gateway sessions opened", {}, static_cast<double>(opened.load()));
    c.counter("swarm_gateway_frames_total", "SWP messages through the gateway", {{"direction", "in"}},
              static_cast<double>(frames_in.load()));
    c.counter("swarm_gateway_frames_total", "SWP messages through the gateway", {{"direction", "out"}},
              static_cast<double>(frames_out.load()));
    c.counter("swarm_gateway_bytes_total", "Bytes of SWP messages through the gateway (routing ids excluded)",
              {{"direction", "in"}}, static_cast<double>(bytes_in.load()));
    c.counter("swarm_gateway_bytes_total", "Bytes of SWP messages through the gateway (routing ids excluded)",
              {{"direction", "out"}}, static_cast<double>(bytes_out.load()));
    for (int i = 0; i < kGatewayDropCount; ++i) {
      c.counter("swarm_gateway_dropped_total", "Messages for clients the gateway dropped, by reason",
                {{"reason", std::string(to_string(static_cast<GatewayDrop>(i)))}}, static_cast<double>(dropped[i].load()));
    }
    std::int64_t queued = 0;
    for (const Slot& s : slots) queued += std::max<std::int64_t>(0, s.queued.load(std::memory_order_relaxed));
    c.gauge("swarm_gateway_outbound_queued", "Messages waiting in the gateway's per-client queues", {},
            static_cast<double>(queued));
    c.counter("swarm_gateway_errors_sent_total", "ERROR frames the gateway sent", {}, static_cast<double>(errors_sent.load()));
    c.counter("swarm_gateway_handshake_failures_total", "HELLOs refused (version, token, name, limits)", {},
              static_cast<double>(handshake_failures.load()));
    for (int i = 0; i < kSessionEndCount; ++i) {
      c.counter("swarm_gateway_sessions_ended_total", "Gateway sessions ended, by reason (heartbeat: the client fell silent)",
                {{"reason", std::string(to_string(static_cast<SessionEnd>(i)))}}, static_cast<double>(ended[i].load()));
    }
    c.counter("swarm_gateway_curve_refused_total", "CURVE handshakes refused: key not on the allow-list", {},
              static_cast<double>(curve_refused.load()));
  }
};

// -- Gateway ---

Gateway::Gateway(Runtime& rt, GatewayConfig config) {
  if (auto ok = config.validate(); !ok) throw std::invalid_argument(ok.error());
  state_ = std::make_unique<State>(rt, std::move(config));
  State& s = *state_;
  {
    MutexLock lock(s.mu);
    s.sessions.resize(s.config.max_clients);
    s.generations.assign(s.config.max_clients, 0);
    for (std::size_t i = s.config.max_clients; i-- > 0;) s.free_slots.push_back(static_cast<std::uint32_t>(i));
  }
  s.bind_and_configure();
  s.node = rt.attach_node(s.client_node);
  s.metrics_callback = rt.metrics().add_callback([&s](metrics::Collector& c) { s.publish_metrics(c); });
  rt.set_debug_page("/debug/gateway", [this] { return debug_page(); });
  s.io = std::thread([&s] { s.run(); });
}

Gateway::~Gateway() {
  stop();
  if (state_ && state_->wake_fd >= 0) ::close(state_->wake_fd);
}

void Gateway::stop() {
  State& s = *state_;
  if (s.stopping.exchange(true)) return;
  s.io.join();
  // No publish may still be delivering to the subscriptions just removed, and
  // no send to the node, when the gateway goes away.
  s.rt.router().synchronize();
  s.rt.detach_node(s.node);
  s.rt.metrics().remove_callback(s.metrics_callback);
  s.rt.remove_debug_page("/debug/gateway");
  s.router.close();
  if (s.zap) s.zap.close();
}

const std::string& Gateway::endpoint() const noexcept { return state_->endpoint; }
std::uint32_t Gateway::node() const noexcept { return state_->node; }

GatewayStats Gateway::stats() const {
  const State& s = *state_;
  GatewayStats st;
  st.clients = s.clients.load();
  st.sessions_opened = s.opened.load();
  st.frames_in = s.frames_in.load();
  st.frames_out = s.frames_out.load();
  st.bytes_in = s.bytes_in.load();
  st.bytes_out = s.bytes_out.load();
  st.errors_sent = s.errors_sent.load();
  st.handshake_failures = s.handshake_failures.load();
  for (int i = 0; i < kSessionEndCount; ++i) st.sessions_ended[i] = s.ended[i].load();
  st.curve_refused = s.curve_refused.load();
  for (const State::Slot& slot : s.slots) {
    st.outbound_queued += static_cast<std::uint64_t>(std::max<std::int64_t>(0, slot.queued.load(std::memory_order_relaxed)));
  }
  for (int i = 0; i < kGatewayDropCount; ++i) st.dropped[i] = s.dropped[i].load();
  return st;
}

std::string Gateway::debug_page() const {
  const GatewayStats st = stats();
  nlohmann::json dropped = nlohmann::json::object(), ended = nlohmann::json::object();
  for (int i = 0; i < kGatewayDropCount; ++i) dropped[std::string(to_string(static_cast<GatewayDrop>(i)))] = st.dropped[i];
  for (int i = 0; i < kSessionEndCount; ++i) ended[std::string(to_string(static_cast<SessionEnd>(i)))] = st.sessions_ended[i];
  nlohmann::json slowest = nlohmann::json::array();
  for (const ClientSummary& c : clients(20)) {
    slowest.push_back({{"name", c.name}, {"address", to_string(c.ref)}, {"queued", c.queued}, {"dropped", c.dropped},
                       {"subscriptions", c.subscriptions}, {"frames_in", c.frames_in}, {"frames_out", c.frames_out}});
  }
  return nlohmann::json{{"endpoint", endpoint()},
                        {"node", node()},
                        {"clients", st.clients},
                        {"sessions_opened", st.sessions_opened},
                        {"sessions_ended", ended},
                        {"outbound_queued", st.outbound_queued},
                        {"max_outbound", state_->config.max_outbound},
                        {"dropped", dropped},
                        {"slowest_clients", slowest}}
      .dump(2);
}

std::vector<ClientSummary> Gateway::clients(std::size_t limit) const {
  const State& s = *state_;
  std::vector<ClientSummary> out;
  {
    MutexLock lock(s.mu);
    for (const auto& sp : s.sessions) {
      if (!sp) continue;
      ClientSummary c;
      c.name = sp->name;
      c.sender = "client/" + sp->name;
      c.ref = sp->ref;
      c.queued = static_cast<std::uint64_t>(std::max<std::int64_t>(0, s.slots[sp->index].queued.load()));
      c.dropped = s.slots[sp->index].dropped.load();
      c.subscriptions = sp->subs.size();
      c.frames_in = sp->frames_in;
      c.frames_out = sp->frames_out;
      out.push_back(std::move(c));
    }
  }
  std::sort(out.begin(), out.end(), [](const ClientSummary& a, const ClientSummary& b) {
    return a.queued != b.queued ? a.queued > b.queued : a.dropped != b.dropped ? a.dropped > b.dropped : a.name < b.name;
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

}  // namespace swarm::transport
