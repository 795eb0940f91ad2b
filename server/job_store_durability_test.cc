// The job store on disk: what survives reopening, the schema version
// check, and the migration of a database an older quantd wrote; on SQLite
// and PostgreSQL alike where the question applies to both.
#include <sqlite3.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/job_store.h"
#include "server/job_store_test_fixture.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

TEST_P(JobStoreTest, ReopeningKeepsEverything) {
  JobRecord job = MakeJob("a", "spec", "req");
  ASSERT_TRUE(store_->SetArtifacts(job.id, kSha1, 1, kSha2, 2).ok());
  Reopen();
  absl::StatusOr<JobRecord> got = store_->Get("a", job.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->spec, "spec");
  EXPECT_EQ(got->labels, job.labels);
  EXPECT_EQ(got->model_artifact_sha256, kSha1);
  // The idempotency key survives too.
  JobRecord again;
  again.tenant = "a";
  again.spec = "spec";
  again.request_id = "req";
  absl::StatusOr<std::pair<JobRecord, bool>> r = store_->Create(again);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->second);
  EXPECT_EQ(r->first.id, job.id);
}

TEST_P(JobStoreTest, RefusesNewerSchema) {
  store_.reset();
  Direct(sqlite() ? "PRAGMA user_version = 99"
                  : "UPDATE quantd_schema SET version = 99 WHERE component = "
                    "'jobs'");
  absl::StatusOr<std::unique_ptr<JobStore>> s = JobStore::Open(location_, kKey);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("newer quantd"));
}

TEST_P(JobStoreTest, UnusableLocationsFailWithAReason) {
  if (sqlite()) {
    std::system(
        absl::StrCat("head -c 8192 /dev/urandom > '", dir_, "/garbage.db'")
            .c_str());
    EXPECT_EQ(JobStore::Open(dir_ + "/garbage.db", kKey).status().code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(
        JobStore::Open(dir_ + "/no/such/dir/jobs.db", kKey).status().code(),
        absl::StatusCode::kFailedPrecondition);
    return;
  }
  // Nothing listens on port 1; the password never reaches the message.
  absl::StatusOr<std::unique_ptr<JobStore>> s =
      JobStore::Open("postgresql://quantd:s3cret@127.0.0.1:1/quantd", kKey);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.status().message(),
              HasSubstr("postgresql://quantd:***@127.0.0.1:1/quantd"));
  EXPECT_THAT(s.status().message(), ::testing::Not(HasSubstr("s3cret")));
}

TEST_P(JobStoreTest, KeepsTheLastProgressAndTheReportWithTheJob) {
  JobRecord job = MakeJob("a", "spec");
  const std::string first = "progress-1", second = "progress-2";
  ASSERT_TRUE(store_->AppendEvent(job.id, "e1", &first).ok());
  ASSERT_TRUE(store_->AppendEvent(job.id, "state change").ok());
  ASSERT_TRUE(store_->AppendEvent(job.id, "e2", &second).ok());
  absl::StatusOr<JobRecord> got = store_->Get("a", job.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->progress, "progress-2");
  EXPECT_TRUE(got->report.empty());
  ASSERT_TRUE(
      store_->SetArtifacts(job.id, kSha1, 10, kSha2, 20, "report-bytes").ok());
  Reopen();
  got = store_->Get("a", job.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->report, "report-bytes");
  EXPECT_EQ(got->progress, "progress-2");
  EXPECT_EQ(store_
                ->SetArtifacts(job.id, kSha1, 10, kSha2, 20,
                               std::string(kMaxReportSummaryBytes + 1, 'x'))
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// SQLite's own history: a data folder written by an earlier version.
using SqliteJobStoreTest = JobStoreTest;

// A data folder written by the previous version (schema 1, no summary
// columns) opens, keeps its jobs, and is migrated to schema 3.
TEST_P(SqliteJobStoreTest, MigratesASchemaOneDatabase) {
  store_.reset();
  std::system(absl::StrCat("rm -f '", path_, "'*").c_str());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  const char* v1 =
      "CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT "
      "NULL UNIQUE, tenant TEXT NOT NULL, request_id TEXT NOT NULL, state "
      "INTEGER NOT NULL, priority INTEGER NOT NULL, spec BLOB NOT NULL, "
      "display_name TEXT NOT NULL, labels BLOB NOT NULL, attempts INTEGER NOT "
      "NULL, error TEXT NOT NULL, create_time_us INTEGER NOT NULL, "
      "update_time_us INTEGER NOT NULL, start_time_us INTEGER NOT NULL, "
      "end_time_us INTEGER NOT NULL, model_sha256 TEXT NOT NULL, model_size "
      "INTEGER NOT NULL, report_sha256 TEXT NOT NULL, report_size INTEGER NOT "
      "NULL);"
      "CREATE TABLE events (job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE "
      "CASCADE, sequence INTEGER NOT NULL, time_us INTEGER NOT NULL, payload "
      "BLOB NOT NULL, PRIMARY KEY (job_id, sequence)) WITHOUT ROWID;"
      "INSERT INTO jobs VALUES (1, 'job-0000000000000001', 'a', '', 4, 0, "
      "X'', '', X'', 1, 'it failed', 1, 2, 3, 4, '', 0, '', 0);"
      "PRAGMA user_version = 1;";
  ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  Reopen();
  absl::StatusOr<JobRecord> old = store_->Get("a", "job-0000000000000001");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->state, JobState::kFailed);
  EXPECT_EQ(old->error, "it failed");
  EXPECT_TRUE(old->progress.empty());
  EXPECT_TRUE(old->report.empty());
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 3);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

// PostgreSQL's own: the server restarts (a crash, a failover) while the
// store is open; the next call reconnects and sees every committed job.
using PostgresJobStoreTest = JobStoreTest;

TEST_P(PostgresJobStoreTest, ReconnectsAfterTheServerRestarts) {
  JobRecord job = MakeJob("a", "spec");
  ASSERT_TRUE(store_->AppendEvent(job.id, "e1").ok());
  ASSERT_TRUE(PostgresTestServer::Shared()->Restart().ok());
  absl::StatusOr<JobRecord> got = store_->Get("a", job.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->spec, "spec");
  absl::StatusOr<int64_t> seq = store_->AppendEvent(job.id, "e2");
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_EQ(*seq, 2);
}

INSTANTIATE_TEST_SUITE_P(Backends, JobStoreTest, kJobStoreBackends);
INSTANTIATE_TEST_SUITE_P(Postgres, PostgresJobStoreTest,
                         ::testing::Values("postgres"));
INSTANTIATE_TEST_SUITE_P(Sqlite, SqliteJobStoreTest,
                         ::testing::Values("sqlite"));

}  // namespace
}  // namespace quantd
