#include "kernels/parallel_copy.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace quantd {

void ParallelCopy(absl::Span<const CopyPiece> pieces) {
  size_t total = 0;
  for (const CopyPiece& p : pieces) total += p.bytes;
  const int threads = omp_get_max_threads();
  if (total < (size_t{1} << 20) || threads <= 1) {
    for (const CopyPiece& p : pieces) std::memcpy(p.dst, p.src, p.bytes);
    return;
  }
  // Large pieces are cut into parts of about total / (4 * threads) bytes
  // (at least 64 KiB), so that one large piece is shared by the threads;
  // small pieces are copied whole, several to a thread.
  const size_t target = std::max<size_t>(64 << 10, total / (4 * threads));
  std::vector<CopyPiece> split;
  for (const CopyPiece& p : pieces) {
    for (size_t at = 0; at < p.bytes; at += target) {
      const size_t n = std::min(target, p.bytes - at);
      split.push_back({static_cast<char*>(p.dst) + at,
                       static_cast<const char*>(p.src) + at, n});
    }
  }
  const int64_t n = static_cast<int64_t>(split.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(split[i].dst, split[i].src, split[i].bytes);
  }
}

}  // namespace quantd
