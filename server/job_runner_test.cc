#include "server/job_runner.h"

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server_test_util.h"

namespace quantd {
namespace {

using server_test::ReadTestdata;

using ::testing::HasSubstr;

class JobRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quantd_runner_XXXXXX";
    root_ = mkdtemp(tmpl);
    auto blobs = BlobStore::Open(root_);
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    blobs_ = std::move(*blobs);
    auto jobs = JobStore::Open(root_ + "/jobs.db", "0123456789abcdef-key");
    ASSERT_TRUE(jobs.ok()) << jobs.status();
    jobs_ = std::move(*jobs);
    index_ = std::move(*BlobIndex::Open(root_ + "/blobs.db"));
    model_ = server_test::PutOwned(*blobs_, *index_, "t",
                                   ReadTestdata("fmnist_mlp/model.onnx"));
    eval_ = server_test::PutOwned(*blobs_, *index_, "t",
                                  ReadTestdata("fmnist/eval.npz"));
  }
  void TearDown() override {
    std::system(absl::StrCat("rm -rf '", root_, "'").c_str());
  }

  // A dynamic-mode job (no calibration set needed), RUNNING.
  JobRecord RunningJob(const v1::JobSpec& spec) {
    JobRecord r;
    r.tenant = "t";
    r.spec = spec.SerializeAsString();
    auto created = jobs_->Create(r);
    EXPECT_TRUE(created.ok()) << created.status();
    // Claimed as the scheduler claims: with its RUNNING event.
    auto running = JobRunner(jobs_.get(), blobs_.get(), index_.get())
                       .Move(created->first.id, {JobState::kQueued},
                             JobState::kRunning, "", "");
    EXPECT_TRUE(running.ok()) << running.status();
    return *running;
  }

  v1::JobSpec DynamicSpec() {
    v1::JobSpec spec;
    spec.mutable_model()->set_blob_sha256(model_);
    spec.mutable_evaluation_data()->set_blob_sha256(eval_);
    spec.set_mode(v1::QUANT_MODE_DYNAMIC);
    spec.mutable_sensitivity()->set_disabled(true);
    return spec;
  }

  std::vector<v1::JobEvent> Events(const std::string& id) {
    std::vector<v1::JobEvent> out;
    auto events = jobs_->EventsAfter(id, 0, 10000);
    EXPECT_TRUE(events.ok()) << events.status();
    for (const JobEvent& e : *events) {
      v1::JobEvent p;
      EXPECT_TRUE(p.ParseFromString(e.payload));
      EXPECT_EQ(p.sequence(), 0);  // assigned by the store, not stored
      p.set_sequence(e.sequence);
      out.push_back(p);
    }
    return out;
  }

  std::string root_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<JobStore> jobs_;
  std::unique_ptr<BlobIndex> index_;
  std::string model_, eval_;
};

TEST_F(JobRunnerTest, RunsAJobToSucceededWithArtifactsAndEvents) {
  std::vector<int64_t> live;
  JobRunnerOptions o;
  o.on_event = [&](const v1::JobEvent& e) { live.push_back(e.sequence()); };
  JobRunner runner(jobs_.get(), blobs_.get(), index_.get(), o);
  const JobRecord job = RunningJob(DynamicSpec());
  absl::StatusOr<JobRecord> done = runner.Run(job, nullptr);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, JobState::kSucceeded) << done->error;
  ASSERT_TRUE(blobs_->Contains(done->model_artifact_sha256));
  EXPECT_EQ(*blobs_->Size(done->model_artifact_sha256),
            done->model_artifact_size);
  absl::StatusOr<std::string> report =
      blobs_->Read(done->report_artifact_sha256, 0, 1 << 24);
  ASSERT_TRUE(report.ok());
  EXPECT_THAT(*report, HasSubstr("\"accuracyDeltaPoints\""));

  const std::vector<v1::JobEvent> events = Events(job.id);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.front().state_change(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(events.back().state_change(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(events.back().job(), JobName(job.id));
  bool saw_progress = false;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), static_cast<int64_t>(i) + 1);
    saw_progress |= events[i].has_progress();
  }
  EXPECT_TRUE(saw_progress);
  // Watchers saw the same events, in order (all after the claim's RUNNING
  // event, which the claiming runner published).
  ASSERT_EQ(live.size(), events.size() - 1);
  EXPECT_EQ(live.front(), 2);
  EXPECT_EQ(live.back(), events.back().sequence());
}

TEST_F(JobRunnerTest, CancelledJobEndsCancelled) {
  std::atomic<bool> cancelled{false};
  JobRunnerOptions o;
  o.on_event = [&](const v1::JobEvent& e) {
    if (e.has_progress()) cancelled = true;
  };
  JobRunner runner(jobs_.get(), blobs_.get(), index_.get(), o);
  const JobRecord job = RunningJob(DynamicSpec());
  absl::StatusOr<JobRecord> done = runner.Run(job, &cancelled);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, JobState::kCancelled);
  EXPECT_TRUE(done->model_artifact_sha256.empty());
  EXPECT_EQ(Events(job.id).back().state_change(), v1::JOB_STATE_CANCELLED);
}

TEST_F(JobRunnerTest, BadReferencesFailTheJobWithAReason) {
  JobRunner runner(jobs_.get(), blobs_.get(), index_.get());
  v1::JobSpec spec = DynamicSpec();
  spec.mutable_model()->set_blob_sha256(std::string(64, 'a'));
  absl::StatusOr<JobRecord> done = runner.Run(RunningJob(spec), nullptr);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_THAT(done->error, HasSubstr("model.blob_sha256: no blob with sha256"));

  spec = DynamicSpec();
  spec.mutable_model()->set_path("/etc/passwd");
  done = runner.Run(RunningJob(spec), nullptr);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_THAT(done->error,
              HasSubstr("model.path is only accepted by quantd run-job"));

  // An uploaded blob that is not a model.
  spec = DynamicSpec();
  spec.mutable_model()->set_blob_sha256(eval_);
  done = runner.Run(RunningJob(spec), nullptr);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_FALSE(done->error.empty());
}

// After kill -9, start-up recovery writes what happened into each job's
// history and counts failed jobs as finished (the metrics hook).
TEST_F(JobRunnerTest, RecoveryRecordsEventsAndFinishesFailedJobs) {
  std::vector<std::string> finished;
  JobRunnerOptions o;
  o.on_finished = [&](const JobRecord& j, const v1::QuantizationReport*) {
    finished.push_back(absl::StrCat(j.id, ":", JobStateName(j.state)));
  };
  o.checkpoint_dir = root_;
  JobRunner runner(jobs_.get(), blobs_.get(), index_.get(), o);
  const JobRecord failed = RunningJob(DynamicSpec());
  auto checkpoint = [&](const JobRecord& j) {
    return absl::StrCat(root_, "/", j.id, ".npz");
  };
  std::ofstream(checkpoint(failed)) << "a QAT checkpoint";

  absl::StatusOr<std::vector<JobRecord>> recovered = runner.Recover(1);
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  ASSERT_EQ(recovered->size(), 1);
  EXPECT_EQ((*recovered)[0].state, JobState::kFailed);
  EXPECT_EQ(finished, std::vector<std::string>{failed.id + ":FAILED"});
  EXPECT_FALSE(std::ifstream(checkpoint(failed)).good());  // ended: removed
  std::vector<v1::JobEvent> events = Events(failed.id);
  ASSERT_EQ(events.size(), 3);  // RUNNING, the reason, FAILED
  EXPECT_EQ(events[0].state_change(), v1::JOB_STATE_RUNNING);
  EXPECT_THAT(events[1].message(), HasSubstr("the server stopped once"));
  EXPECT_EQ(events[2].state_change(), v1::JOB_STATE_FAILED);

  // With attempts left, the job is queued again and says why.
  const JobRecord requeued = RunningJob(DynamicSpec());
  std::ofstream(checkpoint(requeued)) << "a QAT checkpoint";
  recovered = runner.Recover(3);
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  ASSERT_EQ(recovered->size(), 1);
  EXPECT_EQ((*recovered)[0].state, JobState::kQueued);
  EXPECT_EQ(finished.size(), 1);                            // not finished
  EXPECT_TRUE(std::ifstream(checkpoint(requeued)).good());  // to resume
  events = Events(requeued.id);
  ASSERT_EQ(events.size(), 3);
  EXPECT_THAT(events[1].message(), HasSubstr("queued to run again"));
  EXPECT_EQ(events[2].state_change(), v1::JOB_STATE_QUEUED);
}

// A terminal state and its reason are stored together: the FAILED event
// carries the error, then the state change is the last event.
TEST_F(JobRunnerTest, FailedJobsEndWithReasonThenStateEvent) {
  JobRunner runner(jobs_.get(), blobs_.get(), index_.get());
  v1::JobSpec spec = DynamicSpec();
  spec.mutable_model()->set_blob_sha256(std::string(64, 'a'));
  const JobRecord job = RunningJob(spec);
  ASSERT_TRUE(runner.Run(job, nullptr).ok());
  const std::vector<v1::JobEvent> events = Events(job.id);
  ASSERT_GE(events.size(), 2);
  EXPECT_THAT(events[events.size() - 2].message(),
              HasSubstr("model.blob_sha256"));
  EXPECT_EQ(events.back().state_change(), v1::JOB_STATE_FAILED);
}

}  // namespace
}  // namespace quantd
