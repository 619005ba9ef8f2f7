#pragma once
// The C++ SWP client: one DEALER socket to a gateway (docs/protocol.md).
//
//   swarm::transport::Client c({.endpoint = "tcp://127.0.0.1:7400", .name = "worker-1"});
//   c.subscribe(1, "tasks.>", "workers");
//   auto r = c.request("echo", swarm::transport::TargetKind::name, "hi", "text/plain", 1000ms);
//   while (auto in = c.next(100ms)) { ... in->payload ... }
//
// Single-threaded: one thread uses a Client at a time. It sends PING while
// it waits in next() or request(); a program that does neither for longer
// than the heartbeat interval should call next(0ms) now and then. It does
// not reconnect by itself (the Python client does): a broken session shows
// as a BYE from next() and in closed().

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/agent.hpp"
#include "transport/codec.hpp"

namespace swarm::transport {

struct ClientOptions {
  std::string endpoint = "tcp://127.0.0.1:7400";
  std::string name;  // required: unique among the gateway's sessions
  std::chrono::milliseconds heartbeat{1000};
  std::optional<std::uint32_t> credit;  // set: credit-based flow control with this initial credit
  std::string token;                    // when the gateway requires one
  // CURVE (Z85 keys, 40 characters each): all three or none.
  std::string curve_server_key, curve_public_key, curve_secret_key;
  /// How long to wait for WELCOME, and for ZeroMQ to take a message (a send
  /// that cannot be queued for that long throws ClientError).
  std::chrono::milliseconds connect_timeout{5000};
};

/// A refusal by the gateway (HELLO refused, or no WELCOME in time).
class ClientError : public std::runtime_error {
 public:
  ClientError(ErrorCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

/// What the gateway sent: MSG, DELIVER, REPLY (an answer), ERROR, BYE.
struct Incoming {
  Command command = Command::msg;
  std::uint32_t sid = 0;             // MSG
  std::string topic;                 // MSG
  std::string sender;                // MSG, DELIVER
  std::string name;                  // DELIVER
  std::uint64_t correlation_id = 0;  // MSG, DELIVER (a request: answer it), answers (the request id)
  std::string content_type;
  std::string payload;
  AskStatus status = AskStatus::ok;  // answers
  bool final = true;                 // answers
  ErrorCode error = ErrorCode::bad_frame;  // ERROR
  std::string message;               // ERROR, BYE (the reason)
  std::uint64_t context = 0;         // ERROR
};

/// The parts of an answer to request(): partials first, the final last.
struct Answers {
  AskStatus status = AskStatus::ok;  // of the final part (timeout here when none came in time)
  std::vector<Incoming> parts;
  const Incoming& final() const { return parts.back(); }
};

class Client {
 public:
  /// Connects and says HELLO; throws ClientError when refused or when no
  /// WELCOME comes within connect_timeout.
  explicit Client(ClientOptions options);
  /// Says BYE.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// WELCOME's JSON object.
  const std::string& welcome() const noexcept;
  bool closed() const noexcept;

  void subscribe(std::uint32_t sid, std::string_view pattern, std::string_view queue_group = {});
  void unsubscribe(std::uint32_t sid);
  void publish(std::string_view topic, std::string_view payload, std::string_view content_type = "text/plain",
               std::uint32_t ttl_ms = 0);
  void send(std::string_view name, std::string_view payload, std::string_view content_type = "text/plain",
            std::uint32_t ttl_ms = 0);
  void register_name(std::string_view name);
  void unregister_name(std::string_view name);
  void credit(std::uint32_t messages);
  /// Answers a request it received (MSG or DELIVER with a correlation id).
  void reply(std::uint64_t correlation_id, std::string_view payload, std::string_view content_type = "text/plain",
             bool final = true, AskStatus status = AskStatus::ok);

  /// Sends a REQUEST and returns its id; the answers come from next().
  std::uint64_t request_async(std::string_view target, TargetKind kind, std::string_view payload,
                              std::string_view content_type = "text/plain", std::uint32_t timeout_ms = 0);
  /// Sends a REQUEST and waits for its final answer (the gateway's timeout
  /// answers at the latest; `wait` bounds the wait here too). What else
  /// arrives meanwhile is kept for next().
  Answers request(std::string_view target, TargetKind kind, std::string_view payload,
                  std::string_view content_type = "text/plain",
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

  /// The next message from the gateway within `timeout` (PINGs are answered
  /// and PONGs swallowed on the way).
  std::optional<Incoming> next(std::chrono::milliseconds timeout);

  /// Returns true once the gateway has handled every command sent before it
  /// (a PING, answered in order by PONG), so their ERRORs, if any, are
  /// waiting in next(); false after `timeout` or when the session ended.
  bool flush(std::chrono::milliseconds timeout);

  /// Sends raw frames (tests of malformed input).
  void send_raw(const Frames& frames);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace swarm::transport
