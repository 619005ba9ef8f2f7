#pragma once
// A throwaway redis-server for tests: a child process on a free loopback port,
// its files in a temporary directory under /tmp, killed and removed by the
// destructor.
//
//   test::RedisServer redis({.appendonly = true});  // answers PING in ~20 ms
//   auto store = storage::make_redis_state_store({.url = redis.url()});
//   redis.stop();                                   // SIGKILL: like a crash
//   redis.start();                                  // same port, same files
//   auto r = redis.command({"HGET", "swarm:state:k", "version"});
//
// Persistence: none by default (--save '' --appendonly no); with `appendonly`
// every write is fsynced before it is acknowledged (--appendfsync always), so
// what a client saw acknowledged survives a SIGKILL and comes back on start().
// start() waits until the server answers PING, never a fixed sleep. A server
// left behind by a test process that crashed is killed and its directory
// removed by the next RedisServer (owner.pid names the process that made it).
// Failures throw std::runtime_error with the server log's tail.
// Owner-only: use one RedisServer from one thread at a time.

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/free_port.hpp"
#include "tests/support/spawn.hpp"


namespace swarm::test {

struct RedisServerOptions {
  bool appendonly = false;  // durable: AOF, fsync before every acknowledgement
  bool start = true;        // false: pick the port, start later (a server that is down at first)
};

struct RedisReplyFree {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using RedisReply = std::unique_ptr<redisReply, RedisReplyFree>;

class RedisServer {
 public:
  explicit RedisServer(RedisServerOptions options = {}) : options_(options) {
    sweep_orphans();
    char tmpl[] = "/tmp/swarm-redis-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("redis_server: mkdtemp failed");
    dir_ = tmpl;
    std::ofstream(dir_ / "owner.pid") << ::getpid();
    port_ = free_port();
    if (options_.start) start();
  }

  ~RedisServer() {
    if (pid_ > 0) thaw();  // a test that failed while it was frozen
    if (pid_ > 0) stop(true);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  /// Starts (or restarts) the server on the same port and files; returns when it answers PING.
  void start() {
    if (pid_ > 0) throw std::runtime_error("redis_server: already running");
    std::vector<std::string> args = {"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                     "--dir", dir_.string(), "--logfile", log().string(), "--save", "",
                                     "--daemonize", "no"};
    if (options_.appendonly) {
      args.insert(args.end(), {"--appendonly", "yes", "--appendfsync", "always"});
    } else {
      args.insert(args.end(), {"--appendonly", "no"});
    }
    try {
      pid_ = spawn_process(args, "/dev/null", Output::truncate);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(std::string("redis_server: ") + e.what());
    }
    std::ofstream(dir_ / "server.pid") << pid_;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("redis_server: redis-server exited at start: " + log_tail());
      }
      if (answers_ping()) return;
      if (std::chrono::steady_clock::now() > deadline) {
        stop(true);
        throw std::runtime_error("redis_server: no answer to PING within 60 s: " + log_tail());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  /// Stops the server: `kill` is a crash (SIGKILL, nothing more reaches disk), else a clean shutdown.
  void stop(bool kill = true) {
    if (pid_ <= 0) return;
    ::kill(pid_, kill ? SIGKILL : SIGTERM);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    std::error_code ec;
    std::filesystem::remove(dir_ / "server.pid", ec);
  }

  /// SIGSTOPs the server (connections stay open, nothing answers); thaw() resumes it.
  void freeze() const { ::kill(pid_, SIGSTOP); }
  void thaw() const { ::kill(pid_, SIGCONT); }

  std::string url(int db = 0) const { return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db); }
  std::uint16_t port() const { return port_; }
  bool running() const { return pid_ > 0; }

  /// Runs one command on a fresh connection (db 0); throws when the server cannot be reached.
  RedisReply command(const std::vector<std::string>& args) const {
    auto replies = pipeline({args});
    return std::move(replies.front());
  }

  /// Runs commands in one pipeline on a fresh connection (db 0); throws when the server cannot be reached.
  std::vector<RedisReply> pipeline(const std::vector<std::vector<std::string>>& commands) const {
    std::unique_ptr<redisContext, void (*)(redisContext*)> c(connect(std::chrono::seconds(10)), redisFree);
    if (!c || c->err != 0) {
      throw std::runtime_error("redis_server: cannot connect: " + std::string(c ? c->errstr : "out of memory"));
    }
    for (const auto& args : commands) {
      std::vector<const char*> argv;
      std::vector<std::size_t> lens;
      for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      redisAppendCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), lens.data());
    }
    std::vector<RedisReply> out;
    for (std::size_t i = 0; i < commands.size(); ++i) {
      void* reply = nullptr;
      if (redisGetReply(c.get(), &reply) != REDIS_OK) {
        throw std::runtime_error("redis_server: lost the connection: " + std::string(c->errstr));
      }
      out.emplace_back(static_cast<redisReply*>(reply));
    }
    return out;
  }

 private:
  std::filesystem::path log() const { return dir_ / "server.log"; }

  redisContext* connect(std::chrono::milliseconds timeout) const {
    const timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    if (c != nullptr && c->err == 0) redisSetTimeout(c, tv);
    return c;
  }

  bool answers_ping() const {
    redisContext* c = connect(std::chrono::milliseconds(500));
    bool ok = false;
    if (c != nullptr && c->err == 0) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
      ok = r != nullptr && r->type == REDIS_REPLY_STATUS;
      if (r != nullptr) freeReplyObject(r);
    }
    if (c != nullptr) redisFree(c);
    return ok;
  }

  std::string log_tail() const {
    std::ifstream in(log());
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    return s.size() > 3000 ? s.substr(s.size() - 3000) : s;
  }

  // A test process that crashed never ran its destructor: kill the servers of
  // owners that are gone (a zombie owner counts as gone) and remove their files.
  static void sweep_orphans() {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/tmp", ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("swarm-redis-", 0) != 0) continue;
      long owner = 0;
      if (!(std::ifstream(entry.path() / "owner.pid") >> owner) || owner <= 0 || alive(owner)) continue;
      long server = 0;
      if ((std::ifstream(entry.path() / "server.pid") >> server) && server > 0 && alive(server) &&
          comm(server) == "redis-server") {
        ::kill(static_cast<pid_t>(server), SIGKILL);
      }
      std::filesystem::remove_all(entry.path(), ec);
    }
  }

  static bool alive(long pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("State:", 0) == 0) return line.find('Z') == std::string::npos;
    }
    return false;
  }

  static std::string comm(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(in, name);
    return name;
  }

  const RedisServerOptions options_;
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace swarm::test
