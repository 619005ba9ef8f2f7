#include "cluster/wire.hpp"

#include <gtest/gtest.h>

namespace swarm::cluster::wire {
namespace {

TEST(Wire, RoundTripKeepsEveryField) {
  Frame f;
  f.type = Type::reply;
  f.partial = true;
  f.status = 3;
  f.content = 2;
  f.kind = 0xdeadbeef;
  f.origin = 0x1122334455667788;
  f.seq = 42;
  f.sender = {0xffffffff00000001, 0xffffffff};
  f.to = {0x0000000200000007, 5};
  f.correlation_id = 99;
  f.ttl_ns = 1'000'000;
  f.topic = "orders.eu";
  f.group = "workers";
  f.payload = std::string_view("\0payload\xff", 9);
  std::string out;
  encode(f, out);
  EXPECT_EQ(out.size(), kHeaderBytes + 9 + 7 + 9);
  std::string_view bytes = out;
  auto g = decode(bytes);
  ASSERT_TRUE(g) << g.error();
  EXPECT_TRUE(bytes.empty());
  EXPECT_EQ(g->type, f.type);
  EXPECT_EQ(g->partial, f.partial);
  EXPECT_EQ(g->status, f.status);
  EXPECT_EQ(g->content, f.content);
  EXPECT_EQ(g->kind, f.kind);
  EXPECT_EQ(g->origin, f.origin);
  EXPECT_EQ(g->seq, f.seq);
  EXPECT_EQ(g->sender.bits, f.sender.bits);
  EXPECT_EQ(g->sender.node, f.sender.node);
  EXPECT_EQ(g->to.bits, f.to.bits);
  EXPECT_EQ(g->to.node, f.to.node);
  EXPECT_EQ(g->correlation_id, f.correlation_id);
  EXPECT_EQ(g->ttl_ns, f.ttl_ns);
  EXPECT_EQ(g->topic, f.topic);
  EXPECT_EQ(g->group, f.group);
  EXPECT_EQ(g->payload, f.payload);
}

TEST(Wire, FramesBackToBackDecodeOneAfterTheOther) {
  std::string out;
  Frame f;
  f.topic = "a.b";
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    f.seq = seq;
    f.payload = seq == 2 ? std::string_view{} : std::string_view("x", 1);
    encode(f, out);
  }
  std::string_view bytes = out;
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    auto g = decode(bytes);
    ASSERT_TRUE(g) << g.error();
    EXPECT_EQ(g->seq, seq);
    EXPECT_EQ(g->topic, "a.b");
    EXPECT_EQ(g->payload.size(), seq == 2 ? 0u : 1u);
  }
  EXPECT_TRUE(bytes.empty());
}

// The error for `bytes` as one frame.
std::string error_of(std::string_view bytes) {
  auto f = decode(bytes);
  return f ? std::string("decoded") : f.error();
}

TEST(Wire, BadFramesAreNamedNotTrusted) {
  Frame f;
  f.topic = "a.b";
  std::string ok;
  encode(f, ok);
  EXPECT_NE(error_of(std::string_view(ok).substr(0, 10)).find("shorter than its 74-byte header"), std::string::npos);
  std::string bad = ok;
  bad[0] = 'X';
  EXPECT_NE(error_of(bad).find("bad magic"), std::string::npos);
  bad = ok;
  bad[1] = 9;
  EXPECT_NE(error_of(bad).find("version 9"), std::string::npos);
  bad = ok;
  bad[2] = 7;
  EXPECT_NE(error_of(bad).find("unknown type 7"), std::string::npos);
  bad = ok;
  bad[6] = 100;  // topic length beyond the frame
  EXPECT_NE(error_of(bad).find("overrun"), std::string::npos);
  bad = ok;
  bad[10] = 1;  // a payload length beyond the frame
  EXPECT_NE(error_of(bad).find("payload (1 bytes) overrun"), std::string::npos);
  bad = ok;
  bad[6] = 0;  // a publish needs its topic
  bad.resize(kHeaderBytes);
  EXPECT_NE(error_of(bad).find("without a topic"), std::string::npos);
}

}  // namespace
}  // namespace swarm::cluster::wire
