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
    restore_or_skip(agent, m.payload.text().substr(sizeof(version)), version);
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

// A state restore() throws on would throw on every restart: the first time,
// the bytes are kept under "<key>.unreadable.<unix ms>", the agent crashes with
// the reason, and its restart starts fresh (restore() is skipped for that
// version). Nothing is deleted and the supervisor sees one crash, not a loop.
void RuntimeCore::restore_or_skip(Agent* agent, std::string_view state, std::uint64_t version) {
  const std::string& key = agent->core_.extras->state_key;
  {
    MutexLock lock(mu_);
    if (auto it = unrestorable_.find(key); it != unrestorable_.end() && it->second == version) {
      unrestorable_.erase(it);
      return;  // starts fresh; the next snapshot is version + 1
    }
  }
  std::string why;
  try {
    agent->restore(state, version);
    return;
  } catch (const std::exception& ex) {
    why = ex.what();
  } catch (...) {
    why = "unknown exception";
  }
  const std::int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::string aside = key + ".unreadable." + std::to_string(now_ms);
  config_.state_store->put(aside, {std::string(state), version, now_ms});
  restores_failed_.fetch_add(1, std::memory_order_relaxed);
  {
    MutexLock lock(mu_);
    unrestorable_[key] = version;
  }
  std::fprintf(stderr,
               "swarm: %s %s: restore() threw on the stored state of '%s' (version %llu): %s; kept as '%s', the "
               "agent restarts from a fresh state\n",
               agent->core_.type->name.c_str(), to_string(agent->core_.self).c_str(), key.c_str(),
               static_cast<unsigned long long>(version), why.c_str(), aside.c_str());
  throw std::runtime_error("state restore failed: restore() threw on '" + key + "' version " +
                           std::to_string(version) + ": " + why);
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
