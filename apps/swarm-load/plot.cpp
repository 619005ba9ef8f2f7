#include "apps/swarm-load/plot.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "apps/swarm-load/report.hpp"

extern char** environ;

namespace swarm::load {

namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
constexpr const char* kFont = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string esc(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// The smallest "nice" step (1, 2, 2.5, 5 x 10^k) at least `raw`.
double nice_step(double raw) {
  if (!(raw > 0)) return 1;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * mag >= raw * (1 - 1e-9)) return m * mag;
  }
  return 10 * mag;
}

// A latency unit for an axis whose largest value is `max_ns`.
struct Unit {
  double ns;
  const char* name;
};
Unit unit_for(double max_ns) {
  if (max_ns >= 2e9) return {1e9, "s"};
  if (max_ns >= 2e6) return {1e6, "ms"};
  if (max_ns >= 2e3) return {1e3, "µs"};
  return {1, "ns"};
}

std::string num_label(double v) {
  if (v == std::floor(v) && std::abs(v) < 1e15) return fmt("%.0f", v);
  return fmt("%g", v);
}

std::string rate_label(double v) {
  if (v >= 1e6) return num_label(v / 1e6) + "M";
  if (v >= 1e3) return num_label(v / 1e3) + "k";
  return num_label(v);
}

std::string latency_label(double ns) {
  if (ns >= 1e9) return num_label(ns / 1e9) + " s";
  if (ns >= 1e6) return num_label(ns / 1e6) + " ms";
  if (ns >= 1e3) return num_label(ns / 1e3) + " µs";
  return num_label(ns) + " ns";
}

// A rectangle of the canvas that maps data to pixels.
struct Panel {
  double x0, y0, w, h;  // pixels, top-left
  double xmin, xmax, ymin, ymax;
  bool ylog = false;
  double px(double x) const { return x0 + (x - xmin) / (xmax - xmin) * w; }
  double py(double y) const {
    if (ylog) {
      const double l = std::log10(std::max(y, ymin));
      return y0 + h - (l - std::log10(ymin)) / (std::log10(ymax) - std::log10(ymin)) * h;
    }
    return y0 + h - (y - ymin) / (ymax - ymin) * h;
  }
};

class Svg {
 public:
  Svg(int width, int height) : width_(width), height_(height) {
    o_ << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
       << "\" viewBox=\"0 0 " << width << " " << height << "\">\n";
    o_ << "<rect x=\"0\" y=\"0\" width=\"" << width << "\" height=\"" << height << "\" fill=\"white\"/>\n";
  }
  void text(double x, double y, const std::string& s, int size, const char* anchor = "start", const char* extra = "") {
    o_ << "<text x=\"" << fmt("%.1f", x) << "\" y=\"" << fmt("%.1f", y) << "\" font-size=\"" << size
       << "\" text-anchor=\"" << anchor << "\" " << kFont << " " << extra << ">" << esc(s) << "</text>\n";
  }
  void line(double x1, double y1, double x2, double y2, const char* stroke, double width = 1, const char* extra = "") {
    o_ << "<line x1=\"" << fmt("%.1f", x1) << "\" y1=\"" << fmt("%.1f", y1) << "\" x2=\"" << fmt("%.1f", x2)
       << "\" y2=\"" << fmt("%.1f", y2) << "\" stroke=\"" << stroke << "\" stroke-width=\"" << width << "\" " << extra
       << "/>\n";
  }
  void rect(double x, double y, double w, double h, const char* fill, const char* extra = "") {
    o_ << "<rect x=\"" << fmt("%.1f", x) << "\" y=\"" << fmt("%.1f", y) << "\" width=\"" << fmt("%.1f", std::max(0.0, w))
       << "\" height=\"" << fmt("%.1f", std::max(0.0, h)) << "\" fill=\"" << fill << "\" " << extra << "/>\n";
  }
  void polyline(const std::vector<std::pair<double, double>>& pts, const char* stroke, double width,
                const char* extra = "") {
    if (pts.empty()) return;
    o_ << "<polyline fill=\"none\" stroke=\"" << stroke << "\" stroke-width=\"" << width
       << "\" stroke-linejoin=\"round\" " << extra << " points=\"";
    for (auto [x, y] : pts) o_ << fmt("%.1f", x) << "," << fmt("%.1f", y) << " ";
    o_ << "\"/>\n";
  }
  void frame(const Panel& p) {
    o_ << "<rect x=\"" << fmt("%.1f", p.x0) << "\" y=\"" << fmt("%.1f", p.y0) << "\" width=\"" << fmt("%.1f", p.w)
       << "\" height=\"" << fmt("%.1f", p.h) << "\" fill=\"none\" stroke=\"#444\" stroke-width=\"1\"/>\n";
  }
  // A legend entry: a short line and its label.
  void legend(double x, double y, const char* color, const std::string& label, const char* dash = "") {
    line(x, y - 4, x + 22, y - 4, color, 2.5, dash);
    text(x + 28, y, label, 12);
  }
  std::string str() {
    o_ << "</svg>\n";
    return o_.str();
  }
  int width() const { return width_; }
  int height() const { return height_; }

 private:
  std::ostringstream o_;
  int width_, height_;
};

// Horizontal grid lines and labels of a linear y axis.
void linear_y_axis(Svg& svg, const Panel& p, double step, const std::function<std::string(double)>& label) {
  for (double v = p.ymin; v <= p.ymax * (1 + 1e-9); v += step) {
    const double y = p.py(v);
    svg.line(p.x0, y, p.x0 + p.w, y, "#e3e3e3");
    svg.text(p.x0 - 6, y + 4, label(v), 11, "end");
  }
}

// Decade grid lines and labels of a log y axis.
void log_y_axis(Svg& svg, const Panel& p, const std::function<std::string(double)>& label) {
  for (double v = p.ymin; v <= p.ymax * (1 + 1e-9); v *= 10) {
    const double y = p.py(v);
    svg.line(p.x0, y, p.x0 + p.w, y, "#d8d8d8");
    svg.text(p.x0 - 6, y + 4, label(v), 11, "end");
    for (int k = 2; k < 10 && v * k < p.ymax; ++k) svg.line(p.x0, p.py(v * k), p.x0 + p.w, p.py(v * k), "#f2f2f2");
  }
}

}  // namespace

std::string spectrum_svg(const std::vector<SpectrumSeries>& series, const std::string& title) {
  std::vector<const SpectrumSeries*> shown;
  for (const SpectrumSeries& s : series) {
    if (s.histogram != nullptr && !s.histogram->empty()) shown.push_back(&s);
  }
  // The legend sits under the plot, one line per series, clear of the curves.
  Svg svg(960, 540 + 20 * static_cast<int>(std::max<std::size_t>(shown.size(), 1)));
  Panel p{90, 60, 830, 400, 0, 2, 0, 1};
  svg.text(svg.width() / 2.0, 30, title, 17, "middle", "font-weight=\"bold\"");
  if (shown.empty()) {
    svg.frame(p);
    svg.text(p.x0 + p.w / 2, p.y0 + p.h / 2, "no latency samples", 14, "middle");
    return svg.str();
  }
  // x reaches the largest 1/(1-p) any series resolves: log10 of its sample count.
  double xmax = 2, ymax_ns = 0;
  for (const SpectrumSeries* s : shown) {
    xmax = std::max(xmax, std::ceil(std::log10(static_cast<double>(s->histogram->count())) - 1e-9));
    ymax_ns = std::max(ymax_ns, static_cast<double>(s->histogram->max()));
  }
  xmax = std::min(xmax, 7.0);
  const Unit unit = unit_for(ymax_ns);
  const double step = nice_step(ymax_ns / unit.ns / 6);
  p.xmax = xmax;
  p.ymax = std::max(step, std::ceil(ymax_ns / unit.ns / step - 1e-9) * step);

  // Grid: percentiles at 1/(1-p) = 2, 10, 100, ...
  const std::pair<double, const char*> ticks[] = {{0, "0%"},        {std::log10(2.0), "50%"}, {1, "90%"},
                                                  {2, "99%"},       {3, "99.9%"},             {4, "99.99%"},
                                                  {5, "99.999%"},   {6, "99.9999%"},          {7, "99.99999%"}};
  for (auto [x, label] : ticks) {
    if (x > xmax + 1e-9) break;
    svg.line(p.px(x), p.y0, p.px(x), p.y0 + p.h, "#d8d8d8", 1, "stroke-dasharray=\"4,3\"");
    svg.text(p.px(x), p.y0 + p.h + 18, label, 12, "middle");
  }
  linear_y_axis(svg, p, step, [](double v) { return num_label(v); });
  svg.frame(p);
  svg.text(p.x0 + p.w / 2, p.y0 + p.h + 44, "percentile (x = 1/(1-p), log scale)", 13, "middle");
  svg.text(24, p.y0 + p.h / 2, std::string("latency (") + unit.name + ")", 13, "middle",
           ("transform=\"rotate(-90 24 " + fmt("%.1f", p.y0 + p.h / 2) + ")\"").c_str());

  for (std::size_t k = 0; k < shown.size(); ++k) {
    const LatencyHistogram& h = *shown[k]->histogram;
    const double xend = std::min(xmax, std::log10(static_cast<double>(h.count())));
    std::vector<std::pair<double, double>> pts;
    for (double x = 0; x <= xend + 1e-9; x += 0.01) {
      const double q = 1 - std::pow(10.0, -x);
      pts.emplace_back(p.px(x), p.py(h.quantile(q) / unit.ns));
    }
    // The last sample resolved is the maximum.
    pts.emplace_back(p.px(xend), p.py(static_cast<double>(h.max()) / unit.ns));
    const char* color = kPalette[k % std::size(kPalette)];
    svg.polyline(pts, color, 2.2);
    std::string label = shown[k]->label + ": p50 " + format_latency_ns(h.quantile(0.5)) + ", p99 " +
                        format_latency_ns(h.quantile(0.99)) + ", p99.9 " + format_latency_ns(h.quantile(0.999)) +
                        ", max " + format_latency_ns(static_cast<double>(h.max())) + " (" +
                        format_count(static_cast<double>(h.count())) + " samples)";
    svg.legend(p.x0, p.y0 + p.h + 74 + 20.0 * static_cast<double>(k), color, label);
  }
  return svg.str();
}

std::string timeline_svg(const RunResult& run, const std::string& title) {
  Svg svg(960, 720);
  svg.text(svg.width() / 2.0, 30, title, 17, "middle", "font-weight=\"bold\"");
  const std::vector<IntervalStats>& tl = run.timeline;
  // A rate over a sliver (the drain after the last full interval) is noise, not a cliff: left out.
  double longest = 0;
  for (const IntervalStats& s : tl) longest = std::max(longest, s.seconds);
  double tmax = 1, rate_max = 1, lat_min = 1e300, lat_max = 0, drop_max = 0, warm_end = 0;
  for (const IntervalStats& s : tl) {
    tmax = std::max(tmax, s.t);
    rate_max = std::max(rate_max, s.target_rate);
    if (s.seconds >= longest / 2) rate_max = std::max({rate_max, s.sent_rate(), s.completed_rate()});
    for (double v : {s.p50, s.p99, s.max}) {
      if (v > 0) {
        lat_min = std::min(lat_min, v * 1e9);
        lat_max = std::max(lat_max, v * 1e9);
      }
    }
    if (s.seconds > 0) drop_max = std::max(drop_max, static_cast<double>(s.dropped) / s.seconds);
    if (s.warmup) warm_end = std::max(warm_end, s.t);
  }
  const double tstep = nice_step(tmax / 10);
  tmax = std::ceil(tmax / tstep - 1e-9) * tstep;
  const double rstep = nice_step(rate_max * 1.05 / 5);
  Panel thr{100, 60, 820, 250, 0, tmax, 0, std::ceil(rate_max * 1.05 / rstep) * rstep};
  if (lat_max <= 0) {
    lat_min = 1e3;
    lat_max = 1e6;
  }
  Panel lat{100, 360, 820, 220, 0, tmax, std::pow(10.0, std::floor(std::log10(lat_min))),
            std::pow(10.0, std::ceil(std::log10(lat_max) + 1e-9))};
  lat.ylog = true;
  if (lat.ymax <= lat.ymin) lat.ymax = lat.ymin * 10;
  const double dstep = nice_step(std::max(1.0, drop_max) * 1.05 / 2);
  Panel drp{100, 620, 820, 60, 0, tmax, 0, std::max(dstep, std::ceil(drop_max * 1.05 / dstep) * dstep)};

  auto x_axis = [&](const Panel& p, bool labels) {
    for (double t = 0; t <= tmax + 1e-9; t += tstep) {
      svg.line(p.px(t), p.y0, p.px(t), p.y0 + p.h, "#eeeeee");
      if (labels) svg.text(p.px(t), p.y0 + p.h + 16, num_label(t), 11, "middle");
    }
    if (warm_end > 0) {
      svg.rect(p.px(0), p.y0, p.px(warm_end) - p.px(0), p.h, "#999999", "fill-opacity=\"0.15\"");
    }
  };
  auto y_title = [&](const Panel& p, const std::string& s) {
    const double cy = p.y0 + p.h / 2;
    svg.text(30, cy, s, 12, "middle", ("transform=\"rotate(-90 30 " + fmt("%.1f", cy) + ")\"").c_str());
  };
  // Points sit at the middle of their interval.
  auto series = [&](const Panel& p, auto value) {
    std::vector<std::pair<double, double>> pts;
    for (const IntervalStats& s : tl) {
      const double v = value(s);
      if (v < 0) continue;
      pts.emplace_back(p.px(s.t - s.seconds / 2), p.py(v));
    }
    return pts;
  };

  // Throughput.
  x_axis(thr, false);
  linear_y_axis(svg, thr, rstep, [](double v) { return rate_label(v); });
  svg.frame(thr);
  y_title(thr, "messages/s");
  if (run.mode != "closed") {
    // The target as a step line: constant over each interval.
    std::vector<std::pair<double, double>> pts;
    for (const IntervalStats& s : tl) {
      pts.emplace_back(thr.px(s.t - s.seconds), thr.py(s.target_rate));
      pts.emplace_back(thr.px(s.t), thr.py(s.target_rate));
    }
    svg.polyline(pts, "#555555", 1.5, "stroke-dasharray=\"6,4\"");
  }
  auto rate = [longest](double (IntervalStats::*of)() const) {
    return [longest, of](const IntervalStats& s) { return s.seconds < longest / 2 ? -1.0 : (s.*of)(); };
  };
  svg.polyline(series(thr, rate(&IntervalStats::sent_rate)), "#9ecae1", 2);
  svg.polyline(series(thr, rate(&IntervalStats::completed_rate)), kPalette[0], 2.2);
  double lx = thr.x0 + 12;
  svg.legend(lx, thr.y0 + 20, kPalette[0], "completed/s");
  svg.legend(lx + 150, thr.y0 + 20, "#9ecae1", "sent/s");
  if (run.mode != "closed") svg.legend(lx + 260, thr.y0 + 20, "#555555", "target", "stroke-dasharray=\"6,4\"");
  if (warm_end > 0) svg.text(thr.px(warm_end / 2), thr.y0 + thr.h - 8, "warm-up", 11, "middle", "fill=\"#666\"");

  // Latency.
  x_axis(lat, false);
  log_y_axis(svg, lat, [](double v) { return latency_label(v); });
  svg.frame(lat);
  y_title(lat, "latency (per second)");
  svg.polyline(series(lat, [](const IntervalStats& s) { return s.max > 0 ? s.max * 1e9 : -1; }), "#f4a3a3", 1.2);
  svg.polyline(series(lat, [](const IntervalStats& s) { return s.p99 > 0 ? s.p99 * 1e9 : -1; }), kPalette[1], 2.2);
  svg.polyline(series(lat, [](const IntervalStats& s) { return s.p50 > 0 ? s.p50 * 1e9 : -1; }), kPalette[2], 2.2);
  svg.legend(lx, lat.y0 + 20, kPalette[2], "p50");
  svg.legend(lx + 90, lat.y0 + 20, kPalette[1], "p99");
  svg.legend(lx + 180, lat.y0 + 20, "#f4a3a3", "max");

  // Drops.
  x_axis(drp, true);
  linear_y_axis(svg, drp, drp.ymax, [](double v) { return rate_label(v); });
  for (const IntervalStats& s : tl) {
    if (s.dropped == 0 || s.seconds <= 0) continue;
    const double v = static_cast<double>(s.dropped) / s.seconds;
    svg.rect(drp.px(s.t - s.seconds), drp.py(v), drp.px(s.t) - drp.px(s.t - s.seconds), drp.py(0) - drp.py(v),
             kPalette[1], "fill-opacity=\"0.7\"");
  }
  svg.frame(drp);
  y_title(drp, "drops/s");
  if (drop_max == 0) svg.text(drp.x0 + drp.w / 2, drp.y0 + drp.h / 2 + 4, "no drops", 12, "middle", "fill=\"#666\"");
  svg.text(drp.x0 + drp.w / 2, drp.y0 + drp.h + 34, "seconds since start", 13, "middle");
  return svg.str();
}

std::string find_rsvg_convert() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t pos = 0;
  while (pos <= dirs.size()) {
    const std::size_t colon = std::min(dirs.find(':', pos), dirs.size());
    const std::string candidate = dirs.substr(pos, colon - pos) + "/rsvg-convert";
    if (colon > pos && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    pos = colon + 1;
  }
  return {};
}

Result<std::string> write_plot(const std::string& path, const std::string& svg, bool png) {
  {
    std::ofstream out(path, std::ios::trunc);
    if (!out) return unexpected("swarm-load: cannot write " + path);
    out << svg;
    out.close();
    if (!out) return unexpected("swarm-load: cannot write " + path);
  }
  if (!png) return "wrote " + path;
  const std::string tool = find_rsvg_convert();
  if (tool.empty()) {
    return "wrote " + path + " (no PNG: rsvg-convert is not installed; apt-get install librsvg2-bin)";
  }
  const std::string png_path = std::filesystem::path(path).replace_extension(".png").string();
  std::vector<std::string> args = {tool, "-o", png_path, path};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int status = 0;
  if (::posix_spawn(&pid, tool.c_str(), nullptr, nullptr, argv.data(), environ) != 0 ||
      ::waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return "wrote " + path + " (no PNG: rsvg-convert failed)";
  }
  return "wrote " + path + " and " + png_path;
}

}  // namespace swarm::load
