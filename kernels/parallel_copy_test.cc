#include "kernels/parallel_copy.h"

#include <cstdint>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

// Pieces of every size class (tiny, one large, many medium) land where
// sequential memcpy would put them.
TEST(ParallelCopyTest, MatchesSequentialCopies) {
  for (size_t piece_bytes : {size_t{3}, size_t{70000}, size_t{5} << 20}) {
    const size_t pieces = piece_bytes < 1000 ? 100 : 7;
    std::vector<uint8_t> src(pieces * piece_bytes);
    std::iota(src.begin(), src.end(), 0);
    std::vector<uint8_t> got(src.size() + 16, 0), want(src.size() + 16, 0);
    std::vector<CopyPiece> list;
    // Reversed order: piece i goes to slot pieces - 1 - i.
    for (size_t i = 0; i < pieces; ++i) {
      list.push_back({got.data() + (pieces - 1 - i) * piece_bytes,
                      src.data() + i * piece_bytes, piece_bytes});
      std::copy(src.begin() + i * piece_bytes,
                src.begin() + (i + 1) * piece_bytes,
                want.begin() + (pieces - 1 - i) * piece_bytes);
    }
    ParallelCopy(list);
    EXPECT_EQ(got, want) << "pieces of " << piece_bytes << " bytes";
  }
}

}  // namespace
}  // namespace quantd
