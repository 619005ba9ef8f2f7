#include "router/topic.hpp"

#include <cstdio>
#include <string>

namespace swarm::router {
namespace {

bool allowed_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == ':' || c == '$';
}

// Printable, bounded quotation of user input for error messages.
std::string quoted(std::string_view text) {
  constexpr std::size_t kShown = 64;
  std::string out = "\"";
  for (char c : text.substr(0, kShown)) {
    if (c >= 0x20 && c < 0x7f) {
      out += c;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    }
  }
  if (text.size() > kShown) out += "...";
  return out + "\"";
}

Result<void> validate(std::string_view text, const TopicLimits& limits, bool is_pattern) {
  const char* what = is_pattern ? "pattern" : "topic";
  if (text.empty()) return unexpected(std::string(what) + " is empty");
  if (text.size() > limits.max_bytes) {
    return unexpected(std::string(what) + " " + quoted(text) + " is " + std::to_string(text.size()) +
                      " bytes, over the limit of " + std::to_string(limits.max_bytes) + " (max_topic_bytes)");
  }
  std::size_t token = 0, start = 0;
  for (;;) {
    std::size_t end = text.find('.', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view t = text.substr(start, end - start);
    ++token;
    std::string where = std::string(what) + " " + quoted(text) + ": token " + std::to_string(token);
    if (token > limits.max_tokens) {
      return unexpected(std::string(what) + " " + quoted(text) + " has more than " +
                        std::to_string(limits.max_tokens) + " tokens (max_tokens)");
    }
    if (t.empty()) return unexpected(where + " is empty (tokens are separated by single dots)");
    if (t == "*" || t == ">") {
      if (!is_pattern) {
        return unexpected(where + " is the wildcard '" + std::string(t) +
                          "'; publish to concrete topics (wildcards are for subscriptions)");
      }
      if (t == ">" && end != text.size()) return unexpected(where + " is '>', which must be the last token");
    } else {
      for (std::size_t i = 0; i < t.size(); ++i) {
        char c = t[i];
        if (allowed_char(c)) continue;
        if (c == '*' || c == '>') {
          return unexpected(where + " " + quoted(t) + " mixes the wildcard '" + std::string(1, c) +
                            "' with other characters (a wildcard is a whole token)");
        }
        char buf[8];
        std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned char>(c));
        return unexpected(where + " has the character " + buf + " at byte " + std::to_string(start + i + 1) +
                          " (allowed: letters, digits, _ - : $" + (is_pattern ? ", and * or > as a whole token" : "") +
                          ")");
      }
    }
    if (end == text.size()) return {};
    start = end + 1;
  }
}

}  // namespace

Result<void> validate_topic(std::string_view topic, const TopicLimits& limits) {
  return validate(topic, limits, false);
}

Result<void> validate_pattern(std::string_view pattern, const TopicLimits& limits) {
  return validate(pattern, limits, true);
}

std::vector<std::string_view> split_tokens(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t end = text.find('.', start);
    if (end == std::string_view::npos) {
      out.push_back(text.substr(start));
      return out;
    }
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
}

bool has_wildcard(std::string_view pattern) {
  for (std::string_view t : split_tokens(pattern)) {
    if (t == "*" || t == ">") return true;
  }
  return false;
}

}  // namespace swarm::router
