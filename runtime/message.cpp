#include "runtime/message.hpp"

#include <cstdlib>

namespace swarm {

std::string to_string(AgentRef ref) {
  return "<" + std::to_string(ref.index) + "." + std::to_string(ref.generation) + ">";
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
  }
  return "unknown";
}

Payload::Payload(std::span<const std::byte> bytes) {
  if (bytes.size() <= kInlineBytes) {
    if (!bytes.empty()) std::memcpy(storage_, bytes.data(), bytes.size());
    size_ = static_cast<std::uint8_t>(bytes.size());
    return;
  }
  SWARM_CHECK(bytes.size() <= UINT32_MAX);
  void* mem = ::operator new(sizeof(detail::SharedBuffer) + bytes.size());
  auto* buf = new (mem) detail::SharedBuffer{{1}, static_cast<std::uint32_t>(bytes.size())};
  std::memcpy(buf->data(), bytes.data(), bytes.size());
  std::memcpy(storage_, &buf, sizeof(buf));
  size_ = kHeapTag;
}

Payload::Payload(const Payload& other) noexcept {
  std::memcpy(storage_, other.storage_, kInlineBytes);
  size_ = other.size_;
  if (heap_tagged()) heap()->refs.fetch_add(1, std::memory_order_relaxed);
}

Payload::Payload(Payload&& other) noexcept {
  std::memcpy(storage_, other.storage_, kInlineBytes);
  size_ = other.size_;
  other.size_ = 0;
}

Payload& Payload::operator=(Payload other) noexcept {
  release();
  std::memcpy(storage_, other.storage_, kInlineBytes);
  size_ = other.size_;
  other.size_ = 0;
  return *this;
}

void Payload::release() noexcept {
  if (heap_tagged() && heap()->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    heap()->~SharedBuffer();
    ::operator delete(heap());
  }
  size_ = 0;
}

}  // namespace swarm
