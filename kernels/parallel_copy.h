// Copies of many bytes spread over the kernel threads. Gather and Concat on
// large tensors (a decoder's key/value cache: ~150 MB a step at
// GPT-2 size, batch 8) are memcpy-bound, and one thread reaches only part of
// the memory bandwidth; ONNX Runtime splits such copies too.
//
//   std::vector<CopyPiece> pieces = {{dst, src, bytes}, ...};
//   ParallelCopy(pieces);  // same result as memcpy of each piece in turn
#ifndef QUANTD_KERNELS_PARALLEL_COPY_H_
#define QUANTD_KERNELS_PARALLEL_COPY_H_

#include <cstddef>

#include "absl/types/span.h"

namespace quantd {

struct CopyPiece {
  void* dst;
  const void* src;
  size_t bytes;
};

// Pieces must not overlap each other's destinations or their sources'
// destinations. Below 1 MiB in all, copies on the calling thread.
void ParallelCopy(absl::Span<const CopyPiece> pieces);

}  // namespace quantd

#endif  // QUANTD_KERNELS_PARALLEL_COPY_H_
