#include "cluster/wire.hpp"

#include <cstring>

namespace swarm::cluster::wire {
namespace {

// Writes v little-endian at p and moves p past it (byte shifts: the compiler
// turns them into one store).
template <class T>
void put(char*& p, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<char>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xff);
  p += sizeof(T);
}

template <class T>
T get(const char*& p) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  p += sizeof(T);
  return static_cast<T>(v);
}

}  // namespace

void encode(const Frame& f, std::string& out) {
  const std::size_t start = out.size();
  out.resize(start + kHeaderBytes + f.topic.size() + f.group.size() + f.payload.size());
  char* p = out.data() + start;
  put<std::uint8_t>(p, kMagic);
  put<std::uint8_t>(p, kVersion);
  put<std::uint8_t>(p, static_cast<std::uint8_t>(f.type));
  put<std::uint8_t>(p, f.partial ? 1 : 0);
  put<std::uint8_t>(p, f.status);
  put<std::uint8_t>(p, f.content);
  put<std::uint16_t>(p, static_cast<std::uint16_t>(f.topic.size()));
  put<std::uint16_t>(p, static_cast<std::uint16_t>(f.group.size()));
  put<std::uint32_t>(p, static_cast<std::uint32_t>(f.payload.size()));
  put<std::uint32_t>(p, f.kind);
  put<std::uint32_t>(p, f.sender.node);
  put<std::uint32_t>(p, f.to.node);
  put<std::uint64_t>(p, f.origin);
  put<std::uint64_t>(p, f.seq);
  put<std::uint64_t>(p, f.sender.bits);
  put<std::uint64_t>(p, f.to.bits);
  put<std::uint64_t>(p, f.correlation_id);
  put<std::uint64_t>(p, f.ttl_ns);
  for (std::string_view part : {f.topic, f.group, f.payload}) {
    if (!part.empty()) std::memcpy(p, part.data(), part.size());
    p += part.size();
  }
}

Result<Frame> decode(std::string_view& bytes) {
  if (bytes.size() < kHeaderBytes) {
    return unexpected("cluster frame of " + std::to_string(bytes.size()) + " bytes is shorter than its " +
                      std::to_string(kHeaderBytes) + "-byte header");
  }
  const char* p = bytes.data();
  if (get<std::uint8_t>(p) != kMagic) return unexpected(std::string("cluster frame: not a Swarm frame (bad magic byte)"));
  if (const auto v = get<std::uint8_t>(p); v != kVersion) {
    return unexpected("cluster frame: version " + std::to_string(v) + ", this node speaks " + std::to_string(kVersion));
  }
  Frame f;
  const auto type = get<std::uint8_t>(p);
  if (type < 1 || type > 4) return unexpected("cluster frame: unknown type " + std::to_string(type));
  f.type = static_cast<Type>(type);
  const auto flags = get<std::uint8_t>(p);
  if (flags > 1) return unexpected("cluster frame: unknown flags " + std::to_string(flags));
  f.partial = flags == 1;
  f.status = get<std::uint8_t>(p);
  f.content = get<std::uint8_t>(p);
  const auto topic_len = get<std::uint16_t>(p);
  const auto group_len = get<std::uint16_t>(p);
  const auto payload_len = get<std::uint32_t>(p);
  f.kind = get<std::uint32_t>(p);
  f.sender.node = get<std::uint32_t>(p);
  f.to.node = get<std::uint32_t>(p);
  f.origin = get<std::uint64_t>(p);
  f.seq = get<std::uint64_t>(p);
  f.sender.bits = get<std::uint64_t>(p);
  f.to.bits = get<std::uint64_t>(p);
  f.correlation_id = get<std::uint64_t>(p);
  f.ttl_ns = get<std::uint64_t>(p);
  const std::size_t rest = bytes.size() - kHeaderBytes;
  if (std::size_t{topic_len} + group_len + payload_len > rest) {
    return unexpected("cluster frame: topic (" + std::to_string(topic_len) + "), group (" + std::to_string(group_len) +
                      ") and payload (" + std::to_string(payload_len) + " bytes) overrun the " + std::to_string(rest) +
                      " bytes after the header");
  }
  if (f.type == Type::publish && topic_len == 0) return unexpected(std::string("cluster frame: a publish without a topic"));
  f.topic = bytes.substr(kHeaderBytes, topic_len);
  f.group = bytes.substr(kHeaderBytes + topic_len, group_len);
  f.payload = bytes.substr(kHeaderBytes + topic_len + group_len, payload_len);
  bytes.remove_prefix(kHeaderBytes + topic_len + group_len + payload_len);
  return f;
}

}  // namespace swarm::cluster::wire
