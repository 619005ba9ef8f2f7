#pragma once
// The frames one node sends another through NATS (docs/cluster.md, "Wire").
// Binary and fixed-layout, little-endian: a 74-byte header, then the topic,
// the queue group and the payload. A NATS message carries one frame or
// several back to back (a node coalescing its frames for one peer). Every
// frame names its origin (the sending node's incarnation) and carries that
// sender's sequence number for the receiver, so a frame missing on the way is
// counted, not silently lost.

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace swarm::cluster::wire {

inline constexpr std::uint8_t kMagic = 'S';
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kHeaderBytes = 74;

enum class Type : std::uint8_t {
  publish = 1,  // topic (+ group): the receiver publishes it to its own subscribers
  send = 2,     // to a ref on the receiver (a request when correlation_id is set)
  reply = 3,    // an answer to a request the receiver's `to` asked
  ack = 4,      // seq: the receiver has seen every frame of mine up to it
};

/// A ref as its home node knows it: index and generation, and the node number
/// there (0: an agent, else a transport's participant or a caller).
struct Ref {
  std::uint64_t bits = 0;
  std::uint32_t node = 0;
};

struct Frame {
  Type type = Type::publish;
  bool partial = false;       // reply: more parts follow
  std::uint8_t status = 0;    // reply: an AskStatus
  std::uint8_t content = 0;   // a ContentType (never value)
  std::uint32_t kind = 0;     // the user's message kind
  std::uint64_t origin = 0;   // the sending node's incarnation
  std::uint64_t seq = 0;      // per sender and receiver, from 1
  Ref sender;
  Ref to;                     // send and reply
  std::uint64_t correlation_id = 0;
  std::uint64_t ttl_ns = 0;   // time left to live (0: none): clocks of machines differ
  std::string_view topic;     // publish
  std::string_view group;     // publish: the queue group it is for (empty: the plain subscribers)
  std::string_view payload;
};

/// Appends the frame to `out`. REQUIRES: topic and group under 64 KiB,
/// payload under 4 GiB.
void encode(const Frame& f, std::string& out);
/// The frame at the front of `bytes` (its views point into them), which then
/// start after it; or why it is not one (the rest is then not trusted).
Result<Frame> decode(std::string_view& bytes);

}  // namespace swarm::cluster::wire
