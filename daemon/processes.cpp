// The process supervisor's event loop. Everything below State's mutex; the
// loop thread is the only one that forks, reaps and reads output.

#include "daemon/processes.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "metrics/registry.hpp"

extern char** environ;

namespace swarm::daemon {

std::string_view to_string(ProcessState s) noexcept {
  switch (s) {
    case ProcessState::starting: return "starting";
    case ProcessState::running: return "running";
    case ProcessState::stopping: return "stopping";
    case ProcessState::stopped: return "stopped";
    case ProcessState::exited: return "exited";
    case ProcessState::failed: return "failed";
  }
  return "?";
}

std::string_view to_string(ExitReason r) noexcept {
  switch (r) {
    case ExitReason::normal: return "normal";
    case ExitReason::error: return "error";
    case ExitReason::signal: return "signal";
    case ExitReason::stopped: return "stopped";
    case ExitReason::stop_timeout: return "stop_timeout";
    case ExitReason::start_timeout: return "start_timeout";
    case ExitReason::exec_failed: return "exec_failed";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr Clock::time_point kNever = Clock::time_point::max();
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr int kReadsPerWakeup = 16;  // then other processes get their turn

std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Output of one stream: the line being read, cut at max_line bytes.
struct LineReader {
  int fd = -1;
  std::string partial;
  bool cutting = false;  // the current line was cut: skip to its newline
};

// Totals per process name, kept after the process is removed (counters never go back).
struct Totals {
  std::uint64_t restarts = 0;
  std::array<std::uint64_t, kExitReasonCount> exits{};
  std::uint64_t lines[2] = {0, 0}, bytes[2] = {0, 0};
  std::uint64_t truncated = 0;
};

struct Group;

struct Instance {
  std::uint64_t id = 0;  // epoll key
  Group* group = nullptr;
  std::uint32_t index = 0;
  std::string name;
  ProcessState state = ProcessState::stopped;
  int pid = 0, pidfd = -1;
  int last_pid = 0;  // of its latest start (0: it did not get that far), for the journal
  LineReader out, err;
  Clock::time_point started{}, deadline = kNever;  // start timeout while starting, stop timeout while stopping
  bool stop_requested = false;   // swarmd sent SIGTERM: the exit is ours
  bool killed = false;           // SIGKILLed on a timeout
  bool start_after_exit = false; // restart (swarmctl restart) once it has exited
  bool start_due = false;        // start at `deadline` (a restart: from the loop, never recursively)
  std::uint64_t restarts = 0;
  std::string last_exit;
  std::vector<OutputLine> kept;  // a ring of keep_lines: once full, nothing is allocated per line
  std::size_t kept_next = 0;     // the slot the next line overwrites once the ring is full
};

struct Group {
  ProcessSpec spec;
  std::vector<std::unique_ptr<Instance>> instances;
  std::deque<Clock::time_point> restart_times;  // within restart_period
  bool removing = false;  // erased once every instance has exited
  bool failed = false;    // gave up after too many restarts: nothing restarts until swarmctl start
  Totals* totals = nullptr;  // its entry in State::totals (map nodes stay put)
};

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

std::string find_program(const std::string& program, const std::map<std::string, std::string>& env) {
  if (program.find('/') != std::string::npos) return program;
  std::string path;
  if (auto it = env.find("PATH"); it != env.end()) {
    path = it->second;
  } else if (const char* p = std::getenv("PATH")) {
    path = p;
  } else {
    path = "/usr/local/bin:/usr/bin:/bin";
  }
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find(':', start), path.size());
    const std::string dir = end == start ? "." : path.substr(start, end - start);
    const std::string candidate = dir + "/" + program;
    std::error_code ec;  // access() passed, so a failure here is a race with its removal: not it
    if (access(candidate.c_str(), X_OK) == 0 && !std::filesystem::is_directory(candidate, ec) && !ec) return candidate;
    start = end + 1;
  }
  return {};
}

}  // namespace

struct ProcessSupervisor::State {
  SupervisorOptions options;
  mutable std::mutex mu;
  std::condition_variable changed;  // an instance exited, or a command ran
  std::vector<std::unique_ptr<Group>> groups;  // start order
  std::unordered_map<std::uint64_t, Instance*> by_id;
  std::map<std::string, Totals, std::less<>> totals;
  metrics::HistogramSnapshot start_latency;
  std::deque<std::function<void()>> commands;
  std::string log_buffer;  // output lines for options.log_fd, written once per wakeup
  std::int64_t read_at_us = 0;  // when the output being split into lines was read
  std::uint64_t next_id = 1, next_seq = 1;
  bool stopping_all = false, quit = false, escalated = false;
  int epoll_fd = -1, wake_fd = -1;
  std::uint64_t metrics_callback = 0;
  std::thread loop;

  // -- commands from other threads ---

  void post(std::function<void()> fn) {
    {
      std::lock_guard lock(mu);
      commands.push_back(std::move(fn));
    }
    const std::uint64_t one = 1;
    (void)!write(wake_fd, &one, sizeof one);
  }

  /// Runs `fn` on the loop thread (under mu) and waits for it.
  template <typename F>
  auto call(F fn) -> decltype(fn()) {
    std::optional<decltype(fn())> result;
    bool done = false;
    post([&] {
      result.emplace(fn());
      done = true;
    });
    std::unique_lock lock(mu);
    changed.wait(lock, [&] { return done; });
    return std::move(*result);
  }

  // -- the loop ---

  void run() {
    std::array<epoll_event, 64> events;
    while (true) {
      int timeout_ms = -1;
      {
        std::lock_guard lock(mu);
        if (quit) return;
        const Clock::time_point next = next_deadline();
        if (next != kNever) {
          timeout_ms = static_cast<int>(std::clamp<std::int64_t>(
              std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now()).count(), 0, 60'000));
        }
      }
      const int n = epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), timeout_ms);
      std::unique_lock lock(mu);
      for (int i = 0; i < n; ++i) {
        const std::uint64_t key = events[static_cast<std::size_t>(i)].data.u64;
        if (key == 0) {
          std::uint64_t count;
          (void)!read(wake_fd, &count, sizeof count);
          continue;
        }
        auto it = by_id.find(key >> 2);
        if (it == by_id.end()) continue;
        Instance& inst = *it->second;
        switch (key & 3) {
          case 0: reap(inst); break;
          case 1: read_output(inst, inst.out, false); break;
          case 2: read_output(inst, inst.err, true); break;
        }
      }
      while (!commands.empty()) {
        auto fn = std::move(commands.front());
        commands.pop_front();
        fn();
      }
      if (!log_buffer.empty()) flush_log();
      check_deadlines();
      erase_removed();
      changed.notify_all();
    }
  }

  Clock::time_point next_deadline() const {
    Clock::time_point next = kNever;
    for (const auto& g : groups) {
      for (const auto& inst : g->instances) next = std::min(next, inst->deadline);
    }
    return next;
  }

  void check_deadlines() {
    const Clock::time_point now = Clock::now();
    for (const auto& g : groups) {
      for (const auto& inst : g->instances) {
        if (inst->deadline > now) continue;
        inst->deadline = kNever;
        if (inst->start_due) {
          start_instance(*inst);
          continue;
        }
        if (inst->pid == 0) continue;
        if (inst->state == ProcessState::starting || inst->state == ProcessState::running) {
          std::fprintf(stderr, "swarmd: %s: no HELLO from it within %lld ms: killing it\n", inst->name.c_str(),
                       static_cast<long long>(g->spec.start_timeout.count()));
        } else if (inst->state == ProcessState::stopping) {
          std::fprintf(stderr, "swarmd: %s: still running %lld ms after SIGTERM: SIGKILL\n", inst->name.c_str(),
                       static_cast<long long>(g->spec.stop_timeout.count()));
        }
        inst->killed = true;
        kill(-inst->pid, SIGKILL);
      }
    }
  }

  // -- starting ---

  void start_instance(Instance& inst) {
    const ProcessSpec& spec = inst.group->spec;
    inst.stop_requested = inst.killed = inst.start_after_exit = inst.start_due = false;
    inst.started = Clock::now();
    inst.last_pid = 0;
    const std::string program = find_program(spec.argv[0], spec.env);
    if (program.empty()) {
      return failed_to_start(inst, "\"" + spec.argv[0] + "\" is not an executable in PATH");
    }
    // Everything the child needs is built here: after fork it may only make system calls.
    std::vector<std::string> env_strings;
    std::map<std::string, std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv = *e;
      const auto eq = kv.find('=');
      if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& [k, v] : spec.env) env[k] = v;
    env["SWARM_NAME"] = inst.name;
    env["SWARM_PROCESS"] = spec.name;
    env["SWARM_INSTANCE"] = std::to_string(inst.index);
    env["SWARM_INSTANCES"] = std::to_string(spec.instances);
    env["SWARM_QUEUE_GROUP"] = spec.name;
    if (!options.gateway_endpoint.empty()) env["SWARM_GATEWAY"] = options.gateway_endpoint;
    if (!options.gateway_token.empty()) env["SWARM_TOKEN"] = options.gateway_token;
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp, argv;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = spec.argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    std::vector<std::pair<int, rlim_t>> limits;
    if (spec.limit_address_space) limits.emplace_back(RLIMIT_AS, spec.limit_address_space);
    if (spec.limit_open_files) limits.emplace_back(RLIMIT_NOFILE, spec.limit_open_files);
    if (spec.limit_cpu_seconds) limits.emplace_back(RLIMIT_CPU, spec.limit_cpu_seconds);

    int out[2], err[2], report[2];
    if (pipe2(out, O_CLOEXEC) != 0) return failed_to_start(inst, std::string("pipe: ") + std::strerror(errno));
    if (pipe2(err, O_CLOEXEC) != 0) {
      close(out[0]), close(out[1]);
      return failed_to_start(inst, std::string("pipe: ") + std::strerror(errno));
    }
    if (pipe2(report, O_CLOEXEC) != 0) {
      close(out[0]), close(out[1]), close(err[0]), close(err[1]);
      return failed_to_start(inst, std::string("pipe: ") + std::strerror(errno));
    }
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
      // The child: async-signal-safe calls only, then exec.
      struct Failure {
        int stage, error;
      };
      auto fail = [&](int stage) {
        Failure f{stage, errno};
        (void)!write(report[1], &f, sizeof f);
        _exit(127);
      };
      setpgid(0, 0);  // its own group: stop and kill reach its children too
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      sigset_t all;
      sigemptyset(&all);
      sigprocmask(SIG_SETMASK, &all, nullptr);
      for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) signal(sig, SIG_DFL);
      const int null_fd = open("/dev/null", O_RDONLY);
      if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) fail(0);
      if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) fail(1);
      for (const auto& [resource, value] : limits) {
        const rlimit rl{value, value};
        if (setrlimit(resource, &rl) != 0) fail(2);
      }
      execve(program.c_str(), argv.data(), envp.data());
      fail(3);
    }
    close(out[1]), close(err[1]), close(report[1]);
    if (pid < 0) {
      close(out[0]), close(err[0]), close(report[0]);
      return failed_to_start(inst, std::string("fork: ") + std::strerror(errno));
    }
    struct {
      int stage, error;
    } failure{-1, 0};
    ssize_t got;
    do got = read(report[0], &failure, sizeof failure);  // 0 (EOF) once exec succeeded
    while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == static_cast<ssize_t>(sizeof failure)) {
      close(out[0]), close(err[0]);
      int status;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      static const char* const stages[] = {"redirecting its output", "changing to its cwd", "setting its limits",
                                           "executing"};
      return failed_to_start(inst, std::string(stages[failure.stage]) + " failed: " + std::strerror(failure.error) +
                                       (failure.stage == 1 ? " (" + spec.cwd + ")" : failure.stage == 3 ? " (" + program + ")" : ""));
    }
    inst.pid = inst.last_pid = pid;
    inst.pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    inst.out.fd = out[0];
    inst.err.fd = err[0];
    watch(inst.pidfd, inst.id << 2 | 0);
    for (int fd : {out[0], err[0]}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    watch(out[0], inst.id << 2 | 1);
    watch(err[0], inst.id << 2 | 2);
    if (spec.expect_hello) {
      inst.state = ProcessState::starting;
      inst.deadline = inst.started + spec.start_timeout;
    } else {
      inst.state = ProcessState::running;
      inst.deadline = kNever;
      note_ready(inst);
    }
    journal(LifecycleEvent::Kind::spawned, inst, "pid " + std::to_string(pid));
  }

  void watch(int fd, std::uint64_t key) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = key;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
  }

  void failed_to_start(Instance& inst, const std::string& why) {
    std::fprintf(stderr, "swarmd: %s: cannot start: %s\n", inst.name.c_str(), why.c_str());
    inst.pid = 0;
    exited(inst, ExitReason::exec_failed, "cannot start: " + why);
  }

  void note_ready(Instance& inst) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - inst.started).count();
    start_latency.counts[metrics::Buckets::index(static_cast<std::uint64_t>(ns))]++;
    start_latency.sum_ns += static_cast<std::uint64_t>(ns);
  }

  // -- exits ---

  void reap(Instance& inst) {
    if (inst.pid == 0) return;
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(inst.pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
    // Still a zombie, so its pid (and group id) cannot be reused yet: nothing it started outlives it.
    kill(-inst.pid, SIGKILL);
    int status = 0;
    while (waitpid(inst.pid, &status, 0) < 0 && errno == EINTR) {
    }
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, inst.pidfd, nullptr);
    close(inst.pidfd);
    inst.pidfd = -1;
    // What it wrote before it ended comes before its exit, in the log and the journal.
    read_output(inst, inst.out, false);
    read_output(inst, inst.err, true);
    inst.pid = 0;
    ExitReason reason;
    if (inst.killed) {
      reason = inst.state == ProcessState::stopping ? ExitReason::stop_timeout : ExitReason::start_timeout;
    } else if (inst.stop_requested) {
      reason = ExitReason::stopped;
    } else if (WIFEXITED(status)) {
      reason = WEXITSTATUS(status) == 0 ? ExitReason::normal : ExitReason::error;
    } else {
      reason = ExitReason::signal;
    }
    exited(inst, reason, describe_status(status) + (reason == ExitReason::stop_timeout ? " after its stop timeout"
                                                    : reason == ExitReason::start_timeout ? " (no HELLO in time)" : ""));
  }

  void exited(Instance& inst, ExitReason reason, const std::string& how) {
    Group& g = *inst.group;
    const ProcessSpec& spec = g.spec;
    g.totals->exits[static_cast<std::size_t>(reason)]++;
    inst.last_exit = how;
    inst.deadline = kNever;
    const bool ours = reason == ExitReason::stopped || reason == ExitReason::stop_timeout;
    const bool normal = reason == ExitReason::normal || ours;
    journal(normal ? LifecycleEvent::Kind::exited : LifecycleEvent::Kind::crashed, inst,
            std::string(to_string(reason)) + ": " + how);
    if (!ours) std::fprintf(stderr, "swarmd: %s: %s\n", inst.name.c_str(), how.c_str());
    if (g.failed) {
      inst.state = ProcessState::failed;
      return;
    }
    if (ours || stopping_all || g.removing) {
      inst.state = ProcessState::stopped;
      if (inst.start_after_exit && !stopping_all && !g.removing) schedule_start(inst);
      return;
    }
    const bool again = spec.restart == RestartType::permanent ||
                       (spec.restart == RestartType::transient && reason != ExitReason::normal);
    if (!again) {
      inst.state = ProcessState::exited;
      return;
    }
    // Restart intensity: more than max_restarts within restart_period and the process gives up.
    const Clock::time_point now = Clock::now();
    g.restart_times.push_back(now);
    while (!g.restart_times.empty() && g.restart_times.front() < now - spec.restart_period) g.restart_times.pop_front();
    if (g.restart_times.size() > spec.max_restarts) return give_up(g);
    inst.restarts++;
    g.totals->restarts++;
    journal(LifecycleEvent::Kind::restarted, inst, "after " + how);
    schedule_start(inst);
  }

  void schedule_start(Instance& inst) {
    inst.state = ProcessState::starting;
    inst.start_due = true;
    inst.deadline = Clock::now();
  }

  void give_up(Group& g) {
    const std::string why = "process " + g.spec.name + " exceeded its restart intensity (" +
                            std::to_string(g.spec.max_restarts) + " restarts within " +
                            std::to_string(g.spec.restart_period.count()) + " ms)";
    std::fprintf(stderr, "swarmd: %s: %s\n", why.c_str(),
                 g.spec.on_give_up == GiveUp::shutdown ? "escalating: swarmd stops" : "it stays down (swarmctl start revives it)");
    g.failed = true;
    for (auto& inst : g.instances) {
      inst->start_after_exit = inst->start_due = false;
      inst->deadline = kNever;
      if (inst->pid != 0) stop_instance(*inst);
      else inst->state = ProcessState::failed;
    }
    journal(LifecycleEvent::Kind::crashed, *g.instances.front(), "gave up: " + why);
    if (g.spec.on_give_up == GiveUp::shutdown && !escalated && options.on_escalation) {
      escalated = true;
      options.on_escalation(why);
    }
  }

  void stop_instance(Instance& inst) {
    inst.start_due = false;
    if (inst.pid == 0) {
      if (inst.state == ProcessState::starting) inst.state = ProcessState::stopped;  // a restart that was due
      inst.deadline = kNever;
      return;
    }
    inst.stop_requested = true;
    if (inst.state == ProcessState::stopping) return;
    inst.state = ProcessState::stopping;
    inst.deadline = Clock::now() + inst.group->spec.stop_timeout;
    kill(-inst.pid, SIGTERM);
  }

  // -- output ---

  void read_output(Instance& inst, LineReader& r, bool is_stderr) {
    if (r.fd < 0) return;
    char buf[kReadChunk];
    Totals& t = *inst.group->totals;
    for (int i = 0; i < kReadsPerWakeup; ++i) {
      const ssize_t n = read(r.fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) {  // EOF (or an error): the stream is done
        read_at_us = wall_us();
        if (!r.partial.empty()) emit_line(inst, r, is_stderr);
        epoll_ctl(epoll_fd, EPOLL_CTL_DEL, r.fd, nullptr);
        close(r.fd);
        r.fd = -1;
        return;
      }
      t.bytes[is_stderr] += static_cast<std::uint64_t>(n);
      read_at_us = wall_us();  // the lines of one read share their time
      std::string_view data(buf, static_cast<std::size_t>(n));
      const std::size_t max_line = inst.group->spec.max_line_bytes;
      while (!data.empty()) {
        const std::size_t nl = data.find('\n');
        const std::string_view piece = data.substr(0, nl);
        if (!r.cutting) {
          const std::size_t room = max_line - r.partial.size();
          r.partial.append(piece.substr(0, room));
          if (piece.size() > room) {
            r.cutting = true;
            t.truncated++;
          }
        }
        if (nl == std::string_view::npos) break;
        emit_line(inst, r, is_stderr);
        data.remove_prefix(nl + 1);
      }
    }
    // Still readable: epoll (level-triggered) comes back after the others had their turn.
  }

  void emit_line(Instance& inst, LineReader& r, bool is_stderr) {
    const ProcessSpec& spec = inst.group->spec;
    inst.group->totals->lines[is_stderr]++;
    // The oldest kept line's storage is reused: no allocation per line once the ring is full.
    OutputLine scratch;
    OutputLine& line = spec.keep_lines == 0 ? scratch : next_slot(inst, spec.keep_lines);
    line.seq = next_seq++;
    line.name = inst.name;
    line.is_stderr = is_stderr;
    line.at_us = read_at_us;
    line.text.assign(r.partial);
    r.partial.clear();
    r.cutting = false;
    if (options.on_line) options.on_line(line);
    if (options.log_fd >= 0) {
      log_buffer.append(line.name).append(is_stderr ? " (stderr)| " : "| ").append(line.text).push_back('\n');
      if (log_buffer.size() >= kReadChunk) flush_log();
    }
    if (spec.journal_output && options.journal) {
      const std::string topic = "process." + inst.name + (is_stderr ? ".stderr" : ".stdout");
      options.journal->record({LifecycleEvent::Kind::message, static_cast<std::uint64_t>(inst.last_pid), "process", topic, line.text});
    }
  }

  static OutputLine& next_slot(Instance& inst, std::size_t capacity) {
    if (inst.kept.size() < capacity) return inst.kept.emplace_back();
    OutputLine& slot = inst.kept[inst.kept_next];
    inst.kept_next = (inst.kept_next + 1) % capacity;
    return slot;
  }

  // Blocks while the log is full: the processes then block on their pipes, and nothing is dropped.
  void flush_log() {
    std::size_t done = 0;
    while (done < log_buffer.size()) {
      const ssize_t n = write(options.log_fd, log_buffer.data() + done, log_buffer.size() - done);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EAGAIN) {
        pollfd p{options.log_fd, POLLOUT, 0};
        poll(&p, 1, 100);
      } else if (n < 0 && errno != EINTR) {
        break;  // the log is gone: the lines are still counted and kept
      }
    }
    log_buffer.clear();
  }

  void journal(LifecycleEvent::Kind kind, const Instance& inst, const std::string& detail) {
    if (!options.journal) return;
    const std::string type = "process/" + inst.name;
    options.journal->record({kind, static_cast<std::uint64_t>(inst.last_pid), type, detail});
  }

  // -- bookkeeping ---

  void erase_removed() {
    if (stopping_all) return;  // stop_all() holds pointers to the groups
    std::erase_if(groups, [&](const std::unique_ptr<Group>& g) {
      if (!g->removing) return false;
      for (auto& inst : g->instances) {
        if (inst->pid != 0 || inst->out.fd >= 0 || inst->err.fd >= 0) return false;
      }
      for (auto& inst : g->instances) by_id.erase(inst->id);
      return true;
    });
  }

  Group* find_group(std::string_view name) {
    for (auto& g : groups) {
      if (g->spec.name == name && !g->removing) return g.get();
    }
    return nullptr;
  }

  /// The instances NAME means: a process's, or one instance.
  Result<std::vector<Instance*>> select(std::string_view name) {
    std::vector<Instance*> out;
    for (auto& g : groups) {
      if (g->removing) continue;
      for (auto& inst : g->instances) {
        if (g->spec.name == name || inst->name == name) out.push_back(inst.get());
      }
    }
    if (!out.empty()) return out;
    std::string names;
    for (auto& g : groups) names += (names.empty() ? "" : ", ") + g->spec.name;
    return unexpected("no process or instance named \"" + std::string(name) + "\" (processes: " +
                      (names.empty() ? "none" : names) + ")");
  }

  /// On the loop: `act` on each instance NAME means; the names it acted on.
  template <typename F>
  Result<std::vector<std::string>> act_on(const std::string& name, F act) {
    return call([&]() -> Result<std::vector<std::string>> {
      auto selected = select(name);
      if (!selected) return unexpected(selected.error());
      std::vector<std::string> names;
      for (Instance* inst : *selected) {
        if (act(*inst)) names.push_back(inst->name);
      }
      return names;
    });
  }

  void add_group(const ProcessSpec& spec) {
    auto g = std::make_unique<Group>();
    g->spec = spec;
    for (std::uint32_t i = 0; i < spec.instances; ++i) {
      auto inst = std::make_unique<Instance>();
      inst->id = next_id++;
      inst->group = g.get();
      inst->index = i;
      inst->name = spec.instances == 1 ? spec.name : spec.name + "-" + std::to_string(i);
      by_id[inst->id] = inst.get();
      g->instances.push_back(std::move(inst));
    }
    g->totals = &totals[spec.name];
    groups.push_back(std::move(g));
    for (auto& inst : groups.back()->instances) start_instance(*inst);
  }

  void collect(metrics::Collector& c) {
    std::lock_guard lock(mu);
    for (const auto& [name, t] : totals) {
      double running = 0;
      if (Group* g = find_group(name)) {
        for (auto& inst : g->instances) running += inst->state == ProcessState::running ? 1 : 0;
      }
      c.gauge("swarm_process_running", "Instances running (started, and said HELLO when expected).", {{"process", name}}, running);
      c.counter("swarm_process_restarts_total", "Restarts by swarmd's supervision.", {{"process", name}}, static_cast<double>(t.restarts));
      for (int r = 0; r < kExitReasonCount; ++r) {
        c.counter("swarm_process_exits_total", "Process exits by reason.",
                  {{"process", name}, {"reason", std::string(to_string(static_cast<ExitReason>(r)))}},
                  static_cast<double>(t.exits[static_cast<std::size_t>(r)]));
      }
      for (int s = 0; s < 2; ++s) {
        const metrics::Labels labels{{"process", name}, {"stream", s == 0 ? "stdout" : "stderr"}};
        c.counter("swarm_process_output_lines_total", "Output lines read.", labels, static_cast<double>(t.lines[s]));
        c.counter("swarm_process_output_bytes_total", "Output bytes read.", labels, static_cast<double>(t.bytes[s]));
      }
      c.counter("swarm_process_output_truncated_total", "Output lines cut at max_line bytes.", {{"process", name}},
                static_cast<double>(t.truncated));
    }
    c.histogram("swarm_process_start_seconds", "From fork to ready (HELLO, or exec when none is expected).", {},
                start_latency);
  }
};

ProcessSupervisor::ProcessSupervisor(SupervisorOptions options) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.options = std::move(options);
  s.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  s.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s.epoll_fd < 0 || s.wake_fd < 0) throw std::runtime_error(std::string("swarmd: epoll: ") + std::strerror(errno));
  s.watch(s.wake_fd, 0);
  if (s.options.metrics) s.metrics_callback = s.options.metrics->add_callback([&s](metrics::Collector& c) { s.collect(c); });
  s.loop = std::thread([&s] { s.run(); });
}

ProcessSupervisor::~ProcessSupervisor() {
  stop_all();
  State& s = *state_;
  if (s.metrics_callback != 0) s.options.metrics->remove_callback(s.metrics_callback);
  s.post([&s] { s.quit = true; });
  s.loop.join();
  for (auto& g : s.groups) {
    for (auto& inst : g->instances) {
      for (int fd : {inst->out.fd, inst->err.fd, inst->pidfd}) {
        if (fd >= 0) close(fd);
      }
    }
  }
  close(s.epoll_fd);
  close(s.wake_fd);
}

ApplySummary ProcessSupervisor::apply(const std::vector<ProcessSpec>& specs) {
  State& s = *state_;
  return s.call([&] {
    ApplySummary summary;
    if (s.stopping_all) return summary;
    for (auto& g : s.groups) {
      if (g->removing) continue;
      const bool kept = std::any_of(specs.begin(), specs.end(), [&](const ProcessSpec& p) { return p.name == g->spec.name; });
      if (kept) continue;
      g->removing = true;
      for (auto& inst : g->instances) s.stop_instance(*inst);
      summary.removed.push_back(g->spec.name);
    }
    for (const ProcessSpec& spec : specs) {
      Group* g = s.find_group(spec.name);
      if (g == nullptr) {
        s.add_group(spec);
        summary.added.push_back(spec.name);
        continue;
      }
      ProcessSpec old = g->spec;
      old.line = spec.line;
      if (old == spec) continue;
      // Changed: the old instances stop and the new ones start now (a HELLO
      // with the same name takes the old one's session over).
      g->removing = true;
      for (auto& inst : g->instances) s.stop_instance(*inst);
      summary.changed.push_back(spec.name);
      s.add_group(spec);  // its processes start now; the old ones are on their way out
    }
    return summary;
  });
}

Result<std::vector<std::string>> ProcessSupervisor::restart(const std::string& name) {
  State& s = *state_;
  return s.act_on(name, [&s](Instance& inst) {
    inst.group->failed = false;
    if (inst.pid == 0) {
      s.start_instance(inst);
    } else {
      s.stop_instance(inst);
      inst.start_after_exit = true;
    }
    return true;
  });
}

Result<std::vector<std::string>> ProcessSupervisor::stop(const std::string& name) {
  State& s = *state_;
  return s.act_on(name, [&s](Instance& inst) {
    inst.start_after_exit = false;
    if (inst.pid != 0) {
      s.stop_instance(inst);
    } else {
      inst.start_due = false;
      inst.state = ProcessState::stopped;
      inst.deadline = kNever;
    }
    return true;
  });
}

Result<std::vector<std::string>> ProcessSupervisor::start(const std::string& name) {
  State& s = *state_;
  return s.act_on(name, [&s](Instance& inst) {
    if (inst.pid != 0) return false;
    inst.group->failed = false;
    inst.group->restart_times.clear();
    s.start_instance(inst);
    return true;
  });
}

void ProcessSupervisor::stop_all() {
  State& s = *state_;
  std::vector<Group*> order = s.call([&] {
    s.stopping_all = true;
    std::vector<Group*> v;
    for (auto& g : s.groups) v.push_back(g.get());
    std::reverse(v.begin(), v.end());
    return v;
  });
  for (Group* g : order) {
    s.post([&s, g] {
      for (auto& inst : g->instances) s.stop_instance(*inst);
    });
    std::unique_lock lock(s.mu);
    s.changed.wait(lock, [&] {
      return std::all_of(g->instances.begin(), g->instances.end(), [](auto& i) { return i->pid == 0; });
    });
  }
}

void ProcessSupervisor::hello(const std::string& client_name) {
  State& s = *state_;
  s.post([&s, client_name] {
    for (auto& g : s.groups) {
      for (auto& inst : g->instances) {
        if (inst->name != client_name || inst->pid == 0 || g->removing) continue;
        if (inst->state == ProcessState::starting) s.note_ready(*inst);
        if (inst->state == ProcessState::starting || inst->state == ProcessState::running) {
          inst->state = ProcessState::running;
          inst->deadline = kNever;
        }
      }
    }
  });
}

void ProcessSupervisor::goodbye(const std::string& client_name) {
  State& s = *state_;
  s.post([&s, client_name] {
    for (auto& g : s.groups) {
      for (auto& inst : g->instances) {
        // A running agent that lost its session must say HELLO again within its start timeout.
        if (inst->name == client_name && inst->state == ProcessState::running && g->spec.expect_hello && !g->removing) {
          inst->deadline = Clock::now() + g->spec.start_timeout;
        }
      }
    }
  });
}

std::vector<InstanceInfo> ProcessSupervisor::instances() const {
  const State& s = *state_;
  std::lock_guard lock(s.mu);
  std::vector<InstanceInfo> out;
  const Clock::time_point now = Clock::now();
  for (const auto& g : s.groups) {
    if (g->removing) continue;
    for (const auto& inst : g->instances) {
      out.push_back({inst->name, g->spec.name, inst->index, inst->pid, inst->state, inst->restarts,
                     inst->pid != 0 ? std::chrono::duration<double>(now - inst->started).count() : 0.0,
                     inst->last_exit, g->spec.argv});
    }
  }
  return out;
}

Result<std::vector<OutputLine>> ProcessSupervisor::logs(const std::string& name, std::size_t lines,
                                                         std::uint64_t after) const {
  State& s = *state_;
  std::lock_guard lock(s.mu);
  auto selected = s.select(name);
  if (!selected) return unexpected(selected.error());
  std::vector<OutputLine> out;
  for (Instance* inst : *selected) {
    for (const OutputLine& l : inst->kept) {
      if (l.seq > after) out.push_back(l);
    }
  }
  std::sort(out.begin(), out.end(), [](const OutputLine& a, const OutputLine& b) { return a.seq < b.seq; });
  if (out.size() > lines) {
    // The newest at first; the oldest after a seq, so a follower misses nothing.
    if (after == 0) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(lines));
    else out.resize(lines);
  }
  return out;
}

}  // namespace swarm::daemon
