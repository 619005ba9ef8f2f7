// The SWP/1 codec: every command round-trips; malformed frames give an error
// naming the command and the field, never a crash.

#include "transport/codec.hpp"

#include <gtest/gtest.h>

#include <deque>

namespace swarm::transport {
namespace {

std::vector<std::string_view> views(const Frames& f) { return {f.begin(), f.end()}; }

// Decoded fields point into the frames: keep them for the test's length.
Decoded round_trip(const Body& b) {
  static std::deque<Frames> kept;
  const Frames& f = kept.emplace_back(encode(b));
  auto d = decode(views(f));
  EXPECT_TRUE(d) << (d ? "" : d.error().message);
  return d ? std::move(*d) : Decoded{Command::ping, Ping{}};
}

TEST(Codec, EveryCommandRoundTrips) {
  EXPECT_EQ(std::get<Hello>(round_trip(Hello{R"({"name":"a","protocol":1})"}).body).json, R"({"name":"a","protocol":1})");
  auto sub = std::get<Sub>(round_trip(Sub{7, "orders.*.created", "billing"}).body);
  EXPECT_EQ(sub.sid, 7u);
  EXPECT_EQ(sub.pattern, "orders.*.created");
  EXPECT_EQ(sub.queue_group, "billing");
  EXPECT_EQ(std::get<Unsub>(round_trip(Unsub{0xfffffffe}).body).sid, 0xfffffffeu);
  auto pub = std::get<Pub>(round_trip(Pub{"a.b", "application/json", 1500, "{\"x\":1}"}).body);
  EXPECT_EQ(pub.topic, "a.b");
  EXPECT_EQ(pub.ttl_ms, 1500u);
  EXPECT_EQ(pub.payload, "{\"x\":1}");
  auto send = std::get<Send>(round_trip(Send{"billing", "", 0, std::string_view("\0\1\2", 3)}).body);
  EXPECT_EQ(send.payload.size(), 3u);
  auto req = std::get<Request>(round_trip(Request{0x0102030405060708, TargetKind::name, "echo", 250, "text/plain", "hi"}).body);
  EXPECT_EQ(req.request_id, 0x0102030405060708u);
  EXPECT_EQ(req.target_kind, TargetKind::name);
  EXPECT_EQ(req.timeout_ms, 250u);
  ClientReply r;
  r.id = 9;
  r.status = 5;
  r.final = false;
  auto reply = std::get<ClientReply>(round_trip(r).body);
  EXPECT_EQ(reply.id, 9u);
  EXPECT_EQ(reply.status, 5);
  EXPECT_FALSE(reply.final);
  Answer a;
  a.id = 3;
  a.payload = "tok";
  EXPECT_EQ(round_trip(a).command, Command::answer);
  EXPECT_EQ(std::get<RegisterName>(round_trip(RegisterName{"py"}).body).name, "py");
  EXPECT_EQ(std::get<UnregisterName>(round_trip(UnregisterName{"py"}).body).name, "py");
  EXPECT_EQ(std::get<Credit>(round_trip(Credit{100}).body).messages, 100u);
  auto msg = std::get<Msg>(round_trip(Msg{2, "t.x", "<3.1>", 11, "text/plain", "p"}).body);
  EXPECT_EQ(msg.sender, "<3.1>");
  EXPECT_EQ(msg.correlation_id, 11u);
  EXPECT_EQ(std::get<Deliver>(round_trip(Deliver{"me", "client/a", 0, "", "x"}).body).sender, "client/a");
  EXPECT_EQ(round_trip(Ping{}).command, Command::ping);
  EXPECT_EQ(round_trip(Pong{}).command, Command::pong);
  EXPECT_EQ(std::get<Bye>(round_trip(Bye{"done"}).body).reason, "done");
  auto err = std::get<Error>(round_trip(Error{ErrorCode::unknown_sid, "UNSUB: sid 4", 4}).body);
  EXPECT_EQ(err.code, ErrorCode::unknown_sid);
  EXPECT_EQ(err.context, 4u);
}

TEST(Codec, TheWireLayoutIsTheSpecifications) {
  const Frames f = encode(Sub{0x01020304, "a", ""});
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0], std::string("SW\x01\x02", 4));
  EXPECT_EQ(f[1], std::string("\x01\x02\x03\x04", 4));  // big-endian
  EXPECT_EQ(f[3], "");
}

TEST(Codec, MalformedMessagesAreErrorsNamingTheCommandAndField) {
  auto err = [](std::vector<std::string_view> frames) {
    auto d = decode(frames);
    EXPECT_FALSE(d);
    return d ? DecodeError{} : d.error();
  };
  EXPECT_EQ(err({}).code, ErrorCode::bad_frame);
  EXPECT_EQ(err({"XX\x01\x01"}).code, ErrorCode::bad_frame);
  EXPECT_EQ(err({std::string_view("SW\x01\x20", 4)}).message, "unknown command code 0x20");
  const DecodeError short_sub = err({std::string_view("SW\x01\x02", 4), "abc"});
  EXPECT_EQ(short_sub.code, ErrorCode::bad_frame);
  EXPECT_EQ(short_sub.message, "SUB: sid is 3 bytes, expected 4");
  const DecodeError missing = err({std::string_view("SW\x01\x04", 4), "topic"});
  EXPECT_EQ(missing.message, "PUB: content type is missing (1 field frames)");
  const DecodeError utf8 = err({std::string_view("SW\x01\x04", 4), "\xff\xfe", "", std::string_view("\0\0\0\0", 4), ""});
  EXPECT_EQ(utf8.message, "PUB: topic is not valid UTF-8");
  const DecodeError v2 = err({std::string_view("SW\x02\x01", 4), "{}"});
  EXPECT_EQ(v2.code, ErrorCode::version_mismatch);
  EXPECT_EQ(v2.message, "gateway speaks SWP/1, client sent SWP/2");
  const DecodeError kind = err({std::string_view("SW\x01\x06", 4), std::string_view("\0\0\0\0\0\0\0\5", 8),
                                std::string_view("\x07", 1), "x", std::string_view("\0\0\0\0", 4), "", ""});
  EXPECT_EQ(kind.code, ErrorCode::bad_field);
  EXPECT_EQ(kind.context, 5u);
}

TEST(Codec, OversizedFieldsAreTooLarge) {
  Limits l;
  l.max_payload_bytes = 4;
  const Frames f = encode(Pub{"a", "", 0, "12345"});
  auto d = decode(views(f), l);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, ErrorCode::too_large);
  EXPECT_EQ(d.error().message, "PUB: payload is 5 bytes, over the limit of 4");
}

TEST(Codec, ExtraTrailingFramesAreIgnored) {
  Frames f = encode(Unsub{3});
  f.push_back("a later minor version's field");
  auto d = decode(views(f));
  ASSERT_TRUE(d);
  EXPECT_EQ(std::get<Unsub>(d->body).sid, 3u);
}

TEST(Codec, Utf8Validation) {
  EXPECT_TRUE(valid_utf8("héllo → 世界 🐝"));
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // over U+10FFFF
  EXPECT_FALSE(valid_utf8("\xe2\x82"));          // truncated
}

TEST(Codec, ErrorNamesAndFatality) {
  EXPECT_EQ(to_string(ErrorCode::slow_consumer), "slow_consumer");
  EXPECT_EQ(to_string(static_cast<ErrorCode>(99)), "unknown");
  EXPECT_TRUE(fatal(ErrorCode::version_mismatch));
  EXPECT_FALSE(fatal(ErrorCode::bad_field));
}

}  // namespace
}  // namespace swarm::transport
