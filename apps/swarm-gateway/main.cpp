// swarm-gateway: a runtime with an SWP gateway (docs/protocol.md), so agents
// in other processes and languages can reach it. With --demo-agents it hosts
// agents to try the protocol against (and that the clients' tests use):
//   echo    name "echo", topics "echo.>" (queue group "echo"): answers a
//           request with its payload; republishes a plain message on "echoed".
//   stream  name "stream", topics "stream.>": a request "N" is answered with
//           N partial replies "0".."N-1", then a final "done".
//   mirror  name "mirror": sends a plain message back to its sender's own
//           address (a client gets it as DELIVER with an empty name).
// Prints "swarm-gateway: listening on ENDPOINT" once clients can connect;
// SIGINT/SIGTERM say BYE to every client and exit 0.

#include <CLI/CLI.hpp>
#include <sys/stat.h>
#include <zmq.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include "runtime/runtime.hpp"
#include "transport/gateway.hpp"

namespace {

class Echo : public swarm::Agent {
 public:
  static constexpr const char* kTypeName = "echo";
  void on_start() override {
    (void)register_name("echo");
    (void)subscribe("echo.>", "echo");
  }
  void on_message(swarm::Message& m) override {
    if (m.is_request()) {
      (void)reply(m, m.payload);
    } else {
      (void)publish("echoed", m.payload);
    }
  }
};

class Stream : public swarm::Agent {
 public:
  static constexpr const char* kTypeName = "stream";
  void on_start() override {
    (void)register_name("stream");
    (void)subscribe("stream.>");
  }
  void on_message(swarm::Message& m) override {
    if (!m.is_request()) return;
    int n = 0;
    try {
      n = std::stoi(std::string(m.text()));
    } catch (const std::exception&) {
      (void)reply(m, std::string("not a number: ") + std::string(m.text()));
      return;
    }
    for (int i = 0; i < n; ++i) (void)reply_partial(m, std::to_string(i));
    (void)reply(m, std::string("done"));
  }
};

// A CURVE key pair as two files of one Z85 line each.
int write_keypair(const std::string& prefix) {
  char public_key[41], secret_key[41];
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    std::cerr << "swarm-gateway: --keygen: this libzmq has no CURVE support" << std::endl;
    return 2;
  }
  const std::string secret_path = prefix + ".key", public_path = prefix + ".pub";
  const mode_t old_mask = umask(077);  // the secret key is readable by its owner only
  std::ofstream secret(secret_path);
  secret << secret_key << "\n";
  umask(old_mask);
  std::ofstream pub(public_path);
  pub << public_key << "\n";
  if (!secret || !pub) {
    std::cerr << "swarm-gateway: --keygen: cannot write " << secret_path << " or " << public_path << std::endl;
    return 2;
  }
  std::cout << "swarm-gateway: wrote " << secret_path << " (secret: --curve-secret-key-file) and " << public_path
            << " (public: give it to clients, or add it to an allowed-keys file)" << std::endl;
  return 0;
}

class Mirror : public swarm::Agent {
 public:
  static constexpr const char* kTypeName = "mirror";
  void on_start() override { (void)register_name("mirror"); }
  void on_message(swarm::Message& m) override {
    if (m.is_request()) {
      (void)reply(m, m.payload);
    } else {
      (void)send(m.sender, m.payload);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"swarm-gateway: a Swarm runtime that agents in other processes and languages reach over SWP/1 "
               "(ZeroMQ; see docs/protocol.md)"};
  swarm::transport::GatewayConfig gw;
  unsigned workers = 0;
  long heartbeat_ms = gw.heartbeat.count();
  long slow_grace_ms = gw.slow_client_grace.count();
  bool demo_agents = false;
  std::uint16_t admin_port = 0;
  app.add_option("--bind", gw.bind, "ZeroMQ endpoint to bind: tcp://HOST:PORT (PORT * = any free), ipc:///path")
      ->capture_default_str();
  app.add_option("--workers", workers, "worker threads (default: one per core)");
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat interval; a client silent for 3 is dropped")
      ->capture_default_str();
  app.add_option("--max-outbound", gw.max_outbound, "messages queued per client before more are refused")
      ->capture_default_str();
  app.add_option("--slow-client-grace-ms", slow_grace_ms, "a client whose queue stays full this long is disconnected")
      ->capture_default_str();
  app.add_option("--max-clients", gw.max_clients, "sessions at a time")->capture_default_str();
  app.add_option("--token", gw.auth_token, "require this token in HELLO");
  app.add_option("--curve-secret-key-file", gw.curve_secret_key_file,
                 "turn CURVE on: the gateway's Z85 secret key (see docs/protocol.md, Security)");
  app.add_option("--curve-allowed-keys-file", gw.curve_allowed_keys_file,
                 "with CURVE: allowed client public keys, one Z85 key per line");
  app.add_option("--admin-port", admin_port, "serve /metrics and /debug on this port (0 = none)");
  app.add_flag("--demo-agents", demo_agents, "host the echo, stream and mirror agents (see the program's header)");
  std::string keygen;
  app.add_option("--keygen", keygen,
                 "write a new CURVE key pair to PREFIX.key (secret, mode 600) and PREFIX.pub, then exit")
      ->option_text("PREFIX");
  CLI11_PARSE(app, argc, argv);
  if (!keygen.empty()) return write_keypair(keygen);
  gw.heartbeat = std::chrono::milliseconds(heartbeat_ms);
  gw.slow_client_grace = std::chrono::milliseconds(slow_grace_ms);

  // Signals are taken by sigwait on this thread; every other thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    swarm::RuntimeConfig rc;
    if (workers != 0) rc.workers = workers;
    if (admin_port != 0) rc.telemetry.admin = "127.0.0.1:" + std::to_string(admin_port);
    swarm::Runtime rt(rc);
    if (demo_agents) {
      rt.spawn<Echo>();
      rt.spawn<Stream>();
      rt.spawn<Mirror>();
      // Clients may rely on the names at once: wait until all are registered.
      for (int i = 0; i < 5000 && (!rt.whereis("echo").valid() || !rt.whereis("stream").valid() ||
                                   !rt.whereis("mirror").valid());
           ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    swarm::transport::Gateway gateway(rt, gw);
    std::cout << "swarm-gateway: listening on " << gateway.endpoint() << std::endl;
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::cerr << "swarm-gateway: " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ", stopping ("
              << gateway.stats().clients << " clients)" << std::endl;
    gateway.stop();
    rt.shutdown();
  } catch (const std::exception& e) {
    std::cerr << "swarm-gateway: " << e.what() << std::endl;
    return 2;
  }
  return 0;
}
