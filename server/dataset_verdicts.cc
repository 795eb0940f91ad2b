#include "server/dataset_verdicts.h"

#include "absl/strings/str_cat.h"
#include "engine/pipeline/job_plan.h"
#include "util/logging.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

bool IsSet(const v1::DataRef& ref) {
  return ref.source_case() != v1::DataRef::SOURCE_NOT_SET;
}

// Whether the job reads the `label` array of the dataset in `field`:
// evaluation reads the evaluation set's (or, without one, the held-back
// part of the calibration set's); QAT reads its training set's (or, without
// one, the calibration set's).
bool LabelsUsed(const v1::JobSpec& spec, const std::string& field) {
  const bool qat = spec.method() == v1::METHOD_QAT;
  if (field == "qat.train_data") return qat;
  if (field == "calibration_data") {
    return !IsSet(spec.evaluation_data()) ||
           (qat && !IsSet(spec.qat().train_data()));
  }
  return true;  // evaluation_data, and any dataset field added later
}

}  // namespace

v1::DatasetCheck ToDatasetCheck(const DatasetScan& scan) {
  v1::DatasetCheck c;
  c.set_ok(scan.ok);
  c.set_reason(scan.reason);
  c.set_samples(scan.samples);
  c.set_has_labels(scan.has_labels);
  c.set_label_min(scan.label_min);
  c.set_label_max(scan.label_max);
  for (const ScannedArray& a : scan.arrays) {
    v1::DatasetCheck::Array* out = c.add_arrays();
    out->set_name(a.name);
    out->set_dtype(a.dtype);
    for (int64_t d : a.shape) out->add_shape(d);
  }
  c.set_scan_version(kDatasetScanVersion);
  return c;
}

absl::StatusOr<v1::DatasetCheck> DatasetVerdicts::Verdict(
    const std::string& sha256) {
  QUANTD_ASSIGN_OR_RETURN(std::optional<v1::DatasetCheck> stored,
                          index_->FindScan(sha256));
  if (stored.has_value() && stored->scan_version() >= kDatasetScanVersion) {
    return *std::move(stored);
  }
  QUANTD_ASSIGN_OR_RETURN(const std::string path, blobs_->PathOf(sha256));
  absl::StatusOr<DatasetScan> scan = ScanDatasetFile(path);
  if (!scan.ok()) {
    // The server's problem (say, the disk), not the data's: no verdict is
    // kept, and the message names the blob, not where it lives.
    return absl::InternalError(absl::StrCat(
        "blob ", sha256, " could not be scanned; try again later"));
  }
  v1::DatasetCheck check = ToDatasetCheck(*scan);
  QUANTD_RETURN_IF_ERROR(index_->RecordScan(sha256, check));
  return check;
}

void DatasetVerdicts::Attach(v1::Blob* blob) {
  absl::StatusOr<v1::DatasetCheck> check = Verdict(blob->sha256());
  if (LogIfError(check.status(), absl::StrCat("scanning the uploaded dataset ",
                                              blob->sha256()))) {
    *blob->mutable_dataset_check() = *std::move(check);
  }
}

absl::Status DatasetVerdicts::CheckJobData(const v1::JobSpec& spec) {
  for (const auto& [field, ref] : SetDataRefs(spec)) {
    if (field == "model" || ref->source_case() != v1::DataRef::kBlobSha256) {
      continue;
    }
    const std::string& digest = ref->blob_sha256();
    QUANTD_ASSIGN_OR_RETURN(v1::DatasetCheck check, Verdict(digest));
    if (!check.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": blob ", digest, ": ", check.reason(),
                       ". Clean the data and upload it again"));
    }
    digest_of_[field] = digest;
    by_field_[field] = std::move(check);
  }
  return absl::OkStatus();
}

absl::Status DatasetVerdicts::CheckLabels(const v1::JobSpec& spec,
                                          int64_t output_classes) const {
  if (output_classes <= 0) return absl::OkStatus();
  for (const auto& [field, check] : by_field_) {
    if (!check.has_labels() || check.samples() == 0 ||
        !LabelsUsed(spec, field)) {
      continue;
    }
    DatasetScan scan;
    scan.has_labels = true;
    scan.samples = check.samples();
    scan.label_min = check.label_min();
    scan.label_max = check.label_max();
    if (absl::Status s = CheckLabelRange(scan, output_classes); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": blob ", digest_of_.at(field), ": ",
                       s.message(), ". Fix the labels (class ids 0 to ",
                       output_classes - 1, ") and upload the dataset again"));
    }
  }
  return absl::OkStatus();
}

}  // namespace quantd
