// Remote nodes: transports attached under a node number (runtime/remote.hpp),
// and replies from their participants.

#include <stdexcept>
#include <thread>

#include "runtime/detail/runtime_core.hpp"

namespace swarm {

using detail::Envelope;
using detail::RuntimeCore;

std::uint32_t RuntimeCore::attach_node(RemoteNode& node) {
  MutexLock lock(remotes_mu_);
  for (std::uint32_t i = 0; i < kMaxRemoteNodes; ++i) {
    RemoteNode* expected = nullptr;
    if (remotes_[i].node.compare_exchange_strong(expected, &node, std::memory_order_seq_cst)) return i + 1;
  }
  throw std::length_error("runtime: attach_node: " + std::to_string(kMaxRemoteNodes) + " remote nodes are attached already");
}

void RuntimeCore::detach_node(std::uint32_t node) noexcept {
  if (node == 0 || node > kMaxRemoteNodes) return;
  MutexLock lock(remotes_mu_);
  RemoteSlot& slot = remotes_[node - 1];
  slot.node.store(nullptr, std::memory_order_seq_cst);
  // A delivery that loaded the pointer before the store holds `inflight`.
  while (slot.inflight.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
}

SendResult RuntimeCore::deliver_remote(AgentRef to, Envelope* e) noexcept {
  SendResult r = SendResult::unreachable;
  if (to.node != 0 && to.node <= kMaxRemoteNodes) {
    RemoteSlot& slot = remotes_[to.node - 1];
    slot.inflight.fetch_add(1, std::memory_order_seq_cst);
    if (RemoteNode* node = slot.node.load(std::memory_order_seq_cst)) r = node->deliver(to, e->msg);
    slot.inflight.fetch_sub(1, std::memory_order_seq_cst);
  }
  detail::free_envelope(e);
  return r;
}

bool RuntimeCore::remote_alive(AgentRef ref) const noexcept {
  if (!ref.valid() || ref.node == 0 || ref.node > kMaxRemoteNodes) return false;
  const RemoteSlot& slot = remotes_[ref.node - 1];
  slot.inflight.fetch_add(1, std::memory_order_seq_cst);
  const RemoteNode* node = slot.node.load(std::memory_order_seq_cst);
  const bool alive = node != nullptr && node->alive(ref);
  slot.inflight.fetch_sub(1, std::memory_order_seq_cst);
  return alive;
}

SendResult RuntimeCore::forward_reply(AgentRef to, std::uint64_t correlation_id, AskStatus status, bool partial,
                                      Payload payload) noexcept {
  Envelope* e = detail::make_envelope();
  e->msg.system = SystemKind::reply;
  e->msg.correlation_id = correlation_id;
  e->msg.status = static_cast<std::uint8_t>(status);
  e->msg.partial = partial && status == AskStatus::ok;
  if (status == AskStatus::ok) e->msg.payload = std::move(payload);
  return deliver(to, e);
}

}  // namespace swarm
