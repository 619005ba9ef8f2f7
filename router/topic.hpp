#pragma once
// Topic syntax: dot-separated tokens of letters, digits and `_ - : $`
// ("orders.eu.created"). Subscription patterns may also use `*` (exactly one
// token) and `>` (one or more trailing tokens, last only). Validation errors
// say what is wrong and where.

#include <cstddef>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace swarm::router {

struct TopicLimits {
  std::size_t max_bytes = 256;
  std::size_t max_tokens = 16;
};

/// A topic one can publish to: no wildcards.
Result<void> validate_topic(std::string_view topic, const TopicLimits& limits = {});
/// A subscription pattern: tokens, `*` and a final `>`.
Result<void> validate_pattern(std::string_view pattern, const TopicLimits& limits = {});

/// The tokens of a valid topic or pattern (views into `text`).
std::vector<std::string_view> split_tokens(std::string_view text);

/// True if the valid pattern has a `*` or `>` token.
bool has_wildcard(std::string_view pattern);

}  // namespace swarm::router
