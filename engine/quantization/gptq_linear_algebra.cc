#include "engine/quantization/gptq_linear_algebra.h"

#include <cblas.h>  // types only: the functions come from dlopen
#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

namespace quantd::gptq_la {
namespace {

// OpenBLAS is opened at run time rather than linked: its pthread build
// has 60 KB of thread-local storage, which glibc carves out of every
// thread's stack when the library is linked, and civetweb (the /metrics
// server) starts threads with small fixed stacks; `quantd serve` crashed
// in civetweb's first snprintf. A dlopen()ed library's TLS is allocated
// only in threads that use it.
struct OpenBlas {
  decltype(&cblas_dgemm) dgemm = nullptr;
  decltype(&openblas_set_num_threads) set_num_threads = nullptr;
  // LAPACK's Cholesky factorization and inverse (Fortran convention:
  // column-major, arguments by pointer), blocked and threaded in OpenBLAS.
  void (*dpotrf)(const char*, const int*, double*, const int*, int*) = nullptr;
  void (*dpotri)(const char*, const int*, double*, const int*, int*) = nullptr;
};

const OpenBlas* Library() {
  static const OpenBlas* const library = []() -> const OpenBlas* {
    void* handle = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    OpenBlas lib;
    if (handle != nullptr) {
      lib.dgemm =
          reinterpret_cast<decltype(lib.dgemm)>(dlsym(handle, "cblas_dgemm"));
      lib.set_num_threads = reinterpret_cast<decltype(lib.set_num_threads)>(
          dlsym(handle, "openblas_set_num_threads"));
      lib.dpotrf =
          reinterpret_cast<decltype(lib.dpotrf)>(dlsym(handle, "dpotrf_"));
      lib.dpotri =
          reinterpret_cast<decltype(lib.dpotri)>(dlsym(handle, "dpotri_"));
    }
    if (lib.dgemm == nullptr || lib.set_num_threads == nullptr ||
        lib.dpotrf == nullptr || lib.dpotri == nullptr) {
      return nullptr;  // GPTQ's layer notes say so (weight_rounding.cc)
    }
    return new OpenBlas(lib);
  }();
  return library;
}

// OpenBLAS sizes its own thread pool from the cores it sees; use as many
// threads as the job's OpenMP setting (quantd --threads, OMP_NUM_THREADS)
// so that a worker does not take more cores than it was given.
const OpenBlas* ThreadedLibrary() {
  const OpenBlas* lib = Library();
  if (lib != nullptr) lib->set_num_threads(omp_get_max_threads());
  return lib;
}

// A row-major lower triangle is a column-major upper one, so LAPACK's 'U'
// works on the row-major lower triangle. False unless positive definite.
bool CholeskyLowerRowMajor(const OpenBlas& lib, std::vector<double>& a,
                           int64_t k) {
  const int n = static_cast<int>(k);
  int info = 0;
  lib.dpotrf("U", &n, a.data(), &n, &info);
  return info == 0;
}

// Rows processed together by the reference's triangular loops: each row of
// the already finished part is then read from memory once per block.
constexpr int64_t kRowBlock = 16;

double Dot(const double* a, const double* b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // independent chains pipeline
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

// In place: the lower triangle of row-major `a` (k x k) becomes L with
// A = L L^T; the strict upper triangle is zeroed.
bool CholeskyLowerReference(std::vector<double>& a, int64_t k) {
  for (int64_t b0 = 0; b0 < k; b0 += kRowBlock) {
    const int64_t b1 = std::min(b0 + kRowBlock, k);
    for (int64_t j = 0; j < b1; ++j) {  // column j of the block's rows
      const double* lj = &a[j * k];
      for (int64_t i = std::max(b0, j); i < b1; ++i) {
        double* li = &a[i * k];
        const double v = li[j] - Dot(li, lj, j);
        if (i == j) {
          if (!(v > 0) || !std::isfinite(v)) return false;
          li[j] = std::sqrt(v);
        } else {
          li[j] = v / lj[j];
        }
      }
    }
  }
  for (int64_t i = 0; i < k; ++i)
    std::fill(&a[i * k + i + 1], &a[(i + 1) * k], 0.0);
  return true;
}

// Row-major lower M (H^-1 = M M^T) -> U = M^T, upper, zeros below.
void TransposeLowerToUpper(std::vector<double>& h, int64_t k) {
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = i + 1; j < k; ++j) {
      h[i * k + j] = h[j * k + i];
      h[j * k + i] = 0;
    }
  }
}

}  // namespace

bool OpenBlasAvailable() { return Library() != nullptr; }

bool InverseHessianFactor(std::vector<double>& h, int64_t k) {
  if (k == 0) return true;
  const OpenBlas* lib = ThreadedLibrary();
  if (lib == nullptr) return InverseHessianFactorReference(h, k);
  if (!CholeskyLowerRowMajor(*lib, h, k)) return false;
  const int n = static_cast<int>(k);
  int info = 0;
  lib->dpotri("U", &n, h.data(), &n, &info);  // H^-1, row-major lower
  if (info != 0) return false;
  if (!CholeskyLowerRowMajor(*lib, h, k)) return false;  // H^-1 = M M^T
  for (double v : h) {
    if (!std::isfinite(v)) return false;
  }
  TransposeLowerToUpper(h, k);
  return true;
}

bool InverseHessianFactorReference(std::vector<double>& h, int64_t k) {
  if (!CholeskyLowerReference(h, k)) return false;
  // X = L^-1 (lower), row by row: X[i] = (e_i - sum_{c<i} L[i][c] X[c]) /
  // L[i][i].
  std::vector<double> x(k * k, 0.0);
  for (int64_t b0 = 0; b0 < k; b0 += kRowBlock) {
    const int64_t b1 = std::min(b0 + kRowBlock, k);
    for (int64_t c = 0; c < b1; ++c) {
      const double* xc = &x[c * k];
      for (int64_t i = std::max(b0, c); i < b1; ++i) {
        double* xi = &x[i * k];
        if (i == c) {
          const double inv = 1.0 / h[i * k + i];
          for (int64_t t = 0; t < i; ++t) xi[t] *= inv;
          xi[i] = inv;
          continue;
        }
        const double l = h[i * k + c];
        for (int64_t t = 0; t <= c; ++t) xi[t] -= l * xc[t];
      }
    }
  }
  // H^-1 = X^T X; lower triangle, row i = sum_{c>=i} X[c][i] X[c][0..i].
  std::fill(h.begin(), h.end(), 0.0);
  for (int64_t b0 = 0; b0 < k; b0 += kRowBlock) {
    const int64_t b1 = std::min(b0 + kRowBlock, k);
    for (int64_t c = b0; c < k; ++c) {
      const double* xc = &x[c * k];
      for (int64_t i = b0; i < b1 && i <= c; ++i) {
        double* hi = &h[i * k];
        const double f = xc[i];
        for (int64_t t = 0; t <= i; ++t) hi[t] += f * xc[t];
      }
    }
  }
  if (!CholeskyLowerReference(h, k)) return false;  // H^-1 = M M^T
  TransposeLowerToUpper(h, k);
  return true;
}

void SubtractProduct(double* w, int64_t ldw, const double* e, int64_t rows,
                     int64_t nb, const double* u, int64_t ldu, int64_t cols) {
  if (rows == 0 || nb == 0 || cols == 0) return;
  const OpenBlas* lib = ThreadedLibrary();
  if (lib == nullptr) {
    SubtractProductReference(w, ldw, e, rows, nb, u, ldu, cols);
    return;
  }
  lib->dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
             static_cast<int>(cols), static_cast<int>(nb), -1.0, e,
             static_cast<int>(nb), u, static_cast<int>(ldu), 1.0, w,
             static_cast<int>(ldw));
}

void SubtractProductReference(double* w, int64_t ldw, const double* e,
                              int64_t rows, int64_t nb, const double* u,
                              int64_t ldu, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    double* wr = &w[r * ldw];
    for (int64_t t = 0; t < nb; ++t) {
      const double f = e[r * nb + t];
      const double* ut = &u[t * ldu];
      for (int64_t j = 0; j < cols; ++j) wr[j] -= f * ut[j];
    }
  }
}

double QuadraticFormSum(const double* d, int64_t rows,
                        const std::vector<double>& h, int64_t k) {
  if (rows == 0 || k == 0) return 0;
  const OpenBlas* lib = ThreadedLibrary();
  if (lib == nullptr) return QuadraticFormSumReference(d, rows, h, k);
  std::vector<double> dh(rows * k);  // D H
  lib->dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
             static_cast<int>(k), static_cast<int>(k), 1.0, d,
             static_cast<int>(k), h.data(), static_cast<int>(k), 0.0, dh.data(),
             static_cast<int>(k));
  return Dot(d, dh.data(), rows * k);
}

double QuadraticFormSumReference(const double* d, int64_t rows,
                                 const std::vector<double>& h, int64_t k) {
  double sum = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const double* dr = &d[r * k];
    for (int64_t i = 0; i < k; ++i) {
      if (dr[i] != 0) sum += dr[i] * Dot(&h[i * k], dr, k);
    }
  }
  return sum;
}

}  // namespace quantd::gptq_la
