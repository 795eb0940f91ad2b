// Orthogonal matrices for rotating a transformer's residual stream
// (QuaRot, SpinQuant): Q spreads any one channel's energy over all d
// channels (|Q_ij| about 1/sqrt(d)), so a handful of outlier channels
// become a flat distribution that per-tensor quantization holds well.
//
// Q also maps the all-ones vector to itself. LayerNormalization subtracts
// each row's mean, i.e. projects onto the complement of the ones vector;
// a rotation that fixes that vector commutes with the projection and
// preserves the norm, so LayerNorm(x Q) = LayerNorm(x) Q without an affine
// part. That is what lets the rotation fold into the weights of
// LayerNorm-based models (GPT-2, BERT, ViT), not only RMSNorm ones.
//
// Construction: A = H_(2^k) (x) C_m for d = 2^k m with m odd, H the
// normalized Walsh-Hadamard matrix and C the orthonormal DCT-II (both have
// a constant first row, so A maps the normalized ones vector to e_0), and
// Q = A^T S A with S a diagonal of random signs, S_00 = +1. For d a power
// of two this is the randomized Hadamard transform QuaRot uses, conjugated
// so that it fixes the ones vector.
//
//   absl::StatusOr<Tensor> q = MeanPreservingRotation(768, /*seed=*/1);
//   // q: float32 [768, 768], Q^T Q = I, Q 1 = 1
#ifndef QUANTD_ENGINE_PASSES_MEAN_PRESERVING_ROTATION_H_
#define QUANTD_ENGINE_PASSES_MEAN_PRESERVING_ROTATION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "kernels/tensor.h"

namespace quantd {

// Largest d accepted: Q is stored dense (d^2 floats, 64 MiB at 4096).
inline constexpr int64_t kMaxRotationDim = 8192;

// Q as float32 [d, d]; deterministic for a given (d, seed).
absl::StatusOr<Tensor> MeanPreservingRotation(int64_t d, uint64_t seed);

// R = S A (S random signs, A = H (x) C as above) as float32 [d, d]: the
// randomized Hadamard transform itself, for rotations that need not fix the
// ones vector (per-head values, head_rotation.h). Every row of a power-of-
// two R is flat (|R_ij| = 1/sqrt(d)), so one outlier channel i of x spreads
// evenly over x R; Q = A^T S A above can be the identity for small d (d = 4
// has 8 sign choices, one of them all +1).
absl::StatusOr<Tensor> RandomizedHadamard(int64_t d, uint64_t seed);

// The rotation's description for reports: "Hadamard 128" or
// "Hadamard 256 x DCT 3".
std::string RotationName(int64_t d);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PASSES_MEAN_PRESERVING_ROTATION_H_
