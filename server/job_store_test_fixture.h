// The job store tests' fixture: a JobStore in a fresh temporary folder,
// reopened on demand, with helpers to create and list jobs. Include only
// from *_test.cc (job_store_test.cc, job_store_durability_test.cc).
#ifndef QUANTD_SERVER_JOB_STORE_TEST_FIXTURE_H_
#define QUANTD_SERVER_JOB_STORE_TEST_FIXTURE_H_

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

namespace quantd {

inline const std::string kKey = "0123456789abcdef-test-key";
inline const std::string kSha1(64, 'a');
inline const std::string kSha2(64, 'b');

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quantd_jobs_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/jobs.db";
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::system(absl::StrCat("rm -rf '", dir_, "'").c_str());
  }
  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<JobStore>> s = JobStore::Open(path_, kKey);
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

  std::string dir_, path_;
  std::unique_ptr<JobStore> store_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_JOB_STORE_TEST_FIXTURE_H_
