#pragma once
// The pure pieces of swarmctl (docs/swarmd.md): the answers of swarmd's admin
// port as text for people, error texts, defaults. main.cpp does the I/O.
//
//   auto j = nlohmann::json::parse(body_of("/debug/processes"));
//   std::cout << swarm::ctl::processes_text(j);
//   // NAME    PID   STATE    RESTARTS  UPTIME  LAST EXIT
//   // tool-0  1234  running  0         12.5s   -
//
// The *_text functions throw nlohmann::json::exception when a field has
// another type than the contract says; missing fields show as "?".

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace swarm::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // the daemon or gateway said no; a request not answered ok
inline constexpr int kExitUsage = 2;   // bad arguments, unreadable files, daemon or gateway unreachable

/// What main() prints as "swarmctl: <what>" before exiting with `code`.
class Failure : public std::runtime_error {
 public:
  Failure(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

// -- defaults and arguments ---

/// "/tmp/swarmd-UID/control-PORT.token": where swarmd writes its control token by default.
std::string default_token_file(unsigned uid, std::uint16_t port);
std::string trim(std::string_view s);
/// Percent-encodes everything but unreserved characters (RFC 3986), for a query value.
std::string url_encode(std::string_view s);
/// The endpoint to connect to for a gateway that reports `bound` (its bind
/// address): a wildcard host (*, 0.0.0.0, [::]) becomes `admin_host`.
std::string connect_endpoint(std::string_view bound, std::string_view admin_host);

// -- formatting ---

/// Rows (the first is the header) as columns padded to the widest cell, two
/// spaces apart, one line each, no trailing spaces.
std::string format_table(const std::vector<std::vector<std::string>>& rows);
/// "850ms", "12.5s", "3m05s", "2h03m", "4d02h".
std::string format_duration(double seconds);

/// GET /debug/status as "key value" lines.
std::string status_text(const nlohmann::json& status);
/// GET /debug/agents: totals, agents by type, deepest mailboxes, slowest consumers.
std::string agents_text(const nlohmann::json& agents);
/// GET /debug/topics: totals, non-zero dead letters, the busiest topics.
std::string topics_text(const nlohmann::json& topics);
/// GET /debug/processes: NAME PID STATE RESTARTS UPTIME LAST EXIT.
std::string processes_text(const nlohmann::json& processes);
/// A control answer such as {"restarted":["tool-0","tool-1"]} as "restarted tool-0, tool-1".
std::string control_text(const std::string& verb, const nlohmann::json& answer);
/// One line of GET /control/logs as "NAME stream| text" (no newline).
std::string log_line_text(const nlohmann::json& line);
/// The daemon's reason in an error answer: the "error" field of a JSON body, else the trimmed body.
std::string error_text(std::string_view body);
/// A message as one JSON line (no newline): topic, sender, content_type, payload.
/// Bytes that are not UTF-8 become U+FFFD.
std::string message_json(std::string_view topic, std::string_view sender, std::string_view content_type,
                         std::string_view payload);

}  // namespace swarm::ctl
