#pragma once
// The SWP/1 codec (docs/protocol.md, sections 2 and 4): every command as a
// struct, decoded from and encoded to the frames of one ZeroMQ multipart
// message (routing-id frame excluded). Used by the gateway and the C++ client.
//
//   auto d = decode(frames);                 // frames: std::span<const std::string_view>
//   if (!d) reply(error(d.error()));          // code + message naming the field
//   else if (auto* pub = std::get_if<Pub>(&d->body)) ...
//   Frames out = encode(Sub{1, "orders.>", "workers"});
//
// Decoded string_views point into the frames given to decode(). Pure
// functions, no state: thread-safe.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.hpp"

namespace swarm::transport {

inline constexpr std::uint8_t kProtocolVersion = 1;

enum class Command : std::uint8_t {
  // client -> gateway
  hello = 0x01,
  sub = 0x02,
  unsub = 0x03,
  pub = 0x04,
  send = 0x05,
  request = 0x06,
  reply = 0x07,  // a client answering a request it received
  register_name = 0x08,
  unregister_name = 0x09,
  credit = 0x0a,
  // gateway -> client
  welcome = 0x41,
  msg = 0x42,
  deliver = 0x43,
  answer = 0x44,  // REPLY on the wire: the answer to a client's REQUEST
  // both ways
  ping = 0x70,
  pong = 0x71,
  bye = 0x72,
  error = 0x7f,
};
/// The wire name: "PUB", "REPLY", ...
std::string_view to_string(Command c) noexcept;

/// ERROR codes (docs/protocol.md, section 6). Values are the wire codes.
enum class ErrorCode : std::uint16_t {
  version_mismatch = 1,
  no_session = 2,
  auth_failed = 3,
  name_taken = 4,
  bad_frame = 5,
  bad_field = 6,
  too_large = 7,
  unknown_sid = 8,
  unknown_request = 9,
  no_such_name = 10,
  mailbox_full = 11,
  dead_agent = 12,
  slow_consumer = 13,
  bad_state = 14,
  shutting_down = 15,
};
inline constexpr int kErrorCodeCount = 15;
/// "bad_frame", ...; "unknown" for values outside the table.
std::string_view to_string(ErrorCode c) noexcept;
/// Fatal errors end the session (the sender says BYE after them).
bool fatal(ErrorCode c) noexcept;

/// Size limits a decoder enforces (the gateway's defaults; WELCOME tells the
/// client the ones in force).
struct Limits {
  std::size_t max_topic_bytes = 256;
  std::size_t max_name_bytes = 255;
  std::size_t max_content_type_bytes = 127;
  std::size_t max_payload_bytes = 1 << 20;
};

// -- commands: fields in wire order ---

struct Hello {
  std::string_view json;
};
struct Sub {
  std::uint32_t sid = 0;
  std::string_view pattern;
  std::string_view queue_group;
};
struct Unsub {
  std::uint32_t sid = 0;
};
struct Pub {
  std::string_view topic;
  std::string_view content_type;
  std::uint32_t ttl_ms = 0;
  std::string_view payload;
};
struct Send {
  std::string_view name;
  std::string_view content_type;
  std::uint32_t ttl_ms = 0;
  std::string_view payload;
};
enum class TargetKind : std::uint8_t { topic = 0, name = 1 };
struct Request {
  std::uint64_t request_id = 0;
  TargetKind target_kind = TargetKind::topic;
  std::string_view target;
  std::uint32_t timeout_ms = 0;
  std::string_view content_type;
  std::string_view payload;
};
struct ReplyFields {
  std::uint64_t id = 0;     // the correlation id (Reply) or the request id (Answer)
  std::uint8_t status = 0;  // an AskStatus; not 0: final, empty payload
  bool final = true;
  std::string_view content_type;
  std::string_view payload;
};
struct ClientReply : ReplyFields {};  // REPLY from a client: answering a request it received
struct Answer : ReplyFields {};  // gateway -> client
struct RegisterName {
  std::string_view name;
};
struct UnregisterName {
  std::string_view name;
};
struct Credit {
  std::uint32_t messages = 0;
};
struct Welcome {
  std::string_view json;
};
struct Msg {
  std::uint32_t sid = 0;
  std::string_view topic;
  std::string_view sender;
  std::uint64_t correlation_id = 0;
  std::string_view content_type;
  std::string_view payload;
};
struct Deliver {
  std::string_view name;
  std::string_view sender;
  std::uint64_t correlation_id = 0;
  std::string_view content_type;
  std::string_view payload;
};
struct Ping {};
struct Pong {};
struct Bye {
  std::string_view reason;
};
struct Error {
  ErrorCode code = ErrorCode::bad_frame;
  std::string_view message;
  std::uint64_t context = 0;
};

using Body = std::variant<Hello, Sub, Unsub, Pub, Send, Request, ClientReply, RegisterName, UnregisterName, Credit, Welcome,
                          Msg, Deliver, Answer, Ping, Pong, Bye, Error>;

/// The command code of a body.
Command command_of(const Body& body) noexcept;

struct Decoded {
  Command command;
  Body body;
};

/// Why frames could not be decoded: the ERROR to answer with.
struct DecodeError {
  ErrorCode code = ErrorCode::bad_frame;
  std::string message;  // names the command and the field
  std::uint64_t context = 0;
  std::uint8_t version = kProtocolVersion;  // the header's version (version_mismatch)
};

/// Decodes one message. Errors: bad_frame (no or short header, bad magic,
/// unknown command, too few frames, a field of the wrong size, bad UTF-8),
/// version_mismatch (naming both versions), too_large (over `limits`).
/// Extra trailing frames are ignored.
Result<Decoded, DecodeError> decode(std::span<const std::string_view> frames, const Limits& limits = {});

using Frames = std::vector<std::string>;
/// The frames of one message: header, then the fields.
Frames encode(const Body& body, std::uint8_t version = kProtocolVersion);
/// The 4-byte header frame.
std::string header(Command c, std::uint8_t version = kProtocolVersion);

/// Whether `s` is valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view s) noexcept;

}  // namespace swarm::transport
