#pragma once
// Supervisor: an agent that starts children, watches them and restarts them
// with Erlang/OTP semantics.
//
//   SupervisorSpec spec;
//   spec.strategy = Strategy::one_for_one;
//   spec.max_restarts = 3; spec.period = 5s;       // more restarts: give up and escalate
//   spec.children.push_back({"db", [](Supervisor& s, const Payload&) { return s.spawn<Db>(); }});
//   AgentRef sup = runtime.spawn<Supervisor>(std::move(spec));
//
// Strategies: one_for_one restarts the child that exited; one_for_all stops
// the others (reverse start order) and restarts all; rest_for_one stops and
// restarts the children started after it; simple_one_for_one runs dynamic
// children of one template, added with start_child(). Restart types:
// permanent (always), transient (after a crash or kill), temporary (never).
// More than max_restarts restarts within `period` make the supervisor stop all
// children and exit as crashed, so its own supervisor sees the failure.
// Stopping is ordered: each child gets a stop request and `shutdown` time to
// exit, then is killed (0 = kill at once). A killed child whose handler is
// still running is not waited for.

#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/runtime.hpp"

namespace swarm {

enum class Strategy : std::uint8_t { one_for_one, one_for_all, rest_for_one, simple_one_for_one };
enum class Restart : std::uint8_t { permanent, transient, temporary };
std::string_view to_string(Strategy s);
std::string_view to_string(Restart r);
Result<Strategy> parse_strategy(std::string_view text);
Result<Restart> parse_restart(std::string_view text);

class Supervisor;

/// Spawns one child (through sup.spawn<T>(), so the supervisor is its parent)
/// and returns its ref. `args` is what start_child() passed (empty for static
/// children); a restart passes the same args again.
using StartFn = std::function<AgentRef(Supervisor& sup, const Payload& args)>;

/// A topic subscription a child gets each time it is (re)started.
struct TopicSubscription {
  std::string pattern;
  std::string queue_group;  // empty: none
};

struct ChildSpec {
  std::string id;
  StartFn start;
  Restart restart = Restart::permanent;
  std::chrono::milliseconds shutdown{5000};  // time to exit after a stop request; 0 = kill
  std::vector<TopicSubscription> subscriptions{};  // subscribed at every (re)start
};

struct SupervisorSpec {
  Strategy strategy = Strategy::one_for_one;
  unsigned max_restarts = 3;
  std::chrono::milliseconds period{5000};
  std::vector<ChildSpec> children;  // simple_one_for_one: exactly one, the template

  /// OK, or an error naming the bad field and the allowed values.
  Result<void> validate() const;
};

/// A child as seen by its supervisor (for diagnostics).
struct ChildInfo {
  std::string id;
  AgentRef ref;  // invalid while not running
  unsigned restarts = 0;
  std::optional<ExitReason> last_exit;
};

class Supervisor : public Agent {
 public:
  static constexpr std::string_view kTypeName = "supervisor";

  /// Throws std::invalid_argument when spec does not validate.
  explicit Supervisor(SupervisorSpec spec);
  ~Supervisor() override;  // kills children still running (e.g. after a kill)

  /// For start functions: spawns a child of this supervisor.
  using Agent::spawn;

  /// Asks a simple_one_for_one supervisor to start one more child with `args`.
  static bool start_child(Runtime& rt, AgentRef supervisor, Payload args = {});

  /// Owner-only snapshot, for handlers of this supervisor and tests.
  std::vector<ChildInfo> children() const;

  void on_start() override;
  void on_message(Message& msg) override;
  void on_child_exit(AgentRef child, const ExitReason& reason) override;
  void on_shutdown_request() override;
  void on_control(Message& msg) override;

 private:
  struct Child {
    std::size_t spec;  // index into spec_.children
    Payload args;
    ChildInfo info;
  };
  // An ordered stop of some children, then a continuation.
  struct StopJob {
    std::vector<AgentRef> order;
    bool final = false;  // `then` ends the supervisor
    std::function<void()> then;
    std::size_t pos = 0;
    TimerId timer = 0;
  };

  bool start(std::size_t child);  // false if its start function threw
  std::optional<std::size_t> find(AgentRef ref) const;
  void handle_exit(std::size_t child, const ExitReason& reason);
  bool restart_allowed();
  void escalate();
  void stop_children(std::vector<AgentRef> order, bool final, std::function<void()> then);
  void exit_after_stopping_children(ExitReason reason);
  void advance_job();
  void finish_job();
  void restart_group(std::size_t first, std::size_t failed);
  bool restart_one(std::size_t child);
  void remove(std::size_t child);
  std::vector<AgentRef> running_in_reverse(std::size_t first) const;

  SupervisorSpec spec_;
  std::vector<Child> children_;  // in start order
  std::deque<Clock::time_point> restarts_;  // on the runtime's clock (RuntimeConfig::clock)
  std::optional<StopJob> job_;
  std::vector<std::pair<AgentRef, ExitReason>> deferred_;  // exits that came during a job
  bool shutting_down_ = false;
};

}  // namespace swarm
