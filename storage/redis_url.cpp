// redis://[[user]:password@]host[:port][/db], parsed with errors that name the culprit.

#include <charconv>
#include <string>
#include <string_view>

#include "storage/state_store.hpp"

namespace swarm::storage {

namespace {

constexpr std::string_view kScheme = "redis://";
constexpr std::string_view kShape = "expected redis://[[user]:password@]host[:port][/db]";

// The URL as it may appear in an error: the password (if any) replaced by ***.
std::string masked(std::string_view url) {
  const std::size_t at = url.rfind('@');
  if (url.substr(0, kScheme.size()) != kScheme || at == std::string_view::npos) return std::string(url);
  const std::size_t colon = url.find(':', kScheme.size());
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes credentials (a password may hold '@', ':' or '/' only encoded); false if malformed.
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    const int hi = i + 1 < in.size() ? hex_digit(in[i + 1]) : -1;
    const int lo = i + 2 < in.size() ? hex_digit(in[i + 2]) : -1;
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

// A decimal number made of digits only, at most `max`.
bool parse_number(std::string_view s, long max, long& out) {
  if (s.empty() || s.size() > 10) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && out <= max;
}

}  // namespace

std::string RedisUrl::endpoint() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" + std::to_string(db);
}

Result<RedisUrl> parse_redis_url(std::string_view url) {
  const auto bad = [&](const std::string& what) {
    return unexpected("storage: invalid Redis URL '" + masked(url) + "': " + what);
  };
  if (url.substr(0, 9) == "rediss://") return bad("TLS (rediss://) is not supported by hiredis 0.14");
  if (url.substr(0, kScheme.size()) != kScheme) return bad(std::string(kShape));
  std::string_view rest = url.substr(kScheme.size());
  RedisUrl out;

  // Credentials: everything before the last '@' (the host part never holds one).
  if (const std::size_t at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const std::size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) return bad("credentials must be ':password' or 'user:password'");
    if (!percent_decode(userinfo.substr(0, colon), out.user) ||
        !percent_decode(userinfo.substr(colon + 1), out.password)) {
      return bad("bad percent-encoding in the credentials");
    }
    if (out.password.empty()) return bad("empty password");
  }

  // Database: after the first '/'.
  std::string_view hostport = rest;
  if (const std::size_t slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    const std::string_view db = rest.substr(slash + 1);
    long n = 0;
    if (!db.empty()) {
      if (!parse_number(db, 1'000'000, n)) return bad("bad db '" + std::string(db) + "' (expected a number >= 0)");
      out.db = static_cast<int>(n);
    }
  }

  // Host and port; an IPv6 host needs brackets so its colons are not mistaken for the port's.
  std::string_view port;
  if (!hostport.empty() && hostport.front() == '[') {
    const std::size_t close = hostport.find(']');
    if (close == std::string_view::npos) return bad("unterminated '[' in the host");
    out.host = std::string(hostport.substr(1, close - 1));
    const std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("unexpected '" + std::string(after) + "' after the host");
      port = after.substr(1);
      if (port.empty()) return bad("empty port");
    }
  } else {
    const std::size_t colon = hostport.find(':');
    if (colon != std::string_view::npos && hostport.find(':', colon + 1) != std::string_view::npos) {
      return bad("an IPv6 host needs brackets: redis://[::1]:6379");
    }
    out.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = hostport.substr(colon + 1);
      if (port.empty()) return bad("empty port");
    }
  }
  if (out.host.empty()) return bad("missing host; " + std::string(kShape));
  if (!port.empty()) {
    long n = 0;
    if (!parse_number(port, 65535, n) || n == 0) return bad("bad port '" + std::string(port) + "' (expected 1-65535)");
    out.port = static_cast<std::uint16_t>(n);
  }
  return out;
}

}  // namespace swarm::storage
