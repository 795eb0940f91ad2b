// Several JobStore instances on one database, as replicas (PostgreSQL) or
// two connections of one process (SQLite) hold it: opening together
// migrates once, writes of one are seen by the other, compare-and-set moves
// and event sequences hold across them, and queue limits are not overshot
// by concurrent creates.
#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/job_store.h"
#include "server/job_store_test_fixture.h"

namespace quantd {
namespace {

class JobStoreReplicasTest : public JobStoreTest {
 protected:
  std::unique_ptr<JobStore> Another() {
    absl::StatusOr<std::unique_ptr<JobStore>> s =
        JobStore::Open(location_, kKey);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
};

TEST_P(JobStoreReplicasTest, OpeningTogetherMigratesOnce) {
  store_.reset();
  if (!sqlite()) {  // a database no store has opened yet
    absl::StatusOr<std::string> url =
        PostgresTestServer::Shared()->CreateDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    location_ = *url;
  } else {
    path_ = dir_ + "/fresh.db";
    location_ = path_;
  }
  std::vector<std::unique_ptr<JobStore>> stores(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { stores[i] = Another(); });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& s : stores) ASSERT_NE(s, nullptr);
  store_ = std::move(stores[0]);
  JobRecord job = MakeJob("a", "spec");
  EXPECT_TRUE(stores[3]->Get("a", job.id).ok());
}

TEST_P(JobStoreReplicasTest, MovesAndEventsHoldAcrossStores) {
  std::unique_ptr<JobStore> other = Another();
  ASSERT_NE(other, nullptr);
  JobRecord job = MakeJob("a", "spec");
  // Both try to start it; exactly one wins the compare-and-set.
  std::atomic<int> won{0};
  std::vector<std::thread> threads;
  for (JobStore* s : {store_.get(), other.get()}) {
    threads.emplace_back([&, s] {
      if (s->Transition(job.id, {JobState::kQueued}, JobState::kRunning).ok()) {
        ++won;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(*other->StateOf(job.id), JobState::kRunning);
  // Appends from both stores interleave into one gapless log.
  threads.clear();
  for (JobStore* s : {store_.get(), other.get()}) {
    threads.emplace_back([&, s] {
      for (int i = 0; i < 30; ++i) {
        absl::StatusOr<int64_t> seq = s->AppendEvent(job.id, "e");
        EXPECT_TRUE(seq.ok()) << seq.status();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  absl::StatusOr<std::vector<JobEvent>> events =
      other->EventsAfter(job.id, 0, 1000);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 60u);
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].sequence, static_cast<int64_t>(i) + 1);
  }
}

TEST_P(JobStoreReplicasTest, ConcurrentCreatesKeepTheQueueLimit) {
  std::unique_ptr<JobStore> other = Another();
  ASSERT_NE(other, nullptr);
  QueueLimits limits;
  limits.max_queued_per_tenant = 5;
  std::atomic<int> created{0}, full{0};
  std::vector<std::thread> threads;
  for (JobStore* s : {store_.get(), other.get()}) {
    threads.emplace_back([&, s] {
      for (int i = 0; i < 8; ++i) {
        JobRecord job;
        job.tenant = "a";
        job.spec = "s";
        absl::StatusOr<std::pair<JobRecord, bool>> r = s->Create(job, limits);
        if (r.ok()) {
          ++created;
        } else {
          EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
              << r.status();
          ++full;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(created.load(), 5);
  EXPECT_EQ(full.load(), 11);
  EXPECT_EQ(*other->CountInState(JobState::kQueued, "a"), 5);
}

// A store's appends reach another store's WatchEvents (PostgreSQL
// LISTEN/NOTIFY), also after the database restarted; SQLite has none.
TEST_P(JobStoreReplicasTest, AppendsNotifyTheOtherStores) {
  std::unique_ptr<JobStore> other = Another();
  ASSERT_NE(other, nullptr);
  absl::Mutex mu;
  std::vector<std::string> seen;
  absl::Status watching = other->WatchEvents([&](const std::string& id) {
    absl::MutexLock lock(&mu);
    seen.push_back(id);
  });
  if (sqlite()) {
    EXPECT_EQ(watching.code(), absl::StatusCode::kUnimplemented);
    return;
  }
  ASSERT_TRUE(watching.ok()) << watching;
  auto count = [&](const std::string& id) {
    absl::MutexLock lock(&mu);
    return std::count(seen.begin(), seen.end(), id);
  };
  auto wait_for = [&](const std::string& id, int n) {
    for (int i = 0; i < 6000 && count(id) < n; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    return count(id) >= n;
  };
  JobRecord job = MakeJob("a", "spec");
  ASSERT_TRUE(store_->AppendEvent(job.id, "e1").ok());
  ASSERT_TRUE(wait_for(job.id, 1));
  ASSERT_TRUE(PostgresTestServer::Shared()->Restart().ok());
  // The listener is back ("" = re-read everything), then hears new events.
  ASSERT_TRUE(wait_for("", 1));
  ASSERT_TRUE(store_->AppendEvent(job.id, "e2").ok());
  EXPECT_TRUE(wait_for(job.id, 2));
  other->StopWatchingEvents();
  const size_t after_stop = [&] {
    absl::MutexLock lock(&mu);
    return seen.size();
  }();
  ASSERT_TRUE(store_->AppendEvent(job.id, "e3").ok());
  absl::SleepFor(absl::Milliseconds(300));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(seen.size(), after_stop);  // no call after the stop
}

INSTANTIATE_TEST_SUITE_P(Backends, JobStoreReplicasTest, kJobStoreBackends);

}  // namespace
}  // namespace quantd
