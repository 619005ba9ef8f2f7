#pragma once
// Real nats-server processes for tests: N servers clustered on 127.0.0.1
// (routes between all, JetStream on, each in its own temporary folder, free
// ports), stopped by the destructor. Throws std::runtime_error naming what
// failed (e.g. nats-server is not installed).

#include <nats/nats.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/free_port.hpp"
#include "tests/support/spawn.hpp"

namespace swarm::test {

class NatsCluster {
 public:
  explicit NatsCluster(int servers) {
    dir_ = std::filesystem::temp_directory_path() / ("swarm-nats-" + std::to_string(::getpid()) + "-" +
                                                     std::to_string(counter()++));
    std::filesystem::create_directories(dir_);
    for (int i = 0; i < servers; ++i) servers_.push_back({free_port(), free_port(), 0});
    for (int i = 0; i < servers; ++i) start(i);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!jetstream_ready()) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("nats-server: JetStream not ready after 30 s (logs in " + dir_.string() + ")");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~NatsCluster() {
    for (auto& s : servers_) stop(s.pid, SIGTERM);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  std::string url(int i) const { return "nats://127.0.0.1:" + std::to_string(servers_[i].client_port); }
  /// Server i's URL first, then the others: a node connects to i.
  std::vector<std::string> urls_from(int i) const {
    std::vector<std::string> out{url(i)};
    for (int k = 0; k < static_cast<int>(servers_.size()); ++k) {
      if (k != i) out.push_back(url(k));
    }
    return out;
  }
  void kill(int i) { stop(servers_[i].pid, SIGKILL); }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  struct Server {
    int client_port;
    int route_port;
    pid_t pid;
  };

  static int& counter() {
    static int n = 0;
    return n;
  }

  void start(int i) {
    std::string routes;
    for (int k = 0; k < static_cast<int>(servers_.size()); ++k) {
      if (k == i) continue;
      routes += (routes.empty() ? "" : ",") + ("nats://127.0.0.1:" + std::to_string(servers_[k].route_port));
    }
    const std::string name = "s" + std::to_string(i);
    std::vector<std::string> argv = {"nats-server", "-a", "127.0.0.1", "-p", std::to_string(servers_[i].client_port),
                                     "-n", name, "-js", "-sd", (dir_ / name).string()};
    if (servers_.size() > 1) {
      for (const std::string& a : {std::string("--cluster"), "nats://127.0.0.1:" + std::to_string(servers_[i].route_port),
                                   std::string("--routes"), routes, std::string("--cluster_name"), std::string("swarmtest")}) {
        argv.push_back(a);
      }
    }
    servers_[i].pid = spawn_process(argv, dir_ / (name + ".log"));
  }

  static void stop(pid_t& pid, int sig) {
    if (pid <= 0) return;
    ::kill(pid, sig);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = 0;
  }

  // Every server takes connections and JetStream answers (its meta leader is elected).
  bool jetstream_ready() const {
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      natsConnection* nc = nullptr;
      natsOptions* o = nullptr;
      natsOptions_Create(&o);
      natsOptions_SetURL(o, url(static_cast<int>(i)).c_str());
      natsOptions_SetTimeout(o, 500);
      const bool connected = natsConnection_Connect(&nc, o) == NATS_OK;
      natsOptions_Destroy(o);
      if (!connected) return false;
      jsCtx* js = nullptr;
      jsAccountInfo* info = nullptr;
      bool ok = natsConnection_JetStream(&js, nc, nullptr) == NATS_OK && js_GetAccountInfo(&info, js, nullptr, nullptr) == NATS_OK;
      if (info != nullptr) jsAccountInfo_Destroy(info);
      if (js != nullptr) jsCtx_Destroy(js);
      natsConnection_Destroy(nc);
      if (!ok) return false;
    }
    return true;
  }

  std::filesystem::path dir_;
  std::vector<Server> servers_;
};

}  // namespace swarm::test
