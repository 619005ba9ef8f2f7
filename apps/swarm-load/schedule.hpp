#pragma once
// Rate schedules for open-loop load: when message i is meant to be sent.
//
// A schedule is a list of segments, each lasting some seconds with a rate that
// goes linearly from `from` to `to` messages/s (a constant rate when equal, a
// ramp otherwise). The intended send time of message i is the time t at which
// the integral of the rate from 0 to t equals i, so message 0 is due at t = 0
// and a constant rate R spaces messages exactly 1/R apart. Latency is measured
// from that intended time, not from when the generator got around to sending
// (the coordinated-omission correction of wrk2 and HdrHistogram).
//
//   Schedule s = Schedule::steps({{5, 10'000}, {5, 20'000}});   // 5 s at 10k/s, then 5 s at 20k/s
//   RateController rc(s.with_warmup(1.0));
//   while (!rc.done()) {
//     std::uint64_t t = rc.next_due_ns();       // ns since the start
//     wait_until(start + t); send(rc.next_index(), t); rc.advance();
//   }
//
// Thread-compatible: a Schedule is immutable; a RateController belongs to one
// generator thread.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace swarm::load {

struct RateSegment {
  double seconds = 0;  // > 0
  double from = 0;     // messages/s at the segment's start, >= 0
  double to = 0;       // messages/s at its end (== from: constant)

  friend bool operator==(const RateSegment&, const RateSegment&) = default;
};

class Schedule {
 public:
  /// An empty schedule (no messages, zero duration).
  Schedule() = default;
  /// REQUIRES: every segment valid (see validate()); throws std::invalid_argument otherwise.
  explicit Schedule(std::vector<RateSegment> segments);

  static Schedule constant(double rate, double seconds) { return Schedule({{seconds, rate, rate}}); }
  static Schedule ramp(double from, double to, double seconds) { return Schedule({{seconds, from, to}}); }
  /// Each step is {seconds, rate}.
  static Schedule steps(const std::vector<std::pair<double, double>>& steps);

  /// OK, or an error naming the first bad segment, e.g.
  /// "schedule: segment 2: seconds = 0 is out of range (allowed: > 0)".
  static Result<void> validate(const std::vector<RateSegment>& segments);

  const std::vector<RateSegment>& segments() const noexcept { return segments_; }
  double duration() const noexcept;
  /// The integral of the rate over the whole schedule (messages, not rounded).
  double expected_messages() const noexcept;
  /// Messages the schedule sends: those whose intended time falls before its end.
  std::uint64_t message_count() const noexcept;
  /// The rate at time t (s); the last segment's end rate after the end.
  double rate_at(double t) const noexcept;
  /// The mean rate over [t0, t1).
  double mean_rate(double t0, double t1) const noexcept;
  /// Intended send time of message i in ns since the start. Beyond the end,
  /// the last rate holds (a last rate of 0 puts later messages at the end).
  std::uint64_t intended_ns(std::uint64_t i) const noexcept;

  /// This schedule preceded by `seconds` at its starting rate.
  Schedule with_warmup(double seconds) const;
  /// This schedule cut or extended (holding its last rate) to `seconds`.
  Schedule with_duration(double seconds) const;
  /// A short description: "10000/s", "10000/s for 5s, then 20000/s for 5s", "ramp 1000/s -> 50000/s over 30s".
  std::string describe() const;

 private:
  double intended_seconds(double i) const noexcept;

  std::vector<RateSegment> segments_;
  std::vector<double> start_time_;   // per segment
  std::vector<double> start_count_;  // messages before the segment (integral)
};

/// Parses "R1:S1,R2:S2,..." (rate:seconds steps).
Result<Schedule> parse_steps(std::string_view text);

/// Paces one generator: which message is due next and when. Owner-only.
class RateController {
 public:
  /// Sends messages [first, end) of `schedule` whose index is congruent to
  /// `offset` modulo `stride` (several generators split one schedule).
  /// end = 0: the schedule's own message_count().
  explicit RateController(Schedule schedule, std::uint64_t end = 0, std::uint64_t offset = 0, std::uint64_t stride = 1);

  bool done() const noexcept { return next_ >= end_; }
  /// Index of the next message. REQUIRES: !done().
  std::uint64_t next_index() const noexcept { return next_; }
  /// Intended send time of the next message, ns since the start. REQUIRES: !done().
  std::uint64_t next_due_ns() const noexcept { return due_; }
  void advance() noexcept;
  /// How many messages are due at `now_ns` (intended time <= now) and not sent yet.
  std::uint64_t due_count(std::uint64_t now_ns) const noexcept;
  std::uint64_t end() const noexcept { return end_; }
  const Schedule& schedule() const noexcept { return schedule_; }

 private:
  Schedule schedule_;
  std::uint64_t end_;
  std::uint64_t stride_;
  std::uint64_t next_;
  std::uint64_t due_ = 0;
};

}  // namespace swarm::load
