#pragma once
// A throwaway Postgres cluster for tests: initdb in a temporary directory
// under /tmp, started on a free loopback port with its socket in that
// directory, stopped and removed by the destructor.
//
//   test::PostgresServer pg({.fsync = true});   // initdb ≈ 0.55 s, start ≈ 0.12 s
//   auto journal = storage::make_postgres_journal({.dsn = pg.dsn()});
//   pg.stop();                                   // immediate: like a crash
//   pg.start();                                  // same port and data
//
// initdb refuses to run as root: as root, every server command runs as the
// `postgres` user (runuser), which owns the directory. Binaries come from
// /usr/lib/postgresql/15/bin unless SWARM_PG_BIN names another directory.
// start() and stop() wait for the server (pg_ctl -w polls), never a fixed sleep.
// A cluster left behind by a test process that crashed is stopped and removed
// by the next PostgresServer (owner.pid names the process that made it).
// Failures throw std::runtime_error with the server log's tail.
// Owner-only: use one PostgresServer from one thread at a time.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/free_port.hpp"
#include "tests/support/spawn.hpp"


namespace swarm::test {

struct PostgresServerOptions {
  bool fsync = false;  // on for durability tests; off is faster
};

class PostgresServer {
 public:
  explicit PostgresServer(PostgresServerOptions options = {}) : options_(options) {
    sweep_orphans();
    char tmpl[] = "/tmp/swarm-pg-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("postgres_server: mkdtemp failed");
    dir_ = tmpl;
    std::ofstream(dir_ / "owner.pid") << ::getpid();
    if (::geteuid() == 0) {
      std::filesystem::permissions(dir_, std::filesystem::perms::owner_all);
      run_or_throw({"chown", "postgres:postgres", dir_.string()}, "chown");
    }
    run_or_throw(as_server_user({bin("initdb"), "-D", data().string(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                                 "--locale=C", "--no-sync"}),
                 "initdb");
    port_ = free_port();
    start();
  }

  ~PostgresServer() {
    if (running_) {
      try {
        thaw();  // a test that failed while it was frozen
      } catch (const std::exception&) {
      }
    }
    if (running_) (void)run(as_server_user({bin("pg_ctl"), "stop", "-D", data().string(), "-m", "immediate", "-w"}));
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  /// Starts (or restarts) the server on the same port; returns when it accepts connections.
  void start() {
    const std::string fsync = options_.fsync ? "on" : "off";
    const std::string opts = "-p " + std::to_string(port_) + " -k " + dir_.string() +
                             " -c listen_addresses=127.0.0.1 -c fsync=" + fsync +
                             " -c synchronous_commit=" + fsync + " -c full_page_writes=" + fsync;
    run_or_throw(as_server_user({bin("pg_ctl"), "start", "-D", data().string(), "-l", log().string(), "-w", "-t",
                                 "60", "-o", opts}),
                 "pg_ctl start");
    running_ = true;
  }

  /// Stops the server; `immediate` is a crash (no checkpoint, clients cut off).
  void stop(bool immediate = true) {
    run_or_throw(as_server_user({bin("pg_ctl"), "stop", "-D", data().string(), "-m", immediate ? "immediate" : "fast",
                                 "-w", "-t", "60"}),
                 "pg_ctl stop");
    running_ = false;
  }

  /// SIGSTOPs the server and every backend (a frozen server: connections stay
  /// open, nothing answers); thaw() resumes them.
  void freeze() { signal_all(SIGSTOP); }
  void thaw() { signal_all(SIGCONT); }

  /// A libpq key=value DSN for `database` over TCP on 127.0.0.1.
  std::string dsn(const std::string& database = "postgres") const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + database +
           " connect_timeout=10";
  }
  std::uint16_t port() const { return port_; }
  bool running() const { return running_; }

  /// Runs SQL through psql; returns its output (unaligned, tuples only), throws on error.
  std::string psql(const std::string& sql, const std::string& database = "postgres") const {
    const std::filesystem::path out = dir_ / "psql.out";
    const int rc = run({bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                        std::to_string(port_), "-U", "postgres", "-d", database, "-c", sql},
                       out);
    std::ifstream in(out);
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    if (rc != 0) throw std::runtime_error("postgres_server: psql failed (" + sql + "): " + s);
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }

 private:
  std::filesystem::path data() const { return dir_ / "data"; }
  std::filesystem::path log() const { return dir_ / "server.log"; }

  // A test process that crashed never ran its destructor: stop and remove the
  // clusters of owners that are gone (a zombie owner counts as gone).
  static void sweep_orphans() {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/tmp", ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("swarm-pg-", 0) != 0) continue;
      long owner = 0;
      if (!(std::ifstream(entry.path() / "owner.pid") >> owner) || owner <= 0 || alive(owner)) continue;
      (void)run(as_server_user({bin("pg_ctl"), "stop", "-D", (entry.path() / "data").string(), "-m", "immediate", "-w"}));
      std::filesystem::remove_all(entry.path(), ec);
    }
  }

  // The postmaster (first line of postmaster.pid) and its children.
  void signal_all(int sig) const {
    long postmaster = 0;
    if (!(std::ifstream(data() / "postmaster.pid") >> postmaster) || postmaster <= 0) {
      throw std::runtime_error("postgres_server: no postmaster.pid");
    }
    std::vector<long> pids{postmaster};
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
      const std::string name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream stat(entry.path() / "stat");
      std::string line;
      std::getline(stat, line);
      const auto close = line.rfind(')');  // "pid (comm) state ppid ..."
      if (close == std::string::npos) continue;
      std::istringstream rest(line.substr(close + 2));
      char state = 0;
      long ppid = 0;
      if (rest >> state >> ppid && ppid == postmaster) pids.push_back(std::stol(name));
    }
    for (long pid : pids) ::kill(static_cast<pid_t>(pid), sig);
  }

  static bool alive(long pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("State:", 0) == 0) return line.find('Z') == std::string::npos;
    }
    return false;
  }

  static std::string bin(const std::string& name) {
    const char* dir = std::getenv("SWARM_PG_BIN");
    return std::string(dir != nullptr ? dir : "/usr/lib/postgresql/15/bin") + "/" + name;
  }

  static std::vector<std::string> as_server_user(std::vector<std::string> args) {
    if (::geteuid() != 0) return args;
    args.insert(args.begin(), {"runuser", "-u", "postgres", "--"});
    return args;
  }

  // Runs a command with stdout/stderr to `out` (or /dev/null); returns its exit code.
  static int run(const std::vector<std::string>& args, const std::filesystem::path& out = "/dev/null") {
    pid_t pid = 0;
    try {
      pid = spawn_process(args, out, Output::truncate);
    } catch (const std::runtime_error&) {
      return -1;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  void run_or_throw(const std::vector<std::string>& args, const std::string& what) const {
    const std::filesystem::path out = dir_ / "command.out";
    if (run(args, out) == 0) return;
    std::ifstream in(out), server_log(log());
    std::stringstream text;
    text << in.rdbuf() << server_log.rdbuf();
    std::string s = text.str();
    if (s.size() > 3000) s = s.substr(s.size() - 3000);
    throw std::runtime_error("postgres_server: " + what + " failed: " + s);
  }

  const PostgresServerOptions options_;
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  bool running_ = false;
};

}  // namespace swarm::test
