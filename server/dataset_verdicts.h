// The upload scan's verdicts on dataset blobs (engine/data/dataset_scan.h),
// kept in the blob index per digest: a dataset is scanned once, when its
// upload commits, and CreateJob answers from the stored verdict. A dataset
// uploaded before the server scanned uploads (or scanned by an older scan
// version) is scanned at its first CreateJob, and that verdict is kept.
//
//   DatasetVerdicts verdicts(&blobs, &index);
//   v1::Blob blob = ...;                       // a committed DATASET upload
//   verdicts.Attach(&blob);                    // scans, records, fills
//   QUANTD_RETURN_IF_ERROR(verdicts.CheckJobData(plan.spec));   // CreateJob
//   ... CheckJobInputs(plan, &facts) ...
//   QUANTD_RETURN_IF_ERROR(
//       verdicts.CheckLabels(plan.spec, facts.output_classes));
#ifndef QUANTD_SERVER_DATASET_VERDICTS_H_
#define QUANTD_SERVER_DATASET_VERDICTS_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "engine/data/dataset_scan.h"
#include "quantd/v1/job_spec.pb.h"
#include "quantd/v1/service.pb.h"
#include "server/blob_index.h"
#include "server/blob_store.h"

namespace quantd {

// The message form of a scan, as stored and as Blob.dataset_check shows it.
v1::DatasetCheck ToDatasetCheck(const DatasetScan& scan);

class DatasetVerdicts {
 public:
  DatasetVerdicts(const BlobStore* blobs, BlobIndex* index)
      : blobs_(blobs), index_(index) {}

  // The verdict on blob `sha256`: the stored one if the current scan
  // version made it, else a fresh scan of the blob's file, recorded.
  // Errors are the server's (the file or the index could not be read),
  // never the data's.
  absl::StatusOr<v1::DatasetCheck> Verdict(const std::string& sha256);

  // After a DATASET upload committed: scans it and sets
  // blob->dataset_check. The upload stands whatever the verdict; if the scan
  // cannot run, that is logged and the first CreateJob using the blob scans
  // it.
  void Attach(v1::Blob* blob);

  // InvalidArgument for the first dataset DataRef of `spec` (every set
  // DataRef but `model`, by its field path) whose verdict is bad:
  // "<field>: blob <digest>: <reason>; clean the data and upload it again".
  // Remembers the verdicts for CheckLabels.
  absl::Status CheckJobData(const v1::JobSpec& spec);

  // After CheckJobData: InvalidArgument when a dataset whose labels the job
  // uses (evaluation, QAT training; the calibration set when it stands in
  // for either) has a class id outside [0, output_classes). No check when
  // output_classes <= 0 (the model's class count is not static).
  absl::Status CheckLabels(const v1::JobSpec& spec,
                           int64_t output_classes) const;

 private:
  const BlobStore* blobs_;
  BlobIndex* index_;
  std::map<std::string, v1::DatasetCheck> by_field_;  // from CheckJobData
  std::map<std::string, std::string> digest_of_;      // field -> digest
};

}  // namespace quantd

#endif  // QUANTD_SERVER_DATASET_VERDICTS_H_
