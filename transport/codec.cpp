#include "transport/codec.hpp"

#include <array>
#include <cstdio>

namespace swarm::transport {

std::string_view to_string(Command c) noexcept {
  switch (c) {
    case Command::hello: return "HELLO";
    case Command::sub: return "SUB";
    case Command::unsub: return "UNSUB";
    case Command::pub: return "PUB";
    case Command::send: return "SEND";
    case Command::request: return "REQUEST";
    case Command::reply: return "REPLY";
    case Command::register_name: return "REGISTER";
    case Command::unregister_name: return "UNREGISTER";
    case Command::credit: return "CREDIT";
    case Command::welcome: return "WELCOME";
    case Command::msg: return "MSG";
    case Command::deliver: return "DELIVER";
    case Command::answer: return "REPLY";
    case Command::ping: return "PING";
    case Command::pong: return "PONG";
    case Command::bye: return "BYE";
    case Command::error: return "ERROR";
  }
  return "unknown";
}

std::string_view to_string(ErrorCode c) noexcept {
  static constexpr std::array<std::string_view, kErrorCodeCount> kNames = {
      "version_mismatch", "no_session",    "auth_failed",     "name_taken",   "bad_frame",
      "bad_field",        "too_large",     "unknown_sid",     "unknown_request", "no_such_name",
      "mailbox_full",     "dead_agent",    "slow_consumer",   "bad_state",    "shutting_down"};
  const auto i = static_cast<std::size_t>(c);
  return i >= 1 && i <= kNames.size() ? kNames[i - 1] : "unknown";
}

bool fatal(ErrorCode c) noexcept {
  return c == ErrorCode::version_mismatch || c == ErrorCode::auth_failed || c == ErrorCode::slow_consumer ||
         c == ErrorCode::shutting_down;
}

bool valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int extra;
    std::uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      extra = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= extra) return false;
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    p += extra + 1;
  }
  return true;
}

namespace {

constexpr char kMagic0 = 'S';
constexpr char kMagic1 = 'W';

bool known(std::uint8_t code) noexcept {
  return (code >= 0x01 && code <= 0x0a) || (code >= 0x41 && code <= 0x44) || (code >= 0x70 && code <= 0x72) ||
         code == 0x7f;
}

// Reads fields in order; the first problem is kept and later reads return
// empty values, so a decoder reads everything and checks once.
class Reader {
 public:
  Reader(std::span<const std::string_view> fields, Command c, const Limits& limits)
      : fields_(fields), command_(c), limits_(limits) {}

  bool ok() const noexcept { return ok_; }
  DecodeError error() && { return std::move(error_); }
  bool more() const noexcept { return next_ < fields_.size(); }

  std::uint8_t u8(std::string_view field) { return static_cast<std::uint8_t>(uint(field, 1)); }
  std::uint16_t u16(std::string_view field) { return static_cast<std::uint16_t>(uint(field, 2)); }
  std::uint32_t u32(std::string_view field) { return static_cast<std::uint32_t>(uint(field, 4)); }
  std::uint64_t u64(std::string_view field) { return uint(field, 8); }

  /// UTF-8 text of at most `max` bytes.
  std::string_view str(std::string_view field, std::size_t max) {
    std::string_view f = take(field);
    if (!ok_) return {};
    if (f.size() > max) {
      fail(ErrorCode::too_large, field, "is " + std::to_string(f.size()) + " bytes, over the limit of " + std::to_string(max));
      return {};
    }
    if (!valid_utf8(f)) {
      fail(ErrorCode::bad_frame, field, "is not valid UTF-8");
      return {};
    }
    return f;
  }
  std::string_view bytes(std::string_view field, std::size_t max) {
    std::string_view f = take(field);
    if (ok_ && f.size() > max) {
      fail(ErrorCode::too_large, field, "is " + std::to_string(f.size()) + " bytes, over the limit of " + std::to_string(max));
      return {};
    }
    return f;
  }
  void set_context(std::uint64_t context) noexcept { context_ = context; }

 private:
  std::string_view take(std::string_view field) {
    if (!ok_) return {};
    if (next_ >= fields_.size()) {
      fail(ErrorCode::bad_frame, field, "is missing (" + std::to_string(fields_.size()) + " field frames)");
      return {};
    }
    return fields_[next_++];
  }
  std::uint64_t uint(std::string_view field, std::size_t size) {
    std::string_view f = take(field);
    if (!ok_) return 0;
    if (f.size() != size) {
      fail(ErrorCode::bad_frame, field, "is " + std::to_string(f.size()) + " bytes, expected " + std::to_string(size));
      return 0;
    }
    std::uint64_t v = 0;
    for (char ch : f) v = (v << 8) | static_cast<unsigned char>(ch);
    return v;
  }
  void fail(ErrorCode code, std::string_view field, const std::string& what) {
    ok_ = false;
    error_.code = code;
    error_.message = std::string(to_string(command_)) + ": " + std::string(field) + " " + what;
    error_.context = context_;
  }

  std::span<const std::string_view> fields_;
  std::size_t next_ = 0;
  Command command_;
  const Limits& limits_;
  std::uint64_t context_ = 0;
  bool ok_ = true;
  DecodeError error_;

 public:
  const Limits& limits() const noexcept { return limits_; }
};

constexpr std::size_t kAny = ~std::size_t{0};

ReplyFields read_reply(Reader& r, std::string_view id_field) {
  ReplyFields f;
  f.id = r.u64(id_field);
  r.set_context(f.id);
  f.status = r.u8("status");
  const std::uint8_t final = r.u8("final");
  f.final = final != 0;
  f.content_type = r.str("content type", r.limits().max_content_type_bytes);
  f.payload = r.bytes("payload", r.limits().max_payload_bytes);
  return f;
}

Body read_body(Reader& r, Command c) {
  const Limits& l = r.limits();
  switch (c) {
    case Command::hello: return Hello{r.str("hello", 64 * 1024)};
    case Command::sub: {
      Sub s;
      s.sid = r.u32("sid");
      r.set_context(s.sid);
      s.pattern = r.str("pattern", l.max_topic_bytes);
      s.queue_group = r.str("queue group", l.max_name_bytes);
      return s;
    }
    case Command::unsub: {
      Unsub u;
      u.sid = r.u32("sid");
      return u;
    }
    case Command::pub: {
      Pub p;
      p.topic = r.str("topic", l.max_topic_bytes);
      p.content_type = r.str("content type", l.max_content_type_bytes);
      p.ttl_ms = r.u32("ttl");
      p.payload = r.bytes("payload", l.max_payload_bytes);
      return p;
    }
    case Command::send: {
      Send s;
      s.name = r.str("name", l.max_name_bytes);
      s.content_type = r.str("content type", l.max_content_type_bytes);
      s.ttl_ms = r.u32("ttl");
      s.payload = r.bytes("payload", l.max_payload_bytes);
      return s;
    }
    case Command::request: {
      Request q;
      q.request_id = r.u64("request id");
      r.set_context(q.request_id);
      const std::uint8_t kind = r.u8("target kind");
      q.target_kind = static_cast<TargetKind>(kind);
      q.target = r.str("target", std::max(l.max_topic_bytes, l.max_name_bytes));
      q.timeout_ms = r.u32("timeout");
      q.content_type = r.str("content type", l.max_content_type_bytes);
      q.payload = r.bytes("payload", l.max_payload_bytes);
      return q;
    }
    case Command::reply: return ClientReply{read_reply(r, "correlation id")};
    case Command::answer: return Answer{read_reply(r, "request id")};
    case Command::register_name: return RegisterName{r.str("name", l.max_name_bytes)};
    case Command::unregister_name: return UnregisterName{r.str("name", l.max_name_bytes)};
    case Command::credit: return Credit{r.u32("messages")};
    case Command::welcome: return Welcome{r.str("welcome", 64 * 1024)};
    case Command::msg: {
      Msg m;
      m.sid = r.u32("sid");
      m.topic = r.str("topic", l.max_topic_bytes);
      m.sender = r.str("sender", kAny);
      m.correlation_id = r.u64("correlation id");
      m.content_type = r.str("content type", l.max_content_type_bytes);
      m.payload = r.bytes("payload", l.max_payload_bytes);
      return m;
    }
    case Command::deliver: {
      Deliver d;
      d.name = r.str("name", l.max_name_bytes);
      d.sender = r.str("sender", kAny);
      d.correlation_id = r.u64("correlation id");
      d.content_type = r.str("content type", l.max_content_type_bytes);
      d.payload = r.bytes("payload", l.max_payload_bytes);
      return d;
    }
    case Command::ping: return Ping{};
    case Command::pong: return Pong{};
    case Command::bye: return Bye{r.more() ? r.str("reason", kAny) : std::string_view{}};
    case Command::error: {
      Error e;
      e.code = static_cast<ErrorCode>(r.u16("code"));
      e.message = r.str("message", kAny);
      e.context = r.u64("context");
      return e;
    }
  }
  return Ping{};  // unreachable: the code was checked by known()
}

// Writes big-endian integers and raw fields into frames.
class Writer {
 public:
  Writer(Command c, std::uint8_t version) { frames_.push_back(header(c, version)); }
  Writer& uint(std::uint64_t v, int size) {
    std::string f(static_cast<std::size_t>(size), '\0');
    for (int i = size - 1; i >= 0; --i, v >>= 8) f[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
    frames_.push_back(std::move(f));
    return *this;
  }
  Writer& raw(std::string_view s) {
    frames_.emplace_back(s);
    return *this;
  }
  Frames done() && { return std::move(frames_); }

 private:
  Frames frames_;
};

void write_reply(Writer& w, const ReplyFields& f) {
  w.uint(f.id, 8).uint(f.status, 1).uint(f.final ? 1 : 0, 1).raw(f.content_type).raw(f.payload);
}

}  // namespace

std::string header(Command c, std::uint8_t version) {
  return std::string{kMagic0, kMagic1, static_cast<char>(version), static_cast<char>(c)};
}

Command command_of(const Body& body) noexcept {
  static constexpr Command kCodes[] = {
      Command::hello, Command::sub,     Command::unsub, Command::pub,  Command::send, Command::request,
      Command::reply, Command::register_name, Command::unregister_name, Command::credit, Command::welcome,
      Command::msg,   Command::deliver, Command::answer, Command::ping, Command::pong, Command::bye, Command::error};
  static_assert(std::size(kCodes) == std::variant_size_v<Body>);
  return kCodes[body.index()];
}

Result<Decoded, DecodeError> decode(std::span<const std::string_view> frames, const Limits& limits) {
  if (frames.empty()) return unexpected(DecodeError{ErrorCode::bad_frame, "empty message: no header frame", 0});
  const std::string_view h = frames[0];
  if (h.size() != 4 || h[0] != kMagic0 || h[1] != kMagic1) {
    return unexpected(DecodeError{ErrorCode::bad_frame,
                                  "header frame must be 4 bytes starting with \"SW\" (got " + std::to_string(h.size()) +
                                      " bytes)",
                                  0});
  }
  const auto version = static_cast<std::uint8_t>(h[2]);
  const auto code = static_cast<std::uint8_t>(h[3]);
  if (version != kProtocolVersion) {
    DecodeError e{ErrorCode::version_mismatch,
                  "gateway speaks SWP/" + std::to_string(kProtocolVersion) + ", client sent SWP/" + std::to_string(version),
                  0};
    e.version = version;
    return unexpected(std::move(e));
  }
  if (!known(code)) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", code);
    return unexpected(DecodeError{ErrorCode::bad_frame, std::string("unknown command code ") + hex, 0});
  }
  const auto c = static_cast<Command>(code);
  Reader r(frames.subspan(1), c, limits);
  Body body = read_body(r, c);
  if (!r.ok()) return unexpected(std::move(r).error());
  if (const Request* q = std::get_if<Request>(&body); q != nullptr && q->target_kind != TargetKind::topic &&
                                                        q->target_kind != TargetKind::name) {
    return unexpected(DecodeError{ErrorCode::bad_field,
                                  "REQUEST: target kind " + std::to_string(static_cast<int>(q->target_kind)) +
                                      " is neither 0 (topic) nor 1 (name)",
                                  q->request_id});
  }
  return Decoded{c, std::move(body)};
}

Frames encode(const Body& body, std::uint8_t version) {
  Writer w(command_of(body), version);
  std::visit(
      [&](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, Hello> || std::is_same_v<T, Welcome>) {
          w.raw(b.json);
        } else if constexpr (std::is_same_v<T, Sub>) {
          w.uint(b.sid, 4).raw(b.pattern).raw(b.queue_group);
        } else if constexpr (std::is_same_v<T, Unsub>) {
          w.uint(b.sid, 4);
        } else if constexpr (std::is_same_v<T, Pub>) {
          w.raw(b.topic).raw(b.content_type).uint(b.ttl_ms, 4).raw(b.payload);
        } else if constexpr (std::is_same_v<T, Send>) {
          w.raw(b.name).raw(b.content_type).uint(b.ttl_ms, 4).raw(b.payload);
        } else if constexpr (std::is_same_v<T, Request>) {
          w.uint(b.request_id, 8).uint(static_cast<std::uint8_t>(b.target_kind), 1).raw(b.target).uint(b.timeout_ms, 4);
          w.raw(b.content_type).raw(b.payload);
        } else if constexpr (std::is_same_v<T, ClientReply> || std::is_same_v<T, Answer>) {
          write_reply(w, b);
        } else if constexpr (std::is_same_v<T, RegisterName> || std::is_same_v<T, UnregisterName>) {
          w.raw(b.name);
        } else if constexpr (std::is_same_v<T, Credit>) {
          w.uint(b.messages, 4);
        } else if constexpr (std::is_same_v<T, Msg>) {
          w.uint(b.sid, 4).raw(b.topic).raw(b.sender).uint(b.correlation_id, 8).raw(b.content_type).raw(b.payload);
        } else if constexpr (std::is_same_v<T, Deliver>) {
          w.raw(b.name).raw(b.sender).uint(b.correlation_id, 8).raw(b.content_type).raw(b.payload);
        } else if constexpr (std::is_same_v<T, Bye>) {
          w.raw(b.reason);
        } else if constexpr (std::is_same_v<T, Error>) {
          w.uint(static_cast<std::uint16_t>(b.code), 2).raw(b.message).uint(b.context, 8);
        }
      },
      body);
  return std::move(w).done();
}

}  // namespace swarm::transport
