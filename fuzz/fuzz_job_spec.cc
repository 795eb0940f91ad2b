// Bytes -> JobSpec JSON (ParseJobSpecJson, which run-job and quantctl's spec
// files go through) -> PlanJob for both origins, with a resolver that hands
// out fake paths or refuses, as the service's tenant resolver does. A spec
// that parses must also survive the JSON round trip the job store relies
// on.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "engine/pipeline/job_plan.h"
#include "engine/pipeline/job_spec.h"
#include "fuzz/fuzz_util.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace quantd {
namespace {

// Refuses refs whose value starts with 'x' (a blob another tenant owns),
// maps every other ref to a path that does not exist: PlanJob must only
// carry it, never open it.
class FakeResolver : public DataRefResolver {
 public:
  absl::StatusOr<std::string> Resolve(const v1::DataRef& ref,
                                      absl::string_view field) const override {
    const std::string& value =
        ref.has_blob_sha256() ? ref.blob_sha256() : ref.path();
    if (!value.empty() && value[0] == 'x') {
      return absl::NotFoundError(absl::StrCat(field, ": no such blob"));
    }
    return absl::StrCat("/nonexistent/quantd_fuzz/", field);
  }
};

std::string Canonical(const v1::JobSpec& spec) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  if (!spec.SerializeToCodedStream(&coded)) std::abort();
  return out;
}

void CheckRoundTrip(const v1::JobSpec& spec) {
  absl::StatusOr<std::string> json = JobSpecToJson(spec);
  if (!json.ok()) return;
  absl::StatusOr<v1::JobSpec> again = ParseJobSpecJson(*json);
  if (!again.ok() && json->size() <= kMaxJobSpecBytes) std::abort();
  if (again.ok() && Canonical(*again) != Canonical(spec)) std::abort();
}

}  // namespace
}  // namespace quantd

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  quantd::fuzz::QuietLogging((*argv)[0]);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view json(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<quantd::v1::JobSpec> spec = quantd::ParseJobSpecJson(json);
  if (!spec.ok()) return 0;
  quantd::CheckRoundTrip(*spec);
  const quantd::FakeResolver resolver;
  for (quantd::SpecOrigin origin :
       {quantd::SpecOrigin::kBatch, quantd::SpecOrigin::kService}) {
    absl::StatusOr<quantd::JobPlan> plan =
        quantd::PlanJob(*spec, origin, resolver);
    // A plan that PlanJob accepts holds a spec that validates as it is.
    if (plan.ok() && !quantd::ValidateJobSpec(plan->spec, origin).ok()) {
      std::abort();
    }
  }
  return 0;
}
