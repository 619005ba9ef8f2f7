#pragma once
// RuntimeView: the reads of a runtime that its telemetry needs (scrapes,
// /debug pages, the watchdog), so telemetry depends on this much of the
// runtime and not on its internals.

#include <cstddef>
#include <string>

#include "router/router.hpp"
#include "runtime/config.hpp"

namespace swarm {
struct RuntimeStats;
}  // namespace swarm

namespace swarm::detail {

class AgentTable;
class Scheduler;

/// What telemetry reads of the runtime, and nothing more (RuntimeCore
/// implements it). Every member is thread-safe; figures are racy snapshots.
class RuntimeView {
 public:
  virtual ~RuntimeView() = default;

  virtual const RuntimeConfig& config() const noexcept = 0;
  virtual bool stopping() const noexcept = 0;
  virtual RuntimeStats stats() const = 0;
  /// The workers: counters, run queues, the agent each one runs.
  virtual const Scheduler& scheduler() const noexcept = 0;
  /// The agent table, for scans.
  virtual const AgentTable& agents() const noexcept = 0;
  /// The name of agent type `id`; nullptr if no such type was spawned.
  virtual const std::string* type_name(unsigned id) const noexcept = 0;
  virtual const router::Router& router() const noexcept = 0;
  virtual std::size_t pending_timers() const = 0;
  /// OK, or which root supervisor gave up and why.
  virtual Result<void> supervision() const = 0;
};

}  // namespace swarm::detail
