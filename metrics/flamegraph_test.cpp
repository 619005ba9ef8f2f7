#include "metrics/flamegraph.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::metrics::testing {

// A small XML well-formedness check, so CI needs no xmllint: one root
// element, properly nested and closed tags, quoted attributes, no raw '<' in
// text or attributes, '&' only in the five named or numeric references, no
// control characters. Returns "" if well-formed, else what and where.
// Also used by profiler_test.cpp (same test executable).
std::string xml_error(std::string_view doc) {
  std::vector<std::string_view> open;
  bool seen_root = false;
  std::size_t i = 0;
  auto fail = [&](const std::string& what) { return what + " at byte " + std::to_string(i); };
  auto is_name_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == ':' || c == '.';
  };
  auto check_text = [&](std::string_view text) -> std::string {
    for (std::size_t k = 0; k < text.size(); ++k) {
      unsigned char c = static_cast<unsigned char>(text[k]);
      if (c < 0x20 && c != '\n' && c != '\t' && c != '\r') return "control character";
      if (c == '<') return "raw '<'";
      if (c == '&') {
        std::size_t semi = text.find(';', k);
        if (semi == std::string_view::npos) return "unterminated reference";
        std::string_view ref = text.substr(k + 1, semi - k - 1);
        bool named = ref == "amp" || ref == "lt" || ref == "gt" || ref == "quot" || ref == "apos";
        bool numeric = ref.size() > 1 && ref[0] == '#';
        if (!named && !numeric) return "bad reference &" + std::string(ref) + ";";
      }
    }
    return "";
  };
  if (doc.substr(0, 5) == "<?xml") {
    i = doc.find("?>");
    if (i == std::string_view::npos) return "unterminated XML declaration";
    i += 2;
  }
  while (i < doc.size()) {
    std::size_t lt = doc.find('<', i);
    std::string_view text = doc.substr(i, lt == std::string_view::npos ? std::string_view::npos : lt - i);
    if (open.empty() && text.find_first_not_of(" \t\r\n") != std::string_view::npos) {
      return fail("text outside the root element");
    }
    if (std::string e = check_text(text); !e.empty()) return fail(e + " in text");
    if (lt == std::string_view::npos) break;
    i = lt + 1;
    bool closing = i < doc.size() && doc[i] == '/';
    if (closing) ++i;
    std::size_t name_start = i;
    while (i < doc.size() && is_name_char(doc[i])) ++i;
    std::string_view name = doc.substr(name_start, i - name_start);
    if (name.empty()) return fail("tag without a name");
    if (closing) {
      if (open.empty() || open.back() != name) return fail("mismatched </" + std::string(name) + ">");
      open.pop_back();
      if (i >= doc.size() || doc[i] != '>') return fail("bad closing tag");
      ++i;
      continue;
    }
    if (open.empty() && seen_root) return fail("second root element");
    seen_root = true;
    for (;;) {  // attributes
      while (i < doc.size() && std::isspace(static_cast<unsigned char>(doc[i]))) ++i;
      if (i >= doc.size()) return fail("unterminated tag");
      if (doc[i] == '>') {
        open.push_back(name);
        ++i;
        break;
      }
      if (doc.substr(i, 2) == "/>") {
        i += 2;
        break;
      }
      std::size_t attr_start = i;
      while (i < doc.size() && is_name_char(doc[i])) ++i;
      if (i == attr_start || i + 1 >= doc.size() || doc[i] != '=') return fail("bad attribute");
      char quote = doc[++i];
      if (quote != '"' && quote != '\'') return fail("unquoted attribute");
      std::size_t end = doc.find(quote, i + 1);
      if (end == std::string_view::npos) return fail("unterminated attribute");
      if (std::string e = check_text(doc.substr(i + 1, end - i - 1)); !e.empty()) return fail(e + " in attribute");
      i = end + 1;
    }
  }
  if (!seen_root) return "no root element";
  if (!open.empty()) return "unclosed <" + std::string(open.back()) + ">";
  return "";
}

}  // namespace swarm::metrics::testing

namespace swarm::metrics {
namespace {

using testing::xml_error;

// The widths of the <rect>s whose tooltip starts with `name (`.
std::vector<double> widths_of(const std::string& svg, const std::string& name) {
  std::vector<double> out;
  for (std::size_t at = svg.find("<title>" + name + " ("); at != std::string::npos;
       at = svg.find("<title>" + name + " (", at + 1)) {
    std::size_t w = svg.find("width=\"", svg.find("<rect", at)) + 7;
    out.push_back(std::stod(svg.substr(w)));
  }
  return out;
}

TEST(FoldedStacks, AddSumsWeightsOfTheSameStack) {
  FoldedStacks p;
  p.add("main;run", 2);
  p.add_frames({"main", "run"}, 3);
  p.add("main;idle", 0);  // nothing
  EXPECT_EQ(p.stacks.size(), 1u);
  EXPECT_EQ(p.stacks.at("main;run"), 5u);
  EXPECT_EQ(p.total(), 5u);
}

TEST(FoldedStacks, FramesAreSanitized) {
  FoldedStacks p;
  p.add_frames({"a;b", "line\nbreak\r", ""}, 1);
  EXPECT_EQ(to_folded(p), "a:b;line break ;[unknown] 1\n");
  p.add("x\ny", 1);
  EXPECT_EQ(p.stacks.count("x y"), 1u);
}

TEST(FoldedStacks, FoldedOutputIsOneLinePerStackRootFirst) {
  FoldedStacks p;
  p.add_frames({"main", "run", "std::vector<int>::push_back(int const&)"}, 3);
  p.add_frames({"main", "idle"}, 1);
  EXPECT_EQ(to_folded(p), "main;idle 1\nmain;run;std::vector<int>::push_back(int const&) 3\n");
}

TEST(FoldedStacks, FoldedFormatRoundTrips) {
  FoldedStacks p;
  p.add_frames({"swarm-worker-0", "main", "operator new(unsigned long)"}, 7);
  p.add_frames({"swarm-worker-1", "a b c", "x"}, 18446744073709551615ull);
  auto back = parse_folded(to_folded(p));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->stacks, p.stacks);
}

TEST(FoldedStacks, ParseSkipsBlankLinesAndNamesTheBadLine) {
  auto ok = parse_folded("a;b 1\r\n\n  \na 2");
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_EQ(ok->total(), 3u);
  auto bad = parse_folded("a;b 1\nc;d\n");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "flamegraph: line 2: no weight after the stack");
  auto word = parse_folded("a x");
  ASSERT_FALSE(word);
  EXPECT_EQ(word.error(), "flamegraph: line 1: weight \"x\" is not a whole number");
}

TEST(FlameGraph, SvgIsWellFormedAndEscapesCppNames) {
  FoldedStacks p;
  p.add_frames({"main", "std::vector<int>::operator[](unsigned long)"}, 3);
  p.add_frames({"main", "a&b", "say \"hi\" 'there'"}, 1);
  std::string svg = render_svg(p, {.title = "CPU <of> \"swarm\" & co", .unit = "samples"});
  EXPECT_EQ(xml_error(svg), "");
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("std::vector&lt;int&gt;::operator[](unsigned long) (3 samples, 75.00%)"), std::string::npos);
  EXPECT_NE(svg.find("a&amp;b (1 samples, 25.00%)"), std::string::npos);
  EXPECT_NE(svg.find("say &quot;hi&quot; &apos;there&apos;"), std::string::npos);
  EXPECT_NE(svg.find("CPU &lt;of&gt; &quot;swarm&quot; &amp; co"), std::string::npos);
  EXPECT_EQ(svg.find("<int>"), std::string::npos);
}

TEST(FlameGraph, InvalidUtf8AndControlCharactersStayWellFormed) {
  FoldedStacks p;
  p.add("caf\xc3\xa9;bad\xff\xfe;cut\xe2\x82", 1);
  std::string svg = render_svg(p, {.title = std::string("t\x01\xc0"), .unit = "samples"});
  EXPECT_EQ(xml_error(svg), "");
  EXPECT_NE(svg.find("caf\xc3\xa9"), std::string::npos);
  EXPECT_NE(svg.find("bad??"), std::string::npos);
}

TEST(FlameGraph, WidthsAreProportionalToWeights) {
  FoldedStacks p;
  p.add_frames({"main", "heavy"}, 300);
  p.add_frames({"main", "light"}, 100);
  std::string svg = render_svg(p, {.width = 1020});  // 1000 px between the margins
  auto all = widths_of(svg, "all");
  auto heavy = widths_of(svg, "heavy");
  auto light = widths_of(svg, "light");
  ASSERT_EQ(all.size(), 1u);
  ASSERT_EQ(heavy.size(), 1u);
  ASSERT_EQ(light.size(), 1u);
  EXPECT_NEAR(all[0], 1000.0, 0.1);
  EXPECT_NEAR(heavy[0], 750.0, 0.1);
  EXPECT_NEAR(light[0], 250.0, 0.1);
  EXPECT_NE(svg.find("heavy (300 samples, 75.00%)"), std::string::npos);
}

TEST(FlameGraph, LongLabelsAreCutToFitAndTinyFramesLeftOut) {
  FoldedStacks p;
  std::string long_name(500, 'x');
  p.add_frames({"main", long_name}, 1000);
  p.add_frames({"main", "tiny"}, 5);            // 1 px: a box without a label
  p.add_frames({"main", "tinier", "deep"}, 1);  // 0.2 px: left out
  std::string svg = render_svg(p, {.width = 220, .min_frame_width = 0.5});
  EXPECT_EQ(xml_error(svg), "");
  EXPECT_NE(svg.find(">" + std::string(long_name.substr(0, 10))), std::string::npos);
  EXPECT_NE(svg.find("..</text>"), std::string::npos);
  EXPECT_EQ(svg.find(">" + long_name + "<"), std::string::npos);                     // never the whole name as a label
  EXPECT_NE(svg.find("<title>" + long_name + " (1000 samples"), std::string::npos);  // but whole in the tooltip
  EXPECT_NE(svg.find("<title>tiny ("), std::string::npos);
  EXPECT_EQ(svg.find(">tiny<"), std::string::npos);
  EXPECT_EQ(svg.find("<title>tinier"), std::string::npos);
  EXPECT_EQ(svg.find("<title>deep"), std::string::npos);
}

TEST(FlameGraph, ColoursDependOnlyOnTheName) {
  FoldedStacks a, b;
  a.add_frames({"main", "work"}, 1);
  b.add_frames({"other", "x", "work"}, 5);
  auto fill_of = [](const std::string& svg, const std::string& name) {
    std::size_t at = svg.find("fill=\"rgb(", svg.find("<title>" + name + " ("));
    return svg.substr(at, svg.find(')', at) - at);
  };
  EXPECT_EQ(fill_of(render_svg(a), "work"), fill_of(render_svg(b), "work"));
  EXPECT_EQ(render_svg(a), render_svg(a));
}

TEST(FlameGraph, EmptyProfileSaysNoSamples) {
  std::string svg = render_svg(FoldedStacks{}, {.title = "logical", .unit = "ns"});
  EXPECT_EQ(xml_error(svg), "");
  EXPECT_NE(svg.find("no samples"), std::string::npos);
  EXPECT_EQ(svg.find("<rect class"), std::string::npos);
}

TEST(FlameGraph, UnitAppearsInTooltipsAndTotal) {
  FoldedStacks p;
  p.add_frames({"agent", "handle"}, 1500);
  std::string svg = render_svg(p, {.title = "Logical", .unit = "ns"});
  EXPECT_NE(svg.find("total: 1500 ns"), std::string::npos);
  EXPECT_NE(svg.find("handle (1500 ns, 100.00%)"), std::string::npos);
}

TEST(XmlCheck, RejectsBrokenDocuments) {
  EXPECT_EQ(xml_error("<a><b/></a>"), "");
  EXPECT_NE(xml_error("<a><b></a>"), "");
  EXPECT_NE(xml_error("<a>x < y</a>"), "");
  EXPECT_NE(xml_error("<a>a & b</a>"), "");
  EXPECT_NE(xml_error("<a x=1/>"), "");
  EXPECT_NE(xml_error("<a/><b/>"), "");
  EXPECT_NE(xml_error("<a>"), "");
}

}  // namespace
}  // namespace swarm::metrics
