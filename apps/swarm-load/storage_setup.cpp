// The scenario's storage choice, applied to a RuntimeConfig.

#include <memory>

#include "apps/swarm-load/driver.hpp"
#include "storage/journal.hpp"
#include "storage/state_store.hpp"

namespace swarm::load {

Result<void> configure_storage(const Scenario& s, RuntimeConfig& config) {
  switch (s.storage) {
    case StorageKind::none:
      return {};
    case StorageKind::memory:
      config.state_store = storage::make_memory_state_store();
      config.lifecycle = storage::make_memory_journal();
      return {};
    case StorageKind::redis: {
      auto store = storage::make_redis_state_store({.url = s.redis});
      if (!store) return unexpected(store.error());
      config.state_store = std::move(*store);
      config.lifecycle = storage::make_memory_journal();
      return {};
    }
    case StorageKind::postgres: {
      auto journal = storage::make_postgres_journal({.dsn = s.postgres});
      if (!journal) return unexpected(journal.error());
      config.state_store = storage::make_memory_state_store();
      config.lifecycle = std::move(*journal);
      config.audit_topics = {"load.>"};  // every published message of the scenario goes to the journal
      return {};
    }
  }
  return {};
}

}  // namespace swarm::load
