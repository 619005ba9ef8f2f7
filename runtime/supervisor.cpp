#include "runtime/supervisor.hpp"

#include <algorithm>
#include <stdexcept>

#include "runtime/detail/runtime_core.hpp"
#include "runtime/detail/timer_wheel.hpp"

namespace swarm {

namespace {
// Control messages a supervisor sends itself or receives from start_child().
constexpr std::uint32_t kStartChild = 1;
constexpr std::uint32_t kStopTimeout = 2;
}  // namespace

std::string_view to_string(Strategy s) {
  switch (s) {
    case Strategy::one_for_one: return "one_for_one";
    case Strategy::one_for_all: return "one_for_all";
    case Strategy::rest_for_one: return "rest_for_one";
    case Strategy::simple_one_for_one: return "simple_one_for_one";
  }
  return "unknown";
}

std::string_view to_string(Restart r) {
  switch (r) {
    case Restart::permanent: return "permanent";
    case Restart::transient: return "transient";
    case Restart::temporary: return "temporary";
  }
  return "unknown";
}

Result<Strategy> parse_strategy(std::string_view text) {
  for (auto s : {Strategy::one_for_one, Strategy::one_for_all, Strategy::rest_for_one, Strategy::simple_one_for_one}) {
    if (text == to_string(s)) return s;
  }
  return unexpected("supervisor: strategy: unknown value \"" + std::string(text) +
                    "\" (allowed: one_for_one, one_for_all, rest_for_one, simple_one_for_one)");
}

Result<Restart> parse_restart(std::string_view text) {
  for (auto r : {Restart::permanent, Restart::transient, Restart::temporary}) {
    if (text == to_string(r)) return r;
  }
  return unexpected("supervisor: restart: unknown value \"" + std::string(text) +
                    "\" (allowed: permanent, transient, temporary)");
}

Result<void> SupervisorSpec::validate() const {
  if (period.count() <= 0) return unexpected(std::string("supervisor: period must be positive (allowed: 1 ms or more)"));
  if (strategy == Strategy::simple_one_for_one && children.size() != 1) {
    return unexpected("supervisor: simple_one_for_one needs exactly one child spec (the template), got " +
                      std::to_string(children.size()));
  }
  for (std::size_t i = 0; i < children.size(); ++i) {
    const ChildSpec& c = children[i];
    std::string where = "supervisor: children[" + std::to_string(i) + "]";
    if (c.id.empty()) return unexpected(where + ".id is empty");
    if (!c.start) return unexpected(where + " (\"" + c.id + "\").start is not set");
    if (c.shutdown.count() < 0) return unexpected(where + " (\"" + c.id + "\").shutdown is negative (allowed: 0 ms = kill, or more)");
    for (const TopicSubscription& s : c.subscriptions) {
      if (auto r = router::validate_pattern(s.pattern); !r) return unexpected(where + " (\"" + c.id + "\").subscriptions: " + r.error());
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (children[j].id == c.id) return unexpected(where + ".id \"" + c.id + "\" is used twice");
    }
  }
  return {};
}

Supervisor::Supervisor(SupervisorSpec spec) : spec_(std::move(spec)) {
  if (auto r = spec_.validate(); !r) throw std::invalid_argument(r.error());
  set_supervising(true);
}

Supervisor::~Supervisor() {
  for (const Child& c : children_) {
    if (c.info.ref.valid()) runtime().kill(c.info.ref);
  }
}

bool Supervisor::start_child(Runtime& rt, AgentRef supervisor, Payload args) {
  return detail::core_of(rt).deliver_system(supervisor, SystemKind::control, {}, std::move(args), kStartChild);  // kind = the command
}

std::vector<ChildInfo> Supervisor::children() const {
  std::vector<ChildInfo> out;
  out.reserve(children_.size());
  for (const Child& c : children_) out.push_back(c.info);
  return out;
}

void Supervisor::on_start() {
  if (spec_.strategy == Strategy::simple_one_for_one) return;  // children come with start_child()
  for (std::size_t i = 0; i < spec_.children.size(); ++i) {
    children_.push_back({i, {}, {spec_.children[i].id, {}, 0, {}}});
    if (!start(i)) {
      exit_after_stopping_children({ExitKind::crashed, "supervisor: child \"" + spec_.children[i].id +
                                                           "\" failed to start: " + children_[i].info.last_exit->detail});
      return;
    }
  }
}

bool Supervisor::start(std::size_t child) {
  Child& c = children_[child];
  try {
    const ChildSpec& spec = spec_.children[c.spec];
    c.info.ref = spec.start(*this, c.args);
    // A child that already exited simply is not subscribed; its exit is on its way.
    for (const TopicSubscription& s : spec.subscriptions) (void)runtime().subscribe(c.info.ref, s.pattern, s.queue_group);
    return c.info.ref.valid();
  } catch (const std::exception& ex) {
    c.info.ref = {};
    c.info.last_exit = ExitReason{ExitKind::crashed, ex.what()};
    return false;
  }
}

void Supervisor::on_message(Message&) {}  // supervisors take no user messages

std::optional<std::size_t> Supervisor::find(AgentRef ref) const {
  for (std::size_t i = 0; i < children_.size(); ++i) {
    if (children_[i].info.ref == ref) return i;
  }
  return std::nullopt;
}

void Supervisor::on_control(Message& msg) {
  if (msg.kind == kStartChild) {
    if (spec_.strategy != Strategy::simple_one_for_one || shutting_down_) return;
    children_.push_back({0, msg.payload, {spec_.children[0].id, {}, 0, {}}});
    if (!start(children_.size() - 1)) children_.pop_back();
    return;
  }
  if (msg.kind == kStopTimeout && job_ && job_->pos < job_->order.size()) {
    AgentRef late = msg.as<AgentRef>();
    if (job_->order[job_->pos] != late) return;  // that child exited in time
    runtime().kill(late);
    if (auto i = find(late)) {
      children_[*i].info.ref = {};
      children_[*i].info.last_exit = ExitReason{ExitKind::killed, "did not stop within its shutdown time"};
    }
    job_->timer = 0;
    ++job_->pos;
    advance_job();
  }
}

void Supervisor::on_child_exit(AgentRef child, const ExitReason& reason) {
  auto i = find(child);
  if (!i) return;  // a child killed during a stop job, or already replaced
  if (job_) {
    if (std::find(job_->order.begin(), job_->order.end(), child) == job_->order.end()) {
      deferred_.emplace_back(child, reason);  // not part of this job: handle it afterwards
      return;
    }
    children_[*i].info.ref = {};
    children_[*i].info.last_exit = reason;
    if (job_->pos < job_->order.size() && job_->order[job_->pos] == child) {
      if (job_->timer != 0) cancel_timer(job_->timer);
      job_->timer = 0;
      ++job_->pos;
      advance_job();
    }
    return;
  }
  handle_exit(*i, reason);
}

void Supervisor::handle_exit(std::size_t child, const ExitReason& reason) {
  Child& c = children_[child];
  c.info.ref = {};
  c.info.last_exit = reason;
  const Restart type = spec_.children[c.spec].restart;
  const bool wanted = type == Restart::permanent || (type == Restart::transient && reason.abnormal());
  if (!wanted || shutting_down_ || runtime().stopping()) {
    if (type != Restart::permanent || spec_.strategy == Strategy::simple_one_for_one) remove(child);
    return;
  }
  if (!restart_allowed()) {
    escalate();
    return;
  }
  switch (spec_.strategy) {
    case Strategy::one_for_one:
    case Strategy::simple_one_for_one: restart_one(child); break;
    case Strategy::one_for_all:
      stop_children(running_in_reverse(0), false, [this, child] { restart_group(0, child); });
      break;
    case Strategy::rest_for_one:
      stop_children(running_in_reverse(child + 1), false, [this, child] { restart_group(child, child); });
      break;
  }
}

bool Supervisor::restart_allowed() {
  const auto now = detail::now(detail::core_of(runtime()).clock());  // RuntimeConfig::clock: exact in tests
  while (!restarts_.empty() && now - restarts_.front() > spec_.period) restarts_.pop_front();
  if (restarts_.size() >= spec_.max_restarts) return false;
  restarts_.push_back(now);
  return true;
}

void Supervisor::escalate() {
  const std::string why = "supervisor: restart intensity reached (more than " + std::to_string(spec_.max_restarts) +
                          " restarts in " + std::to_string(spec_.period.count()) + " ms)";
  if (!parent().valid()) {  // nobody above to restart it: say so loudly, with the crash that ended it
    std::string last;
    for (const Child& c : children_) {
      if (c.info.last_exit && c.info.last_exit->abnormal()) last = c.info.last_exit->detail;
    }
    runtime().note_supervisor_gave_up(self(), why + (last.empty() ? "" : "; last crash: " + last));
  }
  exit_after_stopping_children({ExitKind::crashed, why});
}

// Restarts `failed` and the stopped children from `first` on, in start order.
// Temporary children stopped with the group are not restarted but removed.
void Supervisor::restart_group(std::size_t first, std::size_t failed) {
  for (std::size_t i = children_.size(); i-- > first;) {
    if (i != failed && !children_[i].info.ref.valid() &&
        spec_.children[children_[i].spec].restart == Restart::temporary) {
      remove(i);
      if (i < failed) --failed;
    }
  }
  for (std::size_t i = first; i < children_.size(); ++i) {
    if (!children_[i].info.ref.valid() && !restart_one(i)) return;
  }
}

// False when the start failed (then handled as a crash of that child).
bool Supervisor::restart_one(std::size_t child) {
  Child& c = children_[child];
  runtime().note_restart();
  ++c.info.restarts;
  detail::RestartScope restarting;  // the child is journaled as restarted, not spawned
  if (start(child)) return true;
  handle_exit(child, *c.info.last_exit);
  return false;
}

void Supervisor::remove(std::size_t child) { children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(child)); }

std::vector<AgentRef> Supervisor::running_in_reverse(std::size_t first) const {
  std::vector<AgentRef> out;
  for (std::size_t i = children_.size(); i-- > first;) {
    if (children_[i].info.ref.valid()) out.push_back(children_[i].info.ref);
  }
  return out;
}

void Supervisor::on_shutdown_request() {
  if (shutting_down_) return;  // already on its way out
  shutting_down_ = true;
  if (job_) return;  // finish_job() sees shutting_down_
  exit_after_stopping_children({ExitKind::shutdown, {}});
}

// -- ordered stop ---

void Supervisor::stop_children(std::vector<AgentRef> order, bool final, std::function<void()> then) {
  job_ = StopJob{std::move(order), final, std::move(then)};
  advance_job();
}

void Supervisor::exit_after_stopping_children(ExitReason reason) {
  shutting_down_ = true;
  stop_children(running_in_reverse(0), true, [this, reason] { stop(reason); });
}

void Supervisor::advance_job() {
  while (job_->pos < job_->order.size()) {
    AgentRef ref = job_->order[job_->pos];
    auto i = find(ref);
    if (!i) {
      ++job_->pos;
      continue;
    }
    auto timeout = spec_.children[children_[*i].spec].shutdown;
    if (timeout.count() == 0 || !runtime().stop(ref)) {
      runtime().kill(ref);
      children_[*i].info.ref = {};
      children_[*i].info.last_exit = ExitReason{ExitKind::killed, "killed by its supervisor"};
      ++job_->pos;
      continue;
    }
    detail::TimerEntry t;
    t.target = self();
    t.sender = self();
    t.system = SystemKind::control;
    t.kind = kStopTimeout;
    t.payload = Payload::of(ref);
    job_->timer = detail::core_of(runtime()).add_timer(std::move(t), timeout);
    return;  // wait for its exit or the timeout
  }
  finish_job();
}

void Supervisor::finish_job() {
  StopJob job = std::move(*job_);
  job_.reset();
  if (shutting_down_ && !job.final) {  // a stop request came during a restart
    exit_after_stopping_children({ExitKind::shutdown, {}});
    return;
  }
  job.then();
  if (job_ || shutting_down_) return;
  auto deferred = std::move(deferred_);
  deferred_.clear();
  for (auto& [ref, reason] : deferred) {
    if (job_) {
      deferred_.emplace_back(ref, reason);
    } else if (auto i = find(ref)) {
      handle_exit(*i, reason);
    }
  }
}

}  // namespace swarm
