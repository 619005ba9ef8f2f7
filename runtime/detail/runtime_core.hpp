#pragma once
// What the runtime's own .cpp files share (runtime.cpp, delivery.cpp,
// lifecycle.cpp, ...): not included outside runtime/.

#include "base/mutex.hpp"
#include "runtime/runtime.hpp"

namespace swarm::detail {

// Lets a storage thread answer a load after the runtime is gone.
struct RuntimeLink {
  Mutex mu;
  Runtime* rt SWARM_GUARDED_BY(mu) = nullptr;
};

// Child-exit notices (SystemKind::child_exit) carry the child, the exit kind
// and the detail text; made by finish_exit, read by dispatch (lifecycle.cpp).
Payload encode_child_exit(AgentRef child, const ExitReason& r);
void decode_child_exit(const Payload& p, AgentRef& child, ExitReason& r);

}  // namespace swarm::detail
