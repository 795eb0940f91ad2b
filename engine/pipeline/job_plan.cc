#include "engine/pipeline/job_plan.h"

#include "absl/strings/str_cat.h"
#include "engine/pipeline/spec_conversion.h"
#include "google/protobuf/descriptor.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

void CollectDataRefs(
    const Message& message, const std::string& prefix,
    std::vector<std::pair<std::string, const v1::DataRef*>>* out) {
  std::vector<const FieldDescriptor*> fields;
  message.GetReflection()->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
        field->is_repeated()) {
      continue;  // JobSpec has no repeated messages; maps hold strings
    }
    const std::string path = prefix.empty()
                                 ? field->name()
                                 : absl::StrCat(prefix, ".", field->name());
    const Message& child = message.GetReflection()->GetMessage(message, field);
    if (field->message_type() == v1::DataRef::descriptor()) {
      out->emplace_back(path, static_cast<const v1::DataRef*>(&child));
    } else {
      CollectDataRefs(child, path, out);
    }
  }
}

// Where each DataRef field's file goes in JobPaths.
std::string* PathSlot(JobPaths& paths, const std::string& field) {
  if (field == "model") return &paths.model;
  if (field == "calibration_data") return &paths.calibration;
  if (field == "evaluation_data") return &paths.evaluation;
  if (field == "qat.train_data") return &paths.train;
  return nullptr;
}

}  // namespace

absl::StatusOr<std::string> LocalPathResolver::Resolve(
    const v1::DataRef& ref, absl::string_view field) const {
  if (ref.source_case() != v1::DataRef::kPath) {
    return absl::InvalidArgumentError(
        absl::StrCat(field,
                     ": quantd run-job reads local files only; give "
                     "`path` (blob digests need the service)"));
  }
  return ref.path();
}

std::vector<std::pair<std::string, const v1::DataRef*>> SetDataRefs(
    const v1::JobSpec& spec) {
  std::vector<std::pair<std::string, const v1::DataRef*>> refs;
  CollectDataRefs(spec, "", &refs);
  return refs;
}

absl::StatusOr<JobPlan> PlanJob(const v1::JobSpec& raw, SpecOrigin origin,
                                const DataRefResolver& resolver) {
  QUANTD_RETURN_IF_ERROR(ValidateJobSpec(raw, origin));
  JobPlan plan;
  plan.spec = WithDefaults(raw);
  plan.origin = origin;
  for (const auto& [field, ref] : SetDataRefs(plan.spec)) {
    if (ref->source_case() == v1::DataRef::SOURCE_NOT_SET) continue;
    std::string* slot = PathSlot(plan.paths, field);
    if (slot == nullptr) {
      // A DataRef field the engine does not read yet: refuse rather than
      // accept a reference nobody checks.
      return absl::InvalidArgumentError(
          absl::StrCat(field, " is not supported by this quantd version"));
    }
    QUANTD_ASSIGN_OR_RETURN(*slot, resolver.Resolve(*ref, field));
  }
  plan.selection = WeightSelectionFromSpec(plan.spec);
  plan.weights = WeightSchemeFromSpec(plan.spec);
  plan.calibration = CalibrationOptionsFromSpec(plan.spec);
  plan.rounding = RoundingConfigFromSpec(plan.spec);
  plan.qat = QatOptionsFromSpec(plan.spec);
  return plan;
}

}  // namespace quantd
