// libFuzzer target: payloads as they will arrive from other processes (bytes
// plus a content type named on the wire). Properties checked on every input:
//  - a content-type name parses to a known type or to nothing, never crashes;
//  - decoding JSON, msgpack, CBOR or text either gives a value or throws
//    PayloadTypeError (never another exception, never a crash);
//  - what decodes re-encodes as msgpack and CBOR and decodes to the same value;
//  - a typed read (from_json) of foreign bytes fails only with PayloadTypeError.
// Build and run: scripts/fuzz [seconds]

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "runtime/json.hpp"

namespace {

struct Order {
  std::string id;
  double qty = 0;
  std::vector<int> lines;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Order, id, qty, lines)

void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace swarm;
  if (size == 0) return 0;
  // First byte: which content type; the rest: the bytes, and also a MIME name.
  const auto content = static_cast<ContentType>(data[0] % (kContentTypeCount - 1));  // never `value`
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (auto parsed = parse_content_type(rest)) require(*parsed != ContentType::value);

  const Payload p(std::as_bytes(std::span(data + 1, size - 1)), content);
  require(p.size() == size - 1);
  require(p.as<std::string>() == rest);  // any non-value payload reads as its bytes
  try {
    const nlohmann::json j = p.as<nlohmann::json>();
    // The binary forms keep every value (binary strings, NaN) as it is;
    // compared by their dump, since NaN never compares equal to itself.
    for (ContentType c : {ContentType::msgpack, ContentType::cbor}) {
      require(json_payload(j, c).as<nlohmann::json>().dump() == j.dump());
    }
    (void)json_payload(j).as<nlohmann::json>();
  } catch (const PayloadTypeError&) {
  } catch (const nlohmann::json::exception&) {
    // Re-encoding can refuse what decoding accepted (e.g. invalid UTF-8 in a
    // msgpack string dumped as JSON): that is an error, not a crash.
  }
  try {
    (void)p.as<Order>();
  } catch (const PayloadTypeError&) {
  }
  (void)p.try_as<int>();
  return 0;
}
