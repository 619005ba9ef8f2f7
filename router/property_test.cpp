// Property test: 100k random subscribe / unsubscribe / publish operations,
// each publish checked against a deliberately naive reference matcher.

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "router/router.hpp"
#include "router/test_endpoint.hpp"

namespace swarm::router {
namespace {

struct RefSub {
  std::vector<std::string> pattern;
  std::string group;
  std::uint64_t address;
};

// The reference: compare token by token, no cleverness.
bool naive_match(const std::vector<std::string>& pattern, const std::vector<std::string>& topic) {
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == ">") return topic.size() > i;
    if (i >= topic.size()) return false;
    if (pattern[i] != "*" && pattern[i] != topic[i]) return false;
  }
  return pattern.size() == topic.size();
}

std::string join(const std::vector<std::string>& tokens) {
  std::string out;
  for (const auto& t : tokens) out += (out.empty() ? "" : ".") + t;
  return out;
}

TEST(RouterProperty, MatchesTheNaiveReferenceOver100kOperations) {
  std::mt19937_64 rng(20261123);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
  const char* alphabet[] = {"a", "b", "c"};
  auto random_topic = [&] {
    std::vector<std::string> t;
    for (int i = 0, n = 1 + pick(4); i < n; ++i) t.emplace_back(alphabet[pick(3)]);
    return t;
  };
  auto random_pattern = [&] {
    std::vector<std::string> p;
    int n = 1 + pick(4);
    for (int i = 0; i < n; ++i) p.emplace_back(pick(4) == 0 ? "*" : alphabet[pick(3)]);
    if (pick(4) == 0) p.back() = ">";
    return p;
  };

  Router router;
  test::RecordingEndpoint ep;
  std::map<SubscriptionId, RefSub> ref;
  std::uint64_t publishes = 0, deliveries = 0;

  for (int op = 0; op < 100'000; ++op) {
    int kind = pick(100);
    if (kind < 30) {  // subscribe; an address belongs to at most one group
      std::uint64_t address = static_cast<std::uint64_t>(pick(16));
      std::string group = pick(3) == 0 ? "g" + std::to_string(address % 3) : "";
      auto pattern = random_pattern();
      auto id = router.subscribe(join(pattern), {&ep, address}, group);
      ASSERT_TRUE(id) << id.error();
      ref[*id] = {pattern, group, address};
    } else if (kind < 45) {  // unsubscribe one
      if (ref.empty()) continue;
      auto it = std::next(ref.begin(), pick(static_cast<int>(ref.size())));
      ASSERT_TRUE(router.unsubscribe(it->first));
      ref.erase(it);
    } else if (kind < 50) {  // unsubscribe_all of one address
      std::uint64_t address = static_cast<std::uint64_t>(pick(16));
      std::size_t expected = std::erase_if(ref, [&](const auto& kv) { return kv.second.address == address; });
      ASSERT_EQ(router.unsubscribe_all({&ep, address}), expected);
    } else {  // publish and compare
      auto topic = random_topic();
      std::set<std::uint64_t> plain;
      std::map<std::string, std::set<std::uint64_t>> groups;
      for (const auto& [id, s] : ref) {
        if (!naive_match(s.pattern, topic)) continue;
        if (s.group.empty()) {
          plain.insert(s.address);
        } else {
          groups[s.group].insert(s.address);
        }
      }
      auto res = router.publish(join(topic), Payload::of(op));
      ASSERT_TRUE(res);
      ++publishes;
      auto got = ep.take();
      std::multiset<std::uint64_t> received;
      for (const auto& [address, topics] : got) {
        for (std::size_t i = 0; i < topics.size(); ++i) received.insert(address);
      }
      ASSERT_EQ(res->delivered, plain.size() + groups.size()) << "op " << op << " topic " << join(topic);
      ASSERT_EQ(received.size(), plain.size() + groups.size()) << "op " << op;
      ASSERT_EQ(res->no_subscriber, plain.empty() && groups.empty());
      for (std::uint64_t a : plain) {
        auto it = received.find(a);
        ASSERT_NE(it, received.end()) << "op " << op << ": subscriber " << a << " missed " << join(topic);
        received.erase(it);
      }
      for (const auto& [name, members] : groups) {
        auto it = std::find_if(received.begin(), received.end(), [&](std::uint64_t a) { return members.count(a); });
        ASSERT_NE(it, received.end()) << "op " << op << ": group " << name << " got nothing for " << join(topic);
        received.erase(it);
      }
      deliveries += res->delivered;
    }
  }
  EXPECT_GT(publishes, 40'000u);
  EXPECT_GT(deliveries, publishes) << "the alphabet is small enough that publishes do match";
  EXPECT_EQ(router.stats().subscriptions, ref.size());
}

}  // namespace
}  // namespace swarm::router
