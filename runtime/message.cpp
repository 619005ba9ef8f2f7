#include "runtime/message.hpp"

#include <cstdlib>

namespace swarm {

std::string to_string(AgentRef ref) {
  const std::string local = std::to_string(ref.index) + "." + std::to_string(ref.generation);
  if (ref.node == 0) return "<" + local + ">";
  if (ref.node == AgentRef::kCallerNode) return "<caller:" + std::to_string(ref.index) + ">";
  return "<" + std::to_string(ref.node) + ":" + local + ">";
}

std::string_view to_string(DropReason r) {
  switch (r) {
    case DropReason::mailbox_full: return "mailbox_full";
    case DropReason::no_subscriber: return "no_subscriber";
    case DropReason::dead_agent: return "dead_agent";
    case DropReason::expired: return "expired";
    case DropReason::remote_unreachable: return "remote_unreachable";
    case DropReason::shutting_down: return "shutting_down";
  }
  return "unknown";
}

std::string_view to_string(SendResult r) {
  switch (r) {
    case SendResult::ok: return "ok";
    case SendResult::mailbox_full: return "mailbox_full";
    case SendResult::dropped: return "dropped";
    case SendResult::dead_agent: return "dead_agent";
    case SendResult::shutting_down: return "shutting_down";
    case SendResult::expired: return "expired";
    case SendResult::unreachable: return "unreachable";
  }
  return "unknown";
}

}  // namespace swarm
