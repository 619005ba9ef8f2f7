#include "apps/swarm-load/schedule.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace swarm::load {

namespace {

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

// Messages sent in the first t seconds of a segment (the integral of its rate).
double count_in(const RateSegment& s, double t) {
  const double slope = (s.to - s.from) / s.seconds;
  return s.from * t + 0.5 * slope * t * t;
}

// The time within a segment at which `n` messages have been sent (inverse of count_in).
double time_in(const RateSegment& s, double n) {
  if (n <= 0) return 0;
  const double slope = (s.to - s.from) / s.seconds;
  if (slope == 0) return n / s.from;
  // Solve from*t + slope/2*t^2 = n; this form stays exact when from is 0 or
  // slope is tiny (no cancellation between -from and the root).
  const double disc = s.from * s.from + 2 * slope * n;
  if (disc <= 0) return s.seconds;  // a falling ramp that never reaches n (rounding at the end)
  return 2 * n / (s.from + std::sqrt(disc));
}

}  // namespace

Result<void> Schedule::validate(const std::vector<RateSegment>& segments) {
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const RateSegment& s = segments[i];
    const std::string where = "schedule: segment " + std::to_string(i + 1) + ": ";
    if (!(s.seconds > 0) || !std::isfinite(s.seconds)) {
      return unexpected(where + "seconds = " + num(s.seconds) + " is out of range (allowed: > 0)");
    }
    if (!(s.from >= 0) || !std::isfinite(s.from) || s.from > 1e9) {
      return unexpected(where + "rate = " + num(s.from) + " is out of range (allowed: 0..1e9 messages/s)");
    }
    if (!(s.to >= 0) || !std::isfinite(s.to) || s.to > 1e9) {
      return unexpected(where + "rate = " + num(s.to) + " is out of range (allowed: 0..1e9 messages/s)");
    }
  }
  return {};
}

Schedule::Schedule(std::vector<RateSegment> segments) : segments_(std::move(segments)) {
  if (auto ok = validate(segments_); !ok) throw std::invalid_argument(ok.error());
  double t = 0, n = 0;
  for (const RateSegment& s : segments_) {
    start_time_.push_back(t);
    start_count_.push_back(n);
    t += s.seconds;
    n += count_in(s, s.seconds);
  }
  start_time_.push_back(t);
  start_count_.push_back(n);
}

Schedule Schedule::steps(const std::vector<std::pair<double, double>>& steps) {
  std::vector<RateSegment> segs;
  for (auto [seconds, rate] : steps) segs.push_back({seconds, rate, rate});
  return Schedule(std::move(segs));
}

double Schedule::duration() const noexcept { return segments_.empty() ? 0 : start_time_.back(); }

double Schedule::expected_messages() const noexcept { return segments_.empty() ? 0 : start_count_.back(); }

std::uint64_t Schedule::message_count() const noexcept {
  // Message i is due when the integral reaches i: those with i < total fall
  // before the end. Rounding noise of the sum must not add a message.
  const double total = expected_messages();
  const double rounded = std::round(total);
  if (std::abs(total - rounded) < 1e-6) return static_cast<std::uint64_t>(rounded);
  return static_cast<std::uint64_t>(std::ceil(total));
}

double Schedule::rate_at(double t) const noexcept {
  if (segments_.empty()) return 0;
  if (t >= duration()) return segments_.back().to;
  if (t < 0) t = 0;
  const std::size_t k = static_cast<std::size_t>(std::upper_bound(start_time_.begin(), start_time_.end() - 1, t) -
                                                 start_time_.begin()) - 1;
  const RateSegment& s = segments_[k];
  return s.from + (s.to - s.from) * (t - start_time_[k]) / s.seconds;
}

double Schedule::mean_rate(double t0, double t1) const noexcept {
  if (segments_.empty() || !(t1 > t0)) return rate_at(t0);
  auto count_at = [&](double t) {
    if (t <= 0) return 0.0;
    if (t >= duration()) return expected_messages() + segments_.back().to * (t - duration());
    const std::size_t k = static_cast<std::size_t>(std::upper_bound(start_time_.begin(), start_time_.end() - 1, t) -
                                                   start_time_.begin()) - 1;
    return start_count_[k] + count_in(segments_[k], t - start_time_[k]);
  };
  return (count_at(t1) - count_at(t0)) / (t1 - t0);
}

double Schedule::intended_seconds(double i) const noexcept {
  if (segments_.empty()) return 0;
  if (i >= start_count_.back()) {
    const double rate = segments_.back().to;
    return rate > 0 ? duration() + (i - start_count_.back()) / rate : duration();
  }
  // The segment whose count range holds i; zero-rate segments hold none.
  std::size_t k = static_cast<std::size_t>(std::upper_bound(start_count_.begin(), start_count_.end() - 1, i) -
                                           start_count_.begin()) - 1;
  while (k + 1 < segments_.size() && start_count_[k + 1] <= i) ++k;
  return start_time_[k] + time_in(segments_[k], i - start_count_[k]);
}

std::uint64_t Schedule::intended_ns(std::uint64_t i) const noexcept {
  return static_cast<std::uint64_t>(std::llround(intended_seconds(static_cast<double>(i)) * 1e9));
}

Schedule Schedule::with_warmup(double seconds) const {
  if (seconds <= 0 || segments_.empty()) return *this;
  std::vector<RateSegment> segs;
  segs.push_back({seconds, segments_.front().from, segments_.front().from});
  segs.insert(segs.end(), segments_.begin(), segments_.end());
  return Schedule(std::move(segs));
}

Schedule Schedule::with_duration(double seconds) const {
  std::vector<RateSegment> segs;
  double t = 0;
  for (const RateSegment& s : segments_) {
    if (t + s.seconds <= seconds + 1e-12) {
      segs.push_back(s);
      t += s.seconds;
      continue;
    }
    const double keep = seconds - t;
    if (keep > 1e-12) segs.push_back({keep, s.from, s.from + (s.to - s.from) * keep / s.seconds});
    t = seconds;
    break;
  }
  if (seconds - t > 1e-12 && !segments_.empty()) {
    const double last = segments_.back().to;
    segs.push_back({seconds - t, last, last});
  }
  return Schedule(std::move(segs));
}

std::string Schedule::describe() const {
  if (segments_.empty()) return "no messages";
  std::string out;
  for (std::size_t i = 0; i < segments_.size(); ++i) {
    const RateSegment& s = segments_[i];
    if (i != 0) out += ", then ";
    if (s.from == s.to) {
      out += num(s.from) + "/s";
    } else {
      out += "ramp " + num(s.from) + "/s -> " + num(s.to) + "/s";
    }
    if (segments_.size() > 1 || s.from != s.to) out += " over " + num(s.seconds) + "s";
  }
  return out;
}

Result<Schedule> parse_steps(std::string_view text) {
  std::vector<RateSegment> segs;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string_view item = text.substr(pos, comma - pos);
    const std::size_t colon = item.find(':');
    auto bad = [&] {
      return unexpected("schedule: step \"" + std::string(item) +
                        "\" is not RATE:SECONDS (e.g. --steps 10000:5,20000:5)");
    };
    if (colon == std::string_view::npos) return bad();
    double rate = 0, seconds = 0;
    const std::string_view r = item.substr(0, colon), s = item.substr(colon + 1);
    auto [p1, e1] = std::from_chars(r.data(), r.data() + r.size(), rate);
    auto [p2, e2] = std::from_chars(s.data(), s.data() + s.size(), seconds);
    if (e1 != std::errc() || p1 != r.data() + r.size() || e2 != std::errc() || p2 != s.data() + s.size()) {
      return bad();
    }
    segs.push_back({seconds, rate, rate});
    pos = comma + 1;
  }
  if (auto ok = Schedule::validate(segs); !ok) return unexpected(ok.error());
  return Schedule(std::move(segs));
}

// -- RateController ---

RateController::RateController(Schedule schedule, std::uint64_t end, std::uint64_t offset, std::uint64_t stride)
    : schedule_(std::move(schedule)),
      end_(end != 0 ? end : schedule_.message_count()),
      stride_(std::max<std::uint64_t>(stride, 1)),
      next_(offset) {
  if (next_ < end_) due_ = schedule_.intended_ns(next_);
}

void RateController::advance() noexcept {
  next_ += stride_;
  if (next_ < end_) due_ = schedule_.intended_ns(next_);
}

std::uint64_t RateController::due_count(std::uint64_t now_ns) const noexcept {
  std::uint64_t n = 0;
  for (std::uint64_t i = next_; i < end_ && schedule_.intended_ns(i) <= now_ns; i += stride_) ++n;
  return n;
}

}  // namespace swarm::load
