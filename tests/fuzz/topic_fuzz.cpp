// libFuzzer target: topic and pattern parsing, and the router with what parses.
// Properties checked on every input:
//  - validation never crashes and always names what is wrong;
//  - a valid topic is a valid pattern, and interning it twice gives one id;
//  - a valid pattern subscribes, and a published valid topic reaches it
//    exactly when the naive token matcher says so.
// Build and run: scripts/fuzz [seconds]

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "router/router.hpp"
#include "router/topic.hpp"

namespace {

using namespace swarm::router;

class Counter : public Endpoint {
 public:
  DeliverStatus deliver(const Delivery&) noexcept override {
    ++count;
    return DeliverStatus::ok;
  }
  int count = 0;
};

bool naive_match(std::string_view pattern, std::string_view topic) {
  auto p = split_tokens(pattern);
  auto t = split_tokens(topic);
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == ">") return t.size() > i;
    if (i >= t.size()) return false;
    if (p[i] != "*" && p[i] != t[i]) return false;
  }
  return p.size() == t.size();
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // Input: "pattern\ntopic" (or a single string used as both).
  std::size_t nl = input.find('\n');
  std::string_view pattern = input.substr(0, nl);
  std::string_view topic = nl == std::string_view::npos ? input : input.substr(nl + 1);

  auto vp = validate_pattern(pattern);
  auto vt = validate_topic(topic);
  if (!vp) check(!vp.error().empty());
  if (!vt) check(!vt.error().empty());
  if (vt) check(static_cast<bool>(validate_pattern(topic)));

  Router router;
  Counter ep;
  auto sub = router.subscribe(pattern, {&ep, 1});
  check(static_cast<bool>(sub) == static_cast<bool>(vp));
  auto id = router.intern(topic);
  check(static_cast<bool>(id) == static_cast<bool>(vt));
  if (id) {
    check(*router.intern(topic) == *id);
    check(router.topic_name(*id) == topic);
    auto r = router.publish(*id, swarm::Payload(topic));
    bool expected = vp && naive_match(pattern, topic);
    check(r.delivered == (expected ? 1u : 0u));
    check(r.no_subscriber == !expected);
  }
  return 0;
}
