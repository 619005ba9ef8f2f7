#include "metrics/admin_server.hpp"

#include <httplib.h>

#include <sys/socket.h>

#include <charconv>
#include <stdexcept>

#include "base/secret.hpp"
#include "metrics/live_page.hpp"
#include "metrics/profiler.hpp"

namespace swarm::metrics {

Result<AdminAddress> parse_admin_address(std::string_view text) {
  const auto colon = text.rfind(':');
  auto error = [&](std::string_view why) {
    return unexpected("admin: invalid address \"" + std::string(text) + "\": " + std::string(why) +
               " (expected HOST:PORT or :PORT, e.g. 127.0.0.1:9464)");
  };
  if (colon == std::string_view::npos) return error("no port");
  AdminAddress a;
  if (colon > 0) a.host = std::string(text.substr(0, colon));
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']') a.host = a.host.substr(1, a.host.size() - 2);
  const std::string_view port = text.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return error("port must be a number 0..65535");
  }
  a.port = static_cast<std::uint16_t>(value);
  return a;
}

std::string to_string(const AdminAddress& a) { return a.host + ":" + std::to_string(a.port); }

std::string AdminRequest::param(const std::string& name, std::string fallback) const {
  auto it = params.find(name);
  return it == params.end() ? fallback : it->second;
}

AdminServer::AdminServer(const Registry& registry, AdminAddress address)
    : registry_(registry), address_(std::move(address)) {}

AdminServer::~AdminServer() { stop(); }

void AdminServer::add_page(std::string path, Page page) { pages_.emplace_back(std::move(path), std::move(page)); }

void AdminServer::set_dynamic_page(std::string path, Page page) {
  MutexLock lock(dynamic_mu_);
  dynamic_pages_[std::move(path)] = std::move(page);
}

void AdminServer::remove_dynamic_page(const std::string& path) {
  MutexLock lock(dynamic_mu_);
  dynamic_pages_.erase(path);
  // No new request can find it now; wait out those already in it.
  dynamic_done_.wait(dynamic_mu_, [&]() SWARM_REQUIRES(dynamic_mu_) { return !dynamic_running_.contains(path); });
}

void AdminServer::add_readiness_check(std::string name, ReadinessCheck check) {
  checks_.emplace_back(std::move(name), std::move(check));
}

void AdminServer::set_control_page(std::string path, Page page) {
  MutexLock lock(dynamic_mu_);
  control_pages_[std::move(path)] = std::move(page);
}

void AdminServer::set_control_token(std::string token) {
  MutexLock lock(dynamic_mu_);
  control_token_ = std::move(token);
}

void AdminServer::set_logical_profile(LogicalProfile source) { logical_ = std::move(source); }

namespace {
// Few threads: scrapes are quick, a flamegraph request holds one for its duration.
constexpr int kServerThreads = 4;

void serve(const AdminServer::Page& page, const httplib::Request& req, httplib::Response& res) {
  AdminRequest r{req.path, req.method, req.body, {}};
  for (const auto& [k, v] : req.params) r.params.emplace(k, v);
  AdminResponse out;
  try {
    out = page(r);
  } catch (const std::exception& e) {
    out = {500, "text/plain; charset=utf-8", std::string("admin: ") + req.path + " failed: " + e.what() + "\n"};
  }
  res.status = out.status;
  res.set_content(out.body, out.content_type.c_str());
}
}  // namespace

void AdminServer::start() {
  if (http_) return;
  stopping_.store(false);
  auto http = std::make_unique<httplib::Server>();
  http->new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
  // cpp-httplib sets SO_REUSEPORT, which lets a second process share the port
  // (and split the scrapes) silently: only allow quick rebinds after a restart.
  http->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  auto route = [&](const std::string& path, Page page) {
    http->Get(path, [page = std::move(page)](const httplib::Request& req, httplib::Response& res) {
      serve(page, req, res);
    });
  };
  route("/metrics", [this](const AdminRequest&) {
    return AdminResponse{200, "text/plain; version=0.0.4; charset=utf-8", registry_.render()};
  });
  route("/healthz", [](const AdminRequest&) { return AdminResponse{200, "text/plain; charset=utf-8", "ok\n"}; });
  route("/readyz", [this](const AdminRequest&) { return ready(); });
  route("/debug/flamegraph", [this](const AdminRequest& r) { return flamegraph(r); });
  for (auto& [path, page] : pages_) route(path, page);
  // Pages that come and go: looked up per request.
  http->Get(R"(/debug/.+)", [this](const httplib::Request& req, httplib::Response& res) {
    Page page;
    {
      MutexLock lock(dynamic_mu_);
      if (auto it = dynamic_pages_.find(req.path); it != dynamic_pages_.end()) {
        page = it->second;
        ++dynamic_running_[req.path];
      }
    }
    if (!page) {
      res.status = 404;
      res.set_content("admin: no page " + req.path + "\n", "text/plain; charset=utf-8");
      return;
    }
    struct Done {  // also when the page throws what serve() does not catch
      AdminServer& s;
      const std::string& path;
      ~Done() {
        MutexLock lock(s.dynamic_mu_);
        if (--s.dynamic_running_[path] == 0) {
          s.dynamic_running_.erase(path);
          s.dynamic_done_.notify_all();
        }
      }
    } done{*this, req.path};
    serve(page, req, res);
  });
  // Control: the token first, then the page.
  auto control = [this](const httplib::Request& req, httplib::Response& res) {
    Page page;
    std::string token;
    {
      MutexLock lock(dynamic_mu_);
      token = control_token_;
      if (auto it = control_pages_.find(req.path); it != control_pages_.end()) page = it->second;
    }
    const std::string given = req.get_header_value("Authorization");
    auto refuse = [&](int status, const std::string& why) {
      res.status = status;
      res.set_content("admin: " + why + "\n", "text/plain; charset=utf-8");
    };
    if (token.empty()) return refuse(403, "control is turned off on this server");
    if (!given.starts_with("Bearer ") || !equal_constant_time(given.substr(7), token)) {
      return refuse(401, given.empty() ? "control needs an Authorization: Bearer token"
                                       : "the token does not match this server's");
    }
    if (!page) return refuse(404, "no control page " + req.path);
    serve(page, req, res);
  };
  http->Get(R"(/control/.+)", control);
  http->Post(R"(/control/.+)", control);
  route("/", [](const AdminRequest&) {
    return AdminResponse{200, "text/html; charset=utf-8", std::string(live_page_html())};
  });
  route("/index.txt", [this](const AdminRequest&) {
    std::string body = "swarm admin\n/ (the live page)\n/metrics\n/healthz\n/readyz\n/debug/flamegraph?seconds=N&format=folded|svg&type=cpu|logical\n";
    for (const auto& p : pages_) body += p.first + "\n";
    MutexLock lock(dynamic_mu_);
    for (const auto& p : dynamic_pages_) body += p.first + "\n";
    return AdminResponse{200, "text/plain; charset=utf-8", body};
  });
  int port = address_.port == 0 ? http->bind_to_any_port(address_.host)
                                : (http->bind_to_port(address_.host, address_.port) ? address_.port : -1);
  if (port <= 0) {
    throw std::runtime_error("admin: cannot listen on " + to_string(address_) +
                             " (port in use, or the host is not an address of this machine)");
  }
  port_ = static_cast<std::uint16_t>(port);
  http_ = std::move(http);
  thread_ = std::thread([this, s = http_.get()] {
    s->listen_after_bind();
    listen_returned_.store(true, std::memory_order_release);
  });
}

void AdminServer::stop() {
  if (!http_) return;
  {
    std::lock_guard lock(stop_mu_);
    stopping_.store(true);
  }
  stop_cv_.notify_all();
  // httplib's stop() does nothing until listen has started: stopping a server
  // whose thread has not got there yet would leave the join below waiting forever.
  while (!http_->is_running() && !listen_returned_.load(std::memory_order_acquire)) std::this_thread::yield();
  http_->stop();
  if (thread_.joinable()) thread_.join();
  http_.reset();
}

AdminResponse AdminServer::ready() {
  std::string failing;
  for (const auto& [name, check] : checks_) {
    Result<void> r = check();
    if (!r) failing += name + ": " + r.error() + "\n";
  }
  if (failing.empty()) return {200, "text/plain; charset=utf-8", "ready\n"};
  return {503, "text/plain; charset=utf-8", "not ready\n" + failing};
}

AdminResponse AdminServer::flamegraph(const AdminRequest& req) {
  auto bad = [](std::string why) { return AdminResponse{400, "text/plain; charset=utf-8", "admin: " + why + "\n"}; };
  const std::string seconds_text = req.param("seconds", "10");
  int seconds = 0;
  auto [end, ec] = std::from_chars(seconds_text.data(), seconds_text.data() + seconds_text.size(), seconds);
  if (ec != std::errc() || end != seconds_text.data() + seconds_text.size() || seconds < 1 || seconds > 60) {
    return bad("seconds must be 1..60, got \"" + seconds_text + "\"");
  }
  const std::string format = req.param("format", "svg");
  if (format != "svg" && format != "folded") return bad("format must be folded or svg, got \"" + format + "\"");
  const std::string type = req.param("type", "cpu");
  if (type != "cpu" && type != "logical") return bad("type must be cpu or logical, got \"" + type + "\"");

  if (profiling_.exchange(true)) {
    return {429, "text/plain; charset=utf-8",
            "admin: a flamegraph is being taken already (one at a time, so health checks and scrapes always have a "
            "thread); try again when it is done\n"};
  }
  struct Done {
    std::atomic<bool>& flag;
    ~Done() { flag.store(false); }
  } done{profiling_};
  FoldedStacks stacks;
  SvgOptions svg;
  if (type == "cpu") {
    ProfileOptions options;
    options.duration = std::chrono::seconds(seconds);
    options.stop = &stopping_;
    auto profile = profile_cpu(options);
    if (!profile) return {409, "text/plain; charset=utf-8", profile.error() + "\n"};
    stacks = std::move(*profile);
    svg.title = "CPU flamegraph (" + seconds_text + " s)";
  } else {
    if (!logical_) return {404, "text/plain; charset=utf-8", "admin: no logical profile source (no runtime)\n"};
    const FoldedStacks before = logical_();
    {
      std::unique_lock lock(stop_mu_);
      stop_cv_.wait_for(lock, std::chrono::seconds(seconds), [&] { return stopping_.load(); });
    }
    for (const auto& [stack, total] : logical_().stacks) {  // totals only grow: keep what grew
      auto it = before.stacks.find(stack);
      const std::uint64_t earlier = it == before.stacks.end() ? 0 : it->second;
      if (total > earlier) stacks.add(stack, total - earlier);
    }
    svg.title = "Handler time by supervisor path; agent type; topic (" + seconds_text + " s)";
    svg.unit = "ns";
  }
  if (format == "folded") return {200, "text/plain; charset=utf-8", to_folded(stacks)};
  return {200, "image/svg+xml", render_svg(stacks, svg)};
}

}  // namespace swarm::metrics
