// The supervisor with real processes (sh scripts): restarts, intensity,
// timeouts, output, thread count and memory.

#include "daemon/processes.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "metrics/registry.hpp"
#include "storage/journal.hpp"
#include "runtime/test_util.hpp"

namespace swarm::daemon {
namespace {

using namespace std::chrono_literals;
using test::eventually;

ProcessSpec sh(std::string name, std::string script) {
  ProcessSpec p;
  p.name = std::move(name);
  p.argv = {"/bin/sh", "-c", std::move(script)};
  p.expect_hello = false;
  p.stop_timeout = 2s;
  return p;
}

std::optional<InstanceInfo> find(const ProcessSupervisor& s, const std::string& name) {
  for (auto& i : s.instances()) {
    if (i.name == name) return i;
  }
  return std::nullopt;
}

ProcessState state_of(const ProcessSupervisor& s, const std::string& name) {
  auto i = find(s, name);
  return i ? i->state : ProcessState::stopped;
}

long status_field(const char* field) {  // from /proc/self/status, e.g. "Threads:", "VmRSS:" (kB)
  std::ifstream in("/proc/self/status");
  std::string key;
  long value = 0;
  while (in >> key) {
    if (key == field) {
      in >> value;
      return value;
    }
    std::getline(in, key);
  }
  return -1;
}

TEST(ProcessSupervisor, PermanentProcessIsRestartedAfterSigkill) {
  ProcessSupervisor s({});
  s.apply({sh("sleeper", "exec sleep 1000")});
  ASSERT_TRUE(eventually([&] { return state_of(s, "sleeper") == ProcessState::running; }));
  const int pid = find(s, "sleeper")->pid;
  ASSERT_GT(pid, 0);
  kill(pid, SIGKILL);
  ASSERT_TRUE(eventually([&] {
    auto i = find(s, "sleeper");
    return i->state == ProcessState::running && i->pid != pid && i->restarts == 1;
  }));
  EXPECT_EQ(find(s, "sleeper")->last_exit, "killed by signal Killed");
}

TEST(ProcessSupervisor, TooManyRestartsGiveUpAndEscalate) {
  std::atomic<int> escalations{0};
  std::string why;
  std::mutex mu;
  ProcessSupervisor s({.on_escalation = [&](const std::string& w) {
    std::lock_guard lock(mu);
    why = w;
    escalations++;
  }});
  ProcessSpec flapping = sh("flapping", "exit 1");
  flapping.max_restarts = 3;
  flapping.restart_period = 60s;
  s.apply({flapping});
  ASSERT_TRUE(eventually([&] { return state_of(s, "flapping") == ProcessState::failed; }));
  EXPECT_EQ(find(s, "flapping")->restarts, 3u);  // 3 restarts allowed, the 4th exit gives up
  EXPECT_EQ(escalations.load(), 1);
  std::lock_guard lock(mu);
  EXPECT_NE(why.find("exceeded its restart intensity (3 restarts within 60000 ms)"), std::string::npos) << why;
}

TEST(ProcessSupervisor, StayDownKeepsOthersRunningUntilStartedAgain) {
  std::atomic<int> escalations{0};
  ProcessSupervisor s({.on_escalation = [&](const std::string&) { escalations++; }});
  ProcessSpec flapping = sh("flapping", "exit 3");
  flapping.max_restarts = 1;
  flapping.on_give_up = GiveUp::stay_down;
  s.apply({flapping, sh("steady", "exec sleep 1000")});
  ASSERT_TRUE(eventually([&] { return state_of(s, "flapping") == ProcessState::failed; }));
  EXPECT_EQ(escalations.load(), 0);
  EXPECT_EQ(state_of(s, "steady"), ProcessState::running);
  EXPECT_EQ(find(s, "flapping")->last_exit, "exit code 3");
  auto started = s.start("flapping");
  ASSERT_TRUE(started);
  EXPECT_EQ(*started, std::vector<std::string>{"flapping"});
  EXPECT_TRUE(eventually([&] { return state_of(s, "flapping") == ProcessState::failed; }));  // and again
}

TEST(ProcessSupervisor, TransientAndTemporaryFollowTheirRestartType) {
  ProcessSpec clean = sh("clean", "exit 0");
  clean.restart = RestartType::transient;
  ProcessSpec once = sh("once", "exit 1");
  once.restart = RestartType::temporary;
  ProcessSupervisor s({});
  s.apply({clean, once});
  ASSERT_TRUE(eventually([&] { return state_of(s, "clean") == ProcessState::exited && state_of(s, "once") == ProcessState::exited; }));
  EXPECT_EQ(find(s, "clean")->restarts, 0u);
  EXPECT_EQ(find(s, "once")->restarts, 0u);
  EXPECT_EQ(find(s, "once")->last_exit, "exit code 1");
}

TEST(ProcessSupervisor, NoHelloWithinStartTimeoutIsKilled) {
  metrics::Registry reg;
  ProcessSupervisor s({.metrics = &reg});
  ProcessSpec silent = sh("silent", "exec sleep 1000");
  silent.expect_hello = true;
  silent.start_timeout = 300ms;
  silent.restart = RestartType::temporary;
  s.apply({silent});
  EXPECT_EQ(state_of(s, "silent"), ProcessState::starting);
  ASSERT_TRUE(eventually([&] { return state_of(s, "silent") == ProcessState::exited; }));
  EXPECT_EQ(find(s, "silent")->last_exit, "killed by signal Killed (no HELLO in time)");
  EXPECT_NE(reg.render().find("swarm_process_exits_total{process=\"silent\",reason=\"start_timeout\"} 1"), std::string::npos);
}

TEST(ProcessSupervisor, HelloMakesItRunning) {
  ProcessSupervisor s({});
  ProcessSpec agent = sh("agent", "exec sleep 1000");
  agent.expect_hello = true;
  agent.instances = 2;
  s.apply({agent});
  EXPECT_EQ(state_of(s, "agent-0"), ProcessState::starting);
  s.hello("agent-1");
  ASSERT_TRUE(eventually([&] { return state_of(s, "agent-1") == ProcessState::running; }));
  EXPECT_EQ(state_of(s, "agent-0"), ProcessState::starting);
}

TEST(ProcessSupervisor, IgnoringSigtermIsSigkilledAfterStopTimeout) {
  metrics::Registry reg;
  ProcessSupervisor s({.metrics = &reg});
  ProcessSpec stubborn = sh("stubborn", "trap '' TERM; echo ready; while :; do sleep 0.05; done");
  stubborn.stop_timeout = 300ms;
  s.apply({stubborn});
  ASSERT_TRUE(eventually([&] { return s.logs("stubborn", 10, 0).value().size() == 1; }));  // the trap is set
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(s.stop("stubborn"));
  ASSERT_TRUE(eventually([&] { return state_of(s, "stubborn") == ProcessState::stopped; }));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 300ms);
  EXPECT_EQ(find(s, "stubborn")->last_exit, "killed by signal Killed after its stop timeout");
  EXPECT_NE(reg.render().find("reason=\"stop_timeout\"} 1"), std::string::npos);
}

TEST(ProcessSupervisor, OutputIsReadLineByLineCutAndKept) {
  metrics::Registry reg;
  std::mutex mu;
  std::vector<std::string> seen;
  ProcessSupervisor s({.on_line = [&](const OutputLine& l) {
                         std::lock_guard lock(mu);
                         seen.push_back(l.name + (l.is_stderr ? " err " : " out ") + l.text);
                       },
                       .metrics = &reg});
  ProcessSpec talker = sh("talker", "echo one; echo two >&2; printf '%0200d\\n' 0; printf 'no newline'");
  talker.max_line_bytes = 100;
  talker.keep_lines = 3;
  talker.restart = RestartType::temporary;
  s.apply({talker});
  auto lines = [&] {  // a copy: on_line runs under the supervisor's lock, so never call it holding `mu`
    std::lock_guard lock(mu);
    return seen;
  };
  ASSERT_TRUE(eventually([&] { return lines().size() == 4; }));
  const std::vector<std::string> got = lines();
  // Two pipes: the order within a stream is kept, not across them.
  std::vector<std::string> out;
  for (const auto& l : got) {
    if (l.starts_with("talker out ")) out.push_back(l);
  }
  EXPECT_EQ(out, (std::vector<std::string>{"talker out one", "talker out " + std::string(100, '0'),  // cut at max_line
                                           "talker out no newline"}));
  EXPECT_NE(std::find(got.begin(), got.end(), "talker err two"), got.end());
  const auto kept = s.logs("talker", 100, 0).value();
  EXPECT_EQ(kept.size(), 3u);  // keep_lines
  EXPECT_EQ(s.logs("talker", 2, 0).value().size(), 2u);
  EXPECT_TRUE(s.logs("talker", 100, kept.back().seq).value().empty());
  EXPECT_NE(reg.render().find("swarm_process_output_truncated_total{process=\"talker\"} 1"), std::string::npos);
  EXPECT_FALSE(s.logs("nobody", 1, 0));
}

TEST(ProcessSupervisor, LifecycleAndOutputGoToTheJournal) {
  std::shared_ptr<storage::Journal> journal = storage::make_memory_journal();
  ProcessSupervisor s({.journal = journal});
  ProcessSpec p = sh("j", "echo hello; exit 2");
  p.restart = RestartType::temporary;
  p.journal_output = true;
  s.apply({p});
  ASSERT_TRUE(eventually([&] { return state_of(s, "j") == ProcessState::exited; }));
  auto crashes = journal->crashes("process/j", 0, std::numeric_limits<std::int64_t>::max()).value();
  ASSERT_EQ(crashes.size(), 1u);
  EXPECT_EQ(crashes[0].detail, "error: exit code 2");
  ASSERT_NE(crashes[0].agent, 0u);  // the pid
  ASSERT_TRUE(eventually([&] { return journal->history(crashes[0].agent).value().size() == 3; }));
  auto history = journal->history(crashes[0].agent).value();
  EXPECT_EQ(history[0].kind, storage::EventKind::spawned);
  EXPECT_EQ(history[1].kind, storage::EventKind::message);
  EXPECT_EQ(history[1].detail, "process.j.stdout");
  EXPECT_EQ(history[1].payload, "hello");
  EXPECT_EQ(history[2].kind, storage::EventKind::crashed);
}

TEST(ProcessSupervisor, ApplyAddsRemovesAndRestartsChanged) {
  ProcessSupervisor s({});
  s.apply({sh("a", "exec sleep 1000"), sh("b", "exec sleep 1000")});
  ASSERT_TRUE(eventually([&] { return state_of(s, "a") == ProcessState::running && state_of(s, "b") == ProcessState::running; }));
  const int a_pid = find(s, "a")->pid, b_pid = find(s, "b")->pid;
  const ApplySummary summary = s.apply({sh("a", "exec sleep 1000"), sh("b", "exec sleep 999"), sh("c", "exec sleep 1000")});
  EXPECT_EQ(summary.added, std::vector<std::string>{"c"});
  EXPECT_EQ(summary.changed, std::vector<std::string>{"b"});
  EXPECT_TRUE(summary.removed.empty());
  ASSERT_TRUE(eventually([&] {
    auto b = find(s, "b");
    return b && b->state == ProcessState::running && b->pid != b_pid && state_of(s, "c") == ProcessState::running;
  }));
  EXPECT_EQ(find(s, "a")->pid, a_pid);  // unchanged: untouched
  EXPECT_EQ(s.apply({sh("c", "exec sleep 1000")}).removed, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s.instances().size(), 1u);
  EXPECT_TRUE(eventually([&] { return kill(a_pid, 0) == -1; }));  // stopped and reaped
}

TEST(ProcessSupervisor, StopAllGoesInReverseStartOrder) {
  const std::string marks = testing::TempDir() + "/stop_order";
  std::remove(marks.c_str());
  ProcessSupervisor s({});
  auto writer = [&](const char* name) {
    return sh(name, std::string("trap 'echo ") + name + " >> " + marks + "; exit 0' TERM; echo up; while :; do sleep 0.05; done");
  };
  s.apply({writer("first"), writer("second"), writer("third")});
  for (const char* n : {"first", "second", "third"}) {
    ASSERT_TRUE(eventually([&] { return s.logs(n, 1, 0).value().size() == 1; }));
  }
  s.stop_all();
  std::ifstream in(marks);
  std::string a, b, c;
  in >> a >> b >> c;
  EXPECT_EQ(a + "," + b + "," + c, "third,second,first");
}

TEST(ProcessSupervisor, ProgramNotFoundIsAFailedStartThatGivesUp) {
  ProcessSupervisor s({});
  ProcessSpec missing;
  missing.name = "missing";
  missing.argv = {"no-such-program-swarm"};
  missing.expect_hello = false;
  missing.max_restarts = 2;
  missing.on_give_up = GiveUp::stay_down;
  s.apply({missing});
  ASSERT_TRUE(eventually([&] { return state_of(s, "missing") == ProcessState::failed; }));
  EXPECT_EQ(find(s, "missing")->last_exit, "cannot start: \"no-such-program-swarm\" is not an executable in PATH");
}

TEST(ProcessSupervisor, LimitsAndEnvironmentReachTheProcess) {
  ProcessSupervisor s({.gateway_endpoint = "tcp://127.0.0.1:7999"});
  ProcessSpec p = sh("env", "echo $SWARM_NAME $SWARM_GATEWAY $SWARM_QUEUE_GROUP $MODEL $(ulimit -n) $(pwd)");
  p.env = {{"MODEL", "small"}};
  p.limit_open_files = 77;
  p.cwd = "/tmp";
  p.restart = RestartType::temporary;
  s.apply({p});
  ASSERT_TRUE(eventually([&] { return s.logs("env", 1, 0).value().size() == 1; }));
  EXPECT_EQ(s.logs("env", 1, 0).value()[0].text, "env tcp://127.0.0.1:7999 env small 77 /tmp");
}

TEST(ProcessSupervisor, TwoHundredProcessesTakeTheThreadsOfOne) {
  ProcessSupervisor s({});
  ProcessSpec many = sh("many", "echo hi; exec sleep 1000");
  s.apply({many});
  ASSERT_TRUE(eventually([&] { return !s.logs("many", 1, 0).value().empty(); }));
  const long one = status_field("Threads:");  // after a first fork: sanitizers start threads of their own
  many.instances = 200;
  s.apply({many});
  ASSERT_TRUE(eventually([&] {
    std::size_t running = 0;
    for (auto& i : s.instances()) running += i.state == ProcessState::running && !s.logs(i.name, 1, 0).value().empty();
    return running == 200;
  }, 60s));
  EXPECT_EQ(status_field("Threads:"), one);
  s.stop_all();
  for (auto& i : s.instances()) EXPECT_EQ(i.pid, 0);
}

TEST(ProcessSupervisor, AGigabyteOfOutputKeepsMemoryFlat) {
  metrics::Registry reg;
  ProcessSupervisor s({.metrics = &reg});
  // 1 GiB in lines of 4095 bytes.
  ProcessSpec loud = sh("loud", "head -c 1073741824 /dev/zero | tr '\\0' 'x' | fold -w 4095");
  loud.restart = RestartType::temporary;
  const long rss_before = status_field("VmRSS:");
  s.apply({loud});
  long rss_peak = rss_before;
  const std::string all = "swarm_process_output_bytes_total{process=\"loud\",stream=\"stdout\"} 1074004032";
  // Polled every 20 ms on a cheap condition: what the test itself allocates and
  // frees would count in the RSS under a sanitizer (its quarantine keeps freed memory).
  for (auto deadline = std::chrono::steady_clock::now() + 300s;
       state_of(s, "loud") != ProcessState::exited && std::chrono::steady_clock::now() < deadline;) {
    rss_peak = std::max(rss_peak, status_field("VmRSS:"));
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(eventually([&] { return reg.render().find(all) != std::string::npos; }, 30s))  // 1 GiB + a newline per 4095 bytes
      << reg.render();
  rss_peak = std::max(rss_peak, status_field("VmRSS:"));
  EXPECT_LT(rss_peak - rss_before, 16 * 1024) << "kB";
}

}  // namespace
}  // namespace swarm::daemon
