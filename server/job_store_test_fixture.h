// The job store tests' fixture, parameterized by backend: "sqlite" (a file
// in a fresh temporary folder) or "postgres" (a fresh database on a real
// PostgreSQL server the test binary starts, postgres_test_server.h). The
// store is reopened on demand; helpers create and list jobs. Include only
// from *_test.cc (job_store_test.cc, job_store_durability_test.cc), which
// instantiate it with kJobStoreBackends.
#ifndef QUANTD_SERVER_JOB_STORE_TEST_FIXTURE_H_
#define QUANTD_SERVER_JOB_STORE_TEST_FIXTURE_H_

#include <sqlite3.h>
#include <stdlib.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/job_store.h"
#include "server/postgres_db.h"
#include "server/postgres_test_server.h"

namespace quantd {

inline const std::string kKey = "0123456789abcdef-test-key";
inline const std::string kSha1(64, 'a');
inline const std::string kSha2(64, 'b');

inline const auto kJobStoreBackends = ::testing::Values("sqlite", "postgres");

class JobStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quantd_jobs_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/jobs.db";
    location_ = path_;
    if (!sqlite()) {
      PostgresTestServer* server = PostgresTestServer::Shared();
      ASSERT_NE(server, nullptr) << "PostgreSQL did not start (see stderr)";
      absl::StatusOr<std::string> url = server->CreateDatabase();
      ASSERT_TRUE(url.ok()) << url.status();
      location_ = *url;
    }
    Reopen();
  }
  bool sqlite() const { return GetParam() == "sqlite"; }
  void TearDown() override {
    store_.reset();
    std::system(absl::StrCat("rm -rf '", dir_, "'").c_str());
  }
  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<JobStore>> s =
        JobStore::Open(location_, kKey);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  JobRecord MakeJob(const std::string& tenant, const std::string& spec,
                    const std::string& request_id = "", int32_t priority = 0) {
    JobRecord job;
    job.tenant = tenant;
    job.spec = spec;
    job.request_id = request_id;
    job.priority = priority;
    job.display_name = "resnet50 int8";
    job.labels = {{"model", "resnet50"}, {"team", "vision"}};
    absl::StatusOr<std::pair<JobRecord, bool>> r = store_->Create(job);
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r.ok() && r->second);
    return r.ok() ? r->first : JobRecord{};
  }
  // Every job of `tenant` page by page (at most 20 pages).
  std::vector<std::string> ListAll(const std::string& tenant,
                                   std::optional<JobState> state, int size) {
    std::vector<std::string> ids;
    std::string token;
    for (int i = 0; i < 20; ++i) {
      absl::StatusOr<JobPage> page = store_->List(tenant, state, size, token);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      EXPECT_LE(page->jobs.size(), size == 0 ? 50 : size);
      for (const JobRecord& j : page->jobs) ids.push_back(j.id);
      token = page->next_page_token;
      if (token.empty()) break;
    }
    return ids;
  }

  // Runs `sql` on the backend's database directly (past the store), and
  // returns the first column of the first row as an integer (0 if none).
  int64_t Direct(const std::string& sql) {
    int64_t value = 0;
    if (sqlite()) {
      sqlite3* db = nullptr;
      EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
      sqlite3_stmt* st = nullptr;
      EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr),
                SQLITE_OK);
      if (st != nullptr && sqlite3_step(st) == SQLITE_ROW &&
          sqlite3_column_count(st) > 0) {
        value = sqlite3_column_int64(st, 0);
      }
      sqlite3_finalize(st);
      sqlite3_close(db);
      return value;
    }
    absl::StatusOr<std::unique_ptr<PostgresDb>> db =
        PostgresDb::Connect(location_, "test");
    EXPECT_TRUE(db.ok()) << db.status();
    if (!db.ok()) return 0;
    absl::StatusOr<PgResult> r = (*db)->Query(sql.c_str());
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok() && r->rows() > 0) value = r->Int(0, 0);
    return value;
  }

  std::string dir_, path_;
  std::string location_;  // the SQLite path or the PostgreSQL URL
  std::unique_ptr<JobStore> store_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_JOB_STORE_TEST_FIXTURE_H_
