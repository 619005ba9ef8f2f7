#pragma once
// Folded stacks and flamegraphs.
//
// A profile is a multiset of call stacks, root first, each with a weight
// (samples, or nanoseconds for a logical profile). `to_folded` writes Brendan
// Gregg's folded format, which flamegraph.pl, inferno and speedscope read;
// `render_svg` draws the flamegraph itself, with no external tool.
//
//   FoldedStacks p;
//   p.add_frames({"main", "run", "std::vector<int>::push_back"}, 3);
//   p.add("main;idle", 1);
//   std::string folded = to_folded(p);  // "main;idle 1\nmain;run;std::vector<int>::push_back 3\n"
//   std::string svg = render_svg(p, {.title = "CPU", .unit = "samples"});
//
// Thread-compatible: a FoldedStacks may be read from many threads at once,
// written from one; the free functions keep no state.

#include <cstdint>
#include <initializer_list>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace swarm::metrics {

/// Stacks in folded form: "root;caller;leaf" -> weight, sorted by stack.
/// Invariant (kept by add and add_frames): no key holds a newline or a
/// carriage return, and no weight is 0.
struct FoldedStacks {
  std::map<std::string, std::uint64_t> stacks;

  /// Adds `weight` to an already folded stack ("a;b;c"). Newlines and other
  /// control characters become spaces; a weight of 0 adds nothing.
  void add(std::string_view stack, std::uint64_t weight);
  /// Adds `weight` to the stack of `frames`, root first. Each frame is
  /// sanitized first: ';' becomes ':', control characters become spaces, an
  /// empty frame becomes "[unknown]".
  void add_frames(std::span<const std::string_view> frames, std::uint64_t weight);
  void add_frames(std::initializer_list<std::string_view> frames, std::uint64_t weight) {
    add_frames(std::span<const std::string_view>(frames.begin(), frames.size()), weight);
  }
  /// The sum of all weights.
  std::uint64_t total() const;
};

/// The frame name as it may appear inside a folded stack (see add_frames).
std::string sanitize_frame(std::string_view frame);

/// Folded format: one "a;b;c <weight>\n" line per stack, sorted by stack.
std::string to_folded(const FoldedStacks& profile);

/// Parses the folded format (blank lines are skipped). Errors name the line:
/// `flamegraph: line 3: no weight after the stack`.
Result<FoldedStacks> parse_folded(std::string_view text);

struct SvgOptions {
  std::string title = "Flame Graph";
  std::string unit = "samples";  // what a weight counts: "samples", "ns", ...
  int width = 1200;              // pixels
  int frame_height = 16;         // pixels per stack level
  int font_size = 12;            // pixels
  double min_frame_width = 0.1;  // frames narrower than this (pixels) are left out
};

/// A standalone SVG flamegraph, root ("all") at the bottom, children ordered
/// by name left to right. Every frame has a <title> tooltip with its name,
/// weight and share of the total; labels are cut to fit their box. Colours
/// are warm and depend only on the frame name. An empty profile renders a
/// valid SVG that says "no samples". All text is XML-escaped, and invalid
/// UTF-8 becomes '?', so the output is always well-formed XML.
std::string render_svg(const FoldedStacks& profile, const SvgOptions& options = {});

}  // namespace swarm::metrics
