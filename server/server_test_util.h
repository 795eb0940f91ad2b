// Helpers shared by server/ tests (include only from *_test.cc).
//
//   std::string bytes = server_test::ReadTestdata("fmnist_mlp/model.onnx");
#ifndef QUANTD_SERVER_SERVER_TEST_UTIL_H_
#define QUANTD_SERVER_SERVER_TEST_UTIL_H_

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/blob_index.h"
#include "server/blob_store.h"
#include "server/service_core.h"

namespace quantd {
namespace server_test {

// The bytes of a file under testdata/.
inline std::string ReadTestdata(const std::string& rel) {
  std::ifstream f(absl::StrCat(QUANTD_TESTDATA_DIR, "/", rel),
                  std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Stores `bytes` and records `tenant` as their uploader, as a finished
// upload does; returns the digest.
inline std::string PutOwned(BlobStore& blobs, BlobIndex& index,
                            const std::string& tenant,
                            const std::string& bytes) {
  absl::StatusOr<std::string> digest = blobs.Put(bytes);
  if (!digest.ok()) return "";
  v1::Blob blob;
  blob.set_sha256(*digest);
  blob.set_size(static_cast<int64_t>(bytes.size()));
  if (!index.Record(tenant, blob).ok()) return "";
  return *digest;
}

// A ServiceCore over real stores (SQLite, a blob folder) in a temporary
// folder, with a scheduler that is not started; all removed on destruction.
struct TestService {
  explicit TestService(const ServiceLimits& limits = {},
                       SchedulerOptions scheduler_options = {},
                       const TenantS3* tenant_s3 = nullptr) {
    scheduler_options.runner.tenant_s3 = tenant_s3;
    char tmpl[] = "/tmp/quantd_service_XXXXXX";
    root = mkdtemp(tmpl);
    blobs = std::move(*BlobStore::Open(root));
    jobs = std::move(*JobStore::Open(root + "/jobs.db", "0123456789abcdef"));
    index = std::move(*BlobIndex::Open(root + "/blobs.db"));
    scheduler = std::make_unique<Scheduler>(jobs.get(), blobs.get(),
                                            index.get(), scheduler_options);
    core = std::make_unique<ServiceCore>(jobs.get(), blobs.get(), index.get(),
                                         scheduler.get(), limits, tenant_s3);
  }
  ~TestService() {
    core.reset();
    scheduler.reset();  // joins the workers before the stores go
    std::system(absl::StrCat("rm -rf '", root, "'").c_str());
  }

  std::string root;
  std::unique_ptr<BlobStore> blobs;
  std::unique_ptr<JobStore> jobs;
  std::unique_ptr<BlobIndex> index;
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<ServiceCore> core;
};

}  // namespace server_test
}  // namespace quantd

#endif  // QUANTD_SERVER_SERVER_TEST_UTIL_H_
