// Schedulers of two replicas on one PostgreSQL job store (each with its own
// connection, as separate processes would have): every job runs once, a
// job claimed by a replica that died is re-queued when its lease runs out
// and finishes on the other, and a cancel through one replica stops the job
// running on the other.
#include <stdlib.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/postgres_test_server.h"
#include "server/scheduler.h"
#include "server/server_test_util.h"

namespace quantd {
namespace {

using server_test::ReadTestdata;

class SchedulerReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quantd_sched_rep_XXXXXX";
    root_ = mkdtemp(tmpl);
    blobs_ = std::move(*BlobStore::Open(root_));
    index_ = std::move(*BlobIndex::Open(root_ + "/blobs.db"));
    PostgresTestServer* server = PostgresTestServer::Shared();
    ASSERT_NE(server, nullptr) << "PostgreSQL did not start (see stderr)";
    absl::StatusOr<std::string> url = server->CreateDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    for (auto* store : {&jobs_a_, &jobs_b_}) {
      absl::StatusOr<std::unique_ptr<JobStore>> s = JobStore::Open(url_, "");
      ASSERT_TRUE(s.ok()) << s.status();
      *store = std::move(*s);
    }
  }
  void TearDown() override {
    std::system(absl::StrCat("rm -rf '", root_, "'").c_str());
  }

  SchedulerOptions Replica(const std::string& id) {
    SchedulerOptions o;
    o.replica_id = id;
    // Long enough that a heartbeat (every lease / 3) delayed by a busy
    // machine does not let a live replica's lease expire.
    o.lease = absl::Seconds(10);
    o.shared_store = true;
    o.poll_interval = absl::Milliseconds(100);
    return o;
  }

  // Dynamic W8A8 on the MLP (fast), or on the tiny GPT (seconds).
  std::string Queue(bool slow) {
    v1::JobSpec spec;
    spec.mutable_model()->set_blob_sha256(server_test::PutOwned(
        *blobs_, *index_, "t",
        ReadTestdata(slow ? "tiny_gpt/model.onnx" : "fmnist_mlp/model.onnx")));
    spec.mutable_evaluation_data()->set_blob_sha256(server_test::PutOwned(
        *blobs_, *index_, "t",
        ReadTestdata(slow ? "tiny_gpt/eval.npz" : "fmnist/eval.npz")));
    spec.set_mode(v1::QUANT_MODE_DYNAMIC);
    if (!slow) spec.mutable_sensitivity()->set_disabled(true);
    JobRecord r;
    r.tenant = "t";
    r.spec = spec.SerializeAsString();
    auto created = jobs_a_->Create(r);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->first.id : "";
  }

  bool WaitFor(const std::string& id, JobState state) {
    const absl::Time end = absl::Now() + absl::Seconds(600);
    while (absl::Now() < end) {
      if (absl::StatusOr<JobState> s = jobs_b_->StateOf(id);
          s.ok() && *s == state) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  // The job's state-change events, in order.
  std::vector<v1::JobState> StateChanges(const std::string& id) {
    std::vector<v1::JobState> changes;
    absl::StatusOr<std::vector<JobEvent>> events =
        jobs_a_->EventsAfter(id, 0, kMaxEventsPerCall);
    EXPECT_TRUE(events.ok()) << events.status();
    if (!events.ok()) return changes;
    for (const JobEvent& stored : *events) {
      v1::JobEvent e;
      EXPECT_TRUE(e.ParseFromString(stored.payload));
      if (e.state_change() != v1::JOB_STATE_UNSPECIFIED) {
        changes.push_back(e.state_change());
      }
    }
    return changes;
  }

  std::string root_, url_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<BlobIndex> index_;
  std::unique_ptr<JobStore> jobs_a_, jobs_b_;
};

TEST_F(SchedulerReplicasTest, TwoReplicasRunEveryJobOnce) {
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(Queue(false));
  std::atomic<int> ran_a{0}, ran_b{0};
  SchedulerOptions oa = Replica("replica-a"), ob = Replica("replica-b");
  oa.runner.on_finished = [&](const JobRecord&, const v1::QuantizationReport*) {
    ++ran_a;
  };
  ob.runner.on_finished = [&](const JobRecord&, const v1::QuantizationReport*) {
    ++ran_b;
  };
  Scheduler a(jobs_a_.get(), blobs_.get(), index_.get(), oa);
  Scheduler b(jobs_b_.get(), blobs_.get(), index_.get(), ob);
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());
  for (const std::string& id : ids) {
    ASSERT_TRUE(WaitFor(id, JobState::kSucceeded)) << id;
    EXPECT_EQ(StateChanges(id),
              (std::vector<v1::JobState>{v1::JOB_STATE_RUNNING,
                                         v1::JOB_STATE_SUCCEEDED}))
        << id;
    EXPECT_EQ(jobs_a_->Get("t", id)->attempts, 1);
  }
  EXPECT_EQ(ran_a + ran_b, 6);
}

// A replica claimed the job and died: nobody renews its lease; the live
// replica re-queues it once the lease runs out and runs it (attempt 2).
TEST_F(SchedulerReplicasTest, ADeadReplicasJobFinishesOnAnother) {
  const std::string id = Queue(false);
  absl::StatusOr<std::optional<JobRecord>> claimed =
      jobs_a_->Claim("dead-replica", absl::Seconds(1), {});
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  Scheduler b(jobs_b_.get(), blobs_.get(), index_.get(), Replica("replica-b"));
  ASSERT_TRUE(b.Start().ok());
  ASSERT_TRUE(WaitFor(id, JobState::kSucceeded));
  EXPECT_EQ(jobs_a_->Get("t", id)->attempts, 2);
  EXPECT_EQ(StateChanges(id), (std::vector<v1::JobState>{
                                  v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING,
                                  v1::JOB_STATE_SUCCEEDED}));
}

TEST_F(SchedulerReplicasTest, ACancelThroughOneReplicaStopsTheJobOnAnother) {
  const std::string id = Queue(true);
  std::atomic<bool> progressed{false};
  SchedulerOptions oa = Replica("replica-a");
  oa.runner.on_event = [&](const v1::JobEvent& e) {
    if (e.has_progress()) progressed = true;
  };
  Scheduler a(jobs_a_.get(), blobs_.get(), index_.get(), oa);
  ASSERT_TRUE(a.Start().ok());
  a.Notify();
  while (!progressed) absl::SleepFor(absl::Milliseconds(5));
  // Replica b does not run the job; it only takes the client's cancel.
  Scheduler b(jobs_b_.get(), blobs_.get(), index_.get(), Replica("replica-b"));
  absl::StatusOr<JobRecord> c = b.Cancel("t", id);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->state, JobState::kCancelling);
  ASSERT_TRUE(WaitFor(id, JobState::kCancelled));
  EXPECT_EQ(StateChanges(id).back(), v1::JOB_STATE_CANCELLED);
}

}  // namespace
}  // namespace quantd
