// The .npy format (numpy.save): a magic string, a header dict giving dtype,
// memory order and shape, then the raw array. This file parses and writes
// headers; engine/npz_reader.h streams arrays out of .npy and .npz files.
//
//   absl::StatusOr<NpyHeader> h = ParseNpyHeader(first_bytes);
//   // h->dtype, h->shape, h->header_bytes (where the data starts)
#ifndef QUANTD_ENGINE_DATA_NPY_H_
#define QUANTD_ENGINE_DATA_NPY_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/tensor.h"

namespace quantd {

struct NpyHeader {
  // Element type as stored in memory once read; float64 files are converted
  // to float32 while reading (stored_float64 says so).
  DataType dtype = DataType::kUndefined;
  bool stored_float64 = false;
  Shape shape;
  int64_t header_bytes = 0;  // offset of the first data byte
  // Size of one element on disk.
  int64_t disk_element_size() const {
    return stored_float64 ? 8 : static_cast<int64_t>(DataTypeSize(dtype));
  }
};

// The longest header quantd reads; numpy writes a few hundred bytes.
inline constexpr int64_t kMaxNpyHeaderBytes = 64 * 1024;
// The largest array data quantd reads (256 TiB): far beyond any real file,
// and small enough that header and data sizes add up in int64 without
// overflowing.
inline constexpr int64_t kMaxNpyDataBytes = int64_t{1} << 48;

// `prefix` holds at least the first bytes of the file (10, or the whole
// header once its length is known). Returns kOutOfRange when it needs more
// bytes, with the total required in `*needed`.
absl::StatusOr<NpyHeader> ParseNpyHeader(absl::string_view prefix,
                                         int64_t* needed);

// Serializes a tensor as a version 1.0 .npy file.
std::string SerializeNpy(const Tensor& tensor);

}  // namespace quantd

#endif  // QUANTD_ENGINE_DATA_NPY_H_
