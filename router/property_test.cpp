// Property test: 100k random subscribe / unsubscribe / unsubscribe_all /
// publish operations, each publish checked against a deliberately naive
// reference matcher; run with the result cache on and off, and with both
// queue-group policies.

#include <gtest/gtest.h>

#include <algorithm>
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
  std::uint64_t address;  // endpoint index * 100 + address on it
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

struct Mode {
  bool cache;
  GroupPolicy policy;
};

class RouterProperty : public ::testing::TestWithParam<Mode> {};

TEST_P(RouterProperty, MatchesTheNaiveReferenceOver100kOperations) {
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

  RouterConfig config;
  config.result_cache = GetParam().cache;
  config.group_policy = GetParam().policy;
  Router router(config);
  // Two endpoints: a subscriber is an (endpoint, address) pair, so equal
  // addresses on different endpoints are different subscribers.
  test::RecordingEndpoint eps[2];
  std::map<SubscriptionId, RefSub> ref;
  std::uint64_t publishes = 0, deliveries = 0;

  for (int op = 0; op < 100'000; ++op) {
    int kind = pick(100);
    if (kind < 30) {  // subscribe, to a random group a third of the time
      std::uint64_t address = static_cast<std::uint64_t>(pick(2) * 100 + pick(8));
      std::string group = pick(3) == 0 ? "g" + std::to_string(pick(3)) : "";
      auto pattern = random_pattern();
      auto id = router.subscribe(join(pattern), {&eps[address / 100], address % 100}, group);
      ASSERT_TRUE(id) << id.error();
      ref[*id] = {pattern, group, address};
    } else if (kind < 45) {  // unsubscribe one
      if (ref.empty()) continue;
      auto it = std::next(ref.begin(), pick(static_cast<int>(ref.size())));
      ASSERT_TRUE(router.unsubscribe(it->first));
      ref.erase(it);
    } else if (kind < 50) {  // unsubscribe_all of one address
      std::uint64_t address = static_cast<std::uint64_t>(pick(2) * 100 + pick(8));
      std::size_t expected = std::erase_if(ref, [&](const auto& kv) { return kv.second.address == address; });
      ASSERT_EQ(router.unsubscribe_all({&eps[address / 100], address % 100}), expected);
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
      std::multiset<std::uint64_t> received;
      for (std::uint64_t e = 0; e < 2; ++e) {
        for (const auto& [address, topics] : eps[e].take()) {
          for (std::size_t i = 0; i < topics.size(); ++i) received.insert(e * 100 + address);
        }
      }
      ASSERT_EQ(res->delivered, plain.size() + groups.size()) << "op " << op << " topic " << join(topic);
      ASSERT_EQ(received.size(), plain.size() + groups.size()) << "op " << op;
      ASSERT_EQ(res->no_subscriber, plain.empty() && groups.empty());
      for (std::uint64_t a : plain) {
        auto it = received.find(a);
        ASSERT_NE(it, received.end()) << "op " << op << ": subscriber " << a << " missed " << join(topic);
        received.erase(it);
      }
      // What is left are the group deliveries: exactly one per matching group,
      // each to a member of its group. A subscriber may be in several groups,
      // so match deliveries to groups as a bipartite matching (tiny: brute force).
      ASSERT_EQ(received.size(), groups.size()) << "op " << op;
      std::vector<std::uint64_t> left(received.begin(), received.end());
      std::vector<const std::set<std::uint64_t>*> members;
      for (const auto& [name, m] : groups) members.push_back(&m);
      std::sort(left.begin(), left.end());
      bool assigned = left.empty();
      do {
        bool ok = true;
        for (std::size_t i = 0; i < left.size() && ok; ++i) ok = members[i]->count(left[i]) != 0;
        assigned = assigned || ok;
      } while (!assigned && std::next_permutation(left.begin(), left.end()));
      ASSERT_TRUE(assigned) << "op " << op << ": group deliveries do not go one to each group for " << join(topic);
      deliveries += res->delivered;
    }
  }
  EXPECT_GT(publishes, 40'000u);
  EXPECT_GT(deliveries, publishes) << "the alphabet is small enough that publishes do match";
  EXPECT_EQ(router.stats().subscriptions, ref.size());
  EXPECT_EQ(router.stats().published, publishes);
  EXPECT_EQ(router.stats().delivered, deliveries);
}

INSTANTIATE_TEST_SUITE_P(Modes, RouterProperty,
                         ::testing::Values(Mode{true, GroupPolicy::round_robin}, Mode{false, GroupPolicy::round_robin},
                                           Mode{true, GroupPolicy::least_loaded}),
                         [](const auto& p) {
                           return std::string(p.param.cache ? "cache" : "no_cache") +
                                  (p.param.policy == GroupPolicy::round_robin ? "_round_robin" : "_least_loaded");
                         });

}  // namespace
}  // namespace swarm::router
