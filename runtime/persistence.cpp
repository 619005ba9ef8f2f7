// Persistent agents (Agent::persist_as): the state is loaded off the workers
// before the agent runs (user messages that arrive meanwhile are held), and
// snapshots are written behind after activations that marked it dirty.

#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "runtime/detail/runtime_core.hpp"

namespace swarm {

using detail::RuntimeCore;

using detail::Envelope;

namespace {
enum RestoreStatus : std::uint8_t { kRestoreFound, kRestoreNone, kRestoreFailed };
}  // namespace

void RuntimeCore::load_state(AgentRef agent, std::string key) {
  config_.state_store->load(std::move(key), [link = link_, agent](Result<std::optional<StoredState>> r) {
    // Found: the version (8 bytes) then the state; failed: the error text.
    Payload payload;
    RestoreStatus status = kRestoreNone;
    if (!r) {
      status = kRestoreFailed;
      payload = Payload(std::string_view(r.error()));
    } else if (*r) {
      status = kRestoreFound;
      std::string bytes(sizeof(std::uint64_t) + (*r)->data.size(), '\0');
      std::memcpy(bytes.data(), &(*r)->version, sizeof(std::uint64_t));
      std::memcpy(bytes.data() + sizeof(std::uint64_t), (*r)->data.data(), (*r)->data.size());
      payload = Payload(std::string_view(bytes), ContentType::octet_stream);
    }
    MutexLock lock(link->mu);
    if (link->rt != nullptr) link->rt->deliver_system(agent, SystemKind::restore, {}, std::move(payload), status);
  });
}

void RuntimeCore::hold(Agent* agent, Envelope* e) noexcept {
  auto& held = agent->core_.extras->held;
  if (held.size() >= agent->core_.type->mailbox.capacity) {
    drop_undelivered(e, DropReason::mailbox_full, agent->core_.self);
    return;
  }
  held.push_back(e);
}

// Runs inside dispatch(): what throws here crashes the agent.
void RuntimeCore::finish_restore(Agent* agent, Message& m) {
  detail::AgentCore& core = agent->core_;
  core.restoring = false;
  if (m.kind == kRestoreFailed) throw std::runtime_error("state restore failed: " + std::string(m.payload.text()));
  if (m.kind == kRestoreFound) {
    std::uint64_t version = 0;
    std::memcpy(&version, m.payload.bytes().data(), sizeof(version));
    core.extras->state_version = version;
    agent->restore(m.payload.text().substr(sizeof(version)), version);
  }
  if (core.type->has_on_start) agent->on_start();
  std::vector<detail::Node*> held;
  held.swap(core.extras->held);
  for (detail::Node* n : held) {
    auto* e = static_cast<Envelope*>(n);
    if (core.exiting) {
      drop_undelivered(e, DropReason::dead_agent, core.self);
    } else {
      dispatch(agent, e);
    }
  }
}

void RuntimeCore::save_state(Agent* agent) noexcept {
  detail::AgentCore& core = agent->core_;
  core.dirty = false;
  if (!core.extras || core.extras->state_key.empty() || core.restoring) return;  // not persistent, or not loaded yet
  try {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    config_.state_store->put(core.extras->state_key,
                             {agent->snapshot(), ++core.extras->state_version,
                              std::chrono::duration_cast<std::chrono::milliseconds>(now).count()});
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "swarm: %s %s: snapshot threw: %s\n", core.type->name.c_str(), to_string(core.self).c_str(),
                 ex.what());
    begin_exit(agent, {ExitKind::crashed, std::string("snapshot threw: ") + ex.what()});
  } catch (...) {
    begin_exit(agent, {ExitKind::crashed, "snapshot threw"});
  }
}

// A store whose server lost what it acknowledged (a Redis restarted empty)
// says so; every live agent is then asked to snapshot again, on its own
// worker (agents that do not persist ignore the request).
void RuntimeCore::watch_state_store() {
  config_.state_store->on_written_state_lost([link = link_] {
    MutexLock lock(link->mu);
    if (link->rt != nullptr) link->rt->snapshot_all();
  });
}

void RuntimeCore::snapshot_all() noexcept {
  std::size_t asked = 0;
  table_.for_each_open([&](Agent*, AgentRef ref) { asked += deliver_system(ref, SystemKind::snapshot) ? 1 : 0; });
  std::fprintf(stderr, "swarm: the state store lost what it wrote: %zu live agents asked to store their state again\n",
               asked);
}

}  // namespace swarm
