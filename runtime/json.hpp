#pragma once
// JSON payloads (nlohmann-json): the encoding of messages that cross a process.
//
// Including this header lets Payload::of / Message::as work with
// nlohmann::json values and with any type that has to_json/from_json
// (e.g. NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE); msgpack and CBOR payloads decode
// through the same calls.
//
//   struct Order { std::string id; double qty; };
//   NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Order, id, qty)
//   send(peer, Payload::of(Order{"o-1", 2.5}));   // application/json
//   Order o = msg.as<Order>();                     // decodes json, msgpack or cbor
//   send(peer, json_payload(order, ContentType::msgpack));
//
// A trivially copyable type stays an in-process value with Payload::of (no
// encoding); json_payload(value) encodes it for another process.

#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/payload.hpp"

namespace swarm {

/// A payload holding `j` encoded as application/json (default),
/// application/msgpack or application/cbor.
inline Payload json_payload(const nlohmann::json& j, ContentType content = ContentType::json) {
  switch (content) {
    case ContentType::msgpack: {
      std::vector<std::uint8_t> b = nlohmann::json::to_msgpack(j);
      return Payload(std::as_bytes(std::span(b)), ContentType::msgpack);
    }
    case ContentType::cbor: {
      std::vector<std::uint8_t> b = nlohmann::json::to_cbor(j);
      return Payload(std::as_bytes(std::span(b)), ContentType::cbor);
    }
    case ContentType::json: return Payload(std::string_view(j.dump()), ContentType::json);
    default:
      throw std::invalid_argument("payload: json_payload: content type " + std::string(to_string(content)) +
                                  " is not json, msgpack or cbor");
  }
}
template <class T>
  requires(!std::is_same_v<T, nlohmann::json>)
Payload json_payload(const T& value, ContentType content = ContentType::json) {
  return json_payload(nlohmann::json(value), content);
}

/// The JSON value a json, msgpack or cbor payload holds (text/plain is parsed
/// as JSON too). Throws PayloadTypeError naming the content type and the error.
inline nlohmann::json json_value(const Payload& p) {
  const auto b = p.bytes();
  const auto* first = reinterpret_cast<const std::uint8_t*>(b.data());
  try {
    switch (p.content_type()) {
      case ContentType::json:
      case ContentType::text: return nlohmann::json::parse(p.text());
      case ContentType::msgpack: return nlohmann::json::from_msgpack(first, first + b.size());
      case ContentType::cbor: return nlohmann::json::from_cbor(first, first + b.size());
      case ContentType::octet_stream:
      case ContentType::value: break;
    }
  } catch (const nlohmann::json::exception& ex) {
    throw PayloadTypeError("payload: " + std::string(to_string(p.content_type())) + " payload does not decode: " +
                           ex.what());
  }
  throw PayloadTypeError("payload: a JSON value was asked of a payload holding " + p.describe());
}

template <>
struct PayloadCodec<nlohmann::json> {
  static Payload encode(const nlohmann::json& j) { return json_payload(j); }
  static nlohmann::json decode(const Payload& p) { return json_value(p); }
};

/// Types with to_json/from_json (found by argument-dependent lookup).
template <class T>
struct PayloadCodec<T, std::enable_if_t<!std::is_same_v<T, nlohmann::json> &&
                                        std::is_constructible_v<nlohmann::json, const T&> &&
                                        requires(const nlohmann::json& j, T& v) { from_json(j, v); }>> {
  static Payload encode(const T& value) { return json_payload(nlohmann::json(value)); }
  static T decode(const Payload& p) {
    nlohmann::json j = json_value(p);
    try {
      return j.get<T>();
    } catch (const nlohmann::json::exception& ex) {
      throw PayloadTypeError("payload: " + std::string(to_string(p.content_type())) + " payload is not a " +
                             detail::readable_type_name(typeid(T).name()) + ": " + ex.what());
    }
  }
};

}  // namespace swarm
