// Runtime: construction, agent types, diagnostics. The rest by concern:
// delivery.cpp (sending, running agents), lifecycle.cpp (spawn, stop, exit),
// topics.cpp, timers.cpp, persistence.cpp, shutdown.cpp, ask.cpp (request and
// reply), flow_control.cpp (refusals, drops, room), names.cpp, and
// agent_actions.cpp (what an agent's handlers call).


#include <cctype>
#include <cstdio>
#include <stdexcept>

#include "runtime/detail/runtime_core.hpp"
#include "runtime/detail/scheduler.hpp"
#include "runtime/detail/telemetry.hpp"
#include "runtime/detail/timer_wheel.hpp"

namespace swarm {

using detail::RuntimeCore;

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

RuntimeCore::RuntimeCore(Runtime& owner, RuntimeConfig config)
    : owner_(owner),
      config_(validated(config)),
      workers_(config_.step_mode ? 1 : config_.workers),
      router_(config_.router),
      step_mode_(config_.step_mode),
      clock_(config_.clock.get()),
      manual_clock_(step_mode_ ? dynamic_cast<test::ManualClock*>(config_.clock.get()) : nullptr) {
  link_ = std::make_shared<detail::RuntimeLink>();
  {
    MutexLock lock(link_->mu);
    link_->rt = this;
  }
  if (config_.state_store) watch_state_store();
  for (const std::string& pattern : config_.audit_topics) {
    if (auto r = router_.subscribe(pattern, {&audit_endpoint_, 0}); !r) {
      throw std::invalid_argument("runtime: audit_topics: '" + pattern + "': " + r.error());
    }
  }
  telemetry_ = std::make_unique<detail::Telemetry>(*this, config_.telemetry);
  timers_ = std::make_unique<detail::TimerWheel>(
      config_.timer_tick, [this](const detail::TimerEntry& t) { return fire_timer(t); }, telemetry_->timer_lag,
      clock_, step_mode_ ? detail::TimerWheel::Drive::manual : detail::TimerWheel::Drive::thread);
  scheduler_ = std::make_unique<detail::Scheduler>(*this, workers_, config_.idle_spin);
  if (!step_mode_) scheduler_->start();  // step mode: the caller's thread runs agents (run_once)
  try {
    telemetry_->start();
  } catch (...) {  // the admin port could not be bound: undo the start
    shutdown(ShutdownPolicy::discard);
    throw;
  }
}

// Runtime's destructor has shut down: the threads are joined.
RuntimeCore::~RuntimeCore() = default;

// -- agent types ---

const AgentTypeInfo& RuntimeCore::make_type_info(const AgentTypeSpec& spec) {
  const unsigned id = spec.id;
  std::string name = spec.name.empty() ? detail::demangle(spec.type->name()) : std::string(spec.name);
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
  info->has_on_start = spec.has_on_start;
  info->align = spec.align;
  info->pool = config_.pooling ? &detail::pool_for_type(id, spec.size, spec.align) : nullptr;
  info->destroy = spec.destroy;
  telemetry_->init_type(*info);
  types_[id].store(info.get(), std::memory_order_release);
  type_owner_.push_back(std::move(info));
  return *type_owner_.back();
}

// A mailbox_by_type key that is this type's name but for namespaces or case
// was surely meant for it: say so at its first spawn.
void RuntimeCore::warn_near_miss_locked(const std::string& type_name) {
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

std::vector<std::string> RuntimeCore::unmatched_type_keys() const {
  MutexLock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [key, options] : config_.mailbox_by_type) {
    bool matched = false;
    for (const auto& t : type_owner_) matched = matched || t->name == key;
    if (!matched) out.push_back(key);
  }
  return out;
}

// -- diagnostics ---

const std::string* RuntimeCore::type_name(unsigned id) const noexcept {
  if (id >= kMaxAgentTypes) return nullptr;
  const AgentTypeInfo* info = types_[id].load(std::memory_order_acquire);  // never freed
  return info != nullptr ? &info->name : nullptr;
}

std::size_t RuntimeCore::pending_timers() const { return timers_->pending(); }

RuntimeStats RuntimeCore::stats() const {
  RuntimeStats s;
  s.spawned = spawned_.load(std::memory_order_relaxed);
  s.exited = exited_.load(std::memory_order_relaxed);
  s.crashed = crashed_.load(std::memory_order_relaxed);
  s.restarts = restarts_.load(std::memory_order_relaxed);
  s.supervisors_gave_up = supervisors_gave_up_.load(std::memory_order_relaxed);
  s.restores_failed = restores_failed_.load(std::memory_order_relaxed);
  s.live = live_.load(std::memory_order_relaxed);
  for (unsigned i = 0; i < scheduler_->worker_count(); ++i) {
    const auto& w = scheduler_->stats(i);
    s.messages += w.messages.load(std::memory_order_relaxed);
    s.activations += w.activations.load(std::memory_order_relaxed);
    s.steals += w.steals.load(std::memory_order_relaxed);
    s.parks += w.parks.load(std::memory_order_relaxed);
    s.spin_ns += w.spin_ns.load(std::memory_order_relaxed);
    s.shared_parts += w.shared_parts.load(std::memory_order_relaxed);
  }
  for (int i = 0; i < kDropReasonCount; ++i) s.dropped[i] = drops_[i].load(std::memory_order_relaxed);
  for (int i = 0; i < kRefuseReasonCount; ++i) s.refused[i] = refusals_[i].load(std::memory_order_relaxed);
  return s;
}

metrics::Registry& RuntimeCore::metrics() noexcept { return telemetry_->registry(); }
std::uint16_t RuntimeCore::admin_port() const noexcept { return telemetry_->admin_port(); }
metrics::AdminServer* RuntimeCore::admin() noexcept { return telemetry_->admin(); }
void RuntimeCore::set_debug_page(std::string path, std::function<std::string()> render) {
  telemetry_->set_debug_page(std::move(path), std::move(render));
}
void RuntimeCore::remove_debug_page(const std::string& path) { telemetry_->remove_debug_page(path); }
metrics::FoldedStacks RuntimeCore::logical_profile() const { return telemetry_->logical_profile(); }

void RuntimeCore::warn_unmatched_type_keys() const {
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

void RuntimeCore::note_supervisor_gave_up(AgentRef supervisor, const std::string& why) {
  supervisors_gave_up_.fetch_add(1, std::memory_order_relaxed);
  std::fprintf(stderr, "swarm: root supervisor %s gave up and its tree is gone: %s\n", to_string(supervisor).c_str(),
               why.c_str());
  MutexLock lock(mu_);
  if (gave_up_.empty()) gave_up_ = "root supervisor " + to_string(supervisor) + " gave up: " + why;
}

Result<void> RuntimeCore::supervision() const {
  MutexLock lock(mu_);
  if (gave_up_.empty()) return {};
  return unexpected(gave_up_);
}

std::vector<CrashRecord> RuntimeCore::recent_crashes() const {
  MutexLock lock(mu_);
  return {crashes_.begin(), crashes_.end()};
}

// -- Runtime: the API, forwarded to the core ---

namespace detail {
RuntimeCore& core_of(Runtime& rt) noexcept { return *rt.core_; }
}  // namespace detail

Runtime::Runtime(RuntimeConfig config) : core_(std::make_unique<RuntimeCore>(*this, std::move(config))) {}
Runtime::~Runtime() { core_->shutdown(ShutdownPolicy::drain); }

bool Runtime::stop(AgentRef agent) noexcept { return core_->stop(agent); }
bool Runtime::kill(AgentRef agent) noexcept { return core_->kill(agent); }
bool Runtime::alive(AgentRef agent) const noexcept { return core_->alive(agent); }

SendResult Runtime::send(AgentRef to, Payload payload, const SendOptions& options) noexcept {
  return core_->send(to, std::move(payload), options);
}
std::future<Reply> Runtime::ask(AgentRef to, Payload payload, std::chrono::nanoseconds timeout, std::uint32_t kind) {
  return core_->ask(to, std::move(payload), timeout, kind);
}
std::future<Reply> Runtime::request(std::string_view topic, Payload payload, std::chrono::nanoseconds timeout,
                                    std::uint32_t kind) {
  return core_->request(topic, std::move(payload), timeout, kind);
}
bool Runtime::wait_for_room(AgentRef to, std::chrono::milliseconds timeout) { return core_->wait_for_room(to, timeout); }

Result<void> Runtime::register_name(AgentRef agent, std::string_view name) { return core_->register_name(agent, name); }
bool Runtime::unregister_name(std::string_view name) { return core_->unregister_name(name); }
bool Runtime::unregister_name(std::string_view name, AgentRef holder) { return core_->unregister_name(name, holder); }
AgentRef Runtime::whereis(std::string_view name) const { return core_->whereis(name); }

std::uint32_t Runtime::attach_node(RemoteNode& node) { return core_->attach_node(node); }
void Runtime::detach_node(std::uint32_t node) noexcept { core_->detach_node(node); }
SendResult Runtime::forward(AgentRef to, Payload payload, const ForwardOptions& options) noexcept {
  return core_->forward(to, std::move(payload), options);
}
router::PublishResult Runtime::forward_publish(router::TopicId topic, const Payload& payload,
                                               const ForwardOptions& options) noexcept {
  return core_->forward_publish(topic, payload, options);
}
SendResult Runtime::forward_reply(AgentRef to, std::uint64_t correlation_id, AskStatus status, bool partial,
                                  Payload payload) noexcept {
  return core_->forward_reply(to, correlation_id, status, partial, std::move(payload));
}

void Runtime::set_name_directory(NameDirectory* directory) { core_->set_name_directory(directory); }

router::Router& Runtime::router() noexcept { return core_->router(); }
Result<router::SubscriptionId> Runtime::subscribe(AgentRef agent, std::string_view pattern,
                                                  std::string_view queue_group) {
  return core_->subscribe(agent, pattern, queue_group);
}
bool Runtime::unsubscribe(router::SubscriptionId id) { return core_->unsubscribe(id); }
router::PublishResult Runtime::publish(router::TopicId topic, const Payload& payload, std::uint32_t kind) noexcept {
  return core_->publish(topic, payload, kind);
}
Result<router::PublishResult> Runtime::publish(std::string_view topic, const Payload& payload, std::uint32_t kind) {
  return core_->publish(topic, payload, kind);
}

TimerId Runtime::send_after(AgentRef to, std::chrono::nanoseconds delay, Payload payload, std::uint32_t kind) {
  return core_->send_after(to, delay, std::move(payload), kind);
}
TimerId Runtime::send_periodic(AgentRef to, std::chrono::nanoseconds interval, Payload payload, std::uint32_t kind) {
  return core_->send_periodic(to, interval, std::move(payload), kind);
}
bool Runtime::cancel_timer(TimerId id) { return core_->cancel_timer(id); }

void Runtime::shutdown(ShutdownPolicy policy) { core_->shutdown(policy); }
bool Runtime::stopping() const noexcept { return core_->stopping(); }
bool Runtime::wait_idle(std::chrono::milliseconds timeout) const { return core_->wait_idle(timeout); }

const RuntimeConfig& Runtime::config() const noexcept { return core_->config(); }
unsigned Runtime::worker_count() const noexcept { return core_->worker_count(); }
RuntimeStats Runtime::stats() const { return core_->stats(); }
std::vector<CrashRecord> Runtime::recent_crashes() const { return core_->recent_crashes(); }
std::vector<std::string> Runtime::unmatched_type_keys() const { return core_->unmatched_type_keys(); }

metrics::Registry& Runtime::metrics() noexcept { return core_->metrics(); }
std::uint16_t Runtime::admin_port() const noexcept { return core_->admin_port(); }
metrics::AdminServer* Runtime::admin() noexcept { return core_->admin(); }
void Runtime::set_debug_page(std::string path, std::function<std::string()> render) {
  core_->set_debug_page(std::move(path), std::move(render));
}
void Runtime::remove_debug_page(const std::string& path) { core_->remove_debug_page(path); }
metrics::FoldedStacks Runtime::logical_profile() const { return core_->logical_profile(); }
void Runtime::note_restart() noexcept { core_->note_restart(); }
void Runtime::note_supervisor_gave_up(AgentRef supervisor, const std::string& why) {
  core_->note_supervisor_gave_up(supervisor, why);
}

}  // namespace swarm
