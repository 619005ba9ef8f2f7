// The metrics of a running swarm against the real tools: promtool lints a live
// scrape, and a real Prometheus server (127.0.0.1, temporary directory) scrapes
// the admin port and answers queries for every USE series of docs/metrics.md.

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "runtime/runtime.hpp"
#include "tests/support/free_port.hpp"

extern char** environ;

namespace swarm {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// The USE table of docs/metrics.md: every series a dashboard relies on.
const std::vector<std::string> kUseSeries = {
    "swarm_worker_busy_seconds_total",      "swarm_run_queue_depth",
    "swarm_agent_crashes_total",            "swarm_injector_depth",
    "swarm_run_queue_overflows_total",      "swarm_mailbox_messages",
    "swarm_queueing_delay_seconds_bucket",  "swarm_mailbox_fill_ratio_max",
    "swarm_messages_dropped_total",         "swarm_router_published_total",
    "swarm_router_delivered_total",         "swarm_publish_fanout_seconds_bucket",
    "swarm_router_topic_table_fill_ratio",  "swarm_router_dead_letters_total",
    "swarm_timers_pending",                 "swarm_timer_lag_seconds_bucket",
    "swarm_timer_undeliverable_total",
};

// Subscribes to "load.>", answers pings, and keeps a periodic timer armed.
class Busy : public Agent {
 public:
  static constexpr std::string_view kTypeName = "busy";
  void on_start() override {
    if (!subscribe("load.>")) throw std::runtime_error("subscribe failed");
    send_periodic(5ms, Payload::of(0));
  }
  void on_message(Message&) override {}
};

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/swarm-prom-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

// A running swarm with traffic, served on an admin port.
struct LiveSwarm {
  Runtime rt;
  std::atomic<bool> stop{false};
  std::thread traffic;

  static RuntimeConfig config() {
    RuntimeConfig c;
    c.workers = 2;
    c.telemetry.admin = "127.0.0.1:0";
    return c;
  }
  LiveSwarm() : rt(config()) {
    for (int i = 0; i < 50; ++i) rt.spawn<Busy>();
    traffic = std::thread([this] {
      int i = 0;
      while (!stop.load()) {
        (void)rt.publish("load.tick", Payload::of(i++ % 100));
        (void)rt.publish("nobody.listens", Payload::of(i));
        std::this_thread::sleep_for(200us);
      }
    });
  }
  ~LiveSwarm() {
    stop = true;
    traffic.join();
  }
};

int run(const std::vector<std::string>& args, pid_t* pid_out = nullptr) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  if (pid_out != nullptr) {
    *pid_out = pid;
    return 0;
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Prometheus, ALiveScrapePassesPromtoolCheckMetrics) {
  LiveSwarm swarm;
  std::this_thread::sleep_for(200ms);
  httplib::Client http("127.0.0.1", swarm.rt.admin_port());
  auto res = http.Get("/metrics");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  TempDir dir;
  const fs::path file = dir.path / "scrape.txt";
  std::ofstream(file) << res->body;
  // promtool reads the exposition on stdin.
  const int rc = run({"sh", "-c", "promtool check metrics < " + file.string()});
  EXPECT_EQ(rc, 0) << res->body.substr(0, 2000);
}

TEST(Prometheus, ARealServerScrapesEveryUseSeriesAndComputesQuantiles) {
  LiveSwarm swarm;
  TempDir dir;
  const std::uint16_t port = test::free_port();
  std::ofstream(dir.path / "prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
      << "  - job_name: swarm\n    static_configs:\n      - targets: ['127.0.0.1:" << swarm.rt.admin_port() << "']\n";
  pid_t pid = 0;
  ASSERT_EQ(run({"prometheus", "--config.file=" + (dir.path / "prometheus.yml").string(),
                 "--storage.tsdb.path=" + (dir.path / "data").string(),
                 "--web.listen-address=127.0.0.1:" + std::to_string(port), "--log.level=warn"},
                &pid),
            0)
      << "prometheus not found (scripts/bootstrap installs it)";
  struct Stop {
    pid_t pid;
    ~Stop() {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  } stop_server{pid};

  httplib::Client api("127.0.0.1", port);
  api.set_read_timeout(5s);
  auto query = [&](const std::string& q) -> nlohmann::json {
    auto res = api.Get("/api/v1/query", httplib::Params{{"query", q}}, httplib::Headers{});
    if (!res || res->status != 200) return {};
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    if (j.is_discarded() || j["status"] != "success") return {};
    return j["data"]["result"];
  };
  // The first scrape of a new target shows after several seconds: poll.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  bool up = false;
  while (!up && std::chrono::steady_clock::now() < deadline) {
    auto r = query("up{job=\"swarm\"}");
    up = r.is_array() && !r.empty() && r[0]["value"][1] == "1";
    if (!up) std::this_thread::sleep_for(250ms);
  }
  ASSERT_TRUE(up) << "Prometheus never scraped the admin port";

  for (const std::string& name : kUseSeries) {
    auto r = query(name);
    EXPECT_TRUE(r.is_array() && !r.empty()) << name << " is missing from Prometheus";
  }
  // Quantiles over the queueing-delay histogram come back as numbers.
  auto q = query("histogram_quantile(0.99, sum by (le) (swarm_queueing_delay_seconds_bucket))");
  ASSERT_TRUE(q.is_array() && !q.empty());
  const double p99 = std::stod(q[0]["value"][1].get<std::string>());
  EXPECT_TRUE(std::isfinite(p99)) << q.dump();
  EXPECT_GT(p99, 0);
  EXPECT_LT(p99, 60);
}

}  // namespace
}  // namespace swarm
