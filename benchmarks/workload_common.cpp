#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "benchmarks/bench_driver.hpp"
#include "benchmarks/workload_support.hpp"
#include "benchmarks/workloads.hpp"

extern char** environ;

namespace swarm::bench {

std::string_view to_string(WorkloadParams::Pooling p) {
  switch (p) {
    case WorkloadParams::Pooling::on: return "on";
    case WorkloadParams::Pooling::off: return "off";
    case WorkloadParams::Pooling::runtime_default: break;
  }
  return "default";
}

bool send_asap_for(std::string_view workload, const WorkloadParams& p) {
  if (p.send_asap) return *p.send_asap;
  return workload != "C1";
}

std::vector<std::uint32_t> random_topics(std::uint64_t n, std::uint32_t topics) {
  std::vector<std::uint32_t> out(n);
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;  // xorshift64: fast, and the same everywhere
  for (auto& t : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t = static_cast<std::uint32_t>(x % topics);
  }
  return out;
}

std::vector<std::uint64_t> count_per_topic(const std::vector<std::uint32_t>& sequence, std::uint32_t topics) {
  std::vector<std::uint64_t> counts(topics, 0);
  for (std::uint32_t t : sequence) ++counts[t];
  return counts;
}

std::uint64_t resident_bytes() {
  // statm: size resident shared text lib data dt, in pages.
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

void fail(std::string_view id, const std::string& what) { throw std::runtime_error(std::string(id) + ": " + what); }

RuntimeConfig config_for(const WorkloadParams& p) {
  RuntimeConfig c;
  if (p.workers != 0) c.workers = p.workers;
  if (p.pooling != WorkloadParams::Pooling::runtime_default) c.pooling = p.pooling == WorkloadParams::Pooling::on;
  c.telemetry.enabled = p.telemetry;
  if (p.idle_spin_us >= 0) c.idle_spin = std::chrono::microseconds(p.idle_spin_us);
  if (p.batch_fanout) c.batch_fanout = *p.batch_fanout;
  if (p.shared_fanout) c.shared_fanout = *p.shared_fanout;
  if (p.wake_handoff) c.wake_handoff = *p.wake_handoff;
  if (p.fanout_handoff) c.fanout_handoff = *p.fanout_handoff;
  return c;
}

const std::string& payload_bytes() {
  static const std::string bytes = [] {
    std::string b(kPayloadBytes, '\0');
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>(i * 7 + 1);
    return b;
  }();
  return bytes;
}

std::pair<double, double> median_p99(std::vector<double>& us) {
  if (us.empty()) return {0, 0};
  Stats st = compute_stats(us);
  std::sort(us.begin(), us.end());
  const auto rank = static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(us.size())));
  return {st.median, us[std::min(us.size(), std::max<std::size_t>(rank, 1)) - 1]};
}

// -- ChildProcess ---

ChildProcess::ChildProcess(std::string_view id, std::string who, std::vector<std::string> args, bool with_stdin)
    : id_(id), who_(std::move(who)) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2], in[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0) fail(id_, std::string("pipe: ") + std::strerror(errno));
  if (with_stdin && ::pipe2(in, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    fail(id_, std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  if (with_stdin) posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  const int err = ::posix_spawn(&pid_, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (with_stdin) ::close(in[0]);
  out_ = out[0];
  in_ = in[1];
  if (err != 0) {
    pid_ = -1;
    fail(id_, "cannot start " + who_ + ": " + std::strerror(err));
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    (void)::waitpid(pid_, &status, 0);
  }
  if (in_ >= 0) ::close(in_);
  if (out_ >= 0) ::close(out_);
}

std::optional<std::string> ChildProcess::read_line(Clock::time_point deadline) {
  for (;;) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    // Rounded up: a deadline under 1 ms away still waits, it does not spin.
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd item{out_, POLLIN, 0};
    const int ready = ::poll(&item, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) fail(id_, std::string("poll: ") + std::strerror(errno));
    if (ready <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(out_, buf, sizeof buf);
    if (n > 0) {
      buffer_.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      fail(id_, who_ + " " + wait() + " before it printed its result");
    } else if (errno != EINTR) {
      fail(id_, std::string("read: ") + std::strerror(errno));
    }
  }
}

nlohmann::json ChildProcess::parse(const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (!j.is_object()) fail(id_, who_ + " printed \"" + line + "\", not a JSON object");
  if (j.contains("error")) fail(id_, who_ + ": " + j["error"].get<std::string>());
  return j;
}

nlohmann::json ChildProcess::result(std::chrono::seconds wait) {
  auto line = read_line(Clock::now() + wait);
  if (!line) fail(id_, "no result from " + who_ + " in time");
  return parse(*line);
}

void ChildProcess::finish() {
  if (in_ >= 0) {
    ::close(in_);
    in_ = -1;
  }
  const std::string how = wait();
  if (how != "exited with status 0") fail(id_, who_ + " " + how);
}

std::string ChildProcess::wait() {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) return std::string("waitpid: ") + std::strerror(errno);
  }
  pid_ = -1;
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

}  // namespace swarm::bench
