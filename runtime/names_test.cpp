// Registered names: found with whereis, refused while held, released at exit.

#include <gtest/gtest.h>

#include <atomic>
#include <string>

#include "runtime/runtime.hpp"
#include "runtime/test_util.hpp"

namespace swarm {
namespace {

using namespace std::chrono_literals;
using test::eventually;

// Registers its own name when started; answers its name to any request.
class Service : public Agent {
 public:
  explicit Service(std::string name) : name_(std::move(name)) {}
  void on_start() override { registered_ = static_cast<bool>(register_name(name_)); }
  void on_message(Message& m) override { (void)reply(m, name_ + (registered_ ? "" : " (unregistered)")); }

 private:
  std::string name_;
  bool registered_ = false;
};

class Idle : public Agent {
 public:
  void on_message(Message&) override {}
};

RuntimeConfig two_workers() {
  RuntimeConfig c;
  c.workers = 2;
  return c;
}

TEST(Names, AnAgentRegistersItselfAndIsFoundByName) {
  Runtime rt(two_workers());
  const AgentRef billing = rt.spawn<Service>("billing");
  ASSERT_TRUE(eventually([&] { return rt.whereis("billing").valid(); }));
  EXPECT_EQ(rt.whereis("billing"), billing);
  Reply r = rt.ask(rt.whereis("billing"), 0, 5s).get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.message.as<std::string>(), "billing");
  EXPECT_FALSE(rt.whereis("nobody").valid());
}

TEST(Names, ANameIsReleasedWhenItsAgentExits) {
  Runtime rt(two_workers());
  const AgentRef first = rt.spawn<Service>("search");
  ASSERT_TRUE(eventually([&] { return rt.whereis("search") == first; }));
  ASSERT_TRUE(rt.kill(first));
  ASSERT_TRUE(eventually([&] { return !rt.whereis("search").valid(); }));
  // The name is free again for a new agent (e.g. a restarted one).
  const AgentRef second = rt.spawn<Service>("search");
  ASSERT_TRUE(eventually([&] { return rt.whereis("search") == second; }));
  EXPECT_NE(second, first);
}

TEST(Names, ANameHeldByALiveAgentIsRefused) {
  Runtime rt(two_workers());
  const AgentRef a = rt.spawn<Idle>();
  const AgentRef b = rt.spawn<Idle>();
  ASSERT_TRUE(rt.register_name(a, "planner"));
  const Result<void> taken = rt.register_name(b, "planner");
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().find("planner"), std::string::npos) << taken.error();
  EXPECT_EQ(rt.whereis("planner"), a);
  EXPECT_TRUE(rt.register_name(a, "planner"));  // again by its holder: fine
  EXPECT_TRUE(rt.register_name(a, "planner-2"));  // several names per agent
  EXPECT_TRUE(rt.unregister_name("planner"));
  EXPECT_FALSE(rt.unregister_name("planner"));
  EXPECT_TRUE(rt.register_name(b, "planner"));
  EXPECT_EQ(rt.whereis("planner"), b);
}

TEST(Names, BadNamesAndGoneAgentsAreClearErrors) {
  Runtime rt(two_workers());
  const AgentRef a = rt.spawn<Idle>();
  for (std::string_view bad : {std::string_view(""), std::string_view("has space"), std::string_view("tab\there")}) {
    const Result<void> r = rt.register_name(a, bad);
    ASSERT_FALSE(r) << "accepted \"" << bad << "\"";
    EXPECT_NE(r.error().find("register_name"), std::string::npos) << r.error();
  }
  EXPECT_FALSE(rt.register_name(a, std::string(256, 'n')));
  EXPECT_TRUE(rt.register_name(a, std::string(255, 'n')));
  ASSERT_TRUE(rt.stop(a));
  ASSERT_TRUE(eventually([&] { return !rt.alive(a); }));
  EXPECT_FALSE(rt.register_name(a, "late"));
  EXPECT_FALSE(rt.whereis("late").valid());
}

}  // namespace
}  // namespace swarm
