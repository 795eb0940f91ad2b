#include "server/auth.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

TEST(AuthenticatorTest, MapsTokensToTenants) {
  absl::StatusOr<Authenticator> a = Authenticator::FromText(
      "# tenants\nteam-a 0123456789abcdef-a\n\nteam-b\t0123456789abcdef-b\n"
      "team-a second-token-of-team-a\n");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->tenant_count(), 2u);
  EXPECT_EQ(*a->Authenticate("Bearer 0123456789abcdef-a"), "team-a");
  EXPECT_EQ(*a->Authenticate("Bearer second-token-of-team-a"), "team-a");
  EXPECT_EQ(*a->Authenticate("Bearer 0123456789abcdef-b"), "team-b");
  for (const char* bad : {"", "Bearer ", "Basic 0123456789abcdef-a",
                          "Bearer 0123456789abcdef-c", "0123456789abcdef-a"}) {
    absl::StatusOr<std::string> t = a->Authenticate(bad);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kUnauthenticated) << bad;
  }
}

TEST(AuthenticatorTest, RefusesBadFiles) {
  EXPECT_THAT(Authenticator::FromText("team-a short\n").status().message(),
              HasSubstr("line 1"));
  EXPECT_FALSE(Authenticator::FromText("a/b 0123456789abcdef\n").ok());
  EXPECT_FALSE(Authenticator::FromText("a 0123456789abcdef extra\n").ok());
  EXPECT_FALSE(Authenticator::FromText("# nothing\n").ok());
  EXPECT_THAT(
      Authenticator::FromText("a 0123456789abcdef\nb 0123456789abcdef\n")
          .status()
          .message(),
      HasSubstr("listed twice"));
  EXPECT_EQ(Authenticator::FromFile("/nonexistent/tokens").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(AuthenticatorTest, SingleTenantAcceptsEveryCall) {
  Authenticator a = Authenticator::SingleTenant();
  EXPECT_TRUE(a.single_tenant());
  EXPECT_EQ(*a.Authenticate(""), "default");
}

}  // namespace
}  // namespace quantd
