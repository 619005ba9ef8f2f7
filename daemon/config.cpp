// swarmd's YAML configuration. Errors are thrown inside as ConfigError and
// returned as one message: "FILE:LINE: FIELD: got VALUE; expected ALLOWED".

#include "daemon/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>

#include "metrics/admin_server.hpp"
#include "storage/journal.hpp"
#include "storage/state_store.hpp"

namespace swarm::daemon {

std::string_view to_string(RestartType t) noexcept {
  switch (t) {
    case RestartType::permanent: return "permanent";
    case RestartType::transient: return "transient";
    case RestartType::temporary: return "temporary";
  }
  return "?";
}

std::string_view to_string(GiveUp g) noexcept { return g == GiveUp::shutdown ? "shutdown" : "stay_down"; }

Result<std::chrono::microseconds> parse_duration_us(std::string_view text, std::string_view field) {
  auto bad = [&] {
    return unexpected(std::string(field) + ": got \"" + std::string(text) +
                      "\"; expected a duration such as 200us, 250ms, 10s or 2m");
  };
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data()) return bad();
  const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  const std::uint64_t scale = unit == "us"  ? 1
                              : unit == "ms" ? 1000
                              : unit == "s"  ? 1'000'000
                              : unit == "m"  ? 60'000'000
                              : unit == "h"  ? 3'600'000'000
                                             : 0;
  if (scale == 0 || n > std::numeric_limits<std::int64_t>::max() / scale / 1000) return bad();
  return std::chrono::microseconds(static_cast<std::int64_t>(n * scale));
}

Result<std::chrono::milliseconds> parse_duration(std::string_view text, std::string_view field) {
  auto us = parse_duration_us(text, field);
  if (!us || us->count() % 1000 != 0) {
    return unexpected(std::string(field) + ": got \"" + std::string(text) +
                      "\"; expected a duration such as 250ms, 10s or 2m");
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(*us);
}

namespace {

struct ConfigError {
  std::string message;
};

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string join(std::initializer_list<std::string_view> words) {
  std::string out;
  for (std::string_view w : words) out += (out.empty() ? "" : ", ") + std::string(w);
  return out;
}

// Reads one file; every accessor names the field and line of what it rejects.
class Reader {
 public:
  explicit Reader(std::string origin) : origin_(std::move(origin)) {}

  [[noreturn]] void fail(const YAML::Node& at, const std::string& field, const std::string& what) const {
    throw ConfigError{origin_ + ":" + std::to_string(at.Mark().line + 1) + ": " + field + ": " + what};
  }
  [[noreturn]] void bad_value(const YAML::Node& at, const std::string& field, const std::string& expected) const {
    fail(at, field, "got " + shown(at) + "; expected " + expected);
  }

  /// A map whose keys must all be in `allowed`.
  void keys(const YAML::Node& map, const std::string& field, std::initializer_list<std::string_view> allowed) const {
    if (!map.IsMap()) bad_value(map, field, "a map with keys " + join(allowed));
    std::vector<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const std::string key = it->first.Scalar();
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
        fail(it->first, field.empty() ? key : field + "." + key, "given twice (YAML keeps only one: say it once)");
      }
      seen.push_back(key);
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        fail(it->first, field.empty() ? key : field + "." + key,
             "unknown key " + in_quotes(key) + " (allowed here: " + join(allowed) + ")");
      }
    }
  }

  std::string text(const YAML::Node& n, const std::string& field) const {
    if (!n.IsScalar()) bad_value(n, field, "a single value");
    return n.Scalar();
  }

  std::uint64_t number(const YAML::Node& n, const std::string& field, std::uint64_t min, std::uint64_t max) const {
    const std::string s = text(n, field);
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max) {
      bad_value(n, field, "a whole number in " + std::to_string(min) + ".." + std::to_string(max));
    }
    return v;
  }

  /// A byte size: a number with an optional unit k, M, G (powers of 1024), e.g. 512M.
  std::uint64_t bytes(const YAML::Node& n, const std::string& field) const {
    const std::string s = text(n, field);
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    const std::string unit(end, s.data() + s.size());
    const std::uint64_t scale = unit.empty() ? 1 : unit == "k" || unit == "K" ? 1ull << 10 : unit == "M" ? 1ull << 20
                                : unit == "G" ? 1ull << 30 : 0;
    if (ec != std::errc() || end == s.data() || scale == 0 || v == 0 || v > (1ull << 50) / scale) {
      bad_value(n, field, "a size above 0 such as 65536, 512M or 2G");
    }
    return v * scale;
  }

  bool boolean(const YAML::Node& n, const std::string& field) const {
    const std::string s = text(n, field);
    if (s == "true") return true;
    if (s == "false") return false;
    bad_value(n, field, "true or false");
  }

  std::chrono::milliseconds duration(const YAML::Node& n, const std::string& field, std::chrono::milliseconds min,
                                     std::chrono::milliseconds max) const {
    auto d = parse_duration(text(n, field), field);
    if (!d) fail(n, field, d.error().substr(field.size() + 2));
    if (*d < min || *d > max) {
      bad_value(n, field, "a duration in " + std::to_string(min.count()) + "ms.." + std::to_string(max.count()) + "ms");
    }
    return *d;
  }

  std::vector<std::string> strings(const YAML::Node& n, const std::string& field, const std::string& expected) const {
    if (!n.IsSequence()) bad_value(n, field, expected);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < n.size(); ++i) out.push_back(text(n[i], field + "[" + std::to_string(i) + "]"));
    return out;
  }

  std::map<std::string, std::string> string_map(const YAML::Node& n, const std::string& field) const {
    if (!n.IsMap()) bad_value(n, field, "a map of names to values");
    std::map<std::string, std::string> out;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string key = it->first.Scalar();
      out[key] = text(it->second, field + "." + key);
    }
    return out;
  }

  /// A path as written, made absolute against the config file's folder.
  std::string path(const YAML::Node& n, const std::string& field) const {
    std::filesystem::path p = text(n, field);
    if (p.empty()) bad_value(n, field, "a path");
    return (p.is_absolute() ? p : std::filesystem::path(origin_).parent_path() / p).lexically_normal().string();
  }

  std::string shown(const YAML::Node& n) const {
    if (n.IsScalar()) return in_quotes(n.Scalar());
    if (n.IsSequence()) return "a list";
    if (n.IsMap()) return "a map";
    return "nothing";
  }

 const std::string& origin() const noexcept { return origin_; }

 private:
  std::string origin_;
};

bool valid_name(std::string_view s) {
  return !s.empty() && s.size() <= 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; }) &&
         std::isalpha(static_cast<unsigned char>(s[0]));
}

MailboxOptions read_mailbox(const Reader& r, const YAML::Node& n, const std::string& field) {
  r.keys(n, field, {"capacity", "overflow"});
  MailboxOptions m;
  if (n["capacity"]) m.capacity = static_cast<std::uint32_t>(r.number(n["capacity"], field + ".capacity", 1, RuntimeConfig::kMaxMailboxCapacity));
  if (n["overflow"]) {
    auto p = parse_overflow_policy(r.text(n["overflow"], field + ".overflow"), field + ".overflow");
    if (!p) r.bad_value(n["overflow"], field + ".overflow", "reject, drop_oldest or drop_newest");
    m.overflow = *p;
  }
  return m;
}

void read_runtime(const Reader& r, const YAML::Node& n, DaemonConfig& c) {
  r.keys(n, "runtime", {"workers", "mailbox", "mailbox_by_type", "shutdown_timeout", "throughput_budget", "idle_spin"});
  if (n["workers"]) c.runtime.workers = static_cast<unsigned>(r.number(n["workers"], "runtime.workers", 1, RuntimeConfig::kMaxWorkers));
  if (n["throughput_budget"]) {
    c.runtime.throughput_budget = static_cast<std::uint32_t>(r.number(n["throughput_budget"], "runtime.throughput_budget", 1, 1 << 20));
  }
  if (n["mailbox"]) c.runtime.default_mailbox = read_mailbox(r, n["mailbox"], "runtime.mailbox");
  if (const YAML::Node by_type = n["mailbox_by_type"]) {
    if (!by_type.IsMap()) r.bad_value(by_type, "runtime.mailbox_by_type", "a map of agent types to {capacity, overflow}");
    for (auto it = by_type.begin(); it != by_type.end(); ++it) {
      const std::string type = it->first.Scalar();
      c.runtime.mailbox_by_type[type] = read_mailbox(r, it->second, "runtime.mailbox_by_type." + type);
    }
  }
  if (n["idle_spin"]) {
    const std::string field = "runtime.idle_spin";
    auto d = parse_duration_us(r.text(n["idle_spin"], field), field);
    if (!d) r.fail(n["idle_spin"], field, d.error().substr(field.size() + 2));
    if (*d > std::chrono::milliseconds(10)) r.bad_value(n["idle_spin"], field, "a duration in 0us..10ms");
    c.runtime.idle_spin = *d;
  }
  if (n["shutdown_timeout"]) {
    c.runtime.shutdown_timeout = r.duration(n["shutdown_timeout"], "runtime.shutdown_timeout", std::chrono::milliseconds(0), std::chrono::hours(1));
  }
}

void read_admin(const Reader& r, const YAML::Node& n, DaemonConfig& c) {
  r.keys(n, "admin", {"listen", "token_file", "control"});
  if (n["listen"]) {
    const std::string listen = r.text(n["listen"], "admin.listen");
    if (!listen.empty() && !metrics::parse_admin_address(listen)) r.bad_value(n["listen"], "admin.listen", "HOST:PORT, :PORT, or \"\" for no admin port");
    c.runtime.telemetry.admin = listen;
  }
  if (n["token_file"]) c.admin_token_file = r.path(n["token_file"], "admin.token_file");
  if (n["control"]) c.control = r.boolean(n["control"], "admin.control");
}

void read_gateway(const Reader& r, const YAML::Node& n, DaemonConfig& c) {
  r.keys(n, "gateway", {"enabled", "bind", "heartbeat", "max_outbound", "slow_client_grace", "max_request_timeout",
                        "max_clients", "token_file", "curve_secret_key_file", "curve_allowed_keys_file"});
  auto& g = c.gateway;
  if (n["enabled"]) c.gateway_enabled = r.boolean(n["enabled"], "gateway.enabled");
  if (n["bind"]) {
    g.bind = r.text(n["bind"], "gateway.bind");
    if (!g.bind.starts_with("tcp://") && !g.bind.starts_with("ipc://")) {
      r.bad_value(n["bind"], "gateway.bind", "tcp://HOST:PORT or ipc:///path");
    }
  }
  using ms = std::chrono::milliseconds;
  if (n["heartbeat"]) g.heartbeat = r.duration(n["heartbeat"], "gateway.heartbeat", ms(10), std::chrono::hours(1));
  if (n["max_outbound"]) g.max_outbound = r.number(n["max_outbound"], "gateway.max_outbound", 1, 100'000'000);
  if (n["slow_client_grace"]) g.slow_client_grace = r.duration(n["slow_client_grace"], "gateway.slow_client_grace", ms(0), std::chrono::hours(1));
  if (n["max_request_timeout"]) {
    g.max_request_timeout = r.duration(n["max_request_timeout"], "gateway.max_request_timeout", ms(1), std::chrono::hours(24));
  }
  if (n["max_clients"]) g.max_clients = r.number(n["max_clients"], "gateway.max_clients", 1, 1'048'575);
  auto readable = [&](const char* key) {
    const std::string field = std::string("gateway.") + key;
    std::string p = r.path(n[key], field);
    if (!std::ifstream(p)) r.fail(n[key], field, "cannot read " + in_quotes(p));
    return p;
  };
  if (n["token_file"]) c.gateway_token_file = readable("token_file");
  if (n["curve_secret_key_file"]) g.curve_secret_key_file = readable("curve_secret_key_file");
  if (n["curve_allowed_keys_file"]) g.curve_allowed_keys_file = readable("curve_allowed_keys_file");
  if (g.curve_secret_key_file.empty() != g.curve_allowed_keys_file.empty()) {
    r.fail(n, "gateway", "curve_secret_key_file and curve_allowed_keys_file go together (CURVE needs both)");
  }
}

}  // namespace

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

namespace {

void read_cluster(const Reader& r, const YAML::Node& n, DaemonConfig& c) {
  r.keys(n, "cluster", {"node", "servers", "prefix", "credentials_file", "user", "password_file", "token_file", "tls",
                        "ca_file", "cert_file", "key_file", "heartbeat_interval", "node_timeout", "connect_timeout",
                        "max_in_flight", "max_payload_bytes", "replicas"});
  cluster::ClusterConfig k;
  if (!n["node"]) r.fail(n, "cluster.node", "is missing (every node needs a name of its own, e.g. node: eu-1)");
  k.node = r.text(n["node"], "cluster.node");
  if (!n["servers"]) r.fail(n, "cluster.servers", "is missing (NATS URLs, e.g. [nats://127.0.0.1:4222])");
  k.servers = r.strings(n["servers"], "cluster.servers", "a list of NATS URLs");
  if (n["prefix"]) k.prefix = r.text(n["prefix"], "cluster.prefix");
  auto readable = [&](const char* key) {
    const std::string field = std::string("cluster.") + key;
    std::string p = r.path(n[key], field);
    if (!std::ifstream(p)) r.fail(n[key], field, "cannot read " + in_quotes(p));
    return p;
  };
  if (n["credentials_file"]) k.credentials_file = readable("credentials_file");
  if (n["user"]) k.user = r.text(n["user"], "cluster.user");
  if (n["password_file"]) k.password = read_first_line(readable("password_file"));
  if (n["token_file"]) k.token = read_first_line(readable("token_file"));
  if (n["tls"]) k.tls = r.boolean(n["tls"], "cluster.tls");
  if (n["ca_file"]) k.ca_file = readable("ca_file");
  if (n["cert_file"]) k.cert_file = readable("cert_file");
  if (n["key_file"]) k.key_file = readable("key_file");
  using ms = std::chrono::milliseconds;
  if (n["heartbeat_interval"]) {
    k.heartbeat_interval = r.duration(n["heartbeat_interval"], "cluster.heartbeat_interval", ms(10), std::chrono::minutes(1));
  }
  if (n["node_timeout"]) k.node_timeout = r.duration(n["node_timeout"], "cluster.node_timeout", ms(20), std::chrono::hours(1));
  if (n["connect_timeout"]) {
    k.connect_timeout = r.duration(n["connect_timeout"], "cluster.connect_timeout", ms(1), std::chrono::minutes(10));
  }
  if (n["max_in_flight"]) k.max_in_flight = static_cast<std::uint32_t>(r.number(n["max_in_flight"], "cluster.max_in_flight", 1, 100'000'000));
  if (n["max_payload_bytes"]) {
    k.max_payload_bytes = static_cast<std::uint32_t>(r.number(n["max_payload_bytes"], "cluster.max_payload_bytes", 1, 64u << 20));
  }
  if (n["replicas"]) k.replicas = static_cast<std::uint32_t>(r.number(n["replicas"], "cluster.replicas", 1, 5));
  if (auto ok = k.validate(); !ok) r.fail(n, "cluster", ok.error().substr(std::string_view("cluster: ").size()));
  c.cluster = std::move(k);
}

void read_storage(const Reader& r, const YAML::Node& n, DaemonConfig& c) {
  r.keys(n, "storage", {"state", "journal"});
  if (n["state"]) {
    c.state = r.text(n["state"], "storage.state");
    if (c.state != "memory") {
      if (auto url = storage::parse_redis_url(c.state); !url) r.fail(n["state"], "storage.state", url.error() + " (or memory)");
    }
  }
  if (n["journal"]) {
    c.journal = r.text(n["journal"], "storage.journal");
    if (c.journal != "memory" && c.journal != "none") {
      if (auto ok = storage::validate_postgres_dsn(c.journal); !ok) {
        r.fail(n["journal"], "storage.journal", ok.error() + " (or memory, or none)");
      }
    }
  }
}

AgentSpec read_agent(const Reader& r, const YAML::Node& n, const std::string& field,
                     const std::vector<std::string>* known_types) {
  r.keys(n, field, {"type", "count", "options"});
  AgentSpec a;
  a.line = n.Mark().line + 1;
  if (!n["type"]) r.fail(n, field, "no type (the agent type to spawn)");
  a.type = r.text(n["type"], field + ".type");
  if (known_types != nullptr && std::find(known_types->begin(), known_types->end(), a.type) == known_types->end()) {
    std::vector<std::string> sorted = *known_types;
    std::sort(sorted.begin(), sorted.end());
    std::string names;
    for (const auto& t : sorted) names += (names.empty() ? "" : ", ") + t;
    r.bad_value(n["type"], field + ".type", "an agent type this program registered: " + (names.empty() ? "none" : names));
  }
  if (n["count"]) a.count = static_cast<std::uint32_t>(r.number(n["count"], field + ".count", 0, 10'000'000));
  if (n["options"]) a.options = r.string_map(n["options"], field + ".options");
  return a;
}

ProcessSpec read_process(const Reader& r, const YAML::Node& n, const std::string& field) {
  r.keys(n, field, {"name", "argv", "env", "cwd", "instances", "restart", "max_restarts", "restart_period",
                    "on_give_up", "expect_hello", "start_timeout", "stop_timeout", "limits", "output"});
  ProcessSpec p;
  p.line = n.Mark().line + 1;
  if (!n["name"]) r.fail(n, field, "no name");
  p.name = r.text(n["name"], field + ".name");
  if (!valid_name(p.name)) {
    r.bad_value(n["name"], field + ".name", "1..64 letters, digits, '_' or '.', starting with a letter");
  }
  const std::string f = "processes." + p.name;
  if (!n["argv"]) r.fail(n, f, "no argv (the program and its arguments, as a list)");
  if (n["argv"].IsScalar()) {
    r.bad_value(n["argv"], f + ".argv",
                "a list such as [python3, agent.py] (swarmd never runs a shell; to use one, say [sh, -c, \"...\"])");
  }
  p.argv = r.strings(n["argv"], f + ".argv", "a list of strings such as [python3, agent.py]");
  if (p.argv.empty() || p.argv[0].empty()) r.bad_value(n["argv"], f + ".argv", "a program name as its first item");
  if (n["env"]) p.env = r.string_map(n["env"], f + ".env");
  for (const auto& [key, value] : p.env) {
    if (key.empty() || key.find('=') != std::string::npos) r.bad_value(n["env"], f + ".env", "variable names without '='");
  }
  // Relative paths in the file mean the same wherever swarmd is started from.
  p.cwd = n["cwd"] ? r.path(n["cwd"], f + ".cwd") : std::filesystem::path(r.origin()).parent_path().string();
  if (std::error_code ec; n["cwd"] && !std::filesystem::is_directory(p.cwd, ec)) {
    const bool absent = !ec || ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory;
    r.fail(n["cwd"], f + ".cwd", in_quotes(p.cwd) + (absent ? " is not a directory" : " cannot be used: " + ec.message()));
  }
  if (n["instances"]) p.instances = static_cast<std::uint32_t>(r.number(n["instances"], f + ".instances", 1, 10'000));
  if (n["restart"]) {
    const std::string t = r.text(n["restart"], f + ".restart");
    if (t == "permanent") p.restart = RestartType::permanent;
    else if (t == "transient") p.restart = RestartType::transient;
    else if (t == "temporary") p.restart = RestartType::temporary;
    else r.bad_value(n["restart"], f + ".restart", "permanent, transient or temporary");
  }
  using ms = std::chrono::milliseconds;
  if (n["max_restarts"]) p.max_restarts = static_cast<std::uint32_t>(r.number(n["max_restarts"], f + ".max_restarts", 0, 1'000'000));
  if (n["restart_period"]) p.restart_period = r.duration(n["restart_period"], f + ".restart_period", ms(1), std::chrono::hours(24));
  if (n["on_give_up"]) {
    const std::string g = r.text(n["on_give_up"], f + ".on_give_up");
    if (g == "shutdown") p.on_give_up = GiveUp::shutdown;
    else if (g == "stay_down") p.on_give_up = GiveUp::stay_down;
    else r.bad_value(n["on_give_up"], f + ".on_give_up", "shutdown or stay_down");
  }
  if (n["expect_hello"]) p.expect_hello = r.boolean(n["expect_hello"], f + ".expect_hello");
  if (n["start_timeout"]) p.start_timeout = r.duration(n["start_timeout"], f + ".start_timeout", ms(1), std::chrono::hours(1));
  if (n["stop_timeout"]) p.stop_timeout = r.duration(n["stop_timeout"], f + ".stop_timeout", ms(0), std::chrono::hours(1));
  if (const YAML::Node l = n["limits"]) {
    r.keys(l, f + ".limits", {"address_space", "open_files", "cpu_seconds"});
    if (l["address_space"]) p.limit_address_space = r.bytes(l["address_space"], f + ".limits.address_space");
    if (l["open_files"]) p.limit_open_files = r.number(l["open_files"], f + ".limits.open_files", 16, 1 << 20);
    if (l["cpu_seconds"]) p.limit_cpu_seconds = r.number(l["cpu_seconds"], f + ".limits.cpu_seconds", 1, 1ull << 32);
  }
  if (const YAML::Node o = n["output"]) {
    r.keys(o, f + ".output", {"max_line", "keep_lines", "journal"});
    if (o["max_line"]) p.max_line_bytes = static_cast<std::uint32_t>(r.number(o["max_line"], f + ".output.max_line", 80, 1 << 20));
    if (o["keep_lines"]) p.keep_lines = static_cast<std::uint32_t>(r.number(o["keep_lines"], f + ".output.keep_lines", 0, 100'000));
    if (o["journal"]) p.journal_output = r.boolean(o["journal"], f + ".output.journal");
  }
  return p;
}

}  // namespace

Result<DaemonConfig> parse_config(std::string_view text, std::string_view origin,
                                  const std::vector<std::string>* known_types) {
  const std::string where(origin);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return unexpected(where + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
  }
  DaemonConfig c;
  c.path = where;
  c.runtime.telemetry.admin = "127.0.0.1:9464";
  c.runtime.shutdown_timeout = std::chrono::milliseconds(5000);
  if (root.IsNull()) return c;  // an empty file: defaults, no processes
  Reader r(where);
  try {
    r.keys(root, "", {"runtime", "admin", "gateway", "storage", "agents", "processes", "cluster"});
    if (root["runtime"]) read_runtime(r, root["runtime"], c);
    if (root["admin"]) read_admin(r, root["admin"], c);
    if (root["gateway"]) read_gateway(r, root["gateway"], c);
    if (root["storage"]) read_storage(r, root["storage"], c);
    if (root["cluster"]) read_cluster(r, root["cluster"], c);
    if (const YAML::Node agents = root["agents"]; agents && !agents.IsNull()) {
      if (!agents.IsSequence()) r.bad_value(agents, "agents", "a list of {type, count, options}");
      for (std::size_t i = 0; i < agents.size(); ++i) {
        c.agents.push_back(read_agent(r, agents[i], "agents[" + std::to_string(i) + "]", known_types));
      }
    }
    if (const YAML::Node processes = root["processes"]; processes && !processes.IsNull()) {
      if (!processes.IsSequence()) r.bad_value(processes, "processes", "a list of processes, each with name and argv");
      for (std::size_t i = 0; i < processes.size(); ++i) {
        ProcessSpec p = read_process(r, processes[i], "processes[" + std::to_string(i) + "]");
        for (const ProcessSpec& q : c.processes) {
          if (q.name == p.name) {
            r.fail(processes[i]["name"], "processes." + p.name + ".name",
                   "the name " + in_quotes(p.name) + " is taken by the process on line " + std::to_string(q.line));
          }
        }
        c.processes.push_back(std::move(p));
      }
    }
    if (c.gateway_enabled) {
      if (auto ok = c.gateway.validate(); !ok) r.fail(root["gateway"] ? root["gateway"] : root, "gateway", ok.error());
    } else {
      for (const ProcessSpec& p : c.processes) {
        if (p.expect_hello) {
          r.fail(root["processes"], "processes." + p.name + ".expect_hello",
                 "true needs the gateway (gateway.enabled: false); set expect_hello: false");
        }
      }
    }
  } catch (const ConfigError& e) {
    return unexpected(e.message);
  }
  return c;
}

Result<DaemonConfig> load_config(const std::string& path, const std::vector<std::string>* known_types) {
  std::ifstream in(path);
  if (!in) return unexpected(path + ": cannot read the file");
  std::stringstream text;
  text << in.rdbuf();
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(path, ec).lexically_normal().string();
  return parse_config(text.str(), ec ? path : absolute, known_types);
}

}  // namespace swarm::daemon
