#include "apps/swarm-load/node_link.hpp"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

extern char** environ;

namespace swarm::load {

using nlohmann::json;

namespace {

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

// -- JSON ---

json to_json(const NodeCounts& c) {
  return {{"completed", {c.completed[0], c.completed[1]}},
          {"lost", {c.lost[0], c.lost[1]}},
          {"last_completion_ns", c.last_completion_ns},
          {"runtime_lost", c.runtime_lost},
          {"cluster_dropped", c.cluster_dropped},
          {"cpu_user", c.cpu_user},
          {"cpu_system", c.cpu_system},
          {"max_rss", c.max_rss}};
}

Result<NodeCounts> counts_from_json(const json& j) {
  NodeCounts c;
  try {
    for (int p = 0; p < 2; ++p) {
      c.completed[p] = j.at("completed").at(p).get<std::uint64_t>();
      c.lost[p] = j.at("lost").at(p).get<std::uint64_t>();
    }
    c.last_completion_ns = j.at("last_completion_ns").get<std::uint64_t>();
    for (std::size_t i = 0; i < c.runtime_lost.size(); ++i) c.runtime_lost[i] = j.at("runtime_lost").at(i).get<std::uint64_t>();
    for (std::size_t i = 0; i < c.cluster_dropped.size(); ++i) {
      c.cluster_dropped[i] = j.at("cluster_dropped").at(i).get<std::uint64_t>();
    }
    c.cpu_user = j.at("cpu_user").get<double>();
    c.cpu_system = j.at("cpu_system").get<double>();
    c.max_rss = j.at("max_rss").get<std::uint64_t>();
  } catch (const json::exception& e) {
    return unexpected("subscriber node: malformed counts: " + std::string(e.what()));
  }
  return c;
}

json to_json(const NodeReport& r) {
  json j = {{"counts", to_json(r.counts)}, {"all", r.all.to_json()}, {"measured", r.measured.to_json()}};
  if (!r.cluster.is_null()) j["cluster"] = r.cluster;
  return j;
}

Result<NodeReport> report_from_json(const json& j) {
  if (!j.is_object() || !j.contains("counts") || !j.contains("all") || !j.contains("measured")) {
    return unexpected(std::string("subscriber node: a report without counts and histograms"));
  }
  NodeReport r;
  auto c = counts_from_json(j["counts"]);
  if (!c) return unexpected(c.error());
  r.counts = *c;
  auto all = LatencyHistogram::from_json(j["all"]);
  if (!all) return unexpected("subscriber node: " + all.error());
  auto measured = LatencyHistogram::from_json(j["measured"]);
  if (!measured) return unexpected("subscriber node: " + measured.error());
  r.all = std::move(*all);
  r.measured = std::move(*measured);
  if (j.contains("cluster")) r.cluster = j["cluster"];
  return r;
}

json cluster_summary(const cluster::ClusterStats& s, std::string_view node, std::string_view role) {
  json dropped = json::object();
  for (int i = 0; i < cluster::kRemoteDropReasons; ++i) {
    dropped[std::string(cluster::to_string(static_cast<cluster::RemoteDrop>(i)))] = s.dropped[i];
  }
  json peers = json::array();
  for (const cluster::PeerStats& p : s.peers) {
    peers.push_back({{"node", p.node},
                     {"up", p.up},
                     {"sent", p.sent},
                     {"sent_bytes", p.sent_bytes},
                     {"acknowledged", p.acknowledged},
                     {"received", p.received},
                     {"received_bytes", p.received_bytes},
                     {"lost_in_transit", p.lost_in_transit},
                     {"lost_node_down", p.lost_node_down},
                     {"rtt_ms", p.rtt_ms}});
  }
  return {{"node", node},       {"role", role},         {"server", s.server}, {"reconnects", s.reconnects},
          {"dropped", dropped}, {"peers", std::move(peers)}};
}

cluster::ClusterConfig node_config(const Scenario& s, const char* node) {
  cluster::ClusterConfig c;
  c.node = node;
  c.prefix = kClusterPrefix;
  std::size_t pos = 0;
  while (pos < s.nats.size()) {
    const std::size_t comma = std::min(s.nats.find(',', pos), s.nats.size());
    std::string url = s.nats.substr(pos, comma - pos);
    while (!url.empty() && url.front() == ' ') url.erase(url.begin());
    while (!url.empty() && url.back() == ' ') url.pop_back();
    if (!url.empty()) c.servers.push_back(url);
    pos = comma + 1;
  }
  return c;
}

std::vector<std::string> subscriber_node_args(const Scenario& s) {
  const MixWeights& m = s.mix;
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"name", s.name},
      {"topology", std::string(to_string(s.topology))},
      {"stages", std::to_string(s.stages)},
      {"lanes", std::to_string(s.lanes)},
      {"subscribers", std::to_string(s.subscribers)},
      {"topics", std::to_string(s.topics)},
      {"queue_groups", std::to_string(s.queue_groups)},
      {"servers", std::to_string(s.servers)},
      {"payload_bytes", std::to_string(s.payload_bytes)},
      {"work_ns", std::to_string(s.work_ns)},
      {"mix", "pipeline=" + std::to_string(m.pipeline) + ",fanout=" + std::to_string(m.fanout) +
                  ",topics=" + std::to_string(m.topics) + ",request-reply=" + std::to_string(m.request_reply)},
      {"mailbox_capacity", std::to_string(s.mailbox_capacity)},
      {"overflow", std::string(to_string(s.overflow))},
      {"workers", std::to_string(s.workers)},
      {"idle_spin_us", std::to_string(s.idle_spin_us)},
      {"telemetry", s.telemetry ? "true" : "false"},
      {"storage", std::string(to_string(s.storage))},
      {"redis", s.redis},
      {"postgres", s.postgres},
      {"request_timeout", num(s.request_timeout)},
      {"nats", s.nats},
  };
  std::vector<std::string> args;
  for (const auto& [field, value] : fields) {
    if (value.empty()) continue;  // the default (redis, postgres unset)
    args.push_back("--set");
    args.push_back(field + "=" + value);
  }
  return args;
}

bool send_link_line(int fd, std::string_view line) {
  std::string buf(line);
  buf += '\n';
  std::size_t done = 0;
  while (done < buf.size()) {
    const ssize_t n = ::send(fd, buf.data() + done, buf.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// -- the run's end ---

Result<std::unique_ptr<SubscriberNode>> SubscriberNode::start(const std::string& binary,
                                                               const std::vector<std::string>& args,
                                                               std::chrono::milliseconds timeout) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return unexpected("socketpair: " + std::string(std::strerror(errno)));
  }
  std::vector<std::string> argv = {binary, "_subscriber-node", "--link-fd", std::to_string(kLinkFd)};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], kLinkFd);  // clears close-on-exec (also when equal: glibc >= 2.29)
  std::unique_ptr<SubscriberNode> node(new SubscriberNode());
  const int rc = ::posix_spawn(&node->pid_, binary.c_str(), &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    node->pid_ = -1;
    return unexpected("cannot start the subscriber node " + binary + ": " + std::strerror(rc));
  }
  node->fd_ = fds[0];
  node->reader_ = std::thread([n = node.get()] { n->read_loop(); });
  auto ready = node->await("ready", timeout);
  if (!ready) return unexpected(ready.error());
  node->workers_ = ready->value("workers", 0u);
  return node;
}

SubscriberNode::~SubscriberNode() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);  // end of file: it stops
  if (pid_ > 0) {
    std::unique_lock lock(mu_);
    if (!reaped_) {
      lock.unlock();
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      int status = 0;
      while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, &status, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  if (reader_.joinable()) reader_.join();
  if (fd_ >= 0) ::close(fd_);
}

NodeCounts SubscriberNode::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

std::string SubscriberNode::failure() {
  std::unique_lock lock(mu_);
  if (failure_.empty() && closed_ && !finishing_) {
    lock.unlock();
    const std::string how = exit_text();
    lock.lock();
    if (failure_.empty()) failure_ = "it closed the link: " + how + " (its messages are on stderr)";
  }
  return failure_;
}

bool SubscriberNode::send_line(std::string_view line) { return send_link_line(fd_, line); }

Result<NodeReport> SubscriberNode::snapshot(std::chrono::milliseconds timeout) {
  if (!send_line("snapshot")) {
    auto gone = await("snapshot", std::chrono::milliseconds(0));
    return unexpected(gone ? std::string("subscriber node: it stopped answering") : gone.error());
  }
  auto j = await("snapshot", timeout);
  if (!j) return unexpected(j.error());
  return report_from_json(*j);
}

Result<NodeReport> SubscriberNode::finish(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mu_);
    finishing_ = true;
  }
  (void)send_line("stop");
  auto j = await("final", timeout);
  // It exits right after its final report.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int status = 0;
  pid_t done = 0;
  while ((done = ::waitpid(pid_, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (done == 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  {
    std::lock_guard lock(mu_);
    reaped_ = true;
    status_ = status;
  }
  if (!j) return unexpected(j.error());
  return report_from_json(*j);
}

std::string SubscriberNode::exit_text() {
  int status = 0;
  // It closed the link: it is exiting or gone; give it a moment to be reaped.
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(mu_);
      if (reaped_) {
        status = status_;
        break;
      }
    }
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      std::lock_guard lock(mu_);
      reaped_ = true;
      status_ = status;
      break;
    }
    if (r < 0) return "it is gone";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (i == 199) return "it closed the link but still runs";
  }
  if (WIFEXITED(status)) return "it exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "it was killed by signal " + std::to_string(WTERMSIG(status));
  return "it ended";
}

Result<json> SubscriberNode::await(const char* kind, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    while (!replies_.empty()) {
      json j = std::move(replies_.front());
      replies_.pop_front();
      if (j.contains("error")) {
        const std::string why = j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
        failure_ = why;
        return unexpected("subscriber node: " + why);
      }
      if (j.contains(kind)) return j[kind];
      // An answer for an earlier request that timed out: skip it.
    }
    if (!failure_.empty()) return unexpected("subscriber node: " + failure_);
    if (closed_) {
      lock.unlock();
      const std::string how = exit_text();
      lock.lock();
      failure_ = "the link closed before its " + std::string(kind) + " (" + how + "; its messages are on stderr)";
      return unexpected("subscriber node: " + failure_);
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && replies_.empty() && !closed_) {
      return unexpected("subscriber node: no " + std::string(kind) + " within " +
                        std::to_string(timeout.count()) + " ms");
    }
  }
}

void SubscriberNode::read_loop() {
  std::string buf;
  char chunk[65536];
  for (;;) {
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(chunk, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
      json j = json::parse(std::string_view(buf).substr(start, nl - start), nullptr, false);
      std::lock_guard lock(mu_);
      if (!j.is_object()) {
        if (failure_.empty()) failure_ = "it sent a line that is not a JSON object";
        cv_.notify_all();
        continue;
      }
      if (j.contains("counts")) {
        auto c = counts_from_json(j["counts"]);
        if (c) {
          counts_ = *c;
        } else if (failure_.empty()) {
          failure_ = c.error();
        }
        continue;
      }
      if (j.contains("snapshot") || j.contains("final")) {
        const json& r = j.contains("snapshot") ? j["snapshot"] : j["final"];
        if (r.contains("counts")) {
          if (auto c = counts_from_json(r["counts"]); c) counts_ = *c;
        }
      }
      replies_.push_back(std::move(j));
      cv_.notify_all();
    }
    buf.erase(0, start);
  }
  std::lock_guard lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

}  // namespace swarm::load
