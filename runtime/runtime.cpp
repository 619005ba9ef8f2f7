// Runtime: construction, agent types, diagnostics. The rest by concern:
// delivery.cpp (sending, running agents), lifecycle.cpp (spawn, stop, exit),
// topics.cpp, timers.cpp, persistence.cpp, shutdown.cpp, ask.cpp (request and
// reply), flow_control.cpp (refusals, drops, room), names.cpp, and
// agent_actions.cpp (what an agent's handlers call).

#include "runtime/runtime.hpp"

#include <cctype>
#include <cstdio>
#include <stdexcept>

#include "runtime/detail/runtime_core.hpp"
#include "runtime/detail/scheduler.hpp"
#include "runtime/detail/telemetry.hpp"
#include "runtime/detail/timer_wheel.hpp"

namespace swarm {

namespace detail {
unsigned next_type_id() {
  static std::atomic<unsigned> next{0};
  return next.fetch_add(1, std::memory_order_relaxed);
}

std::string demangle(const char* mangled) { return readable_type_name(mangled); }
}  // namespace detail

// -- names ---

std::string_view to_string(ExitKind k) {
  switch (k) {
    case ExitKind::normal: return "normal";
    case ExitKind::shutdown: return "shutdown";
    case ExitKind::crashed: return "crashed";
    case ExitKind::killed: return "killed";
  }
  return "unknown";
}

std::string_view to_string(AskStatus s) {
  switch (s) {
    case AskStatus::ok: return "ok";
    case AskStatus::timeout: return "timeout";
    case AskStatus::dead_agent: return "dead_agent";
    case AskStatus::no_responder: return "no_responder";
    case AskStatus::mailbox_full: return "mailbox_full";
    case AskStatus::shutting_down: return "shutting_down";
    case AskStatus::expired: return "expired";
    case AskStatus::unreachable: return "unreachable";
  }
  return "unknown";
}

std::uint64_t RuntimeStats::dropped_total() const {
  std::uint64_t n = 0;
  for (auto d : dropped) n += d;
  return n;
}

std::uint64_t RuntimeStats::refused_total() const {
  std::uint64_t n = 0;
  for (auto r : refused) n += r;
  return n;
}

// -- construction ---

namespace {
const RuntimeConfig& validated(const RuntimeConfig& c) {
  if (auto r = c.validate(); !r) throw std::invalid_argument(r.error());
  return c;
}
}  // namespace

Runtime::Runtime(RuntimeConfig config)
    : config_(validated(config)), workers_(config_.workers), router_(config_.router) {
  link_ = std::make_shared<detail::RuntimeLink>();
  {
    MutexLock lock(link_->mu);
    link_->rt = this;
  }
  for (const std::string& pattern : config_.audit_topics) {
    if (auto r = router_.subscribe(pattern, {&audit_endpoint_, 0}); !r) {
      throw std::invalid_argument("runtime: audit_topics: '" + pattern + "': " + r.error());
    }
  }
  telemetry_ = std::make_unique<detail::Telemetry>(*this, config_.telemetry);
  timers_ = std::make_unique<detail::TimerWheel>(
      config_.timer_tick, [this](const detail::TimerEntry& t) { return fire_timer(t); }, telemetry_->timer_lag);
  scheduler_ = std::make_unique<detail::Scheduler>(*this, workers_);
  scheduler_->start();
  try {
    telemetry_->start();
  } catch (...) {  // the admin port could not be bound: undo the start
    shutdown(ShutdownPolicy::discard);
    throw;
  }
}

Runtime::~Runtime() { shutdown(ShutdownPolicy::drain); }

const AgentTypeInfo& Runtime::make_type_info(unsigned id, std::string name, bool has_on_start, std::size_t,
                                             std::size_t, void (*destroy)(Agent*, const AgentTypeInfo&),
                                             detail::ObjectPool* pool) {
  MutexLock lock(mu_);
  if (AgentTypeInfo* info = types_[id].load(std::memory_order_acquire)) return *info;
  auto info = std::make_unique<AgentTypeInfo>();
  info->mailbox = config_.default_mailbox;
  if (auto it = config_.mailbox_by_type.find(name); it != config_.mailbox_by_type.end()) {
    info->mailbox = it->second;
  } else {
    warn_near_miss_locked(name);
  }
  info->id = id;
  info->name = std::move(name);
  info->has_on_start = has_on_start;
  info->pool = pool;
  info->destroy = destroy;
  telemetry_->init_type(*info);
  types_[id].store(info.get(), std::memory_order_release);
  type_owner_.push_back(std::move(info));
  return *type_owner_.back();
}

// A mailbox_by_type key that is this type's name but for namespaces or case
// was surely meant for it: say so at its first spawn.
void Runtime::warn_near_miss_locked(const std::string& type_name) {
  auto lower = [](std::string_view v) {
    std::string out(v);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  const std::size_t colon = type_name.rfind("::", type_name.find('<'));
  const std::string_view unqualified =
      colon == std::string::npos ? std::string_view(type_name) : std::string_view(type_name).substr(colon + 2);
  for (const auto& [key, options] : config_.mailbox_by_type) {
    if (key == unqualified || lower(key) == lower(type_name) || lower(key) == lower(unqualified)) {
      std::fprintf(stderr,
                   "swarm: warning: RuntimeConfig::mailbox_by_type key \"%s\" does not match agent type \"%s\" "
                   "(type names are exact: namespaces included, \"(anonymous namespace)::\" left out); "
                   "its mailbox settings are not applied\n",
                   key.c_str(), type_name.c_str());
    }
  }
}

std::vector<std::string> Runtime::unmatched_type_keys() const {
  MutexLock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [key, options] : config_.mailbox_by_type) {
    bool matched = false;
    for (const auto& t : type_owner_) matched = matched || t->name == key;
    if (!matched) out.push_back(key);
  }
  return out;
}

std::uint64_t Runtime::spawn_clock() noexcept { return telemetry_->sample() ? detail::now_ns() : 0; }

// -- diagnostics ---

RuntimeStats Runtime::stats() const {
  RuntimeStats s;
  s.spawned = spawned_.load(std::memory_order_relaxed);
  s.exited = exited_.load(std::memory_order_relaxed);
  s.crashed = crashed_.load(std::memory_order_relaxed);
  s.restarts = restarts_.load(std::memory_order_relaxed);
  s.live = live_.load(std::memory_order_relaxed);
  for (unsigned i = 0; i < scheduler_->worker_count(); ++i) {
    const auto& w = scheduler_->stats(i);
    s.messages += w.messages.load(std::memory_order_relaxed);
    s.activations += w.activations.load(std::memory_order_relaxed);
    s.steals += w.steals.load(std::memory_order_relaxed);
    s.parks += w.parks.load(std::memory_order_relaxed);
  }
  for (int i = 0; i < kDropReasonCount; ++i) s.dropped[i] = drops_[i].load(std::memory_order_relaxed);
  for (int i = 0; i < kRefuseReasonCount; ++i) s.refused[i] = refusals_[i].load(std::memory_order_relaxed);
  return s;
}

metrics::Registry& Runtime::metrics() noexcept { return telemetry_->registry(); }
std::uint16_t Runtime::admin_port() const noexcept { return telemetry_->admin_port(); }
metrics::FoldedStacks Runtime::logical_profile() const { return telemetry_->logical_profile(); }

void Runtime::warn_unmatched_type_keys() const {
  const std::vector<std::string> keys = unmatched_type_keys();
  if (keys.empty()) return;
  std::string known;
  {
    MutexLock lock(mu_);
    for (const auto& t : type_owner_) known += (known.empty() ? "" : ", ") + t->name;
  }
  for (const std::string& key : keys) {
    std::fprintf(stderr,
                 "swarm: warning: RuntimeConfig::mailbox_by_type key \"%s\" matched no agent type spawned (types "
                 "spawned: %s)\n",
                 key.c_str(), known.empty() ? "none" : known.c_str());
  }
}

std::vector<CrashRecord> Runtime::recent_crashes() const {
  MutexLock lock(mu_);
  return {crashes_.begin(), crashes_.end()};
}

}  // namespace swarm
