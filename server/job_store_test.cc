#include "server/job_store.h"

#include <stdlib.h>

#include <atomic>
#include <cstdlib>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/job_store_test_fixture.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

TEST_P(JobStoreTest, CreateAndGet) {
  JobRecord job = MakeJob("a", std::string("spec\0bytes", 10));
  EXPECT_THAT(job.id, ::testing::MatchesRegex("job-[0-9a-f]{16}"));
  EXPECT_EQ(job.state, JobState::kQueued);
  EXPECT_GT(job.create_time_us, 0);
  absl::StatusOr<JobRecord> got = store_->Get("a", job.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->spec, std::string("spec\0bytes", 10));
  EXPECT_EQ(got->display_name, "resnet50 int8");
  EXPECT_EQ(got->labels, job.labels);
  EXPECT_EQ(got->create_time_us, job.create_time_us);
  EXPECT_EQ(got->attempts, 0);
  EXPECT_NE(MakeJob("a", "x").id, job.id);
  EXPECT_EQ(store_->Get("a", "job-0000000000000000").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(JobStoreTest, RefusesOversizedInput) {
  JobRecord job;
  job.tenant = "a";
  job.spec = std::string(kMaxSpecBytes + 1, 'x');
  EXPECT_EQ(store_->Create(job).status().code(),
            absl::StatusCode::kInvalidArgument);
  job.spec = "s";
  for (int i = 0; i < 65; ++i) job.labels[absl::StrCat("k", i)] = "v";
  EXPECT_EQ(store_->Create(job).status().code(),
            absl::StatusCode::kInvalidArgument);
  job.labels.clear();
  job.request_id = std::string(129, 'r');
  EXPECT_EQ(store_->Create(job).status().code(),
            absl::StatusCode::kInvalidArgument);
  job.request_id = "";
  job.tenant = std::string(129, 't');
  EXPECT_EQ(store_->Create(job).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*store_->CountInState(JobState::kQueued), 0);
}

TEST_P(JobStoreTest, TenantsAreIsolated) {
  JobRecord a = MakeJob("a", "spec");
  MakeJob("b", "spec");
  absl::Status s = store_->Get("b", a.id).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ListAll("b", std::nullopt, 10), ::testing::SizeIs(1));
  EXPECT_THAT(ListAll("b", std::nullopt, 10),
              ::testing::Not(::testing::Contains(a.id)));
  ASSERT_TRUE(
      store_->Transition(a.id, {JobState::kQueued}, JobState::kCancelled).ok());
  EXPECT_EQ(store_->Delete("b", a.id).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Get("a", a.id).ok());
  EXPECT_EQ(*store_->CountInState(JobState::kQueued, "b"), 1);
  EXPECT_EQ(*store_->CountInState(JobState::kQueued, "a"), 0);
  EXPECT_EQ(*store_->CountInState(JobState::kCancelled), 1);
}

TEST_P(JobStoreTest, IdempotentCreate) {
  JobRecord first = MakeJob("a", "spec-1", "req-1");
  JobRecord again;
  again.tenant = "a";
  again.spec = "spec-1";
  again.request_id = "req-1";
  absl::StatusOr<std::pair<JobRecord, bool>> r = store_->Create(again);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->second);
  EXPECT_EQ(r->first.id, first.id);
  EXPECT_EQ(r->first.labels, first.labels);  // the stored job, unchanged
  again.spec = "spec-2";
  r = store_->Create(again);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(r.status().message(), HasSubstr("different spec"));
  // The same request id belongs to each tenant separately.
  again.tenant = "b";
  r = store_->Create(again);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->second);
  EXPECT_EQ(*store_->CountInState(JobState::kQueued), 2);
}

TEST_P(JobStoreTest, ListPagesNewestFirstWithoutGapsOrDuplicates) {
  std::vector<std::string> created;
  for (int i = 0; i < 7; ++i) created.push_back(MakeJob("a", "s").id);
  MakeJob("b", "s");
  std::vector<std::string> newest_first(created.rbegin(), created.rend());
  EXPECT_EQ(ListAll("a", std::nullopt, 3), newest_first);
  EXPECT_EQ(ListAll("a", std::nullopt, 7), newest_first);
  EXPECT_EQ(ListAll("a", std::nullopt, 0), newest_first);

  absl::StatusOr<JobPage> p = store_->List("a", std::nullopt, 3, "");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->jobs.size(), 3);
  EXPECT_FALSE(p->next_page_token.empty());

  // Filter: jobs 1, 3, 5 cancelled.
  for (int i : {1, 3, 5}) {
    ASSERT_TRUE(
        store_
            ->Transition(created[i], {JobState::kQueued}, JobState::kCancelled)
            .ok());
  }
  EXPECT_EQ(ListAll("a", JobState::kCancelled, 2),
            (std::vector<std::string>{created[5], created[3], created[1]}));
  EXPECT_EQ(ListAll("a", JobState::kQueued, 3),
            (std::vector<std::string>{created[6], created[4], created[2],
                                      created[0]}));
  EXPECT_EQ(store_->List("a", std::nullopt, 1001, "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(JobStoreTest, BadPageTokensAreRejected) {
  for (int i = 0; i < 7; ++i) MakeJob("a", "s");
  absl::StatusOr<JobPage> p = store_->List("a", std::nullopt, 3, "");
  ASSERT_TRUE(p.ok());
  const std::string token = p->next_page_token;
  ASSERT_TRUE(store_->List("a", std::nullopt, 3, token).ok());
  // Another tenant, another filter.
  EXPECT_EQ(store_->List("b", std::nullopt, 3, token).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->List("a", JobState::kQueued, 3, token).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Every single-character change is detected.
  for (size_t i = 0; i < token.size(); ++i) {
    std::string bad = token;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    absl::Status s = store_->List("a", std::nullopt, 3, bad).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << i;
  }
  EXPECT_EQ(store_->List("a", std::nullopt, 3, "garbage!").status().code(),
            absl::StatusCode::kInvalidArgument);
  // A store with another key does not accept the token.
  store_.reset();
  absl::StatusOr<std::unique_ptr<JobStore>> other =
      JobStore::Open(location_, "another-key-of-16+bytes");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->List("a", std::nullopt, 3, token).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(JobStore::Open(location_, "short").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(JobStoreTest, Transitions) {
  JobRecord job = MakeJob("a", "s");
  absl::StatusOr<JobRecord> r =
      store_->Transition(job.id, {JobState::kQueued}, JobState::kRunning);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state, JobState::kRunning);
  EXPECT_EQ(r->attempts, 1);
  EXPECT_GT(r->start_time_us, 0);
  EXPECT_EQ(r->end_time_us, 0);
  EXPECT_GE(r->update_time_us, job.create_time_us);

  // Illegal: not QUEUED any more.
  r = store_->Transition(job.id, {JobState::kQueued}, JobState::kRunning);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("RUNNING"));

  r = store_->Transition(job.id, {JobState::kQueued, JobState::kRunning},
                         JobState::kFailed, "calibration data is empty");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->end_time_us, 0);
  absl::StatusOr<JobRecord> got = store_->Get("a", job.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, JobState::kFailed);
  EXPECT_EQ(got->error, "calibration data is empty");
  EXPECT_EQ(got->attempts, 1);
  EXPECT_EQ(got->end_time_us, r->end_time_us);
  EXPECT_EQ(
      store_->Transition(job.id, {JobState::kRunning}, JobState::kSucceeded)
          .status()
          .code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      store_->Transition("job-nope", {JobState::kQueued}, JobState::kRunning)
          .status()
          .code(),
      absl::StatusCode::kNotFound);
}

TEST_P(JobStoreTest, ArtifactsAndDelete) {
  JobRecord job = MakeJob("a", "s");
  ASSERT_TRUE(store_->AppendEvent(job.id, "e1").ok());
  EXPECT_EQ(store_->SetArtifacts(job.id, "nothex", 1, kSha2, 2).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store_->SetArtifacts(job.id, kSha1, 10, kSha2, 20).ok());
  EXPECT_TRUE(*store_->ReferencesBlob(kSha1));
  EXPECT_TRUE(*store_->ReferencesBlob(kSha2));
  EXPECT_FALSE(*store_->ReferencesBlob(std::string(64, 'c')));
  // Not terminal yet.
  EXPECT_EQ(store_->Delete("a", job.id).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(
      store_->Transition(job.id, {JobState::kQueued}, JobState::kRunning).ok());
  ASSERT_TRUE(
      store_->Transition(job.id, {JobState::kRunning}, JobState::kSucceeded)
          .ok());
  absl::StatusOr<JobRecord> deleted = store_->Delete("a", job.id);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->model_artifact_sha256, kSha1);
  EXPECT_EQ(deleted->model_artifact_size, 10);
  EXPECT_EQ(deleted->report_artifact_sha256, kSha2);
  EXPECT_EQ(deleted->report_artifact_size, 20);
  EXPECT_EQ(store_->Get("a", job.id).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(*store_->ReferencesBlob(kSha1));
  EXPECT_EQ(store_->EventsAfter(job.id, 0, 10).status().code(),
            absl::StatusCode::kNotFound);
  // Its events are gone too: a new job's log starts at 1 (ids differ, so
  // check the table directly).
  store_.reset();
  EXPECT_EQ(Direct("SELECT COUNT(*) FROM events"), 0);
}

TEST_P(JobStoreTest, EventsReplayFromAnyPointAndSurviveReopen) {
  JobRecord job = MakeJob("a", "s");
  JobRecord other = MakeJob("a", "s");
  for (int i = 1; i <= 10; ++i) {
    absl::StatusOr<int64_t> seq =
        store_->AppendEvent(job.id, absl::StrCat("event-", i));
    ASSERT_TRUE(seq.ok()) << seq.status();
    EXPECT_EQ(*seq, i);
  }
  EXPECT_EQ(*store_->AppendEvent(other.id, "x"), 1);  // per-job sequences
  EXPECT_EQ(store_->AppendEvent("job-missing", "x").status().code(),
            absl::StatusCode::kNotFound);
  Reopen();
  for (int after = 0; after <= 10; ++after) {
    absl::StatusOr<std::vector<JobEvent>> ev =
        store_->EventsAfter(job.id, after, 100);
    ASSERT_TRUE(ev.ok()) << ev.status();
    ASSERT_EQ(ev->size(), 10 - after);
    for (size_t k = 0; k < ev->size(); ++k) {
      EXPECT_EQ((*ev)[k].sequence, after + 1 + k);
      EXPECT_EQ((*ev)[k].payload, absl::StrCat("event-", after + 1 + k));
      EXPECT_EQ((*ev)[k].job_id, job.id);
      EXPECT_GT((*ev)[k].time_us, 0);
    }
  }
  absl::StatusOr<std::vector<JobEvent>> ev = store_->EventsAfter(job.id, 2, 3);
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->size(), 3);
  EXPECT_EQ(ev->back().sequence, 5);
  EXPECT_EQ(*store_->AppendEvent(job.id, "event-11"), 11);
  EXPECT_EQ(store_->EventsAfter(job.id, 0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(JobStoreTest, ConcurrentAppendsGetConsecutiveSequences) {
  JobRecord job = MakeJob("a", "s");
  std::vector<std::vector<int64_t>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        absl::StatusOr<int64_t> seq = store_->AppendEvent(job.id, "e");
        EXPECT_TRUE(seq.ok()) << seq.status();
        if (seq.ok()) got[t].push_back(*seq);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<int64_t> all;
  for (const auto& v : got) {
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
    all.insert(v.begin(), v.end());
  }
  ASSERT_EQ(all.size(), 100);
  EXPECT_EQ(*all.begin(), 1);
  EXPECT_EQ(*all.rbegin(), 100);
  EXPECT_EQ(store_->EventsAfter(job.id, 0, 1000)->size(), 100);
}

TEST_P(JobStoreTest, RecoverRequeuesFailsAndFinishesCancelling) {
  JobRecord requeue = MakeJob("a", "s");
  JobRecord exhaust = MakeJob("a", "s");
  JobRecord cancelling = MakeJob("a", "s");
  JobRecord queued = MakeJob("a", "s");
  JobRecord done = MakeJob("a", "s");
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        store_->Transition(exhaust.id, {JobState::kQueued}, JobState::kRunning)
            .ok());
    if (i < 2) {
      absl::StatusOr<std::vector<JobRecord>> r = store_->Recover(3);
      ASSERT_TRUE(r.ok()) << r.status();  // a restart
      ASSERT_EQ(r->size(), 1);
      EXPECT_EQ((*r)[0].state, JobState::kQueued);
    }
  }
  ASSERT_TRUE(
      store_->Transition(requeue.id, {JobState::kQueued}, JobState::kRunning)
          .ok());
  ASSERT_TRUE(store_
                  ->Transition(cancelling.id, {JobState::kQueued},
                               JobState::kCancelling)
                  .ok());
  ASSERT_TRUE(
      store_->Transition(done.id, {JobState::kQueued}, JobState::kCancelled)
          .ok());
  Reopen();  // the process died
  absl::StatusOr<std::vector<JobRecord>> changed = store_->Recover(3);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(changed->size(), 3);

  absl::StatusOr<JobRecord> r = store_->Get("a", requeue.id);
  EXPECT_EQ(r->state, JobState::kQueued);
  EXPECT_EQ(r->attempts, 1);
  r = store_->Get("a", exhaust.id);
  EXPECT_EQ(r->state, JobState::kFailed);
  EXPECT_EQ(r->attempts, 3);
  EXPECT_EQ(r->error,
            "the server stopped 3 times while running this job "
            "(--max-attempts 3)");
  EXPECT_GT(r->end_time_us, 0);
  r = store_->Get("a", cancelling.id);
  EXPECT_EQ(r->state, JobState::kCancelled);
  EXPECT_GT(r->end_time_us, 0);
  EXPECT_EQ(store_->Get("a", queued.id)->state, JobState::kQueued);
  EXPECT_EQ(store_->Get("a", done.id)->state, JobState::kCancelled);
  EXPECT_TRUE(store_->Recover(3)->empty());  // nothing left to recover
}

TEST_P(JobStoreTest, MovesAppendTheirEventsInTheSameTransaction) {
  JobRecord job = MakeJob("a", "s");
  EventsOnMove events = [](const JobRecord& moved) {
    return std::vector<std::string>{
        absl::StrCat("reason:", moved.error),
        absl::StrCat("state:", JobStateName(moved.state))};
  };
  std::vector<JobEvent> appended;
  ASSERT_TRUE(store_
                  ->Transition(job.id, {JobState::kQueued}, JobState::kRunning,
                               "", events, &appended)
                  .ok());
  ASSERT_EQ(appended.size(), 2);
  EXPECT_EQ(appended[1].sequence, 2);
  EXPECT_EQ(appended[1].payload, "state:RUNNING");
  // A refused move appends nothing.
  appended.clear();
  EXPECT_FALSE(store_
                   ->Transition(job.id, {JobState::kQueued},
                                JobState::kCancelled, "", events, &appended)
                   .ok());
  EXPECT_TRUE(appended.empty());

  Reopen();  // the process died while the job ran
  ASSERT_TRUE(store_->Recover(1, events, &appended).ok());
  absl::StatusOr<std::vector<JobEvent>> stored =
      store_->EventsAfter(job.id, 0, 100);
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ(stored->size(), 4);
  EXPECT_EQ((*stored)[2].payload,
            "reason:the server stopped once while running this job "
            "(--max-attempts 1)");
  EXPECT_EQ((*stored)[3].payload, "state:FAILED");
  ASSERT_EQ(appended.size(), 2);
  EXPECT_EQ(appended[1].sequence, 4);
}

TEST_P(JobStoreTest, NextQueuedHonoursPriorityThenAge) {
  EXPECT_FALSE(store_->NextQueued()->has_value());
  JobRecord low_old = MakeJob("a", "s", "", 0);
  JobRecord high_old = MakeJob("b", "s", "", 5);
  JobRecord high_new = MakeJob("a", "s", "", 5);
  JobRecord low_new = MakeJob("a", "s", "", 0);
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<std::optional<JobRecord>> next = store_->NextQueued();
    ASSERT_TRUE(next.ok() && next->has_value());
    order.push_back((*next)->id);
    ASSERT_TRUE(
        store_->Transition((*next)->id, {JobState::kQueued}, JobState::kRunning)
            .ok());
  }
  EXPECT_EQ(order, (std::vector<std::string>{high_old.id, high_new.id,
                                             low_old.id, low_new.id}));
  EXPECT_FALSE(store_->NextQueued()->has_value());
  EXPECT_EQ(*store_->CountInState(JobState::kRunning), 4);
}

TEST_P(JobStoreTest, QueueLimitsAreCheckedWithTheInsert) {
  const QueueLimits limits{3, 2};
  std::vector<std::thread> threads;
  std::atomic<int> created{0}, refused{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      JobRecord job;
      job.tenant = i % 2 == 0 ? "a" : "b";
      job.spec = "spec";
      absl::StatusOr<std::pair<JobRecord, bool>> r =
          store_->Create(job, limits);
      if (r.ok()) {
        ++created;
      } else if (r.status().code() == absl::StatusCode::kResourceExhausted) {
        ++refused;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(created.load(), 3);  // the total limit, never more
  EXPECT_EQ(refused.load(), 5);
  EXPECT_LE(*store_->CountInState(JobState::kQueued, "a"), 2);
  EXPECT_LE(*store_->CountInState(JobState::kQueued, "b"), 2);
  // A retry of an existing request is answered even with a full queue.
  JobRecord first;
  first.tenant = "c";
  first.spec = "spec";
  first.request_id = "retry";
  absl::StatusOr<std::pair<JobRecord, bool>> r =
      store_->Create(first, QueueLimits{100, 100});
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<std::pair<JobRecord, bool>> again =
      store_->Create(first, QueueLimits{0, 0});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->second);
  EXPECT_EQ(again->first.id, r->first.id);
  // The same request_id with another priority is a different request.
  first.priority = 5;
  EXPECT_EQ(store_->Create(first).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_P(JobStoreTest, RecoveryWithOneAttemptSaysOnce) {
  JobRecord job = MakeJob("a", "spec");
  ASSERT_TRUE(
      store_->Transition(job.id, {JobState::kQueued}, JobState::kRunning).ok());
  Reopen();  // the process died
  ASSERT_TRUE(store_->Recover(1).ok());
  absl::StatusOr<JobRecord> r = store_->Get("a", job.id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state, JobState::kFailed);
  EXPECT_EQ(r->error,
            "the server stopped once while running this job "
            "(--max-attempts 1)");
}

INSTANTIATE_TEST_SUITE_P(Backends, JobStoreTest, kJobStoreBackends);

}  // namespace
}  // namespace quantd
