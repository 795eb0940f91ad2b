// The dense double-precision linear algebra of GPTQ, on OpenBLAS (LAPACK's
// Cholesky and inverse, BLAS's GEMM), with the scalar loops they replaced
// kept beside them as references for the tests. OpenBLAS is dlopen()ed on
// first use; without it (libopenblas0 not installed) every function runs
// its reference (same results, several times slower) and GPTQ's layer
// notes in the report say so.
//
// GPTQ's cost is O(K^3) per layer for the inverse-Hessian factor and
// O(N K^2) for the error propagation and the proxy loss; on GPT-2-small's
// 49 layers the scalar loops took 130 s (issue 13), blocked and threaded
// BLAS takes a fraction of that. Double precision throughout, as before:
// the results agree with the references to rounding (the tests check
// 1e-9 relative), so GPTQ's output does not depend on which is used.
//
// All matrices are row-major.
//
//   std::vector<double> h = ...;  // K x K, symmetric positive definite
//   if (!gptq_la::InverseHessianFactor(h, k)) { /* not SPD */ }
//   // h is now U, upper triangular, with H^-1 = U^T U.
#ifndef QUANTD_ENGINE_QUANTIZATION_GPTQ_LINEAR_ALGEBRA_H_
#define QUANTD_ENGINE_QUANTIZATION_GPTQ_LINEAR_ALGEBRA_H_

#include <cstdint>
#include <vector>

namespace quantd::gptq_la {

// The upper Cholesky factor U of H^-1 (H^-1 = U^T U), computed as GPTQ's
// reference does: L = chol(H), H^-1 from L, U = chol(H^-1, upper). Row i of
// U holds how rounding column i moves the columns after it. `h` (k x k) is
// overwritten; false if H is not (numerically) positive definite.
bool InverseHessianFactor(std::vector<double>& h, int64_t k);
// Whether libopenblas.so.0 was found (the fast paths run).
bool OpenBlasAvailable();
bool InverseHessianFactorReference(std::vector<double>& h, int64_t k);

// w[r][col0 + j] -= sum_t e[r][t] * u[t][j] for r < rows, j < cols, t < nb:
// GPTQ's lazy block update, W[:, i2:] -= Err U[i1:i2, i2:]. `w` has row
// stride ldw, `e` is rows x nb (dense), `u` has row stride ldu and points at
// U[i1][i2].
void SubtractProduct(double* w, int64_t ldw, const double* e, int64_t rows,
                     int64_t nb, const double* u, int64_t ldu, int64_t cols);
void SubtractProductReference(double* w, int64_t ldw, const double* e,
                              int64_t rows, int64_t nb, const double* u,
                              int64_t ldu, int64_t cols);

// sum over rows r of d_r^T H d_r for d (rows x k, dense) and symmetric h
// (k x k): tr(D H D^T), GPTQ's proxy loss for D = W - Q. Takes rows * k
// doubles of scratch: callers pass D a bounded number of rows at a time.
double QuadraticFormSum(const double* d, int64_t rows,
                        const std::vector<double>& h, int64_t k);
double QuadraticFormSumReference(const double* d, int64_t rows,
                                 const std::vector<double>& h, int64_t k);

}  // namespace quantd::gptq_la

#endif  // QUANTD_ENGINE_QUANTIZATION_GPTQ_LINEAR_ALGEBRA_H_
