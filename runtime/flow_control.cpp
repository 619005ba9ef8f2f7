// What happens to a message that is not delivered: refusals (the sender was
// told, nothing lost) and drops (accepted, then lost) are counted by reason and
// logged once per agent type and reason; and flow control, which tells a
// refused sender when its receiver has room again.

#include <cstdio>

#include "runtime/detail/runtime_core.hpp"

namespace swarm {

using detail::RuntimeCore;

std::string_view to_string(RefuseReason r) {
  switch (r) {
    case RefuseReason::mailbox_full: return "mailbox_full";
    case RefuseReason::dead_agent: return "dead_agent";
    case RefuseReason::shutting_down: return "shutting_down";
    case RefuseReason::expired: return "expired";
    case RefuseReason::unreachable: return "unreachable";
  }
  return "unknown";
}

namespace {
std::optional<RefuseReason> refuse_reason(SendResult r) noexcept {
  switch (r) {
    case SendResult::mailbox_full: return RefuseReason::mailbox_full;
    case SendResult::dead_agent: return RefuseReason::dead_agent;
    case SendResult::shutting_down: return RefuseReason::shutting_down;
    case SendResult::expired: return RefuseReason::expired;
    case SendResult::unreachable: return RefuseReason::unreachable;
    case SendResult::ok:
    case SendResult::dropped: break;
  }
  return std::nullopt;
}
constexpr unsigned kRefusalBit = 8;  // AgentTypeInfo::logged: drops in bits 0..7, refusals from 8
std::atomic<std::uint32_t> g_logged_untyped{0};  // reasons logged for receivers of no known type
}  // namespace

DropReason RuntimeCore::drop_reason(SendResult r) noexcept {
  switch (r) {
    case SendResult::mailbox_full:
    case SendResult::dropped: return DropReason::mailbox_full;
    case SendResult::shutting_down: return DropReason::shutting_down;
    case SendResult::expired: return DropReason::expired;
    case SendResult::unreachable: return DropReason::remote_unreachable;
    case SendResult::ok:
    case SendResult::dead_agent: break;
  }
  return DropReason::dead_agent;
}

void RuntimeCore::count_drop(DropReason r, AgentRef to) noexcept {
  drops_[static_cast<int>(r)].fetch_add(1, std::memory_order_relaxed);
  log_first(static_cast<unsigned>(r), to, "dropped");
}

void RuntimeCore::count_refusal(SendResult r, AgentRef to) noexcept {
  const auto reason = refuse_reason(r);
  if (!reason) return;
  refusals_[static_cast<int>(*reason)].fetch_add(1, std::memory_order_relaxed);
  log_first(kRefusalBit + static_cast<unsigned>(*reason), to, "refused");
}

// Off the hot path: only messages that were not delivered come here.
void RuntimeCore::log_first(unsigned bit, AgentRef to, std::string_view what) noexcept {
  const AgentTypeInfo* type = nullptr;
  if (to.valid() && to.local()) {
    if (const detail::Slot* slot = table_.find(to.index)) {
      type = types_[slot->type_id.load(std::memory_order_relaxed)].load(std::memory_order_acquire);
    }
  }
  std::atomic<std::uint32_t>& logged = type != nullptr ? type->logged : g_logged_untyped;
  const std::uint32_t mask = 1u << bit;
  if ((logged.load(std::memory_order_relaxed) & mask) != 0 || (logged.fetch_or(mask) & mask) != 0) return;
  const bool refused = bit >= kRefusalBit;
  const std::string_view reason = refused ? to_string(static_cast<RefuseReason>(bit - kRefusalBit))
                                          : to_string(static_cast<DropReason>(bit));
  std::string advice;
  if (reason == "mailbox_full" && type != nullptr) {
    advice = "its mailbox holds " + std::to_string(type->mailbox.capacity) + " (overflow " +
             std::string(to_string(type->mailbox.overflow)) + "): raise RuntimeConfig::mailbox_by_type[\"" + type->name +
             "\"].capacity, or slow the sender";
    if (refused) advice += " (notify_when_room / wait_for_room say when to retry)";
  } else if (reason == "expired") {
    advice = "the message's deadline (SendOptions::ttl) passed before a handler took it";
  } else if (reason == "no_subscriber") {
    advice = "nobody subscribes to its topic (RouterConfig::dead_letter_topic can keep such messages)";
  } else if (reason == "unreachable" || reason == "remote_unreachable") {
    advice = "its node is another process or machine, and none is attached";
  }
  std::fprintf(stderr, "swarm: messages to %s are %.*s: %.*s%s%s. Logged once per type and reason; "
               "swarm_messages_%.*s_total{reason=\"%.*s\"} counts every one.\n",
               type != nullptr ? type->name.c_str() : "agents", static_cast<int>(what.size()), what.data(),
               static_cast<int>(reason.size()), reason.data(), advice.empty() ? "" : "; ", advice.c_str(),
               static_cast<int>(what.size()), what.data(), static_cast<int>(reason.size()), reason.data());
}

// -- flow control ---

void Agent::notify_when_room(AgentRef to) { core_.rt->add_room_waiter(to, core_.self); }

// Flag, then check (both seq_cst), against activate()'s subtract, then check
// the flag: either the receiver sees the waiter, or the waiter sees the room.
void RuntimeCore::add_room_waiter(AgentRef receiver, AgentRef waiter) {
  detail::Slot* slot = receiver.local() && receiver.valid() ? table_.find(receiver.index) : nullptr;
  if (slot == nullptr) {
    deliver_system(waiter, SystemKind::room, receiver);  // gone or elsewhere: the next send says so
    return;
  }
  {
    MutexLock lock(room_mu_);
    room_waiters_[receiver.index].push_back(waiter);
    slot->room_waiters.store(true, std::memory_order_seq_cst);
  }
  const std::uint64_t c = slot->ctl.load(std::memory_order_seq_cst);
  const bool gone = detail::ctl::generation(c) != receiver.generation || (c & detail::ctl::kClosed) != 0;
  if (gone || detail::ctl::count(c) < slot->capacity.load(std::memory_order_relaxed)) tell_room(receiver);
}

void RuntimeCore::tell_room(AgentRef receiver) noexcept {
  std::vector<AgentRef> waiters;
  {
    MutexLock lock(room_mu_);
    auto it = room_waiters_.find(receiver.index);
    if (it == room_waiters_.end()) return;
    waiters.swap(it->second);
    room_waiters_.erase(it);
    if (detail::Slot* slot = table_.find(receiver.index)) slot->room_waiters.store(false, std::memory_order_seq_cst);
  }
  for (AgentRef w : waiters) deliver_system(w, SystemKind::room, receiver);
}

}  // namespace swarm
