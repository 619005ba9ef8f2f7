// Typed payloads: a type tag checked in every build, strings and byte vectors
// without hand encoding, JSON / msgpack / CBOR through nlohmann-json.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/json.hpp"
#include "runtime/message.hpp"

namespace swarm {
namespace {

struct Pair16 {
  std::uint64_t a;
  std::uint64_t b;
};

struct Order {  // not trivially copyable: opts in to crossing a process with to_json/from_json
  std::string id;
  double qty = 0;
  friend bool operator==(const Order&, const Order&) = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Order, id, qty)

TEST(Payload, AValueReadAsAnotherTypeIsAClearErrorNotGarbage) {
  const Payload p = Payload::of(42);
  EXPECT_EQ(p.content_type(), ContentType::value);
  EXPECT_EQ(p.as<int>(), 42);
  try {
    (void)p.as<Pair16>();
    FAIL() << "as<Pair16>() of an int did not throw";
  } catch (const PayloadTypeError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("Pair16"), std::string::npos) << what;  // the type asked for
    EXPECT_NE(what.find("int"), std::string::npos) << what;     // the type held
  }
  // Same size, other type: still refused.
  EXPECT_THROW((void)p.as<float>(), PayloadTypeError);
  EXPECT_THROW((void)p.as<unsigned>(), PayloadTypeError);
  EXPECT_FALSE(p.try_as<float>().has_value());
  EXPECT_EQ(p.try_as<int>(), 42);
}

TEST(Payload, AValueIsNotReadAsAString) {
  const Payload p = Payload::of(7L);
  EXPECT_THROW((void)p.as<std::string>(), PayloadTypeError);
  EXPECT_THROW((void)p.as<std::vector<std::byte>>(), PayloadTypeError);
}

TEST(Payload, StringsAreTextAndReadBack) {
  const std::string long_text(500, 'x');  // beyond the inline bytes: one shared buffer
  for (const std::string& s : {std::string(), std::string("hello"), long_text}) {
    const Payload p = Payload::of(s);
    EXPECT_EQ(p.content_type(), ContentType::text);
    EXPECT_EQ(p.as<std::string>(), s);
    EXPECT_EQ(p.text(), s);
  }
  EXPECT_EQ(Payload::of("a literal").as<std::string>(), "a literal");
  EXPECT_EQ(Payload::of(std::string_view("a view")).as<std::string>(), "a view");
  const Payload big = Payload::of(long_text);
  const Payload copy = big;  // shares the buffer
  EXPECT_EQ(copy.bytes().data(), big.bytes().data());
}

TEST(Payload, ByteVectorsAreOctetStreams) {
  const std::vector<std::uint8_t> bytes{0, 1, 2, 255, 0};
  const Payload p = Payload::of(bytes);
  EXPECT_EQ(p.content_type(), ContentType::octet_stream);
  EXPECT_EQ(p.as<std::vector<std::uint8_t>>(), bytes);
  EXPECT_EQ(p.as<std::vector<std::byte>>().size(), bytes.size());
}

TEST(Payload, JsonValuesAndTypesWithToJsonRoundTrip) {
  const nlohmann::json j = {{"agent", "planner"}, {"step", 3}, {"tools", {"search", "code"}}};
  const Payload p = Payload::of(j);
  EXPECT_EQ(p.content_type(), ContentType::json);
  EXPECT_EQ(p.as<nlohmann::json>(), j);
  EXPECT_EQ(nlohmann::json::parse(p.text()), j);  // plain JSON text: what another process reads

  const Order o{"o-17", 2.5};
  const Payload q = Payload::of(o);
  EXPECT_EQ(q.content_type(), ContentType::json);
  EXPECT_EQ(q.as<Order>(), o);
  EXPECT_EQ(q.as<nlohmann::json>()["id"], "o-17");
}

TEST(Payload, MsgpackAndCborDecodeThroughTheSameCalls) {
  const Order o{"o-9", 1.0};
  for (ContentType c : {ContentType::msgpack, ContentType::cbor, ContentType::json}) {
    const Payload p = json_payload(o, c);
    EXPECT_EQ(p.content_type(), c);
    EXPECT_EQ(p.as<Order>(), o) << to_string(c);
  }
  EXPECT_THROW((void)json_payload(nlohmann::json(1), ContentType::text), std::invalid_argument);
}

TEST(Payload, JsonThatIsNotTheTypeAskedForNamesTheProblem) {
  const Payload not_an_order = Payload::of(nlohmann::json{{"id", 5}});
  try {
    (void)not_an_order.as<Order>();
    FAIL() << "decoded an Order from {\"id\":5}";
  } catch (const PayloadTypeError& e) {
    EXPECT_NE(std::string(e.what()).find("Order"), std::string::npos) << e.what();
  }
  const Payload broken(std::string_view("{\"id\": "), ContentType::json);
  EXPECT_THROW((void)broken.as<nlohmann::json>(), PayloadTypeError);
  const Payload raw = Payload::of(std::vector<std::uint8_t>{1, 2});
  EXPECT_THROW((void)raw.as<nlohmann::json>(), PayloadTypeError);  // octet-stream is not JSON
  EXPECT_THROW((void)Payload::of(3).as<nlohmann::json>(), PayloadTypeError);
}

TEST(Payload, ContentTypesHaveTheirMimeNames) {
  EXPECT_EQ(to_string(ContentType::json), "application/json");
  EXPECT_EQ(parse_content_type("application/msgpack"), ContentType::msgpack);
  EXPECT_EQ(parse_content_type("text/plain; charset=utf-8"), ContentType::text);
  EXPECT_EQ(parse_content_type("application/cbor"), ContentType::cbor);
  EXPECT_FALSE(parse_content_type("x-swarm/value").has_value());  // never arrives from outside
  EXPECT_FALSE(parse_content_type("image/png").has_value());
}

TEST(Payload, TypeNamesOfAnonymousNamespacesAreReadable) {
  // Pair16 lives in an anonymous namespace; errors and type names leave that out.
  EXPECT_EQ(Payload::of(Pair16{1, 2}).describe(), "swarm::Pair16");
}

TEST(Message, EnvelopeFieldsEachMeanOneThing) {
  Message m;
  EXPECT_FALSE(m.is_request());
  m.correlation_id = 9;
  EXPECT_TRUE(m.is_request());
  m.payload = Payload::of(std::string("hi"));
  EXPECT_EQ(m.as<std::string>(), "hi");
  EXPECT_EQ(m.content_type(), ContentType::text);
  EXPECT_EQ(to_string(AgentRef{3, 4}), "<3.4>");
  EXPECT_EQ(to_string(AgentRef{3, 4, 2}), "<2:3.4>");
}

}  // namespace
}  // namespace swarm
