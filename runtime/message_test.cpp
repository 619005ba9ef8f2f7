#include "runtime/message.hpp"

#include <gtest/gtest.h>

#include <string>

namespace swarm {
namespace {

struct Point {
  int x;
  double y;
};

TEST(Payload, SmallValuesAreInline) {
  Payload p = Payload::of(Point{3, 1.5});
  EXPECT_TRUE(p.is_inline());
  EXPECT_EQ(p.size(), sizeof(Point));
  EXPECT_EQ(p.as<Point>().x, 3);
  EXPECT_EQ(p.as<Point>().y, 1.5);
}

TEST(Payload, LargeBytesAreSharedByCopies) {
  std::string big(1000, 'x');
  Payload a{std::string_view(big)};
  EXPECT_FALSE(a.is_inline());
  Payload b = a;
  EXPECT_EQ(a.bytes().data(), b.bytes().data());  // one buffer, two references
  EXPECT_EQ(b.text(), big);
}

TEST(Payload, MoveLeavesTheSourceEmpty) {
  Payload a{std::string_view("hello")};
  Payload b = std::move(a);
  EXPECT_EQ(b.text(), "hello");
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): documented state
}

TEST(Payload, AssignmentReleasesTheOldBuffer) {
  std::string big(100, 'y');
  Payload a{std::string_view(big)};
  a = Payload{std::string_view("short")};
  EXPECT_TRUE(a.is_inline());
  EXPECT_EQ(a.text(), "short");
}

TEST(AgentRef, DefaultIsInvalid) {
  AgentRef r;
  EXPECT_FALSE(r.valid());
  EXPECT_EQ(to_string(AgentRef{7, 2}), "<7.2>");
}

TEST(DropReason, NamesEqualMetricLabels) {
  EXPECT_EQ(to_string(DropReason::mailbox_full), "mailbox_full");
  EXPECT_EQ(to_string(DropReason::dead_agent), "dead_agent");
}

}  // namespace
}  // namespace swarm
