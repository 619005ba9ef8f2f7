#include "metrics/flamegraph.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <string>
#include <vector>

namespace swarm::metrics {
namespace {

bool is_control(char c) { return static_cast<unsigned char>(c) < 0x20; }

// Length of the well-formed UTF-8 sequence at s[i], or 0 if it is not one
// (overlong forms, surrogates and values past U+10FFFF are rejected, as XML
// parsers do).
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = at(i);
  if (c < 0x80) return 1;
  std::size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((at(i + k) & 0xC0) != 0x80) return 0;
  }
  unsigned char c1 = at(i + 1);
  if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0) || (c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 >= 0x90)) {
    return 0;
  }
  if (c == 0xEF && c1 == 0xBF && at(i + 2) >= 0xBE) return 0;  // U+FFFE, U+FFFF are not XML characters
  return n;
}

void append_escaped(std::string& out, std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    char c = s[i];
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        if (is_control(c)) {
          out += ' ';
        } else if (std::size_t n = utf8_length(s, i); n == 0) {
          out += '?';
        } else {
          out.append(s.substr(i, n));
          i += n;
          continue;
        }
    }
    ++i;
  }
}

// The longest prefix of at most `max_bytes` that does not split a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  std::size_t n = max_bytes;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// FNV-1a: stable across runs and platforms, unlike std::hash.
std::uint64_t stable_hash(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

// flamegraph.pl's "hot" palette: red to yellow, picked by the name.
std::string warm_colour(std::string_view name) {
  std::uint64_t h = stable_hash(name);
  auto unit = [&](int shift) { return static_cast<double>((h >> shift) & 0xFFFF) / 65536.0; };
  char buf[32];
  std::snprintf(buf, sizeof buf, "rgb(%d,%d,%d)", 205 + static_cast<int>(50 * unit(0)),
                static_cast<int>(230 * unit(16)), static_cast<int>(55 * unit(32)));
  return buf;
}

std::string percent(std::uint64_t part, std::uint64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

std::string px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// The call tree merged from all stacks. Names point into the profile's keys.
struct Node {
  std::string_view name;
  std::uint64_t weight = 0;
  std::map<std::string_view, std::size_t> children;  // by name: the left-to-right order
};

class SvgWriter {
 public:
  SvgWriter(const FoldedStacks& profile, const SvgOptions& options) : opt_(options) {
    nodes_.push_back(Node{"all", 0, {}});
    for (const auto& [stack, weight] : profile.stacks) add(stack, weight);
  }

  std::string render() {
    const std::uint64_t total = nodes_[0].weight;
    const int width = std::max(opt_.width, 100);
    const int rows = total == 0 ? 1 : depth_ + 1;
    const int height = kTop + rows * opt_.frame_height + kBottom;
    std::string s;
    s += "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n";
    s += "<svg version=\"1.1\" width=\"" + std::to_string(width) + "\" height=\"" + std::to_string(height) +
         "\" viewBox=\"0 0 " + std::to_string(width) + " " + std::to_string(height) +
         "\" xmlns=\"http://www.w3.org/2000/svg\">\n";
    s += "<style>text{font-family:Verdana,sans-serif;font-size:" + std::to_string(opt_.font_size) +
         "px;fill:#000}.title{font-size:17px;text-anchor:middle}rect.f:hover{stroke:#000;stroke-width:0.5}</style>\n";
    s += "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#f8f8f8\"/>\n";
    s += "<text class=\"title\" x=\"" + std::to_string(width / 2) + "\" y=\"24\">";
    append_escaped(s, opt_.title);
    s += "</text>\n<text x=\"" + std::to_string(kPad) + "\" y=\"44\">";
    if (total == 0) {
      s += "no samples</text>\n</svg>\n";
      return s;
    }
    append_escaped(s, "total: " + std::to_string(total) + " " + opt_.unit);
    s += "</text>\n";
    scale_ = static_cast<double>(width - 2 * kPad) / static_cast<double>(total);
    bottom_ = height - kBottom;
    draw(s, 0, 0, 0, total);
    s += "</svg>\n";
    return s;
  }

 private:
  static constexpr int kPad = 10;  // left and right margin
  static constexpr int kTop = 56;  // title and total line
  static constexpr int kBottom = 10;

  void add(std::string_view stack, std::uint64_t weight) {
    std::size_t node = 0, depth = 0;
    nodes_[0].weight += weight;
    for (std::size_t start = 0; start <= stack.size();) {
      std::size_t end = std::min(stack.find(';', start), stack.size());
      std::string_view name = stack.substr(start, end - start);
      auto it = nodes_[node].children.find(name);
      std::size_t child = nodes_.size();
      if (it != nodes_[node].children.end()) {
        child = it->second;
      } else {
        nodes_[node].children.emplace(name, child);
        nodes_.push_back(Node{name, 0, {}});  // may move every node: hold indices, not references
      }
      node = child;
      nodes_[node].weight += weight;
      depth_ = std::max(depth_, static_cast<int>(++depth));
      start = end + 1;
    }
  }

  void draw(std::string& s, std::size_t node, int depth, std::uint64_t offset, std::uint64_t total) {
    const Node& n = nodes_[node];
    const double w = static_cast<double>(n.weight) * scale_;
    if (w < opt_.min_frame_width) return;  // its children are narrower still
    const double x = kPad + static_cast<double>(offset) * scale_;
    const int y = bottom_ - (depth + 1) * opt_.frame_height;
    s += "<g><title>";
    append_escaped(s, n.name);
    s += " (" + std::to_string(n.weight) + " ";
    append_escaped(s, opt_.unit);
    s += ", " + percent(n.weight, total) + ")</title><rect class=\"f\" x=\"" + px(x) + "\" y=\"" + std::to_string(y) +
         "\" width=\"" + px(w) + "\" height=\"" + std::to_string(opt_.frame_height - 1) + "\" rx=\"2\" fill=\"" +
         warm_colour(n.name) + "\"/>";
    // Verdana averages ~0.59 em per character; keep 3 px of padding on each side.
    const auto fits = static_cast<std::size_t>(std::max(0.0, (w - 6) / (opt_.font_size * 0.59)));
    if (fits >= 3) {
      s += "<text x=\"" + px(x + 3) + "\" y=\"" + std::to_string(y + opt_.frame_height - 4) + "\">";
      if (n.name.size() <= fits) {
        append_escaped(s, n.name);
      } else {
        append_escaped(s, utf8_prefix(n.name, fits - 2));
        s += "..";
      }
      s += "</text>";
    }
    s += "</g>\n";
    for (const auto& [name, child] : n.children) {
      draw(s, child, depth + 1, offset, total);
      offset += nodes_[child].weight;
    }
  }

  const SvgOptions& opt_;
  std::vector<Node> nodes_;  // [0] is the root "all"
  int depth_ = 0;            // deepest stack, in frames
  double scale_ = 0;         // pixels per unit of weight
  int bottom_ = 0;           // y of the root row's bottom edge
};

}  // namespace

std::string sanitize_frame(std::string_view frame) {
  if (frame.empty()) return "[unknown]";
  std::string out(frame);
  for (char& c : out) {
    if (c == ';') c = ':';
    if (is_control(c)) c = ' ';
  }
  return out;
}

void FoldedStacks::add(std::string_view stack, std::uint64_t weight) {
  if (weight == 0) return;
  std::string key(stack);
  for (char& c : key) {
    if (is_control(c)) c = ' ';
  }
  stacks[std::move(key)] += weight;
}

void FoldedStacks::add_frames(std::span<const std::string_view> frames, std::uint64_t weight) {
  if (weight == 0) return;
  std::string key;
  for (std::string_view f : frames) {
    if (!key.empty()) key += ';';
    key += sanitize_frame(f);
  }
  stacks[std::move(key)] += weight;
}

std::uint64_t FoldedStacks::total() const {
  std::uint64_t sum = 0;
  for (const auto& [stack, weight] : stacks) sum += weight;
  return sum;
}

std::string to_folded(const FoldedStacks& profile) {
  std::string out;
  for (const auto& [stack, weight] : profile.stacks) {
    out += stack;
    out += ' ';
    out += std::to_string(weight);
    out += '\n';
  }
  return out;
}

Result<FoldedStacks> parse_folded(std::string_view text) {
  FoldedStacks profile;
  std::size_t line_no = 0;
  while (!text.empty()) {
    std::size_t eol = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(std::min(eol + 1, text.size()));
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    auto where = [&] { return "flamegraph: line " + std::to_string(line_no) + ": "; };
    std::size_t space = line.rfind(' ');
    if (space == std::string_view::npos || space == 0) return unexpected(where() + "no weight after the stack");
    std::string_view count = line.substr(space + 1);
    std::uint64_t weight = 0;
    auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), weight);
    if (count.empty() || ec != std::errc() || end != count.data() + count.size()) {
      return unexpected(where() + "weight \"" + std::string(count.substr(0, 32)) + "\" is not a whole number");
    }
    profile.add(line.substr(0, space), weight);
  }
  return profile;
}

std::string render_svg(const FoldedStacks& profile, const SvgOptions& options) {
  return SvgWriter(profile, options).render();
}

}  // namespace swarm::metrics
