#pragma once
// The SWP gateway: a ZeroMQ ROUTER socket through which processes in any
// language take part in a runtime's messaging (docs/protocol.md). Each
// connected client is an address on the gateway's node: agents send to it,
// publish to its subscriptions and answer its requests as they would a local
// agent's; its requests, sends and publishes enter the runtime as if an agent
// had made them.
//
//   swarm::Runtime rt;
//   swarm::transport::Gateway gw(rt, {.bind = "tcp://127.0.0.1:7400"});
//   ...                                     // clients connect
//   gw.stop();                              // BYE to every client; before rt shuts down
//
// One I/O thread, whatever the number of clients. Workers never block on it:
// what they deliver to a client goes into a bounded per-client queue
// (max_outbound), and what does not fit is refused and counted.
// Thread-safe: every public member may be called from any thread.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "runtime/runtime.hpp"
#include "transport/codec.hpp"

namespace swarm::transport {

struct GatewayConfig {
  /// ZeroMQ endpoint: tcp://HOST:PORT (port * picks a free one) or ipc:///path.
  std::string bind = "tcp://127.0.0.1:7400";
  /// How often each side sends something (PING when idle); a client silent
  /// for 3 intervals is dropped. A client may ask for a longer interval.
  std::chrono::milliseconds heartbeat{1000};
  /// Messages queued for one client before further ones are refused.
  std::size_t max_outbound = 10'000;
  /// A client whose queue stays full this long is disconnected (slow_consumer).
  std::chrono::milliseconds slow_client_grace{10'000};
  /// The timeout of a REQUEST that gives none (0), and the longest allowed.
  std::chrono::milliseconds max_request_timeout{60'000};
  /// Sessions at a time (at most 1,048,575).
  std::size_t max_clients = 10'000;
  Limits limits;
  /// When set, HELLO must carry this token.
  std::string auth_token;
  /// CURVE: the gateway's secret key (a file with the 40-character Z85 key)
  /// and the allowed client public keys (one Z85 key per line; lines that
  /// start with # are comments).
  /// Both or neither.
  std::string curve_secret_key_file;
  std::string curve_allowed_keys_file;
  /// Told when a session opens (true) or ends (false), with the client's
  /// name; on the I/O thread, so it must be quick and must not call the gateway.
  std::function<void(const std::string& name, bool open)> on_session;

  /// OK, or an error naming the field and what is allowed.
  Result<void> validate() const;
};

/// Why the gateway dropped a message meant for a client. Metric labels.
enum class GatewayDrop : std::uint8_t {
  queue_full,      // the client's outbound queue was full (a slow client)
  not_encodable,   // an in-process value (not bytes with a content type)
  session_ended,   // queued for a client whose session ended
  unroutable,      // ZeroMQ could no longer route to the client
  late_reply,      // a reply after its request had timed out or ended
};
inline constexpr int kGatewayDropCount = 5;
std::string_view to_string(GatewayDrop d) noexcept;

/// Why a session ended. Metric labels.
enum class SessionEnd : std::uint8_t {
  bye,               // the client said BYE
  heartbeat,         // the client fell silent for 3 heartbeat intervals
  slow_consumer,     // its queue stayed full past slow_client_grace
  unroutable,        // ZeroMQ could no longer route to it (its connection is gone)
  reconnected,       // a new HELLO from the same routing id took over
  version_mismatch,  // it spoke another protocol version
  gateway_stopped,   // Gateway::stop()
};
inline constexpr int kSessionEndCount = 7;
std::string_view to_string(SessionEnd e) noexcept;

/// Totals since start.
struct GatewayStats {
  std::uint64_t clients = 0;            // sessions now
  std::uint64_t sessions_opened = 0;
  std::uint64_t frames_in = 0, frames_out = 0;  // SWP messages
  std::uint64_t bytes_in = 0, bytes_out = 0;
  std::uint64_t errors_sent = 0;        // ERROR frames sent
  std::uint64_t handshake_failures = 0;  // HELLOs refused (version, token, name, limits)
  std::array<std::uint64_t, kSessionEndCount> sessions_ended{};  // by SessionEnd
  std::uint64_t curve_refused = 0;      // CURVE keys not on the allow-list
  std::uint64_t outbound_queued = 0;    // messages waiting for clients now
  std::array<std::uint64_t, kGatewayDropCount> dropped{};  // by GatewayDrop
};

/// One line of the client table (the slowest first in clients()).
struct ClientSummary {
  std::string name;
  std::string sender;  // its address as senders see it: "client/NAME"
  AgentRef ref;
  std::uint64_t queued = 0;
  std::uint64_t dropped = 0;
  std::uint64_t subscriptions = 0;
  std::uint64_t frames_in = 0, frames_out = 0;
};

class Gateway {
 public:
  /// Binds, attaches to `rt` as a remote node and starts the I/O thread.
  /// Throws std::invalid_argument naming the field for a bad config, and
  /// std::runtime_error naming the endpoint when it cannot bind.
  Gateway(Runtime& rt, GatewayConfig config);
  /// stop().
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  /// Says BYE to every client, releases their subscriptions and names, joins
  /// the I/O thread and detaches from the runtime. Idempotent. Call it before
  /// the runtime shuts down.
  void stop();

  /// The endpoint actually bound (tcp://127.0.0.1:PORT when the port was *).
  const std::string& endpoint() const noexcept;
  /// The node number clients' refs carry.
  std::uint32_t node() const noexcept;
  GatewayStats stats() const;
  /// Connected clients, those with the most queued, then most dropped, first.
  std::vector<ClientSummary> clients(std::size_t limit = 100) const;
  /// /debug/gateway on the runtime's admin port: totals and the slowest clients, as JSON.
  std::string debug_page() const;

  struct State;  // everything behind the API (gateway.cpp)

 private:
  std::unique_ptr<State> state_;
};

}  // namespace swarm::transport
