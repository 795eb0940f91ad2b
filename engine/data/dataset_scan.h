// One streaming pass over a dataset file (.npz or .npy, as ArrayFile reads
// them) that finds what would make any job using it fail later: a zip
// member whose CRC-32 does not match its bytes, a corrupt or truncated
// member, an unreadable .npy header, NaN or Inf in a floating-point array
// (float64 values too large for float32 count: they are read as float32),
// arrays that disagree on their number of samples, and a `label` array that
// is not 1-D int64/int32 or holds a negative class id. The label range
// (min, max) is recorded so that a caller that knows a model's class count
// can check it without reading the file again.
//
// The service runs it once per uploaded dataset and keeps the verdict with
// the blob (server/dataset_verdicts.h); CreateJob answers from it.
//
// Memory bound: one read buffer of `ScanOptions::chunk_bytes` (1 MiB by
// default), one .npy header (at most kMaxNpyHeaderBytes + 12 bytes), a
// summary of each array (name and at most 8 dims), and libzip's central
// directory (at most kMaxScanMembers entries) and inflate state. Nothing
// grows with the arrays' sizes: every member is read in chunks of at most
// `chunk_bytes`, which `ScanStats` reports.
//
//   absl::StatusOr<DatasetScan> scan = ScanDatasetFile(path);
//   if (!scan.ok()) return scan.status();     // could not read the file
//   if (!scan->ok) refuse(scan->reason);      // the data is bad
#ifndef QUANTD_ENGINE_DATA_DATASET_SCAN_H_
#define QUANTD_ENGINE_DATA_DATASET_SCAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/tensor.h"

namespace quantd {

// The scan refuses archives with more members than this (as ArrayFile).
inline constexpr int64_t kMaxScanMembers = 100000;
// Bump when the scan checks something new, so stored verdicts of older
// scans can be told apart and redone.
inline constexpr int32_t kDatasetScanVersion = 1;

struct ScanOptions {
  // Largest single read. Rounded down to a multiple of 8 (whole elements
  // of every dtype), at least 64.
  int64_t chunk_bytes = int64_t{1} << 20;
};

struct ScannedArray {
  std::string name;   // member name without ".npy"; "" for a .npy file
  std::string dtype;  // as stored: "f32", "f64", "s64", ... (DataTypeName)
  Shape shape;
};

// How the file was read (for tests and figures).
struct ScanStats {
  int64_t bytes_read = 0;    // uncompressed bytes of every member
  int64_t reads = 0;         // read calls
  int64_t largest_read = 0;  // bytes asked of the largest one
};

struct DatasetScan {
  bool ok = true;
  // When !ok: the first problem, naming the array (never a server path)
  // and, for values, the flat index and sample, e.g. "array 'input' has
  // NaN at flat index 1234 (sample 1)".
  std::string reason;
  int64_t samples = 0;  // rows of every array of rank >= 1
  bool has_labels = false;
  int64_t label_min = 0;  // meaningful when has_labels and samples > 0
  int64_t label_max = 0;
  std::vector<ScannedArray> arrays;  // in file order, up to the problem
  ScanStats stats;
};

// Scans the file at `path`. An error status means the file could not be
// opened or read (an I/O problem, worth retrying); anything wrong with its
// contents is a verdict with ok = false.
absl::StatusOr<DatasetScan> ScanDatasetFile(const std::string& path,
                                            const ScanOptions& options = {});

// Whether the scanned labels fit a model output of `classes` classes
// ([0, classes)); InvalidArgument naming the offending class id otherwise.
// OK when the dataset has no labels or `classes` is unknown (<= 0).
absl::Status CheckLabelRange(const DatasetScan& scan, int64_t classes);

}  // namespace quantd

#endif  // QUANTD_ENGINE_DATA_DATASET_SCAN_H_
