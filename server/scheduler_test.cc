#include "server/scheduler.h"

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "kernels/buffer_pool.h"
#include "server/server_test_util.h"

namespace quantd {
namespace {

using server_test::ReadTestdata;

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quantd_sched_XXXXXX";
    root_ = mkdtemp(tmpl);
    blobs_ = std::move(*BlobStore::Open(root_));
    auto jobs = JobStore::Open(root_ + "/jobs.db", "0123456789abcdef-key");
    ASSERT_TRUE(jobs.ok()) << jobs.status();
    jobs_ = std::move(*jobs);
    index_ = std::move(*BlobIndex::Open(root_ + "/blobs.db"));
  }
  void TearDown() override {
    std::system(absl::StrCat("rm -rf '", root_, "'").c_str());
  }

  // Dynamic W8A8 on the MLP (fast), or W8A8 on the tiny GPT (seconds).
  std::string Queue(bool slow, const std::string& tenant = "t") {
    v1::JobSpec spec;
    const std::string model =
        slow ? "tiny_gpt/model.onnx" : "fmnist_mlp/model.onnx";
    const std::string data = slow ? "tiny_gpt/eval.npz" : "fmnist/eval.npz";
    spec.mutable_model()->set_blob_sha256(
        server_test::PutOwned(*blobs_, *index_, tenant, ReadTestdata(model)));
    spec.mutable_evaluation_data()->set_blob_sha256(
        server_test::PutOwned(*blobs_, *index_, tenant, ReadTestdata(data)));
    spec.set_mode(v1::QUANT_MODE_DYNAMIC);
    if (!slow) spec.mutable_sensitivity()->set_disabled(true);
    JobRecord r;
    r.tenant = tenant;
    r.spec = spec.SerializeAsString();
    auto created = jobs_->Create(r);
    EXPECT_TRUE(created.ok()) << created.status();
    return created->first.id;
  }

  JobState StateOf(const std::string& id) {
    for (const char* tenant : {"t", "a", "b"}) {
      if (auto j = jobs_->Get(tenant, id); j.ok()) return j->state;
    }
    return JobState::kFailed;
  }

  bool WaitFor(const std::string& id, JobState state, absl::Duration limit) {
    const absl::Time end = absl::Now() + limit;
    while (absl::Now() < end) {
      if (StateOf(id) == state) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  std::string root_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<JobStore> jobs_;
  std::unique_ptr<BlobIndex> index_;
};

TEST_F(SchedulerTest, RunsQueuedJobs) {
  const std::string a = Queue(false), b = Queue(false);
  Scheduler s(jobs_.get(), blobs_.get(), index_.get(), {});
  ASSERT_TRUE(s.Start().ok());
  s.Notify();
  EXPECT_TRUE(WaitFor(a, JobState::kSucceeded, absl::Seconds(600)));
  EXPECT_TRUE(WaitFor(b, JobState::kSucceeded, absl::Seconds(600)));
}

// Jobs fill the process-wide buffer cache (kernels/buffer_pool.h); an idle
// server gives it back, so a pod's memory falls when its work is done.
TEST_F(SchedulerTest, AnIdleSchedulerHoldsNoCachedBuffers) {
  const std::string a = Queue(false);
  Scheduler s(jobs_.get(), blobs_.get(), index_.get(), {});
  ASSERT_TRUE(s.Start().ok());
  s.Notify();
  ASSERT_TRUE(WaitFor(a, JobState::kSucceeded, absl::Seconds(600)));
  const absl::Time end = absl::Now() + absl::Seconds(600);
  while (s.busy_workers() > 0 && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(s.busy_workers(), 0);
  EXPECT_EQ(BufferPool::Default().cached_bytes(), 0);
}

TEST_F(SchedulerTest, CancelsQueuedAndRunningJobs) {
  const std::string queued = Queue(false);
  Scheduler idle(jobs_.get(), blobs_.get(), index_.get(), {});
  absl::StatusOr<JobRecord> c = idle.Cancel("t", queued);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->state, JobState::kCancelled);
  EXPECT_EQ(idle.Cancel("other-tenant", queued).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(idle.Cancel("t", queued).status().code(),
            absl::StatusCode::kFailedPrecondition);

  const std::string running = Queue(true);
  SchedulerOptions o;
  std::atomic<bool> asked{false};
  absl::Time cancel_time;
  Scheduler* self = nullptr;
  o.runner.on_event = [&](const v1::JobEvent& e) {
    if (e.has_progress() && !asked.exchange(true)) {
      cancel_time = absl::Now();
      EXPECT_TRUE(self->Cancel("t", running).ok());
    }
  };
  Scheduler s(jobs_.get(), blobs_.get(), index_.get(), o);
  self = &s;
  ASSERT_TRUE(s.Start().ok());
  s.Notify();
  ASSERT_TRUE(WaitFor(running, JobState::kCancelled, absl::Seconds(600)));
  // Cancelling stops the pipeline within a batch (well under a second on
  // an idle machine), not at the job's end. The bound is wide because the
  // suite also runs under sanitizers and on a busy machine; it still fails
  // if cancel waits for the whole job.
  const absl::Duration took =
      absl::FromUnixMicros(jobs_->Get("t", running)->end_time_us) - cancel_time;
  EXPECT_LT(took, absl::Seconds(30)) << took;
}

TEST_F(SchedulerTest, ShutdownRequeuesRunningJobsAndRestartFinishesThem) {
  const std::string id = Queue(true);
  {
    SchedulerOptions o;
    std::atomic<bool> progressed{false};
    o.runner.on_event = [&](const v1::JobEvent& e) {
      if (e.has_progress()) progressed = true;
    };
    Scheduler s(jobs_.get(), blobs_.get(), index_.get(), o);
    ASSERT_TRUE(s.Start().ok());
    s.Notify();
    while (!progressed) absl::SleepFor(absl::Milliseconds(5));
    s.Shutdown(absl::ZeroDuration());
  }
  absl::StatusOr<JobRecord> job = jobs_->Get("t", id);
  EXPECT_EQ(job->state, JobState::kQueued);
  EXPECT_EQ(job->attempts, 1);
  Scheduler again(jobs_.get(), blobs_.get(), index_.get(), {});
  ASSERT_TRUE(again.Start().ok());
  again.Notify();
  EXPECT_TRUE(WaitFor(id, JobState::kSucceeded, absl::Seconds(600)));
  EXPECT_EQ(jobs_->Get("t", id)->attempts, 2);
}

TEST_F(SchedulerTest, PerTenantLimitKeepsOneTenantFromTakingEveryWorker) {
  std::map<std::string, std::string> tenant_of;
  for (int i = 0; i < 3; ++i) tenant_of[JobName(Queue(false, "a"))] = "a";
  const std::string b = Queue(false, "b");
  tenant_of[JobName(b)] = "b";
  absl::Mutex mu;
  std::map<std::string, int> running, peak;
  SchedulerOptions o;
  o.workers = 2;
  o.max_running_per_tenant = 1;
  o.runner.on_event = [&](const v1::JobEvent& e) {
    if (e.state_change() != v1::JOB_STATE_RUNNING) return;
    absl::MutexLock lock(&mu);
    const std::string& t = tenant_of[e.job()];
    peak[t] = std::max(peak[t], ++running[t]);
  };
  o.runner.on_finished = [&](const JobRecord& r,
                             const v1::QuantizationReport*) {
    absl::MutexLock lock(&mu);
    --running[r.tenant];
  };
  Scheduler s(jobs_.get(), blobs_.get(), index_.get(), o);
  ASSERT_TRUE(s.Start().ok());
  s.Notify();
  for (const auto& [name, tenant] : tenant_of) {
    EXPECT_TRUE(
        WaitFor(name.substr(5), JobState::kSucceeded, absl::Seconds(600)));
  }
  absl::MutexLock lock(&mu);
  EXPECT_EQ(peak["a"], 1);
  EXPECT_EQ(peak["b"], 1);
}

// A job left RUNNING by a process that died is re-queued on start.
TEST_F(SchedulerTest, StartRecoversJobsOfADeadProcess) {
  const std::string id = Queue(false);
  ASSERT_TRUE(
      jobs_->Transition(id, {JobState::kQueued}, JobState::kRunning).ok());
  Scheduler s(jobs_.get(), blobs_.get(), index_.get(), {});
  ASSERT_TRUE(s.Start().ok());
  s.Notify();
  EXPECT_TRUE(WaitFor(id, JobState::kSucceeded, absl::Seconds(600)));
}

}  // namespace
}  // namespace quantd
