#pragma once
// The admin port's live page ("/"): agents, messages/s, drops by reason, worker
// utilization, p99 latencies, the deepest mailboxes and slowest consumers, and
// buttons for flamegraphs, drawn in the browser from /metrics and
// /debug/agents. Self-contained (plain SVG, no external requests).

#include <string_view>

namespace swarm::metrics {

std::string_view live_page_html() noexcept;

}  // namespace swarm::metrics
