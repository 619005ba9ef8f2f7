#include "transport/client.hpp"

#include <nlohmann/json.hpp>
#include <zmq.hpp>

namespace swarm::transport {

using Clock = std::chrono::steady_clock;

struct Client::Impl {
  ClientOptions options;
  zmq::context_t ctx{1};
  zmq::socket_t socket{ctx, zmq::socket_type::dealer};
  std::string welcome;
  bool closed = false;
  std::deque<Incoming> queued;  // arrived while request() or flush() waited
  std::uint64_t pings = 0, pongs = 0;  // PINGs sent, PONGs received (the gateway answers each, in order)
  std::uint64_t next_request = 0;
  Clock::time_point last_out = Clock::now();

  // Throws ClientError when ZeroMQ cannot take the message within the send
  // timeout (no connection to the gateway, e.g. a refused CURVE key).
  void send(const Frames& frames) {
    for (std::size_t i = 0; i < frames.size(); ++i) {
      if (!socket.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none)) {
        throw ClientError(ErrorCode::no_session, "client \"" + options.name + "\": no connection to " + options.endpoint +
                                                     " took the message within " +
                                                     std::to_string(options.connect_timeout.count()) + " ms");
      }
    }
    last_out = Clock::now();
  }
  void send(const Body& body) { send(encode(body)); }

  // One message from the socket within `timeout`, decoded; PING/PONG handled
  // (a PONG ends the wait early, with nothing, when `until_pong`).
  std::optional<Incoming> receive(std::chrono::milliseconds timeout, bool until_pong = false) {
    const Clock::time_point deadline = Clock::now() + timeout;
    for (;;) {
      const auto heartbeat = options.heartbeat;
      if (!closed && Clock::now() - last_out >= heartbeat) {
        try {
          send(Ping{});
          ++pings;
        } catch (const ClientError&) {  // no connection: the wait below tells
        }
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      const auto wait = std::clamp(left, std::chrono::milliseconds(0), heartbeat);
      zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, wait);
      if ((item.revents & ZMQ_POLLIN) == 0) {
        if (Clock::now() >= deadline) return std::nullopt;
        continue;
      }
      std::vector<zmq::message_t> parts;
      do {
        zmq::message_t part;
        (void)socket.recv(part);
        parts.push_back(std::move(part));
      } while (parts.back().more());
      std::vector<std::string_view> views;
      for (auto& p : parts) views.emplace_back(static_cast<const char*>(p.data()), p.size());
      auto d = decode(views);
      if (!d) {
        Incoming bad;
        bad.command = Command::error;
        bad.error = d.error().code;
        bad.message = "client: undecodable message from the gateway: " + d.error().message;
        return bad;
      }
      Incoming in;
      in.command = d->command;
      bool skip = false;
      std::visit(
          [&](const auto& b) {
            using T = std::decay_t<decltype(b)>;
            if constexpr (std::is_same_v<T, Msg>) {
              in.sid = b.sid;
              in.topic = b.topic;
              in.sender = b.sender;
              in.correlation_id = b.correlation_id;
              in.content_type = b.content_type;
              in.payload = b.payload;
            } else if constexpr (std::is_same_v<T, Deliver>) {
              in.name = b.name;
              in.sender = b.sender;
              in.correlation_id = b.correlation_id;
              in.content_type = b.content_type;
              in.payload = b.payload;
            } else if constexpr (std::is_same_v<T, Answer>) {
              in.correlation_id = b.id;
              in.status = static_cast<AskStatus>(b.status);
              in.final = b.final;
              in.content_type = b.content_type;
              in.payload = b.payload;
            } else if constexpr (std::is_same_v<T, Error>) {
              in.error = b.code;
              in.message = b.message;
              in.context = b.context;
            } else if constexpr (std::is_same_v<T, Bye>) {
              in.message = b.reason;
              closed = true;
            } else if constexpr (std::is_same_v<T, Welcome>) {
              welcome = b.json;
              in.payload = b.json;
            } else if constexpr (std::is_same_v<T, Ping>) {
              send(Pong{});
              skip = true;
            } else {
              ++pongs;
              skip = true;
            }
          },
          d->body);
      if (!skip) return in;
      if (until_pong && d->command == Command::pong) return std::nullopt;
    }
  }
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& c = *impl_;
  c.options = std::move(options);
  c.socket.set(zmq::sockopt::linger, 0);
  c.socket.set(zmq::sockopt::sndtimeo, static_cast<int>(c.options.connect_timeout.count()));
  c.socket.set(zmq::sockopt::routing_id, "c/" + c.options.name);
  if (!c.options.curve_server_key.empty()) {
    c.socket.set(zmq::sockopt::curve_serverkey, c.options.curve_server_key);
    c.socket.set(zmq::sockopt::curve_publickey, c.options.curve_public_key);
    c.socket.set(zmq::sockopt::curve_secretkey, c.options.curve_secret_key);
  }
  c.socket.connect(c.options.endpoint);
  nlohmann::json hello = {{"name", c.options.name},
                          {"protocol", kProtocolVersion},
                          {"client", "swarm-cpp/0.1.0"},
                          {"heartbeat_ms", c.options.heartbeat.count()}};
  if (c.options.credit) hello["credit"] = *c.options.credit;
  if (!c.options.token.empty()) hello["token"] = c.options.token;
  const std::string text = hello.dump();
  c.send(Hello{text});
  const Clock::time_point deadline = Clock::now() + c.options.connect_timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    auto in = left.count() > 0 ? c.receive(left) : std::nullopt;
    if (!in) {
      throw ClientError(ErrorCode::no_session, "client \"" + c.options.name + "\": no WELCOME from " +
                                                   c.options.endpoint + " within " +
                                                   std::to_string(c.options.connect_timeout.count()) + " ms");
    }
    if (in->command == Command::welcome) return;
    if (in->command == Command::error) {
      throw ClientError(in->error, "client \"" + c.options.name + "\": " + std::string(to_string(in->error)) + ": " +
                                       in->message);
    }
  }
}

Client::~Client() {
  try {
    impl_->socket.set(zmq::sockopt::sndtimeo, 0);  // never wait in a destructor
    if (!impl_->closed) impl_->send(Bye{"client closing"});
  } catch (const std::exception&) {  // no connection: nothing to say goodbye to
  }
}

const std::string& Client::welcome() const noexcept { return impl_->welcome; }
bool Client::closed() const noexcept { return impl_->closed; }

void Client::subscribe(std::uint32_t sid, std::string_view pattern, std::string_view queue_group) {
  impl_->send(Sub{sid, pattern, queue_group});
}
void Client::unsubscribe(std::uint32_t sid) { impl_->send(Unsub{sid}); }
void Client::publish(std::string_view topic, std::string_view payload, std::string_view content_type,
                     std::uint32_t ttl_ms) {
  impl_->send(Pub{topic, content_type, ttl_ms, payload});
}
void Client::send(std::string_view name, std::string_view payload, std::string_view content_type,
                  std::uint32_t ttl_ms) {
  impl_->send(Send{name, content_type, ttl_ms, payload});
}
void Client::register_name(std::string_view name) { impl_->send(RegisterName{name}); }
void Client::unregister_name(std::string_view name) { impl_->send(UnregisterName{name}); }
void Client::credit(std::uint32_t messages) { impl_->send(Credit{messages}); }
void Client::reply(std::uint64_t correlation_id, std::string_view payload, std::string_view content_type, bool final,
                   AskStatus status) {
  ClientReply r;
  r.id = correlation_id;
  r.status = static_cast<std::uint8_t>(status);
  r.final = final;
  r.content_type = content_type;
  r.payload = payload;
  impl_->send(r);
}

std::uint64_t Client::request_async(std::string_view target, TargetKind kind, std::string_view payload,
                                    std::string_view content_type, std::uint32_t timeout_ms) {
  const std::uint64_t id = ++impl_->next_request;
  impl_->send(Request{id, kind, target, timeout_ms, content_type, payload});
  return id;
}

Answers Client::request(std::string_view target, TargetKind kind, std::string_view payload,
                        std::string_view content_type, std::chrono::milliseconds timeout) {
  const std::uint64_t id = request_async(target, kind, payload, content_type, static_cast<std::uint32_t>(timeout.count()));
  Answers a;
  // The gateway answers `timeout` itself; wait a little longer for that answer.
  const Clock::time_point deadline = Clock::now() + timeout + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    auto in = impl_->receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!in) break;
    const bool mine = (in->command == Command::answer && in->correlation_id == id) ||
                      (in->command == Command::error && in->context == id);
    if (!mine) {
      impl_->queued.push_back(std::move(*in));
      continue;
    }
    if (in->command == Command::error) {
      a.status = AskStatus::dead_agent;
      a.parts.push_back(std::move(*in));
      return a;
    }
    const bool final = in->final;
    a.status = in->status;
    a.parts.push_back(std::move(*in));
    if (final) return a;
  }
  a.status = AskStatus::timeout;
  Incoming none;
  none.command = Command::answer;
  none.status = AskStatus::timeout;
  a.parts.push_back(std::move(none));
  return a;
}

std::optional<Incoming> Client::next(std::chrono::milliseconds timeout) {
  if (!impl_->queued.empty()) {
    Incoming in = std::move(impl_->queued.front());
    impl_->queued.pop_front();
    return in;
  }
  return impl_->receive(timeout);
}

bool Client::flush(std::chrono::milliseconds timeout) {
  Impl& c = *impl_;
  c.send(Ping{});
  const std::uint64_t wanted = ++c.pings;
  const Clock::time_point deadline = Clock::now() + timeout;
  while (c.pongs < wanted) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    if (auto in = c.receive(left, true)) c.queued.push_back(std::move(*in));
    if (c.closed) return false;
  }
  return true;
}

void Client::send_raw(const Frames& frames) { impl_->send(frames); }

}  // namespace swarm::transport
