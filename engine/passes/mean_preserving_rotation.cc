#include "engine/passes/mean_preserving_rotation.h"

#include <cmath>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// d = 2^k * m with m odd.
void SplitPowerOfTwo(int64_t d, int64_t* power_of_two, int64_t* odd) {
  *power_of_two = 1;
  while (d % 2 == 0) {
    d /= 2;
    *power_of_two *= 2;
  }
  *odd = d;
}

// Normalized Sylvester Hadamard matrix, row-major n x n (n a power of 2).
std::vector<double> Hadamard(int64_t n) {
  std::vector<double> h(n * n);
  const double scale = 1.0 / std::sqrt(static_cast<double>(n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      // (-1)^(popcount(i & j)): Sylvester's recursive construction.
      h[i * n + j] = (__builtin_popcountll(i & j) % 2 ? -scale : scale);
    }
  }
  return h;
}

// Orthonormal DCT-II, row-major m x m; row 0 is constant.
std::vector<double> Dct(int64_t m) {
  std::vector<double> c(m * m);
  for (int64_t k = 0; k < m; ++k) {
    const double norm = std::sqrt((k == 0 ? 1.0 : 2.0) / m);
    for (int64_t n = 0; n < m; ++n) {
      c[k * m + n] = norm * std::cos(M_PI * (2 * n + 1) * k / (2.0 * m));
    }
  }
  return c;
}

}  // namespace

std::string RotationName(int64_t d) {
  int64_t p = 0, m = 0;
  SplitPowerOfTwo(d, &p, &m);
  return m == 1 ? absl::StrCat("Hadamard ", p)
                : absl::StrCat("Hadamard ", p, " x DCT ", m);
}

// A = H (x) C for d = 2^k m, m odd: A[i*m + a][j*m + b] = H[i][j] C[a][b].
static absl::StatusOr<std::vector<double>> KroneckerBasis(int64_t d) {
  if (d < 2 || d > kMaxRotationDim) {
    return absl::InvalidArgumentError(absl::StrCat("a rotation of dimension ",
                                                   d, " is out of range [2, ",
                                                   kMaxRotationDim, "]"));
  }
  int64_t p = 0, m = 0;
  SplitPowerOfTwo(d, &p, &m);
  const std::vector<double> h = Hadamard(p);
  const std::vector<double> c = Dct(m);
  std::vector<double> a(d * d);
  for (int64_t i = 0; i < p; ++i) {
    for (int64_t j = 0; j < p; ++j) {
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t s = 0; s < m; ++s) {
          a[(i * m + r) * d + j * m + s] = h[i * p + j] * c[r * m + s];
        }
      }
    }
  }
  return a;
}

absl::StatusOr<Tensor> RandomizedHadamard(int64_t d, uint64_t seed) {
  QUANTD_ASSIGN_OR_RETURN(const std::vector<double> a, KroneckerBasis(d));
  std::mt19937_64 rng(seed);
  Tensor out(DataType::kFloat32, {d, d});
  float* o = out.mutable_data<float>();
  for (int64_t i = 0; i < d; ++i) {
    const double sign = (rng() & 1) ? -1.0 : 1.0;
    for (int64_t j = 0; j < d; ++j) {
      o[i * d + j] = static_cast<float>(sign * a[i * d + j]);
    }
  }
  return out;
}

absl::StatusOr<Tensor> MeanPreservingRotation(int64_t d, uint64_t seed) {
  QUANTD_ASSIGN_OR_RETURN(const std::vector<double> a, KroneckerBasis(d));
  std::mt19937_64 rng(seed);
  std::vector<double> signs(d, 1.0);
  for (int64_t k = 1; k < d; ++k) signs[k] = (rng() & 1) ? -1.0 : 1.0;
  // Q = A^T S A, accumulated row of A by row of A.
  std::vector<double> q(d * d, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < d; ++i) {
    double* qi = &q[i * d];
    for (int64_t k = 0; k < d; ++k) {
      const double f = a[k * d + i] * signs[k];
      const double* ak = &a[k * d];
      for (int64_t j = 0; j < d; ++j) qi[j] += f * ak[j];
    }
  }
  Tensor out(DataType::kFloat32, {d, d});
  float* o = out.mutable_data<float>();
  for (int64_t i = 0; i < d * d; ++i) o[i] = static_cast<float>(q[i]);
  return out;
}

}  // namespace quantd
