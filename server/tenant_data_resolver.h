// The service's DataRefResolver: a DataRef resolves to a blob's file only
// when it names, by digest, a blob the calling tenant uploaded. CreateJob
// and the job runner both resolve through it (via PlanJob), so every DataRef
// in a spec — qat.train_data and any field added later — is ownership-checked
// in the same place.
//
//   TenantDataResolver resolver(blobs, index, "tenant-a");
//   absl::StatusOr<JobPlan> plan =
//       PlanJob(spec, SpecOrigin::kService, resolver);
#ifndef QUANTD_SERVER_TENANT_DATA_RESOLVER_H_
#define QUANTD_SERVER_TENANT_DATA_RESOLVER_H_

#include <string>
#include <utility>
#include <vector>

#include "engine/pipeline/job_plan.h"
#include "server/blob_index.h"
#include "server/blob_store.h"

namespace quantd {

class TenantDataResolver : public DataRefResolver {
 public:
  TenantDataResolver(const BlobStore& blobs, BlobIndex& index,
                     std::string tenant)
      : blobs_(blobs), index_(index), tenant_(std::move(tenant)) {}

  // InvalidArgument naming the field when the ref is not a digest, or when
  // the tenant has no such blob: another tenant's digest looks exactly like
  // a digest nobody uploaded.
  absl::StatusOr<std::string> Resolve(const v1::DataRef& ref,
                                      absl::string_view field) const override;

  // `message` with the server's file names replaced: each resolved blob's
  // path by "blob <digest>", any other path under the data folder by
  // "<data-dir>/...". Engine errors name the files they read; a tenant
  // should learn which of its blobs failed, not where the server keeps it.
  std::string Redact(absl::string_view message) const;

 private:
  mutable std::vector<std::pair<std::string, std::string>> shown_;
  const BlobStore& blobs_;
  BlobIndex& index_;
  const std::string tenant_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_TENANT_DATA_RESOLVER_H_
