// A cluster node in a process of its own, for the tests that kill or stop a
// node: cluster_test_node NAME URL[,URL...] PATTERN PREFIX. It joins, subscribes an
// agent that counts what it gets to PATTERN, and runs until a signal ends it
// (SIGTERM: it leaves cleanly).

#include <csignal>
#include <cstdio>
#include <sstream>
#include <thread>

#include "cluster/cluster.hpp"

namespace {

class Counter : public swarm::Agent {
 public:
  void on_message(swarm::Message&) override {}
};

volatile std::sig_atomic_t g_stop = 0;

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: cluster_test_node NAME URL[,URL...] PATTERN PREFIX\n");
    return 2;
  }
  swarm::cluster::ClusterConfig config;
  config.node = argv[1];
  config.prefix = argv[4];
  std::stringstream urls(argv[2]);
  for (std::string url; std::getline(urls, url, ',');) config.servers.push_back(url);
  swarm::RuntimeConfig rc;
  rc.workers = 1;
  swarm::Runtime rt(rc);
  auto node = swarm::cluster::Cluster::join(rt, config);
  if (!node) {
    std::fprintf(stderr, "%s\n", node.error().c_str());
    return 1;
  }
  const swarm::AgentRef counter = rt.spawn<Counter>();
  if (auto r = rt.subscribe(counter, argv[3]); !r) {
    std::fprintf(stderr, "%s\n", r.error().c_str());
    return 1;
  }
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  std::printf("ready\n");
  std::fflush(stdout);
  while (g_stop == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  node->reset();
  rt.shutdown();
  return 0;
}
