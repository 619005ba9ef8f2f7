#include "apps/swarmctl/ctl.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace swarm::ctl {

using nlohmann::json;

namespace {

// A field as text: "?" when missing, strings as they are, booleans yes/no.
std::string field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "?";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_boolean()) return it->get<bool>() ? "yes" : "no";
  return it->dump();
}

std::string duration_field(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || !it->is_number() ? "?" : format_duration(it->get<double>());
}

const json& list(const json& j, const char* key) {
  static const json empty = json::array();
  auto it = j.find(key);
  return it == j.end() || !it->is_array() ? empty : *it;
}

std::string agent_samples(const char* title, const json& samples) {
  if (samples.empty()) return std::string(title) + ": none\n";
  std::vector<std::vector<std::string>> rows{{"AGENT", "TYPE", "DEPTH", "CAPACITY", "DELAY"}};
  for (const json& a : samples) {
    rows.push_back({field(a, "agent"), field(a, "type"), field(a, "mailbox_depth"), field(a, "mailbox_capacity"),
                    duration_field(a, "queueing_delay_seconds")});
  }
  return std::string(title) + ":\n" + format_table(rows);
}

}  // namespace

// -- defaults and arguments ---

std::string default_token_file(unsigned uid, std::uint16_t port) {
  return "/tmp/swarmd-" + std::to_string(uid) + "/control-" + std::to_string(port) + ".token";
}

std::string trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return std::string(s);
}

std::string url_encode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

std::string connect_endpoint(std::string_view bound, std::string_view admin_host) {
  const auto scheme = bound.find("://");
  if (scheme == std::string_view::npos || bound.substr(0, scheme) != "tcp") return std::string(bound);
  const std::string_view rest = bound.substr(scheme + 3);
  const auto colon = rest.rfind(':');
  const std::string_view host = rest.substr(0, colon);
  if (colon == std::string_view::npos || (host != "*" && host != "0.0.0.0" && host != "[::]")) {
    return std::string(bound);
  }
  std::string h(admin_host);
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  return "tcp://" + h + std::string(rest.substr(colon));
}

// -- formatting ---

std::string format_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
    }
    out += trim(line) + "\n";
  }
  return out;
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0)) return "?";
  char buf[32];
  if (seconds < 1) {
    std::snprintf(buf, sizeof buf, "%ldms", std::lround(seconds * 1000));
  } else if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", seconds);
  } else {
    const long t = static_cast<long>(seconds);
    if (t < 3600) {
      std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
    } else if (t < 86400) {
      std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t % 3600 / 60);
    } else {
      std::snprintf(buf, sizeof buf, "%ldd%02ldh", t / 86400, t % 86400 / 3600);
    }
  }
  return buf;
}

std::string status_text(const json& s) {
  const json& p = s.contains("processes") ? s["processes"] : json::object();
  const std::string gateway = field(s, "gateway");
  return "swarmd " + field(s, "version") + ", pid " + field(s, "pid") + ", up " + duration_field(s, "uptime_seconds") +
         "\n" +
         format_table({{"config", field(s, "config")},
                       {"admin", field(s, "admin")},
                       {"gateway", gateway.empty() ? "none" : gateway},
                       {"workers", field(s, "workers")},
                       {"agents", field(s, "agents_live") + " live"},
                       {"clients", field(s, "clients")},
                       {"processes", field(p, "total") + ": " + field(p, "running") + " running, " +
                                         field(p, "starting") + " starting, " + field(p, "failed") + " failed"},
                       {"draining", field(s, "draining")}});
}

std::string agents_text(const json& a) {
  std::string out = field(a, "live") + " live agents, " + field(a, "queued_messages") + " queued messages, " +
                    field(a, "backlogged_agents") + " backlogged agents\n\n";
  std::vector<std::vector<std::string>> rows{{"TYPE", "IDLE", "QUEUED", "RUNNING"}};
  for (const json& t : list(a, "by_type")) {
    rows.push_back({field(t, "type"), field(t, "idle"), field(t, "queued"), field(t, "running")});
  }
  out += format_table(rows) + "\n";
  out += agent_samples("deepest mailboxes", list(a, "deepest_mailboxes")) + "\n";
  return out + agent_samples("slowest consumers", list(a, "slowest_consumers"));
}

std::string topics_text(const json& t) {
  std::string out = field(t, "topics") + " topics, " + field(t, "subscriptions") + " subscriptions, " +
                    field(t, "published") + " published, " + field(t, "delivered") + " delivered\n";
  std::string dead;
  if (auto it = t.find("dead_letters"); it != t.end() && it->is_object()) {
    for (const auto& [reason, n] : it->items()) {
      if (n.is_number() && n.get<double>() != 0) dead += (dead.empty() ? "" : ", ") + reason + " " + n.dump();
    }
  }
  out += "dead letters: " + (dead.empty() ? std::string("none") : dead) + "\n\n";
  const json& top = list(t, "top_topics");
  if (top.empty()) return out + "no subscribed topics\n";
  std::vector<std::vector<std::string>> rows{{"TOPIC", "SUBSCRIBERS", "QUEUE GROUPS"}};
  for (const json& e : top) rows.push_back({field(e, "topic"), field(e, "subscribers"), field(e, "queue_groups")});
  return out + format_table(rows);
}

std::string processes_text(const json& p) {
  const json& all = list(p, "processes");
  if (all.empty()) return "no processes\n";
  std::vector<std::vector<std::string>> rows{{"NAME", "PID", "STATE", "RESTARTS", "UPTIME", "LAST EXIT"}};
  for (const json& e : all) {
    const bool running = e.value("pid", 0) != 0;
    const std::string last_exit = field(e, "last_exit");
    rows.push_back({field(e, "name"), running ? field(e, "pid") : "-", field(e, "state"), field(e, "restarts"),
                    running ? duration_field(e, "uptime_seconds") : "-", last_exit.empty() ? "-" : last_exit});
  }
  return format_table(rows);
}

std::string control_text(const std::string& verb, const json& answer) {
  std::string names;
  for (const json& n : list(answer, verb.c_str())) {
    names += (names.empty() ? "" : ", ") + (n.is_string() ? n.get<std::string>() : n.dump());
  }
  return verb + " " + (names.empty() ? "nothing" : names);
}

std::string log_line_text(const json& line) {
  std::string text = field(line, "text");
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return field(line, "name") + " " + field(line, "stream") + "| " + text;
}

std::string error_text(std::string_view body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"].get<std::string>();
  std::string text = trim(body);
  return text.empty() ? "(no reason given)" : text;
}

std::string message_json(std::string_view topic, std::string_view sender, std::string_view content_type,
                         std::string_view payload) {
  return json{{"topic", topic}, {"sender", sender}, {"content_type", content_type}, {"payload", payload}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

}  // namespace swarm::ctl
