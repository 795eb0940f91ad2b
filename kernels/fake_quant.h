// Fake quantization for quantization-aware training: the forward pass
// rounds like the deployed integer model, the backward pass lets gradients
// through.
//
//   forward   q = clamp(round_half_even(x / s) + z, qmin, qmax)
//             y = (q - z) * s
//   backward  dx = dy where qmin <= round(x / s) + z <= qmax, else 0
//             (the straight-through estimator clipped at the range)
//             ds = g * sum over the scale's elements of dy * e, with
//             e = (q - z) - x / s inside the range, (qmin - z) or (qmax - z)
//             where clipped: the learned step size gradient of LSQ (Esser
//             et al. 2020), g = 1 / sqrt(elements per scale * qmax) its
//             gradient scaling.
//
// Parameters are per tensor, per axis or per block, as in quantize.h.
//
//   FakeQuantParams p{.scales = {0.05f}, .qmin = -8, .qmax = 7};
//   Tensor y;
//   FakeQuantForward(x, p, &y);
//   Tensor dx;
//   std::vector<float> dscale;
//   FakeQuantBackward(x, p, dy, &dx, &dscale);   // dscale: LSQ, optional
#ifndef QUANTD_KERNELS_FAKE_QUANT_H_
#define QUANTD_KERNELS_FAKE_QUANT_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "kernels/tensor.h"

namespace quantd {

struct FakeQuantParams {
  std::vector<float> scales;         // positive
  std::vector<int32_t> zero_points;  // empty: all zero
  int64_t axis = -1;                 // -1: per tensor
  int64_t group_size = 0;            // > 0: blocks of this size along axis
  int32_t qmin = -128;
  int32_t qmax = 127;
};

absl::Status FakeQuantForward(const Tensor& x, const FakeQuantParams& p,
                              Tensor* y);

// `dscale` (optional) receives one LSQ gradient per scale.
absl::Status FakeQuantBackward(const Tensor& x, const FakeQuantParams& p,
                               const Tensor& dy, Tensor* dx,
                               std::vector<float>* dscale);

// Plain double-precision loops, for tests.
absl::Status FakeQuantBackwardReference(const Tensor& x,
                                        const FakeQuantParams& p,
                                        const Tensor& dy, Tensor* dx,
                                        std::vector<double>* dscale);

}  // namespace quantd

#endif  // QUANTD_KERNELS_FAKE_QUANT_H_
