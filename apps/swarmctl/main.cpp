// swarmctl: operates a running swarmd (docs/swarmd.md). Observation and
// control go to its admin HTTP port; pub, sub and req go through its SWP
// gateway with the C++ client. Exit codes: see kFooter.

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <netdb.h>
#include <nlohmann/json.hpp>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "apps/swarmctl/ctl.hpp"
#include "metrics/admin_server.hpp"
#include "transport/client.hpp"

namespace {

using nlohmann::json;
using swarm::ctl::Failure;
using swarm::ctl::kExitFailed;
using swarm::ctl::kExitUsage;
using swarm::transport::Command;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kFooter =
    "Exit codes: 0 ok; 1 the operation failed (swarmd or its gateway said no, a request was not answered ok);\n"
    "2 usage error, unreadable token file, or swarmd or its gateway unreachable.\n"
    "Control (restart, stop, start, drain, logs) needs the token swarmd wrote for its own user: run as that user.";
constexpr std::uint32_t kLogLinesWhenFollowing = 10000;

struct Options {
  std::string admin = "127.0.0.1:9464";
  std::string token_file;
  std::string gateway;
  std::string gateway_token_file;
  bool json = false;
  double timeout = 5;
};

std::atomic<bool> g_stop{false};

// SIGINT and SIGTERM set g_stop. Call before any thread starts (ZeroMQ's
// included): they inherit the blocked mask, so only sigwait takes the signals.
void stop_on_signals() {
  static sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([] {
    int sig = 0;
    sigwait(&signals, &sig);
    g_stop = true;
  }).detach();
}

std::string read_secret(const std::string& path, const std::string& what, const std::string& hint) {
  std::ifstream in(path);
  if (!in) throw Failure(kExitUsage, "cannot read " + what + " " + path + " (" + std::strerror(errno) + "): " + hint);
  std::stringstream text;
  text << in.rdbuf();
  std::string secret = swarm::ctl::trim(text.str());
  if (secret.empty()) throw Failure(kExitUsage, what + " " + path + " is empty: " + hint);
  return secret;
}

json parse(const std::string& body, const std::string& what) {
  try {
    return json::parse(body);
  } catch (const json::exception& e) {
    throw Failure(kExitFailed, what + " answered something other than JSON: " + e.what());
  }
}

std::string seconds_text(double s) {
  std::ostringstream text;
  text << s;
  return text.str();
}

std::string lowercase_first(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

void print_json(const std::string& body) {
  std::cout << body << (body.empty() || body.back() != '\n' ? "\n" : "");
}

// The admin port of one swarmd.
class Admin {
 public:
  explicit Admin(const Options& o) : options_(o) {
    auto a = swarm::metrics::parse_admin_address(o.admin);
    if (!a) throw Failure(kExitUsage, "--admin: " + a.error());
    if (a->port == 0) throw Failure(kExitUsage, "--admin " + o.admin + ": port 0 names no daemon");
    address_ = *a;
    name_ = swarm::metrics::to_string(address_);
    token_file_ = o.token_file.empty() ? swarm::ctl::default_token_file(getuid(), address_.port) : o.token_file;
  }

  const std::string& host() const { return address_.host; }
  const std::string& name() const { return name_; }

  /// The body of a 2xx answer to METHOD `path`; control paths carry the token.
  std::string call(const std::string& method, const std::string& path, bool control) const {
    httplib::Headers headers;
    if (control) {
      const std::string token = read_secret(token_file_, "the control token",
                                            "swarmd writes it at start and removes it at exit, readable by its own "
                                            "user alone: run as that user, or name another file with --token-file");
      headers.emplace("Authorization", "Bearer " + token);
    }
    httplib::Client http(address_.host, address_.port);
    const auto sec = static_cast<time_t>(options_.timeout);
    const auto usec = static_cast<time_t>((options_.timeout - static_cast<double>(sec)) * 1e6);
    http.set_connection_timeout(sec, usec);
    http.set_read_timeout(sec, usec);
    http.set_write_timeout(sec, usec);
    auto r = method == "GET" ? http.Get(path, headers) : http.Post(path, headers, "", "text/plain");
    if (!r) {
      const std::string why = r.error() == httplib::Error::Connection ? connect_error()
                              : r.error() == httplib::Error::Read
                                  ? "no answer within " + seconds_text(options_.timeout) + " s"
                                  : "HTTP: " + httplib::to_string(r.error());
      throw Failure(kExitUsage, "no swarmd answers at " + name_ + " (" + why +
                                    "): is it running? --admin or SWARMCTL_ADMIN selects another address");
    }
    if (r->status / 100 == 2) return r->body;
    const std::string reason = swarm::ctl::error_text(r->body);
    switch (r->status) {
      case 401:
        throw Failure(kExitFailed, "the daemon at " + name_ + " refused the token in " + token_file_ +
                                       " (is it from another swarmd?): " + reason);
      case 403:
        throw Failure(kExitFailed, "the daemon at " + name_ + " has control turned off: " + reason);
      case 404:
        throw Failure(kExitFailed, path.starts_with("/debug/") ? reason + " (is " + name_ + " a swarmd?)" : reason);
      default:
        throw Failure(kExitFailed, method + " " + path + " at " + name_ + ": HTTP " + std::to_string(r->status) +
                                       ": " + reason);
    }
  }

 private:
  // httplib says no more than "Connection": a connect of our own asks the kernel why.
  std::string connect_error() const {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (int rc = getaddrinfo(address_.host.c_str(), std::to_string(address_.port).c_str(), &hints, &found); rc != 0) {
      return lowercase_first(gai_strerror(rc));
    }
    const int fd = socket(found->ai_family, SOCK_STREAM, 0);
    const auto usec = static_cast<long>(options_.timeout * 1e6);
    timeval wait{usec / 1000000, std::max(usec % 1000000, 1L)};  // 0 would wait forever
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait);
    const int rc = connect(fd, found->ai_addr, found->ai_addrlen);
    const int err = errno;
    if (fd >= 0) close(fd);
    freeaddrinfo(found);
    if (rc == 0) return "it accepts connections but the HTTP exchange failed";
    if (err == EINPROGRESS || err == ETIMEDOUT) return "no connection within " + seconds_text(options_.timeout) + " s";
    return lowercase_first(std::strerror(err));
  }

  const Options& options_;
  swarm::metrics::AdminAddress address_;
  std::string name_;
  std::string token_file_;
};

// -- admin commands ---

int show(const Options& o, const std::string& path, std::string (*text)(const json&)) {
  const Admin admin(o);
  const std::string body = admin.call("GET", path, false);
  if (o.json) {
    print_json(body);
  } else {
    std::cout << text(parse(body, path + " at " + admin.name()));
  }
  return 0;
}

int control(const Options& o, const std::string& action, const std::string& done, const std::string& name) {
  const Admin admin(o);
  const std::string path = "/control/" + action + "?name=" + swarm::ctl::url_encode(name);
  const std::string body = admin.call("POST", path, true);
  if (o.json) {
    print_json(body);
  } else {
    std::cout << swarm::ctl::control_text(done, parse(body, path + " at " + admin.name())) << "\n";
  }
  return 0;
}

int drain(const Options& o) {
  const Admin admin(o);
  const std::string body = admin.call("POST", "/control/drain", true);
  if (o.json) {
    print_json(body);
  } else {
    std::cout << "swarmd at " << admin.name() << " is draining: it stops as on SIGTERM and exits" << std::endl;
  }
  return 0;
}

int logs(const Options& o, const std::string& name, std::uint32_t lines, bool follow) {
  const Admin admin(o);
  if (follow) stop_on_signals();
  std::uint64_t after = 0;
  for (;;) {
    const std::string path = "/control/logs?name=" + swarm::ctl::url_encode(name) + "&lines=" +
                             std::to_string(lines) + "&after=" + std::to_string(after);
    const json answer = parse(admin.call("GET", path, true), path + " at " + admin.name());
    if (auto it = answer.find("lines"); it != answer.end() && it->is_array()) {
      for (const json& line : *it) std::cout << (o.json ? line.dump() : swarm::ctl::log_line_text(line)) << "\n";
    }
    std::cout.flush();
    if (!follow) return 0;
    after = answer.value("next", after);
    lines = kLogLinesWhenFollowing;  // after the first page: everything new since `after`
    for (int i = 0; i < 4 && !g_stop; ++i) std::this_thread::sleep_for(milliseconds(50));
    if (g_stop) return 0;
  }
}

// -- messaging commands ---

std::unique_ptr<swarm::transport::Client> connect(const Options& o) {
  swarm::transport::ClientOptions co;
  co.endpoint = o.gateway;
  if (co.endpoint.empty()) {
    const Admin admin(o);
    std::string body;
    try {
      body = admin.call("GET", "/debug/status", false);
    } catch (const Failure& f) {
      throw Failure(f.code(), std::string(f.what()) + "; --gateway ENDPOINT names the gateway without asking swarmd");
    }
    const std::string bound = parse(body, "/debug/status at " + admin.name()).value("gateway", "");
    if (bound.empty()) {
      throw Failure(kExitFailed, "swarmd at " + admin.name() + " reports no gateway; --gateway ENDPOINT names one");
    }
    co.endpoint = swarm::ctl::connect_endpoint(bound, admin.host());
  }
  co.name = "swarmctl-" + std::to_string(getpid());
  co.connect_timeout = milliseconds(static_cast<long>(o.timeout * 1000));
  if (!o.gateway_token_file.empty()) {
    co.token = read_secret(o.gateway_token_file, "the gateway token", "--gateway-token-file names the file");
  }
  try {
    return std::make_unique<swarm::transport::Client>(co);
  } catch (const swarm::transport::ClientError& e) {
    if (e.code() == swarm::transport::ErrorCode::no_session) {
      throw Failure(kExitUsage, "no gateway answers at " + co.endpoint + " (" + e.what() +
                                    "): is swarmd running? --gateway selects another endpoint");
    }
    const std::string hint = e.code() != swarm::transport::ErrorCode::auth_failed ? ""
                             : o.gateway_token_file.empty()
                                 ? " (--gateway-token-file gives it a token)"
                                 : " (is the token in " + o.gateway_token_file + " from another gateway?)";
    throw Failure(kExitFailed, "the gateway at " + co.endpoint + " refused the session: " + e.what() + hint);
  } catch (const std::exception& e) {  // ZeroMQ: a malformed endpoint
    throw Failure(kExitUsage, "cannot connect to the gateway at " + co.endpoint + ": " + e.what());
  }
}

[[noreturn]] void session_failed(const swarm::transport::Incoming& in, const std::string& what) {
  if (in.command == Command::bye) throw Failure(kExitFailed, "the gateway ended the session: " + in.message);
  throw Failure(kExitFailed, what + ": " + std::string(to_string(in.error)) + ": " + in.message);
}

int pub(const Options& o, const std::string& topic, const std::string& data, const std::string& content_type) {
  auto c = connect(o);
  c->publish(topic, data, content_type);
  // The gateway handles a session's commands in order: once it has answered
  // the flush, an ERROR for the PUB (a bad topic, say) is already here.
  const bool handled = c->flush(milliseconds(static_cast<long>(o.timeout * 1000)));
  while (auto in = c->next(milliseconds(0))) {
    if (in->command == Command::error || in->command == Command::bye) session_failed(*in, "publish on " + topic);
  }
  if (!handled) {
    throw Failure(kExitFailed, "the gateway did not confirm the publish within " + seconds_text(o.timeout) + " s");
  }
  return 0;
}

int sub(const Options& o, const std::string& pattern, std::uint64_t count) {
  stop_on_signals();
  auto c = connect(o);
  c->subscribe(1, pattern);
  for (std::uint64_t printed = 0; !g_stop && (count == 0 || printed < count);) {
    auto in = c->next(milliseconds(200));
    if (!in) continue;
    if (in->command == Command::error || in->command == Command::bye) session_failed(*in, "subscribe to " + pattern);
    if (in->command != Command::msg) continue;
    if (o.json) {
      std::cout << swarm::ctl::message_json(in->topic, in->sender, in->content_type, in->payload) << std::endl;
    } else {
      std::cout << in->topic << " " << in->payload << std::endl;
    }
    ++printed;
  }
  return 0;
}

int req(const Options& o, const std::string& target, const std::string& data, const std::string& content_type,
        double timeout, bool by_name) {
  using swarm::AskStatus;
  auto c = connect(o);
  const auto wait = milliseconds(static_cast<long>(timeout * 1000));
  const std::string what = std::string(by_name ? "request to name " : "request on topic ") + target;
  const std::uint64_t id = c->request_async(target, by_name ? swarm::transport::TargetKind::name
                                                            : swarm::transport::TargetKind::topic,
                                            data, content_type, static_cast<std::uint32_t>(wait.count()));
  // The gateway answers `timeout` itself; wait a little longer for that answer.
  const auto deadline = Clock::now() + wait + std::chrono::seconds(5);
  while (auto in = c->next(std::chrono::duration_cast<milliseconds>(deadline - Clock::now()))) {
    if (in->command == Command::bye || (in->command == Command::error && in->context == id)) session_failed(*in, what);
    if (in->command != Command::answer || in->correlation_id != id) continue;
    if (o.json) {
      std::cout << json{{"status", to_string(in->status)},
                        {"final", in->final},
                        {"content_type", in->content_type},
                        {"payload", in->payload}}
                       .dump(-1, ' ', false, json::error_handler_t::replace)
                << std::endl;
    } else if (in->status == AskStatus::ok) {
      std::cout << in->payload << std::endl;
    }
    if (!in->final) continue;
    if (in->status != AskStatus::ok) throw Failure(kExitFailed, what + ": " + std::string(to_string(in->status)));
    return 0;
  }
  throw Failure(kExitFailed, what + ": no answer from the gateway within " + seconds_text(timeout + 5) + " s");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"swarmctl: operate a running swarmd (docs/swarmd.md): status, agents, topics and external processes "
               "through its admin port; messages through its gateway"};
  app.footer(kFooter);
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the command as well
  const CLI::Validator kPositiveSeconds(
      [](const std::string& text) {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        return *end == '\0' && v > 0 ? std::string() : "seconds must be a number > 0, not " + text;
      },
      "");
  Options o;
  app.add_option("--admin", o.admin, "swarmd's admin address")
      ->type_name("HOST:PORT")
      ->envname("SWARMCTL_ADMIN")
      ->capture_default_str();
  app.add_option("--token-file", o.token_file,
                 "swarmd's control token (default: /tmp/swarmd-UID/control-PORT.token, UID your user id, PORT the "
                 "port of --admin)")
      ->type_name("PATH");
  app.add_option("--gateway", o.gateway,
                 "the gateway's ZeroMQ endpoint for pub, sub and req (default: the gateway field of /debug/status)")
      ->type_name("ENDPOINT");
  app.add_option("--gateway-token-file", o.gateway_token_file, "a file with the gateway's token, when it requires one")
      ->type_name("PATH");
  app.add_flag("--json", o.json,
               "machine-readable output: swarmd's JSON answer; for logs, sub and req one JSON object per line");
  app.add_option("--timeout", o.timeout,
                 "seconds to wait for an HTTP answer from the admin port, and for the gateway to accept a session")
      ->type_name("SECONDS")
      ->check(kPositiveSeconds)
      ->capture_default_str();

  auto* status = app.add_subcommand("status", "swarmd's summary (GET /debug/status)");
  auto* agents = app.add_subcommand("agents", "the runtime's agents by type, deepest mailboxes, slowest consumers "
                                              "(GET /debug/agents)");
  auto* topics = app.add_subcommand("topics", "the router's totals, dead letters and busiest topics (GET /debug/topics)");
  auto* processes = app.add_subcommand("processes", "the external agent processes: NAME PID STATE RESTARTS UPTIME "
                                                    "LAST EXIT (GET /debug/processes)");

  std::string name;
  auto* restart = app.add_subcommand("restart", "restart a process (all its instances) or one instance, e.g. tool-1; "
                                                "needs the control token");
  auto* stop = app.add_subcommand("stop", "stop a process or an instance (it stays stopped until started or "
                                          "restarted); needs the control token");
  auto* start = app.add_subcommand("start", "start a stopped or failed process or instance; needs the control token");
  for (auto* c : {restart, stop, start}) c->add_option("NAME", name, "a process or an instance")->required();
  auto* drain_cmd = app.add_subcommand("drain", "make swarmd stop as on SIGTERM (and exit 0); needs the control token");

  std::uint32_t lines = 100;
  bool follow = false;
  auto* logs_cmd = app.add_subcommand("logs", "print a process's (or an instance's) kept output lines as "
                                              "\"NAME stream| text\"; needs the control token");
  logs_cmd->add_option("NAME", name, "a process (all its instances) or an instance")->required();
  logs_cmd->add_option("--lines", lines, "how many of the newest lines")->type_name("N")->capture_default_str();
  logs_cmd->add_flag("--follow,-f", follow, "then print new lines as they come (polls every 200 ms) until SIGINT/SIGTERM");

  std::string topic, data, content_type = "text/plain";
  auto* pub_cmd = app.add_subcommand("pub", "publish DATA on TOPIC through the gateway");
  pub_cmd->add_option("TOPIC", topic, "the topic")->required();
  pub_cmd->add_option("DATA", data, "the payload")->required();
  pub_cmd->add_option("--content-type", content_type, "the payload's content type")
      ->type_name("TYPE")
      ->capture_default_str();

  std::uint64_t count = 0;
  auto* sub_cmd = app.add_subcommand("sub", "print messages on topics matching PATTERN as \"TOPIC payload\" (--json: "
                                            "topic, sender, content_type, payload) until SIGINT/SIGTERM");
  sub_cmd->add_option("PATTERN", topic, "a topic pattern: * matches one token, > the rest")->required();
  sub_cmd->add_option("--count", count, "exit after this many messages (0: no limit)")
      ->type_name("N")
      ->capture_default_str();

  double req_timeout = 5;
  bool by_name = false;
  auto* req_cmd = app.add_subcommand("req", "send a request and print every part of its answer (--json: status, "
                                            "final, content_type, payload); exit 1 unless the final status is ok");
  req_cmd->add_option("TARGET", topic, "the topic (or, with --name, the registered name) to ask")->required();
  req_cmd->add_option("DATA", data, "the payload")->required();
  req_cmd->add_option("--timeout", req_timeout, "seconds the responder has to answer")
      ->type_name("SECONDS")
      ->check(kPositiveSeconds)
      ->capture_default_str();
  req_cmd->add_flag("--name", by_name, "TARGET is a registered name rather than a topic");
  req_cmd->add_option("--content-type", content_type, "the payload's content type")
      ->type_name("TYPE")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }

  try {
    if (*status) return show(o, "/debug/status", swarm::ctl::status_text);
    if (*agents) return show(o, "/debug/agents", swarm::ctl::agents_text);
    if (*topics) return show(o, "/debug/topics", swarm::ctl::topics_text);
    if (*processes) return show(o, "/debug/processes", swarm::ctl::processes_text);
    if (*restart) return control(o, "restart", "restarted", name);
    if (*stop) return control(o, "stop", "stopped", name);
    if (*start) return control(o, "start", "started", name);
    if (*drain_cmd) return drain(o);
    if (*logs_cmd) return logs(o, name, lines, follow);
    if (*pub_cmd) return pub(o, topic, data, content_type);
    if (*sub_cmd) return sub(o, topic, count);
    if (*req_cmd) return req(o, topic, data, content_type, req_timeout, by_name);
  } catch (const Failure& f) {
    std::cerr << "swarmctl: " << f.what() << std::endl;
    return f.code();
  } catch (const json::exception& e) {
    std::cerr << "swarmctl: swarmd's answer is not what docs/swarmd.md describes: " << e.what() << std::endl;
    return kExitFailed;
  } catch (const std::exception& e) {
    std::cerr << "swarmctl: " << e.what() << std::endl;
    return kExitFailed;
  }
  return kExitUsage;
}
