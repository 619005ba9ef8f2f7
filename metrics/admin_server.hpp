#pragma once
// The admin HTTP port: /metrics, /healthz, /readyz, /debug/flamegraph, plus
// pages that other modules add (the runtime adds /debug/agents and
// /debug/topics). Served by cpp-httplib on a small fixed thread pool.
//
//   metrics::AdminServer admin(registry, *metrics::parse_admin_address("127.0.0.1:9464"));
//   admin.add_page("/debug/agents", [&](const metrics::AdminRequest&) { return metrics::AdminResponse{...}; });
//   admin.add_readiness_check("redis", [&]() -> Result<void> { ... });
//   admin.start();              // throws std::runtime_error if it cannot listen
//   ... admin.port() ...        // the bound port (useful with port 0)
//
// /debug/flamegraph?seconds=N&format=folded|svg&type=cpu|logical profiles the
// whole process for N seconds (1..60, default 10) with the sampling profiler,
// or returns the logical profile (handler time by supervisor path, agent type
// and topic) from the source set with set_logical_profile().
//
// Control pages (under /control/, GET or POST) change things, so they are
// served only to a caller that proves it may: an `Authorization: Bearer TOKEN`
// header with the token given to set_control_token() (401 otherwise, 403
// while no token is set). Observation stays open to, e.g., a Prometheus.
//
// Thread-safe after start(); add_* must be called before start().

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/mutex.hpp"
#include "base/result.hpp"
#include "metrics/flamegraph.hpp"
#include "metrics/registry.hpp"

namespace httplib {
class Server;
}

namespace swarm::metrics {

struct AdminAddress {
  std::string host = "127.0.0.1";
  std::uint16_t port = 9464;  // 0: any free port
};
/// Parses "HOST:PORT" or ":PORT" (host 127.0.0.1). The error says what is wrong.
Result<AdminAddress> parse_admin_address(std::string_view text);
std::string to_string(const AdminAddress& a);

struct AdminRequest {
  std::string path;
  std::string method = "GET";
  std::string body;
  std::map<std::string, std::string> params;  // query parameters
  /// The parameter, or `fallback` when absent.
  std::string param(const std::string& name, std::string fallback = {}) const;
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class AdminServer {
 public:
  using Page = std::function<AdminResponse(const AdminRequest&)>;
  using ReadinessCheck = std::function<Result<void>()>;
  /// Returns handler time since start, folded as "path;type;topic" -> ns; the
  /// server diffs two calls N seconds apart.
  using LogicalProfile = std::function<FoldedStacks()>;

  AdminServer(const Registry& registry, AdminAddress address);
  ~AdminServer();  // stops
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // -- before start() ---
  void add_page(std::string path, Page page);
  /// A page under /debug/ that can come and go while serving (e.g. a
  /// gateway's). Replaces one of the same path. Any time, any thread.
  void set_dynamic_page(std::string path, Page page);
  /// Removes the page and returns once no request still runs it, so what the
  /// page uses may be destroyed next. Any thread but the page's own.
  void remove_dynamic_page(const std::string& path);
  /// A page under /control/ (any time, any thread); see the header comment.
  void set_control_page(std::string path, Page page);
  /// The bearer token control pages want; empty: control is off (403). Any time.
  void set_control_token(std::string token);
  /// /readyz answers 503 listing every failing check's name and error.
  void add_readiness_check(std::string name, ReadinessCheck check);
  void set_logical_profile(LogicalProfile source);

  /// Binds and starts serving. Throws std::runtime_error naming the address
  /// when it cannot listen (port taken, bad host).
  void start();
  /// Stops serving and joins its threads. Idempotent.
  void stop();
  std::uint16_t port() const noexcept { return port_; }
  const AdminAddress& address() const noexcept { return address_; }

 private:
  AdminResponse flamegraph(const AdminRequest& req);
  AdminResponse ready();

  const Registry& registry_;
  AdminAddress address_;
  std::uint16_t port_ = 0;
  std::vector<std::pair<std::string, Page>> pages_;
  Mutex dynamic_mu_;
  std::map<std::string, Page> dynamic_pages_ SWARM_GUARDED_BY(dynamic_mu_);
  std::map<std::string, int> dynamic_running_ SWARM_GUARDED_BY(dynamic_mu_);  // requests in a page, by path
  CondVar dynamic_done_;  // a count in dynamic_running_ went to zero
  std::map<std::string, Page> control_pages_ SWARM_GUARDED_BY(dynamic_mu_);
  std::string control_token_ SWARM_GUARDED_BY(dynamic_mu_);
  std::vector<std::pair<std::string, ReadinessCheck>> checks_;
  LogicalProfile logical_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  std::atomic<bool> listen_returned_{false};
  // One flamegraph at a time, so a thread is always free for /healthz,
  // /readyz and /metrics; stop() ends the one in flight.
  std::atomic<bool> profiling_{false};
  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
};

}  // namespace swarm::metrics
