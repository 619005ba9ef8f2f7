// What a message's payload type costs: building and reading a payload alone,
// and a ping-pong between two agents whose every message is built by the
// sender and read by the receiver (value, string, JSON, msgpack).
//   swarm-microbench --benchmark_filter=Payload --benchmark_repetitions=5

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "runtime/json.hpp"
#include "runtime/runtime.hpp"

namespace swarm {
namespace {

// A small agent-to-agent message in the four forms.
struct Step {
  std::uint64_t seq;
  std::uint32_t agent;
  float score;
};
struct StepDoc {  // the same fields, encoded with json_payload
  std::uint64_t seq = 0;
  std::uint32_t agent = 0;
  float score = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(StepDoc, seq, agent, score)

enum Form : int { kValue, kString, kJson, kMsgpack };

Payload make(Form form, std::uint64_t seq) {
  switch (form) {
    case kValue: return Payload::of(Step{seq, 7, 0.5f});
    case kString: return Payload::of(std::to_string(seq));
    case kJson: return json_payload(StepDoc{seq, 7, 0.5f});  // trivially copyable: Payload::of would keep it a value
    case kMsgpack: return json_payload(StepDoc{seq, 7, 0.5f}, ContentType::msgpack);
  }
  return {};
}

std::uint64_t read(Form form, const Payload& p) {
  switch (form) {
    case kValue: return p.as<Step>().seq;
    case kString: return std::stoull(p.as<std::string>());
    case kJson:
    case kMsgpack: return p.as<StepDoc>().seq;
  }
  return 0;
}

const char* form_name(Form form) {
  switch (form) {
    case kValue: return "value";
    case kString: return "string";
    case kJson: return "json";
    case kMsgpack: return "msgpack";
  }
  return "?";
}

// Build + read on one thread: the encoding's own cost.
void BM_Payload_BuildRead(benchmark::State& state) {
  const auto form = static_cast<Form>(state.range(0));
  std::uint64_t seq = 0, sum = 0;
  for (auto _ : state) {
    Payload p = make(form, ++seq);
    sum += read(form, p);
  }
  benchmark::DoNotOptimize(sum);
  state.SetLabel(form_name(form));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Payload_BuildRead)->DenseRange(kValue, kMsgpack);

constexpr std::uint64_t kRounds = 100'000;
constexpr std::uint32_t kGo = 1;  // from the benchmark thread: the peer to start with (AgentRef bits)

// Answers every message with the next one, in the same form, up to kRounds.
class Player : public Agent {
 public:
  Player(Form form, std::atomic<std::uint64_t>& done) : form_(form), done_(done) {}
  void on_message(Message& m) override {
    if (m.kind == kGo) {
      (void)send(AgentRef::from_bits(m.as<std::uint64_t>()), make(form_, 1));
      return;
    }
    const std::uint64_t seq = read(form_, m.payload);
    if (seq >= kRounds) {
      done_.store(seq, std::memory_order_release);
      done_.notify_all();
      return;
    }
    (void)send(m.sender, make(form_, seq + 1));
  }

 private:
  Form form_;
  std::atomic<std::uint64_t>& done_;
};

// Two agents exchange kRounds messages, each built by its sender and read by
// its receiver (2 workers, telemetry off, as W2).
void BM_Payload_PingPong(benchmark::State& state) {
  const auto form = static_cast<Form>(state.range(0));
  RuntimeConfig cfg;
  cfg.workers = 2;
  cfg.telemetry.enabled = false;
  Runtime rt(cfg);
  std::atomic<std::uint64_t> done{0};
  const AgentRef a = rt.spawn<Player>(form, done);
  const AgentRef b = rt.spawn<Player>(form, done);
  for (auto _ : state) {
    done.store(0, std::memory_order_relaxed);
    if (rt.send(a, b.bits(), kGo) != SendResult::ok) {
      state.SkipWithError("send refused");
      break;
    }
    for (std::uint64_t d = done.load(std::memory_order_acquire); d == 0; d = done.load(std::memory_order_acquire)) {
      done.wait(0, std::memory_order_acquire);
    }
  }
  state.SetLabel(form_name(form));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kRounds));
}
BENCHMARK(BM_Payload_PingPong)->DenseRange(kValue, kMsgpack)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace swarm
