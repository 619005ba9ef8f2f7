#include "runtime/detail/telemetry.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <queue>

#include "metrics/admin_server.hpp"
#include "runtime/detail/scheduler.hpp"
#include "runtime/detail/timer_wheel.hpp"
#include "runtime/detail/agent_table.hpp"
#include "runtime/detail/agent_type.hpp"
#include "runtime/runtime.hpp"

namespace swarm::detail {

namespace {

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

constexpr const char* kStates[] = {"idle", "queued", "running"};

}  // namespace

// -- construction ---

Telemetry::Telemetry(const RuntimeView& rt, const TelemetryConfig& config)
    : rt_(rt),
      config_(config),
      on_(config.enabled),
      sample_every_(config.sample_every),
      started_ns_(now_ns()),
      registry_({.max_series = config.max_series}),
      logical_(new LogicalShard[rt.config().workers]) {
  paths_.emplace_back(0, 0);  // path 0: the root (no supervisor)
  if (!on_) return;
  queueing_delay_ = registry_.histogram("swarm_queueing_delay_seconds",
                                        "Time from enqueue to handler start (sampled 1 in sample_every messages).");
  spawn_time = registry_.histogram("swarm_spawn_duration_seconds", "Time to construct and register an agent (sampled).");
  ask_time = registry_.histogram("swarm_ask_duration_seconds", "Round trip of asks and requests that got a reply.");
  fanout_time = registry_.histogram("swarm_publish_fanout_seconds",
                                    "Time for one publish to reach every subscriber's mailbox (sampled).");
  timer_lag = registry_.histogram("swarm_timer_lag_seconds", "How late timers fire after their due time.");
  timer_undeliverable = registry_.counter("swarm_timer_undeliverable_total",
                                          "Timers that fired at an agent that was gone or whose mailbox was full.");
}

Telemetry::~Telemetry() { stop(); }

void Telemetry::start() {
  callback_id_ = registry_.add_callback([this](metrics::Collector& c) { collect(c); });
  if (on_ && config_.slow_handler_threshold.count() > 0) watchdog_ = std::thread([this] { watch(); });
  if (!config_.admin.empty()) {
    auto address = metrics::parse_admin_address(config_.admin);
    admin_ = std::make_unique<metrics::AdminServer>(registry_, *address);
    const std::size_t top = std::max<std::size_t>(config_.slow_consumers, 1);
    admin_->add_page("/debug/agents", [this, top](const metrics::AdminRequest& r) {
      std::size_t n = top;
      if (auto v = r.param("top"); !v.empty()) n = std::clamp<std::size_t>(std::strtoul(v.c_str(), nullptr, 10), 1, 1000);
      return metrics::AdminResponse{200, "application/json", agents_json(n)};
    });
    admin_->add_page("/debug/topics", [this](const metrics::AdminRequest& r) {
      std::size_t n = 20;
      if (auto v = r.param("top"); !v.empty()) n = std::clamp<std::size_t>(std::strtoul(v.c_str(), nullptr, 10), 1, 10000);
      return metrics::AdminResponse{200, "application/json", topics_json(n)};
    });
    admin_->add_readiness_check("runtime", [this]() -> Result<void> {
      if (rt_.stopping()) return unexpected(std::string("shutting down"));
      return rt_.supervision();
    });
    if (auto store = rt_.config().state_store) {
      admin_->add_readiness_check("state_store", [store] { return store->ready(); });
    }
    if (auto sink = rt_.config().lifecycle) {
      admin_->add_readiness_check("journal", [sink] { return sink->ready(); });
    }
    admin_->set_logical_profile([this] { return logical_profile(); });
    admin_->start();
  }
}

void Telemetry::stop() {
  if (admin_) admin_->stop();
  {
    std::lock_guard lock(watch_mu_);
    watch_stop_ = true;
  }
  watch_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  if (callback_id_ != 0) {
    registry_.remove_callback(callback_id_);
    callback_id_ = 0;
  }
}

std::uint16_t Telemetry::admin_port() const noexcept { return admin_ ? admin_->port() : 0; }

void Telemetry::set_debug_page(std::string path, std::function<std::string()> render) {
  if (!admin_) return;
  admin_->set_dynamic_page(std::move(path), [render = std::move(render)](const metrics::AdminRequest&) {
    return metrics::AdminResponse{200, "application/json", render()};
  });
}

void Telemetry::remove_debug_page(const std::string& path) {
  if (admin_) admin_->remove_dynamic_page(path);
}

void Telemetry::init_type(AgentTypeInfo& type) {
  if (!on_) return;
  MutexLock lock(paths_mu_);
  // Two C++ types may share a type name (kTypeName): they share its series.
  auto [it, added] = type_series_.try_emplace(type.name);
  if (added) {
    try {
      it->second.first = registry_.histogram("swarm_handler_duration_seconds",
                                             "Handler run time by agent type (sampled).", {{"type", type.name}});
      it->second.second = registry_.counter("swarm_agent_crashes_total",
                                            "Agents that exited abnormally (crashed or killed).", {{"type", type.name}});
    } catch (const std::exception& e) {  // out of metric slots: the type runs, unmeasured
      std::fprintf(stderr, "swarm: no metrics for agent type %s: %s\n", type.name.c_str(), e.what());
    }
  }
  type.handler_time = it->second.first;
  type.crashes = it->second.second;
}

std::uint32_t Telemetry::child_path(std::uint32_t parent_path, unsigned parent_type) {
  const std::uint64_t key = (std::uint64_t{parent_path} << 32) | parent_type;
  MutexLock lock(paths_mu_);
  if (auto it = path_ids_.find(key); it != path_ids_.end()) return it->second;
  if (paths_.size() >= kMaxPaths) return 0;  // bounded: deeper novelty folds into the root
  const auto id = static_cast<std::uint32_t>(paths_.size());
  paths_.emplace_back(parent_path, parent_type);
  path_ids_.emplace(key, id);
  return id;
}

// -- hot path (sampled) ---

void Telemetry::record_handler(Slot& slot, const AgentTypeInfo& type, unsigned worker, std::uint32_t path,
                               std::uint32_t topic, std::uint64_t enqueued, std::uint64_t start,
                               std::uint64_t end) noexcept {
  const std::uint64_t delay = start > enqueued ? start - enqueued : 0;
  queueing_delay_.observe_ns(delay);
  // Moving average (1/4 weight to the new sample); the owner's worker alone writes.
  const auto us = static_cast<std::uint32_t>(std::min<std::uint64_t>(delay / 1000, 0xffffffffu));
  const std::uint32_t old = slot.queueing_delay_us.load(std::memory_order_relaxed);
  slot.queueing_delay_us.store(old == 0 ? us : old - old / 4 + us / 4, std::memory_order_relaxed);
  type.handler_time.observe_ns(end - start);

  const std::uint64_t key = (std::uint64_t{path} << 42) | (std::uint64_t{type.id} << 32) | topic;
  const std::uint64_t ns = (end - start) * sample_every_;
  LogicalShard& shard = logical_[worker];
  // A full neighbourhood folds the topic into "(other topics)"; past that the sample is lost.
  if (!shard.add(key, ns)) (void)shard.add((key & ~std::uint64_t{0xffffffff}) | kOtherTopics, ns);
}

bool Telemetry::LogicalShard::add(std::uint64_t key, std::uint64_t ns) noexcept {
  const std::uint64_t tagged = key | kUsed;
  std::uint64_t h = key * 0x9e3779b97f4a7c15ull;
  for (std::uint32_t probe = 0; probe < kMaxProbe; ++probe) {
    Entry& e = entries[(h >> 52) & (kSlots - 1)];
    h += 0x9e3779b97f4a7c15ull;
    std::uint64_t k = e.key.load(std::memory_order_relaxed);
    if (k == 0) {
      e.key.store(tagged, std::memory_order_release);
      k = tagged;
    }
    if (k == tagged) {
      e.ns.store(e.ns.load(std::memory_order_relaxed) + ns, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

// -- scans ---

AgentScan Telemetry::scan(std::size_t top) const {
  AgentScan out;
  out.by_type.resize(kMaxAgentTypes);
  // Agents in a handler right now (odd sequence: inside).
  std::vector<std::uint64_t> running;
  for (unsigned w = 0; w < rt_.scheduler().worker_count(); ++w) {
    const Worker& worker = rt_.scheduler().worker(w);
    if (worker.stats.parked_since.load(std::memory_order_relaxed) == 0) {
      running.push_back(worker.running_agent.load(std::memory_order_relaxed));
    }
  }
  auto by_depth = [](const AgentSample& a, const AgentSample& b) { return a.depth > b.depth; };
  auto by_delay = [](const AgentSample& a, const AgentSample& b) { return a.delay_us > b.delay_us; };
  std::priority_queue<AgentSample, std::vector<AgentSample>, decltype(by_depth)> deepest(by_depth);
  std::priority_queue<AgentSample, std::vector<AgentSample>, decltype(by_delay)> slowest(by_delay);

  const std::uint32_t n = rt_.agents().high_water();
  for (std::uint32_t i = 0; i < n; ++i) {
    const Slot* s = rt_.agents().find(i);
    if (s == nullptr) continue;
    const std::uint64_t c = s->ctl.load(std::memory_order_acquire);
    if ((c & ctl::kClosed) != 0) continue;
    AgentSample a;
    a.ref = AgentRef{i, ctl::generation(c)};
    a.type = s->type_id.load(std::memory_order_relaxed);
    const std::uint32_t reserved = ctl::count(c);
    a.depth = reserved - std::min(reserved, s->handled.load(std::memory_order_relaxed));
    a.capacity = s->capacity.load(std::memory_order_relaxed);
    a.delay_us = s->queueing_delay_us.load(std::memory_order_relaxed);
    auto& t = out.by_type[a.type];
    if (std::find(running.begin(), running.end(), a.ref.bits()) != running.end()) {
      ++t.running;
      if (a.depth > 0) --a.depth;  // the message in the handler is no longer waiting
    } else if (a.depth > 0) {
      ++t.queued;
    } else {
      ++t.idle;
    }
    out.messages += a.depth;
    if (a.depth > 0) ++out.backlogged;
    if (a.capacity > 0) out.max_fill = std::max(out.max_fill, static_cast<double>(a.depth) / a.capacity);
    if (top == 0) continue;
    if (a.depth > 0 && (deepest.size() < top || a.depth > deepest.top().depth)) {
      deepest.push(a);
      if (deepest.size() > top) deepest.pop();
    }
    if (a.delay_us > 0 && (slowest.size() < top || a.delay_us > slowest.top().delay_us)) {
      slowest.push(a);
      if (slowest.size() > top) slowest.pop();
    }
  }
  for (; !deepest.empty(); deepest.pop()) out.deepest.push_back(deepest.top());
  for (; !slowest.empty(); slowest.pop()) out.slowest.push_back(slowest.top());
  std::reverse(out.deepest.begin(), out.deepest.end());
  std::reverse(out.slowest.begin(), out.slowest.end());
  return out;
}

std::string Telemetry::type_name(unsigned id) const {
  if (const std::string* name = rt_.type_name(id)) return *name;
  return "unknown";
}

std::string Telemetry::agent_label(const AgentSample& a) const { return to_string(a.ref); }

metrics::FoldedStacks Telemetry::logical_profile() const {
  std::unordered_map<std::uint64_t, std::uint64_t> merged;
  for (unsigned w = 0; w < rt_.scheduler().worker_count(); ++w) {
    const LogicalShard& shard = logical_[w];
    for (std::uint32_t i = 0; i < LogicalShard::kSlots; ++i) {
      const std::uint64_t k = shard.entries[i].key.load(std::memory_order_acquire);
      if (k != 0) merged[k & ~LogicalShard::kUsed] += shard.entries[i].ns.load(std::memory_order_relaxed);
    }
  }
  std::vector<std::pair<std::uint32_t, unsigned>> paths;
  {
    MutexLock lock(paths_mu_);
    paths = paths_;
  }
  metrics::FoldedStacks out;
  for (const auto& [key, ns] : merged) {
    const auto path = static_cast<std::uint32_t>(key >> 42);
    const auto type = static_cast<unsigned>((key >> 32) & 0x3ff);
    const auto topic = static_cast<std::uint32_t>(key);
    std::vector<std::string> names;  // leaf first while walking up
    names.push_back(topic == kNoTopic       ? "(direct)"
                    : topic == kOtherTopics ? "(other topics)"
                                            : std::string(rt_.router().topic_name(topic)));
    names.push_back(type_name(type));
    for (std::uint32_t p = path; p != 0 && p < paths.size(); p = paths[p].first) {
      names.push_back(type_name(paths[p].second));
    }
    names.push_back("swarm");
    std::vector<std::string_view> frames(names.rbegin(), names.rend());
    out.add_frames(frames, ns);
  }
  return out;
}

std::string Telemetry::agents_json(std::size_t top) const {
  AgentScan s = scan(top);
  std::string out = "{\"live\":" + std::to_string(rt_.stats().live) +
                    ",\"queued_messages\":" + std::to_string(s.messages) +
                    ",\"backlogged_agents\":" + std::to_string(s.backlogged) + ",\"by_type\":[";
  bool first = true;
  for (unsigned t = 0; t < s.by_type.size(); ++t) {
    const auto& b = s.by_type[t];
    if (b.idle + b.queued + b.running == 0) continue;
    out += std::string(first ? "" : ",") + "{\"type\":" + json_string(type_name(t)) +
           ",\"idle\":" + std::to_string(b.idle) + ",\"queued\":" + std::to_string(b.queued) +
           ",\"running\":" + std::to_string(b.running) + "}";
    first = false;
  }
  auto list = [&](const char* name, const std::vector<AgentSample>& v) {
    out += std::string("],\"") + name + "\":[";
    for (std::size_t i = 0; i < v.size(); ++i) {
      const AgentSample& a = v[i];
      out += std::string(i ? "," : "") + "{\"agent\":" + json_string(to_string(a.ref)) +
             ",\"type\":" + json_string(type_name(a.type)) + ",\"mailbox_depth\":" + std::to_string(a.depth) +
             ",\"mailbox_capacity\":" + std::to_string(a.capacity) +
             ",\"queueing_delay_seconds\":" + std::to_string(a.delay_us * 1e-6) + "}";
    }
  };
  list("deepest_mailboxes", s.deepest);
  list("slowest_consumers", s.slowest);
  return out + "]}\n";
}

std::string Telemetry::topics_json(std::size_t top) const {
  const router::RouterStats st = rt_.router().stats();
  std::string out = "{\"topics\":" + std::to_string(st.topics) + ",\"subscriptions\":" +
                    std::to_string(st.subscriptions) + ",\"published\":" + std::to_string(st.published) +
                    ",\"delivered\":" + std::to_string(st.delivered) + ",\"dead_letters\":{";
  for (int r = 0; r < router::kDeadLetterReasons; ++r) {
    out += std::string(r ? "," : "") + json_string(router::to_string(static_cast<router::DeadLetter>(r))) + ":" +
           std::to_string(st.dead_letters[r]);
  }
  out += "},\"top_topics\":[";
  const auto topics = rt_.router().top_topics(top);
  for (std::size_t i = 0; i < topics.size(); ++i) {
    out += std::string(i ? "," : "") + "{\"topic\":" + json_string(topics[i].name) +
           ",\"subscribers\":" + std::to_string(topics[i].subscribers) +
           ",\"queue_groups\":" + std::to_string(topics[i].queue_groups) + "}";
  }
  return out + "]}\n";
}

// -- scrape ---

void Telemetry::collect(metrics::Collector& c) {
  const std::uint64_t now = now_ns();
  const Scheduler& sched = rt_.scheduler();
  const unsigned workers = sched.worker_count();
  c.gauge("swarm_uptime_seconds", "Seconds since the runtime started.", {}, (now - started_ns_) * 1e-9);
  c.gauge("swarm_workers", "Worker threads.", {}, workers);
  if (const auto& store = rt_.config().state_store) store->collect(c);
  if (const auto& sink = rt_.config().lifecycle) sink->collect(c);

  // Workers and run queues.
  busy_exported_.resize(workers, 0);
  std::uint64_t overflows = 0;
  for (unsigned w = 0; w < workers; ++w) {
    const WorkerStats& s = sched.stats(w);
    const metrics::Labels l{{"worker", std::to_string(w)}};
    const std::uint64_t since = s.parked_since.load(std::memory_order_relaxed);
    const std::uint64_t parked = s.parked_ns.load(std::memory_order_relaxed) + (since != 0 && now > since ? now - since : 0);
    const double busy = static_cast<double>(now - started_ns_ - std::min(parked, now - started_ns_)) * 1e-9;
    busy_exported_[w] = std::max(busy_exported_[w], busy);  // the two reads above race: never go backwards
    c.counter("swarm_worker_busy_seconds_total", "Time a worker was not parked (running agents or looking for work).",
              l, busy_exported_[w]);
    c.counter("swarm_worker_messages_total", "Messages handled by a worker.", l,
              s.messages.load(std::memory_order_relaxed));
    c.counter("swarm_worker_activations_total", "Agent activations (up to throughput_budget messages each).", l,
              s.activations.load(std::memory_order_relaxed));
    c.counter("swarm_worker_steals_total", "Successful steals of runnable agents from other workers.", l,
              s.steals.load(std::memory_order_relaxed));
    c.counter("swarm_worker_shared_parts_total",
              "Parts of other workers' large publishes this worker delivered (shared_fanout).", l,
              s.shared_parts.load(std::memory_order_relaxed));
    c.counter("swarm_worker_parks_total", "Times a worker found no work and parked.", l,
              s.parks.load(std::memory_order_relaxed));
    c.counter("swarm_worker_spin_seconds_total",
              "Time a worker spent spinning for work before parking (part of busy; see idle_spin).", l,
              static_cast<double>(s.spin_ns.load(std::memory_order_relaxed)) * 1e-9);
    c.gauge("swarm_run_queue_depth", "Runnable agents waiting in a worker's run queue.", l,
            static_cast<double>(sched.queue_depth(w)));
    overflows += s.overflows.load(std::memory_order_relaxed);
  }
  c.gauge("swarm_injector_depth", "Runnable agents waiting in the shared injector (outside sends and overflow).", {},
          static_cast<double>(sched.injector_depth()));
  c.counter("swarm_run_queue_overflows_total", "Pushes that found a worker's run queue full and went to the injector.",
            {}, static_cast<double>(overflows));

  // Agents and mailboxes.
  const RuntimeStats st = rt_.stats();
  c.counter("swarm_agents_spawned_total", "Agents spawned.", {}, st.spawned);
  c.counter("swarm_agents_exited_total", "Agents that exited, for any reason.", {}, st.exited);
  c.counter("swarm_agent_restarts_total", "Children restarted by supervisors.", {}, st.restarts);
  c.gauge("swarm_agents_live", "Agents alive.", {}, st.live);
  for (int r = 0; r < kDropReasonCount; ++r) {
    c.counter("swarm_messages_dropped_total", "Messages accepted and then lost, by reason.",
              {{"reason", std::string(to_string(static_cast<DropReason>(r)))}}, st.dropped[r]);
  }
  for (int r = 0; r < kRefuseReasonCount; ++r) {
    c.counter("swarm_messages_refused_total",
              "Sends refused, by reason: the sender was told (SendResult), nothing was lost.",
              {{"reason", std::string(to_string(static_cast<RefuseReason>(r)))}}, st.refused[r]);
  }
  const AgentScan scan_result = scan(config_.slow_consumers);
  c.gauge("swarm_mailbox_messages", "Messages queued in all mailboxes.", {}, scan_result.messages);
  c.gauge("swarm_mailbox_backlogged_agents", "Agents with at least one queued message.", {}, scan_result.backlogged);
  c.gauge("swarm_mailbox_fill_ratio_max", "The fullest mailbox's depth over its capacity (1 = full).", {},
          scan_result.max_fill);
  for (unsigned t = 0; t < scan_result.by_type.size(); ++t) {
    const auto& b = scan_result.by_type[t];
    if (b.idle + b.queued + b.running == 0) continue;
    const std::string name = type_name(t);
    const std::uint64_t counts[] = {b.idle, b.queued, b.running};
    for (int k = 0; k < 3; ++k) {
      c.gauge("swarm_agents", "Live agents by type and state (idle, queued: has messages, running).",
              {{"type", name}, {"state", kStates[k]}}, static_cast<double>(counts[k]));
    }
  }
  for (const AgentSample& a : scan_result.deepest) {
    c.gauge("swarm_slow_consumer_mailbox_depth", "Queued messages of the N agents with the deepest mailboxes.",
            {{"agent", agent_label(a)}, {"type", type_name(a.type)}}, a.depth);
  }
  for (const AgentSample& a : scan_result.slowest) {
    c.gauge("swarm_slow_consumer_queueing_delay_seconds",
            "Moving average of sampled queueing delay of the N agents with the largest.",
            {{"agent", agent_label(a)}, {"type", type_name(a.type)}}, a.delay_us * 1e-6);
  }

  // Router.
  const router::RouterStats rs = rt_.router().stats();
  c.counter("swarm_router_published_total", "Publishes.", {}, rs.published);
  c.counter("swarm_router_delivered_total", "Deliveries a subscriber's mailbox accepted.", {}, rs.delivered);
  c.counter("swarm_router_republished_total", "Dead letters republished on $dead.<topic>.", {}, rs.republished);
  for (int r = 0; r < router::kDeadLetterReasons; ++r) {
    c.counter("swarm_router_dead_letters_total", "Published messages a subscriber did not get, by reason.",
              {{"reason", std::string(router::to_string(static_cast<router::DeadLetter>(r)))}}, rs.dead_letters[r]);
  }
  c.gauge("swarm_router_subscriptions", "Live subscriptions.", {}, rs.subscriptions);
  c.gauge("swarm_router_topics", "Interned topics (kept for the router's life).", {}, rs.topics);
  c.gauge("swarm_router_topic_table_fill_ratio", "Interned topics over router.max_topics (1 = new topics refused).",
          {}, static_cast<double>(rs.topics) / static_cast<double>(rt_.router().config().max_topics));

  // Timer wheel.
  c.gauge("swarm_timers_pending", "Armed timers (send_after, periodic, ask timeouts).", {},
          static_cast<double>(rt_.pending_timers()));
}

// -- slow-handler watchdog ---

void Telemetry::watch() {
  pthread_setname_np(pthread_self(), "swarm-watchdog");
  const auto threshold = std::chrono::duration_cast<std::chrono::nanoseconds>(config_.slow_handler_threshold);
  const auto interval = std::clamp<std::chrono::nanoseconds>(threshold / 4, std::chrono::milliseconds(1),
                                                             std::chrono::milliseconds(250));
  const unsigned workers = rt_.scheduler().worker_count();
  // A handler is still running while its worker is not parked and neither the
  // worker's activation count nor the agent's handled count has moved.
  struct Seen {
    std::uint64_t activations = 0, agent = 0, since = 0;
    std::uint32_t handled = 0;
    bool reported = false;
  };
  std::vector<Seen> seen(workers, Seen{.since = now_ns()});
  std::unique_lock lock(watch_mu_);
  while (!watch_cv_.wait_for(lock, interval, [&] { return watch_stop_; })) {
    // Workers that stopped (the shutdown's storage flush may take long) run no handler.
    if (rt_.scheduler().stopped()) continue;
    const std::uint64_t now = now_ns();
    for (unsigned w = 0; w < workers; ++w) {
      const Worker& worker = rt_.scheduler().worker(w);
      const std::uint64_t activations = worker.stats.activations.load(std::memory_order_relaxed);
      const std::uint64_t agent = worker.running_agent.load(std::memory_order_relaxed);
      const Slot* running = rt_.agents().find(AgentRef::from_bits(agent).index);
      const std::uint32_t handled = running != nullptr ? running->handled.load(std::memory_order_relaxed) : 0;
      const bool parked = worker.stats.parked_since.load(std::memory_order_relaxed) != 0;
      Seen& s = seen[w];
      // agent 0: none yet (a worker that only searched for work since it started).
      if (parked || agent == 0 || activations != s.activations || agent != s.agent || handled != s.handled) {
        s = {activations, agent, now, handled, false};  // progress (or idle): restart the clock
        continue;
      }
      if (s.reported || now - s.since < static_cast<std::uint64_t>(threshold.count())) continue;
      s.reported = true;
      SlowHandler h;
      h.agent_bits = agent;
      h.worker = w;
      h.running_for = std::chrono::nanoseconds(now - s.since);
      const AgentRef ref = AgentRef::from_bits(h.agent_bits);
      const Slot* slot = rt_.agents().find(ref.index);
      const unsigned type = slot != nullptr ? slot->type_id.load(std::memory_order_relaxed) : 0;
      h.type = type_name(type);
      auto [counter, added] = slow_by_type_.try_emplace(h.type);
      if (added) {
        try {
          counter->second = registry_.counter("swarm_slow_handlers_total",
                                              "Handlers that ran longer than slow_handler_threshold.", {{"type", h.type}});
        } catch (const std::exception& e) {  // out of metric slots: the log line below still tells
          std::fprintf(stderr, "swarm: %s\n", e.what());
        }
      }
      counter->second.inc();
      std::fprintf(stderr, "swarm: slow handler: %s %s on worker %u has run for %.0f ms (threshold %lld ms)\n",
                   h.type.c_str(), to_string(ref).c_str(), w, h.running_for.count() / 1e6,
                   static_cast<long long>(config_.slow_handler_threshold.count()));
      if (config_.on_slow_handler) {
        lock.unlock();  // the callback may take its time
        try {
          config_.on_slow_handler(h);
        } catch (...) {
          std::fprintf(stderr, "swarm: on_slow_handler threw; ignored\n");
        }
        lock.lock();
      }
    }
  }
}

}  // namespace swarm::detail
