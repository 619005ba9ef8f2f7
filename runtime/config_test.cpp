#include "runtime/config.hpp"

#include <gtest/gtest.h>

#include "runtime/runtime.hpp"

namespace swarm {
namespace {

TEST(RuntimeConfig, DefaultsAreValid) {
  RuntimeConfig c;
  EXPECT_TRUE(c.validate().has_value());
  EXPECT_GE(c.workers, 1u);
  EXPECT_LE(c.workers, RuntimeConfig::kMaxWorkers);
}

TEST(RuntimeConfig, ZeroWorkersIsRejectedNamingTheField) {
  RuntimeConfig c;
  c.workers = 0;
  auto r = c.validate();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("workers = 0"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("allowed: 1..256"), std::string::npos) << r.error();
}

TEST(RuntimeConfig, IdleSpinOutOfRangeIsRejectedNamingTheField) {
  RuntimeConfig c;
  c.idle_spin = std::chrono::microseconds(10'001);
  auto r = c.validate();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("idle_spin = 10001 us"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("allowed: 0..10000 us"), std::string::npos) << r.error();
  c.idle_spin = std::chrono::microseconds(-1);
  EXPECT_FALSE(c.validate().has_value());
  for (long us : {0L, 10'000L}) {
    c.idle_spin = std::chrono::microseconds(us);
    EXPECT_TRUE(c.validate().has_value()) << us;
  }
}

TEST(RuntimeConfig, MoreWorkersThanTheCapIsRejected) {
  RuntimeConfig c;
  c.workers = RuntimeConfig::kMaxWorkers + 1;
  auto r = c.validate();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("workers = 257"), std::string::npos) << r.error();
}

TEST(RuntimeConfig, ZeroCapacityIsRejected) {
  RuntimeConfig c;
  c.default_mailbox.capacity = 0;
  auto r = c.validate();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("default_mailbox.capacity = 0"), std::string::npos) << r.error();
}

TEST(RuntimeConfig, PerTypeCapacityIsCheckedWithTheTypeName) {
  RuntimeConfig c;
  c.mailbox_by_type["worker"] = MailboxOptions{0, OverflowPolicy::reject};
  auto r = c.validate();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("mailbox_by_type[worker].capacity"), std::string::npos) << r.error();
}

TEST(RuntimeConfig, ZeroBudgetIsRejected) {
  RuntimeConfig c;
  c.throughput_budget = 0;
  EXPECT_FALSE(c.validate().has_value());
}

TEST(OverflowPolicy, ParsesKnownNamesAndListsAllowedOnes) {
  EXPECT_EQ(*parse_overflow_policy("drop_oldest", "mailbox.overflow"), OverflowPolicy::drop_oldest);
  EXPECT_EQ(*parse_overflow_policy("reject", "mailbox.overflow"), OverflowPolicy::reject);
  auto r = parse_overflow_policy("drop_random", "mailbox.overflow");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(),
            "runtime: mailbox.overflow: unknown overflow policy \"drop_random\" (allowed: reject, drop_oldest, "
            "drop_newest)");
}

TEST(Runtime, BadConfigThrowsAtConstruction) {
  RuntimeConfig c;
  c.workers = 0;
  EXPECT_THROW(Runtime rt(c), std::invalid_argument);
}

}  // namespace
}  // namespace swarm
