// Reading numpy arrays from .npz (numpy.savez / savez_compressed, zip64
// included, through libzip) and .npy files, whole or streamed in row batches
// so that memory does not grow with a dataset's length.
//
//   absl::StatusOr<std::unique_ptr<ArrayFile>> f =
//   ArrayFile::Open("calib.npz"); absl::StatusOr<std::unique_ptr<ArrayStream>>
//   s = (*f)->OpenStream("input"); while (true) {
//     absl::StatusOr<Tensor> batch = (*s)->ReadRows(32);   // [<=32, ...]
//     if (!batch.ok()) return batch.status();
//     if (batch->dim(0) == 0) break;
//   }
#ifndef QUANTD_ENGINE_DATA_ARRAY_FILE_H_
#define QUANTD_ENGINE_DATA_ARRAY_FILE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/npy.h"
#include "kernels/tensor.h"

namespace quantd {

// One array read along its leading axis (rows).
class ArrayStream {
 public:
  virtual ~ArrayStream() = default;
  virtual const NpyHeader& header() const = 0;
  int64_t rows() const {
    return header().shape.empty() ? 1 : header().shape[0];
  }
  // Reads the next min(max_rows, remaining) rows. At the end, returns a
  // tensor with 0 rows. A 0-d array reads as one row.
  virtual absl::StatusOr<Tensor> ReadRows(int64_t max_rows) = 0;
  // Starts again from the first row.
  virtual absl::Status Rewind() = 0;
};

class ArrayFile {
 public:
  virtual ~ArrayFile() = default;
  // Opens a .npz (zip) or .npy file, chosen by content, not by name.
  static absl::StatusOr<std::unique_ptr<ArrayFile>> Open(
      const std::string& path);

  // Array names: for .npz the member names without ".npy"; for a .npy file
  // the single name "" (or the name given at open).
  virtual std::vector<std::string> names() const = 0;
  bool Contains(const std::string& name) const;
  virtual absl::StatusOr<std::unique_ptr<ArrayStream>> OpenStream(
      const std::string& name) = 0;

  // Reads a whole array, refusing ones larger than `max_elements`.
  absl::StatusOr<Tensor> ReadArray(const std::string& name,
                                   int64_t max_elements = int64_t{1} << 30);
};

// Writes arrays as an uncompressed .npz (for tests and tools). Fails if the
// file cannot be written; never leaves a partial file at `path`.
absl::Status WriteNpz(
    const std::string& path,
    const std::vector<std::pair<std::string, Tensor>>& arrays);

}  // namespace quantd

#endif  // QUANTD_ENGINE_DATA_ARRAY_FILE_H_
