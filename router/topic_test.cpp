#include "router/topic.hpp"

#include <gtest/gtest.h>

#include <string>

namespace swarm::router {
namespace {

std::string error_of(Result<void> r) { return r ? std::string("(no error)") : r.error(); }

TEST(Topic, ValidTopicsAndPatterns) {
  EXPECT_TRUE(validate_topic("orders.eu.created"));
  EXPECT_TRUE(validate_topic("a"));
  EXPECT_TRUE(validate_topic("$dead.x-1:y_2"));
  EXPECT_TRUE(validate_pattern("orders.*.created"));
  EXPECT_TRUE(validate_pattern("orders.>"));
  EXPECT_TRUE(validate_pattern(">"));
  EXPECT_TRUE(validate_pattern("*.*"));
}

TEST(Topic, EmptyTokenSaysWhich) {
  EXPECT_EQ(error_of(validate_topic("a..b")),
            "topic \"a..b\": token 2 is empty (tokens are separated by single dots)");
  EXPECT_NE(error_of(validate_topic(".a")).find("token 1 is empty"), std::string::npos);
  EXPECT_NE(error_of(validate_pattern("a.")).find("token 2 is empty"), std::string::npos);
  EXPECT_EQ(error_of(validate_topic("")), "topic is empty");
}

TEST(Topic, WildcardsAreForSubscriptionsOnly) {
  EXPECT_EQ(error_of(validate_topic("a.*")),
            "topic \"a.*\": token 2 is the wildcard '*'; publish to concrete topics (wildcards are for subscriptions)");
  EXPECT_NE(error_of(validate_topic(">")).find("wildcard '>'"), std::string::npos);
}

TEST(Topic, FullWildcardMustBeLast) {
  EXPECT_EQ(error_of(validate_pattern("a.>.b")), "pattern \"a.>.b\": token 2 is '>', which must be the last token");
}

TEST(Topic, WildcardMustBeAWholeToken) {
  EXPECT_NE(error_of(validate_pattern("a.b*")).find("token 2 \"b*\" mixes the wildcard '*'"), std::string::npos);
  EXPECT_NE(error_of(validate_topic("a.>b")).find("mixes the wildcard '>'"), std::string::npos);
}

TEST(Topic, BadCharacterIsNamedWithItsPosition) {
  EXPECT_EQ(error_of(validate_topic("a.b c")),
            "topic \"a.b c\": token 2 has the character 0x20 at byte 4 (allowed: letters, digits, _ - : $)");
  EXPECT_NE(error_of(validate_topic(std::string("a\0b", 3))).find("0x00 at byte 2"), std::string::npos);
  EXPECT_NE(error_of(validate_topic("caf\xc3\xa9")).find("0xc3 at byte 4"), std::string::npos);
}

TEST(Topic, LimitsAreEnforcedAndNamed) {
  TopicLimits limits{10, 3};
  EXPECT_EQ(error_of(validate_topic("abcdefghijk", limits)),
            "topic \"abcdefghijk\" is 11 bytes, over the limit of 10 (max_topic_bytes)");
  EXPECT_EQ(error_of(validate_topic("a.b.c.d", limits)), "topic \"a.b.c.d\" has more than 3 tokens (max_tokens)");
  EXPECT_TRUE(validate_topic("a.b.c", limits));
  std::string huge(100'000, 'x');
  std::string err = error_of(validate_topic(huge));
  EXPECT_LT(err.size(), 200u) << "errors quote a bounded prefix of the input";
}

TEST(Topic, SplitAndWildcardDetection) {
  auto t = split_tokens("a.*.c");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[1], "*");
  EXPECT_TRUE(has_wildcard("a.*.c"));
  EXPECT_TRUE(has_wildcard("a.>"));
  EXPECT_FALSE(has_wildcard("a.b$.c"));
}

}  // namespace
}  // namespace swarm::router
