#include "apps/swarm-load/plot.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace swarm::load {
namespace {

LatencyHistogram known_histogram() {
  LatencyHistogram h;
  for (std::uint64_t us = 1; us <= 10'000; ++us) h.record(us * 100);  // 100 ns .. 1 ms
  return h;
}

// The y pixel coordinates of the first polyline in `svg` (points="x,y x,y ...").
// Parsed by hand: <regex> trips GCC 12's -Wmaybe-uninitialized under ASan.
std::vector<double> first_polyline_ys(const std::string& svg) {
  std::vector<double> ys;
  const std::size_t tag = svg.find("<polyline");
  if (tag == std::string::npos) return ys;
  const std::size_t open = svg.find("points=\"", tag);
  if (open == std::string::npos) return ys;
  const std::size_t begin = open + 8, end = svg.find('"', begin);
  std::istringstream points(svg.substr(begin, end - begin));
  std::string pair;
  while (points >> pair) {
    const std::size_t comma = pair.find(',');
    if (comma != std::string::npos) ys.push_back(std::stod(pair.substr(comma + 1)));
  }
  return ys;
}

TEST(Plot, SpectrumHasPercentileAxisAndARisingCurve) {
  const LatencyHistogram h = known_histogram();
  const std::string svg = spectrum_svg({{"run", &h}}, "title <&>");
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  for (const char* label : {">50%<", ">90%<", ">99%<", ">99.9%<", ">99.99%<"}) {
    EXPECT_NE(svg.find(label), std::string::npos) << label;
  }
  EXPECT_NE(svg.find("title &lt;&amp;&gt;"), std::string::npos);  // escaped
  EXPECT_NE(svg.find("latency (µs)"), std::string::npos);
  // Latency grows with the percentile: pixel y never goes down the page.
  const std::vector<double> ys = first_polyline_ys(svg);
  ASSERT_GT(ys.size(), 100u);
  for (std::size_t i = 1; i < ys.size(); ++i) ASSERT_LE(ys[i], ys[i - 1] + 1e-9) << i;
  EXPECT_LT(ys.back(), ys.front());
}

TEST(Plot, SpectraOverlayWithALegendEach) {
  const LatencyHistogram a = known_histogram();
  LatencyHistogram b = a;
  b.record(5'000'000);
  const std::string svg = spectrum_svg({{"base", &a}, {"new", &b}}, "t");
  EXPECT_NE(svg.find(">base: p50"), std::string::npos);
  EXPECT_NE(svg.find(">new: p50"), std::string::npos);
  EXPECT_NE(svg.find("latency (ms)"), std::string::npos);  // the new max (5 ms) sets the unit
}

TEST(Plot, EmptySpectrumSaysSo) {
  const LatencyHistogram empty;
  EXPECT_NE(spectrum_svg({{"x", &empty}}, "t").find("no latency samples"), std::string::npos);
}

RunResult run_with_timeline(bool drops) {
  RunResult r;
  r.mode = "open";
  for (int t = 1; t <= 5; ++t) {
    IntervalStats p;
    p.t = t;
    p.seconds = 1;
    p.warmup = t == 1;
    p.target_rate = 1000;
    p.sent = 1000;
    p.completed = 990;
    p.observations = 990;
    p.dropped = drops && t == 4 ? 10 : 0;
    p.p50 = 20e-6;
    p.p99 = 200e-6;
    p.max = 900e-6;
    r.timeline.push_back(p);
  }
  return r;
}

TEST(Plot, TimelineShadesWarmupAndShowsDrops) {
  const std::string quiet = timeline_svg(run_with_timeline(false), "t");
  EXPECT_NE(quiet.find(">warm-up<"), std::string::npos);
  EXPECT_NE(quiet.find(">no drops<"), std::string::npos);
  EXPECT_NE(quiet.find(">p99<"), std::string::npos);
  EXPECT_NE(quiet.find(">target<"), std::string::npos);
  const std::string dropping = timeline_svg(run_with_timeline(true), "t");
  EXPECT_EQ(dropping.find(">no drops<"), std::string::npos);
  RunResult closed = run_with_timeline(false);
  closed.mode = "closed";
  EXPECT_EQ(timeline_svg(closed, "t").find(">target<"), std::string::npos);
}

TEST(Plot, WritesSvgAndPngWhenTheToolIsThere) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "swarm-load-plot-test";
  std::filesystem::create_directories(dir);
  const LatencyHistogram h = known_histogram();
  auto note = write_plot((dir / "s.svg").string(), spectrum_svg({{"run", &h}}, "t"), true);
  ASSERT_TRUE(note) << note.error();
  EXPECT_TRUE(std::filesystem::exists(dir / "s.svg"));
  if (find_rsvg_convert().empty()) {
    EXPECT_NE(note->find("no PNG: rsvg-convert is not installed"), std::string::npos) << *note;
  } else {
    // rsvg-convert parsed our SVG and produced a PNG.
    ASSERT_TRUE(std::filesystem::exists(dir / "s.png")) << *note;
    std::ifstream png(dir / "s.png", std::ios::binary);
    char magic[4] = {};
    png.read(magic, 4);
    EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  }
  auto bad = write_plot("/nonexistent/dir/x.svg", "<svg/>", false);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "swarm-load: cannot write /nonexistent/dir/x.svg");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace swarm::load
