// Claims and leases, on SQLite and PostgreSQL: a claim moves the head of
// the queue to RUNNING leased to one replica; replicas claiming at once get
// different jobs; only the lease holder ends the job or adds to its log;
// expired leases (a dead replica) are re-queued by any replica, live ones
// are not; renewing reports cancels requested elsewhere.
#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/job_store.h"
#include "server/job_store_test_fixture.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

class JobStoreLeasesTest : public JobStoreTest {
 protected:
  std::optional<JobRecord> ClaimOk(JobStore& store, const std::string& owner,
                                   absl::Duration lease,
                                   const std::set<std::string>& skip = {}) {
    absl::StatusOr<std::optional<JobRecord>> c =
        store.Claim(owner, lease, skip);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : std::nullopt;
  }
};

TEST_P(JobStoreLeasesTest, ClaimTakesTheHeadOfTheQueueWithALease) {
  JobRecord low = MakeJob("a", "s", "", 0);
  JobRecord high = MakeJob("b", "s", "", 5);
  const int64_t before = absl::ToUnixMicros(absl::Now());
  std::vector<JobEvent> appended;
  absl::StatusOr<std::optional<JobRecord>> c = store_->Claim(
      "replica-1", absl::Seconds(30), {},
      [](const JobRecord& j) {
        return std::vector<std::string>{"running as " + j.lease_owner};
      },
      &appended);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->has_value());
  const JobRecord& job = **c;
  EXPECT_EQ(job.id, high.id);
  EXPECT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.lease_owner, "replica-1");
  EXPECT_GE(job.lease_expiry_us, before + 30'000'000);
  ASSERT_EQ(appended.size(), 1u);
  EXPECT_EQ(appended[0].payload, "running as replica-1");
  absl::StatusOr<JobRecord> stored = store_->Get("b", high.id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->lease_owner, "replica-1");
  EXPECT_EQ(stored->lease_expiry_us, job.lease_expiry_us);
  // Tenant "a" at its limit: nothing else to claim.
  EXPECT_FALSE(ClaimOk(*store_, "replica-1", absl::Seconds(30), {"a"}));
  EXPECT_EQ(ClaimOk(*store_, "replica-2", absl::Seconds(30))->id, low.id);
  EXPECT_FALSE(ClaimOk(*store_, "replica-2", absl::Seconds(30)));
  EXPECT_EQ(store_->Claim("", absl::Seconds(1), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(JobStoreLeasesTest, ReplicasClaimingAtOnceGetDifferentJobs) {
  absl::StatusOr<std::unique_ptr<JobStore>> other =
      JobStore::Open(location_, kKey);
  ASSERT_TRUE(other.ok()) << other.status();
  std::set<std::string> created;
  for (int i = 0; i < 24; ++i) created.insert(MakeJob("a", "s").id);
  std::vector<std::vector<std::string>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    JobStore* store = t % 2 == 0 ? store_.get() : other->get();
    threads.emplace_back([&, t, store] {
      const std::string owner = "replica-" + std::to_string(t);
      while (true) {
        absl::StatusOr<std::optional<JobRecord>> c =
            store->Claim(owner, absl::Seconds(30), {});
        EXPECT_TRUE(c.ok()) << c.status();
        if (!c.ok() || !c->has_value()) return;
        EXPECT_EQ((*c)->lease_owner, owner);
        got[t].push_back((*c)->id);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::multiset<std::string> claimed;
  for (const auto& ids : got) claimed.insert(ids.begin(), ids.end());
  EXPECT_EQ(claimed.size(), created.size());  // each job once
  EXPECT_EQ(std::set<std::string>(claimed.begin(), claimed.end()), created);
  EXPECT_EQ(*store_->CountInState(JobState::kRunning), 24);
}

TEST_P(JobStoreLeasesTest, OnlyTheLeaseHolderEndsTheJobOrAddsToItsLog) {
  MakeJob("a", "s");
  const JobRecord job = *ClaimOk(*store_, "replica-1", absl::Hours(1));
  absl::StatusOr<JobRecord> stolen =
      store_->Transition(job.id, {JobState::kRunning}, JobState::kSucceeded, "",
                         nullptr, nullptr, "replica-2");
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stolen.status().message(), HasSubstr("leased to 'replica-1'"));
  EXPECT_EQ(
      store_->AppendEvent(job.id, "e", nullptr, "replica-2").status().code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store_->AppendEvent(job.id, "e", nullptr, "replica-1").ok());
  absl::StatusOr<JobRecord> done =
      store_->Transition(job.id, {JobState::kRunning}, JobState::kSucceeded, "",
                         nullptr, nullptr, "replica-1");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->lease_owner, "");  // the lease ends with the run
  EXPECT_EQ(done->lease_expiry_us, 0);
  EXPECT_EQ(store_->Get("a", job.id)->lease_owner, "");
}

TEST_P(JobStoreLeasesTest, ExpiredLeasesAreRecoveredLiveOnesAreNot) {
  JobRecord dead_job = MakeJob("a", "s", "", 1);
  JobRecord live_job = MakeJob("a", "s");
  ASSERT_EQ(ClaimOk(*store_, "dead", absl::Milliseconds(1))->id, dead_job.id);
  ASSERT_EQ(ClaimOk(*store_, "live", absl::Hours(1))->id, live_job.id);
  absl::SleepFor(absl::Milliseconds(20));  // the 1 ms lease has run out
  absl::StatusOr<std::vector<JobRecord>> recovered = store_->RecoverExpired(3);
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_EQ((*recovered)[0].id, dead_job.id);
  EXPECT_EQ((*recovered)[0].state, JobState::kQueued);
  EXPECT_EQ(*store_->StateOf(live_job.id), JobState::kRunning);
  // The dead replica, if it was only slow, can no longer end the job.
  EXPECT_EQ(store_
                ->Transition(dead_job.id, {JobState::kRunning},
                             JobState::kSucceeded, "", nullptr, nullptr, "dead")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  // Another replica runs it again: a second attempt.
  const JobRecord again = *ClaimOk(*store_, "live", absl::Hours(1));
  EXPECT_EQ(again.id, dead_job.id);
  EXPECT_EQ(again.attempts, 2);
  EXPECT_TRUE(store_->RecoverExpired(3)->empty());
}

TEST_P(JobStoreLeasesTest, RenewingExtendsLeasesAndReportsCancels) {
  JobRecord job = MakeJob("a", "s");
  JobRecord other = MakeJob("a", "s");
  ASSERT_TRUE(ClaimOk(*store_, "r1", absl::Milliseconds(1)));
  ASSERT_EQ(ClaimOk(*store_, "r2", absl::Hours(1))->id, other.id);
  absl::StatusOr<std::map<std::string, JobState>> held =
      store_->RenewLeases("r1", absl::Hours(1));
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(*held,
            (std::map<std::string, JobState>{{job.id, JobState::kRunning}}));
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_TRUE(store_->RecoverExpired(3)->empty());  // renewed in time
  // A cancel through any replica: the holder sees CANCELLING on renewal.
  ASSERT_TRUE(
      store_->Transition(job.id, {JobState::kRunning}, JobState::kCancelling)
          .ok());
  held = store_->RenewLeases("r1", absl::Hours(1));
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(held->at(job.id), JobState::kCancelling);
  ASSERT_TRUE(store_
                  ->Transition(job.id, {JobState::kCancelling},
                               JobState::kCancelled, "", nullptr, nullptr, "r1")
                  .ok());
  EXPECT_TRUE(store_->RenewLeases("r1", absl::Hours(1))->empty());
  EXPECT_EQ(store_->RenewLeases("r2", absl::Hours(1))->size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, JobStoreLeasesTest, kJobStoreBackends);

}  // namespace
}  // namespace quantd
