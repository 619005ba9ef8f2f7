#pragma once
// Remote nodes: how a transport (the ZeroMQ gateway of transport/, later a
// cluster link) makes participants outside this process look like agents.
//
// A transport attaches itself and gets a node number; the refs it hands out
// (AgentRef{index, generation, node}) are then addresses like any other:
// agents send to them, register names for them, answer their requests. What
// the runtime has for such a ref reaches RemoteNode::deliver(). In the other
// direction the transport sends, publishes and replies on its participants'
// behalf with the forward_* calls of Runtime.
//
//   class Gateway : public swarm::RemoteNode { ... };
//   std::uint32_t node = rt.attach_node(gateway);   // refs of its clients carry `node`
//   rt.forward(agent, payload, {client_ref, request_id});  // a request from a client
//   rt.detach_node(node);                           // before the gateway goes away

#include <cstdint>

#include <string_view>

#include "runtime/message.hpp"

namespace swarm::router {
class Endpoint;
}

namespace swarm {

/// A node number's owner: takes what the runtime has for refs on that node.
class RemoteNode {
 public:
  virtual ~RemoteNode() = default;
  /// A message for `to` (a ref on this node): user messages, requests
  /// (correlation_id set, reply_to the asker), and replies (system reply;
  /// `partial` on all but the last of a streamed reply). Runs on the sender's
  /// thread (a worker, the timer thread, any caller) and must not block.
  /// Returns ok when taken, else why not (mailbox_full, dead_agent,
  /// unreachable): the runtime counts it as for a local receiver.
  virtual SendResult deliver(AgentRef to, Message& msg) noexcept = 0;
  /// Whether `ref` (on this node) can still receive: names of dead refs are
  /// free to take again.
  virtual bool alive(AgentRef ref) const noexcept = 0;
};

/// Maximum number of remote nodes attached to one runtime at a time.
inline constexpr std::uint32_t kMaxRemoteNodes = 256;  // a cluster takes up to three per peer node

/// Sending on behalf of a participant outside the agents (see Runtime::forward).
struct ForwardOptions {
  AgentRef sender;                   // who sent it: replies to a request go there
  std::uint64_t correlation_id = 0;  // non-zero: a request, answered with this id
  SendOptions send;                  // kind and ttl
  // A publish relayed from another node (see router::PublishOptions): not
  // delivered back to `relayed_by`, and only to the plain subscribers or one
  // member of `relay_group`.
  const router::Endpoint* relayed_by = nullptr;
  std::string_view relay_group = {};
};

/// Names held on other nodes (a cluster's shared directory). The runtime asks
/// it when a name is not held here, and tells it of every name registered or
/// released here. Every call may come from any thread and must not block.
class NameDirectory {
 public:
  virtual ~NameDirectory() = default;
  /// The live holder of `name` on another node (a ref on a remote node), or
  /// an invalid ref.
  virtual AgentRef resolve(std::string_view name) const noexcept = 0;
  /// `name` was registered to `holder` here (registered) or released.
  virtual void changed(std::string_view name, AgentRef holder, bool registered) noexcept = 0;
};

}  // namespace swarm
