// swarmd: a runtime, its gateway and storage, in-process agents and the
// supervised processes, from one config; signals and the control endpoints.

#include "daemon/daemon.hpp"

#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "daemon/processes.hpp"
#include "metrics/admin_server.hpp"
#include "storage/journal.hpp"
#include "storage/state_store.hpp"
#include "transport/gateway.hpp"

namespace swarm::daemon {

namespace {

using Clock = std::chrono::steady_clock;

std::string random_token() {
  unsigned char bytes[32];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) out += {hex[b >> 4], hex[b & 15]};
  return out;
}

// The token file: its folder only swarmd's user can enter, the file only it can read.
Result<void> write_token(const std::string& path, const std::string& token) {
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return unexpected("cannot create " + dir.string() + ": " + std::strerror(errno));
    }
    struct stat st{};
    if (stat(dir.c_str(), &st) != 0 || st.st_uid != geteuid()) {
      return unexpected(dir.string() + " belongs to another user: refusing to put the control token there");
    }
  }
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return unexpected("cannot write " + path + ": " + std::strerror(errno));
  fchmod(fd, 0600);
  const std::string text = token + "\n";
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  if (!ok) return unexpected("cannot write " + path);
  return {};
}

// systemd's readiness protocol, when run as Type=notify (no libsystemd needed).
void notify_systemd(const char* state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || (path[0] != '/' && path[0] != '@')) return;
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  (void)!sendto(fd, state, std::strlen(state), 0, reinterpret_cast<const sockaddr*>(&addr),
                static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + std::strlen(path)));
  close(fd);
}

metrics::AdminResponse json_response(int status, const nlohmann::json& body) {
  return {status, "application/json", body.dump() + "\n"};
}

}  // namespace

std::string default_token_file(std::uint16_t admin_port) {
  return "/tmp/swarmd-" + std::to_string(geteuid()) + "/control-" + std::to_string(admin_port) + ".token";
}

int run(const DaemonConfig& config, const AgentTypes& types, RunOptions options) {
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // taken from the signalfd below; threads inherit the mask
  signal(SIGPIPE, SIG_IGN);
  const int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  const int wake_fd = eventfd(0, EFD_CLOEXEC);
  std::atomic<int> exit_code{-1};  // set by a drain (0) or an escalation (3): stop then
  auto request_stop = [&](int code) {
    int expected = -1;
    exit_code.compare_exchange_strong(expected, code);
    const std::uint64_t one = 1;
    (void)!write(wake_fd, &one, sizeof one);
  };

  RuntimeConfig rc = config.runtime;
  std::shared_ptr<storage::Journal> journal;
  std::shared_ptr<StateStore> state;
  if (config.state == "memory") {
    state = storage::make_memory_state_store();
  } else {
    auto store = storage::make_redis_state_store({.url = config.state});
    if (!store) return std::cerr << "swarmd: storage.state: " << store.error() << std::endl, kExitUsage;
    state = std::move(*store);
  }
  if (config.journal == "memory") {
    journal = storage::make_memory_journal();
  } else if (config.journal != "none") {
    auto j = storage::make_postgres_journal({.dsn = config.journal});
    if (!j) return std::cerr << "swarmd: storage.journal: " << j.error() << std::endl, kExitUsage;
    journal = std::move(*j);
  }
  rc.state_store = state;
  rc.lifecycle = journal;

  std::atomic<ProcessSupervisor*> supervisor_ptr{nullptr};
  std::optional<Runtime> rt;
  std::optional<transport::Gateway> gateway;
  std::unique_ptr<cluster::Cluster> node;
  try {
    rt.emplace(rc);
    for (const AgentSpec& a : config.agents) {
      const AgentFactory* factory = types.find(a.type);
      if (factory == nullptr) throw std::invalid_argument(config.path + ":" + std::to_string(a.line) + ": agents: no agent type \"" + a.type + "\"");
      if (auto ok = (*factory)(*rt, a); !ok) {
        throw std::invalid_argument(config.path + ":" + std::to_string(a.line) + ": agents: " + a.type + ": " + ok.error());
      }
    }
    if (config.gateway_enabled) {
      transport::GatewayConfig gc = config.gateway;
      if (!config.gateway_token_file.empty()) gc.auth_token = read_first_line(config.gateway_token_file);
      gc.on_session = [&supervisor_ptr](const std::string& name, bool open) {
        if (ProcessSupervisor* s = supervisor_ptr.load()) open ? s->hello(name) : s->goodbye(name);
      };
      gateway.emplace(*rt, gc);
    }
    if (config.cluster) {
      auto joined = cluster::Cluster::join(*rt, *config.cluster);
      if (!joined) throw std::runtime_error(joined.error());
      node = std::move(*joined);
      std::cerr << "swarmd: node " << config.cluster->node << " joined the cluster at " << node->stats().server << "\n";
    }
  } catch (const std::invalid_argument& e) {
    std::cerr << "swarmd: " << e.what() << std::endl;
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "swarmd: cannot start: " << e.what() << std::endl;
    return kExitFailure;
  }

  SupervisorOptions so;
  if (gateway) so.gateway_endpoint = gateway->endpoint();
  if (!config.gateway_token_file.empty()) so.gateway_token = read_first_line(config.gateway_token_file);
  so.log_fd = STDERR_FILENO;
  so.journal = journal;
  so.on_escalation = [&](const std::string&) { request_stop(kExitEscalated); };
  so.metrics = &rt->metrics();
  ProcessSupervisor supervisor(std::move(so));
  supervisor_ptr.store(&supervisor);

  // The admin port: status and processes for anyone; control with the token.
  const Clock::time_point started = Clock::now();
  std::string token_file;
  std::atomic<bool> draining{false};
  if (metrics::AdminServer* admin = rt->admin()) {
    admin->set_dynamic_page("/debug/status", [&, admin](const metrics::AdminRequest&) {  // admin: a copy, it lives in this block
      std::size_t running = 0, starting = 0, failed = 0;
      const auto list = supervisor.instances();
      for (const auto& i : list) {
        running += i.state == ProcessState::running;
        starting += i.state == ProcessState::starting;
        failed += i.state == ProcessState::failed;
      }
      return json_response(200, {{"pid", getpid()},
                                 {"version", "0.1.0"},
                                 {"config", config.path},
                                 {"uptime_seconds", std::chrono::duration<double>(Clock::now() - started).count()},
                                 {"admin", admin->address().host + ":" + std::to_string(admin->port())},
                                 {"gateway", gateway ? gateway->endpoint() : ""},
                                 {"workers", rc.workers},
                                 {"agents_live", rt->stats().live},
                                 {"clients", gateway ? gateway->stats().clients : 0},
                                 {"cluster_node", node ? node->config().node : ""},
                                 {"cluster_peers", node ? node->nodes() : std::vector<std::string>{}},
                                 {"processes", {{"total", list.size()}, {"running", running}, {"starting", starting}, {"failed", failed}}},
                                 {"draining", draining.load()}});
    });
    admin->set_dynamic_page("/debug/processes", [&](const metrics::AdminRequest&) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& i : supervisor.instances()) {
        list.push_back({{"name", i.name}, {"process", i.process}, {"instance", i.instance}, {"pid", i.pid},
                        {"state", to_string(i.state)}, {"restarts", i.restarts}, {"uptime_seconds", i.uptime_seconds},
                        {"last_exit", i.last_exit}, {"argv", i.argv}});
      }
      return json_response(200, {{"processes", list}});
    });
    using Action = Result<std::vector<std::string>> (ProcessSupervisor::*)(const std::string&);
    auto act = [&](const char* done, Action action) {
      return [&supervisor, done, action](const metrics::AdminRequest& r) {
        if (r.method != "POST") return json_response(405, {{"error", "use POST"}});
        const std::string name = r.param("name");
        if (name.empty()) return json_response(400, {{"error", "name=NAME is missing"}});
        auto names = (supervisor.*action)(name);
        if (!names) return json_response(404, {{"error", names.error()}});
        return json_response(200, {{done, *names}});
      };
    };
    admin->set_control_page("/control/restart", act("restarted", &ProcessSupervisor::restart));
    admin->set_control_page("/control/stop", act("stopped", &ProcessSupervisor::stop));
    admin->set_control_page("/control/start", act("started", &ProcessSupervisor::start));
    admin->set_control_page("/control/drain", [&](const metrics::AdminRequest& r) {
      if (r.method != "POST") return json_response(405, {{"error", "use POST"}});
      request_stop(kExitOk);
      return json_response(202, {{"draining", true}});
    });
    admin->set_control_page("/control/logs", [&](const metrics::AdminRequest& r) {
      const std::size_t lines = std::strtoull(r.param("lines", "100").c_str(), nullptr, 10);
      const std::uint64_t after = std::strtoull(r.param("after", "0").c_str(), nullptr, 10);
      auto got = supervisor.logs(r.param("name"), std::clamp<std::size_t>(lines, 1, 100'000), after);
      if (!got) return json_response(404, {{"error", got.error()}});
      nlohmann::json list = nlohmann::json::array();
      std::uint64_t next = after;
      for (const auto& l : *got) {
        list.push_back({{"seq", l.seq}, {"name", l.name}, {"stream", l.is_stderr ? "stderr" : "stdout"},
                        {"at_us", l.at_us}, {"text", l.text}});
        next = l.seq;
      }
      return json_response(200, {{"lines", list}, {"next", next}});
    });
    if (config.control) {
      token_file = config.admin_token_file.empty() ? default_token_file(admin->port()) : config.admin_token_file;
      const std::string token = random_token();
      if (auto ok = write_token(token_file, token); !ok) {
        std::cerr << "swarmd: admin.token_file: " << ok.error() << std::endl;
        return kExitFailure;
      }
      admin->set_control_token(token);
    }
  }

  supervisor.apply(config.processes);
  std::uint64_t agents = 0, instances = 0;
  for (const AgentSpec& a : config.agents) agents += a.count;
  for (const ProcessSpec& p : config.processes) instances += p.instances;
  std::cerr << "swarmd: started " << agents << " in-process agents and " << instances << " processes from "
            << config.path << "\n";
  if (gateway) std::cerr << "swarmd: gateway " << gateway->endpoint() << "\n";
  if (rt->admin_port() != 0) {
    std::cerr << "swarmd: admin http://" << rt->admin()->address().host << ":" << rt->admin_port()
              << "/ (swarmctl --admin " << rt->admin()->address().host << ":" << rt->admin_port() << " status)\n";
  }
  std::cerr << std::flush;
  notify_systemd("READY=1");

  const Clock::time_point until = options.seconds.count() > 0 ? Clock::now() + options.seconds : Clock::time_point::max();
  while (exit_code.load() < 0) {
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int timeout = -1;
    if (until != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
      if (left <= 0) {
        std::cerr << "swarmd: --seconds " << options.seconds.count() << " are over: stopping\n";
        request_stop(kExitOk);
        break;
      }
      timeout = static_cast<int>(std::min<std::int64_t>(left, 60'000));
    }
    if (poll(fds, 2, timeout) <= 0) continue;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      if (read(signal_fd, &info, sizeof info) != sizeof info) continue;
      if (info.ssi_signo == SIGHUP) {
        const std::vector<std::string> known = types.names();
        auto next = load_config(config.path, &known);
        if (!next) {
          std::cerr << "swarmd: SIGHUP: the new config is refused, nothing changed: " << next.error() << std::endl;
          continue;
        }
        const ApplySummary s = supervisor.apply(next->processes);
        auto list = [](const std::vector<std::string>& v) {
          std::string out;
          for (const auto& n : v) out += (out.empty() ? "" : ",") + n;
          return out.empty() ? std::string("-") : out;
        };
        std::cerr << "swarmd: SIGHUP: processes added " << list(s.added) << ", removed " << list(s.removed)
                  << ", changed " << list(s.changed)
                  << " (runtime, admin, gateway, storage, cluster and agents take effect at the next start)" << std::endl;
        continue;
      }
      std::cerr << "swarmd: " << (info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM") << ": stopping" << std::endl;
      request_stop(kExitOk);
    }
  }

  // Drain: no more (re)starts, processes stop in reverse start order, then
  // the gateway, then the runtime (which drains agents); then storage is flushed.
  draining.store(true);
  notify_systemd("STOPPING=1");
  int code = exit_code.load();
  supervisor.stop_all();
  supervisor_ptr.store(nullptr);
  if (node) node->leave();  // peers withdraw this node's interest and names at once
  if (gateway) gateway->stop();
  rt->shutdown();
  for (auto [what, result] : {std::pair{"state store", state->flush(std::chrono::seconds(10))},
                              std::pair{"journal", journal ? journal->flush(std::chrono::seconds(10)) : Result<void>{}}}) {
    if (!result) {
      std::cerr << "swarmd: the " << what << " could not write everything: " << result.error() << std::endl;
      if (code == kExitOk) code = kExitFailure;
    }
  }
  if (!token_file.empty()) std::remove(token_file.c_str());
  close(signal_fd);
  close(wake_fd);
  std::cerr << "swarmd: stopped (exit " << code << ")" << std::endl;
  return code;
}

int main(int argc, char** argv, const AgentTypes& types) {
  CLI::App app{"swarmd: hosts a Swarm runtime from a YAML file: the gateway, state and journal, in-process agents, "
               "and supervised agent processes in any language (docs/swarmd.md)."};
  app.footer(
      "Exit codes: 0 stopped cleanly (SIGTERM, SIGINT, swarmctl drain, --seconds); 1 could not start or could not "
      "flush what it accepted; 2 bad command line or config; 3 a process exceeded its restart intensity "
      "(on_give_up: shutdown).\nSignals: SIGTERM/SIGINT drain and exit; SIGHUP re-reads the config and applies the "
      "difference to the processes (an invalid config changes nothing).");
  std::string config_path;
  long seconds = 0;
  app.add_option("-c,--config", config_path, "the YAML config to run")->check(CLI::ExistingFile);
  app.add_option("--seconds", seconds, "stop after this many seconds (default: run until told to stop)")
      ->check(CLI::NonNegativeNumber);
  std::string check_path;
  CLI::App* check = app.add_subcommand("check-config", "validate a config without starting anything; exit 0 or 2");
  check->add_option("file", check_path, "the YAML config")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  const std::vector<std::string> known = types.names();
  if (*check) {
    auto config = load_config(check_path, &known);
    if (!config) {
      std::cerr << config.error() << std::endl;
      return kExitUsage;
    }
    std::cout << check_path << ": OK (" << config->agents.size() << " agent entries, " << config->processes.size()
              << " processes)" << std::endl;
    return kExitOk;
  }
  if (config_path.empty()) {
    std::cerr << "swarmd: --config FILE is required (or: swarmd check-config FILE; swarmd --help)" << std::endl;
    return kExitUsage;
  }
  auto config = load_config(config_path, &known);
  if (!config) {
    std::cerr << config.error() << std::endl;
    return kExitUsage;
  }
  return run(*config, types, {std::chrono::seconds(seconds)});
}

}  // namespace swarm::daemon
