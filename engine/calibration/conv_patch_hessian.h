// GPTQ's Hessian for a Conv layer. A Conv is a matrix product of its weights,
// flattened to [M, C/g * k...], with the im2col patches of its input: every
// output position reads one patch p of C/g * kh * kw input values (zeros
// where the window hangs over the padding). A weight change D then changes
// the output by D p at each position, so the output's squared error over the
// calibration data is tr(D H D^T) with H = sum over patches of p p^T -- the
// same form as a MatMul's, with patches for rows. Grouped and depthwise convs
// have one H per group, each over that group's input channels.
//
//   ConvPatchHessian h;
//   for (each calibration batch x [N, C, H, W])
//     QUANTD_RETURN_IF_ERROR(
//         AccumulateConvPatchHessian(x, params, w.shape(), h));
//   // h.hessian: [groups, K, K], K = h.patch_size; h.patches rows per group.
//
// Memory: groups * K^2 floats, plus an im2col buffer of at most
// kConvPatchRowsPerSlice x K floats (two copies); never the dataset.
#ifndef QUANTD_ENGINE_CALIBRATION_CONV_PATCH_HESSIAN_H_
#define QUANTD_ENGINE_CALIBRATION_CONV_PATCH_HESSIAN_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "kernels/convolution.h"
#include "kernels/tensor.h"

namespace quantd {

// A layer's Hessians (groups x K^2 floats) above this, 256 MB, are not
// gathered; such layers keep round-to-nearest. The bound is on the product:
// a Conv's weights hold groups x K floats, its Hessians K times more, so a
// 130 MB model could otherwise ask for a terabyte.
inline constexpr int64_t kMaxLayerHessianFloats = int64_t{8192} * 8192;

// The floats a Conv's patch Hessians take, groups x K^2 for weights of
// `weight_shape` ([M, C/g, k...]); kMaxLayerHessianFloats + 1 for anything
// larger (so that huge shapes cannot overflow), -1 unless a 1-D or 2-D Conv.
int64_t ConvPatchHessianFloats(const Shape& weight_shape, int64_t groups);

// Whether a Conv gets a patch Hessian: 1-D and 2-D Convs within
// kMaxLayerHessianFloats.
bool ConvPatchHessianSupported(const Shape& weight_shape, int64_t groups);
// Output positions im2col'ed at once, to bound the buffer on big images.
inline constexpr int64_t kConvPatchRowsPerSlice = 4096;

struct ConvPatchHessian {
  int64_t groups = 0;          // 0 until the first batch
  int64_t patch_size = 0;      // K = C/groups * kh * kw
  int64_t patches = 0;         // patches summed, per group
  std::vector<float> hessian;  // [groups, K, K], row-major

  const float* Group(int64_t g) const {
    return hessian.data() + g * patch_size * patch_size;
  }
};

// Adds the patches of `x` ([N, C, H, W], or [N, C, W] for a 1-D Conv) read by
// a Conv with `params` and weights of `weight_shape` ([M, C/g, kh, kw] or
// [M, C/g, kw]). Small patches (K <= 64, e.g. depthwise 3x3) are summed in
// plain loops, larger ones with oneDNN's f32 GEMM per slice of positions.
// InvalidArgument when shapes disagree with each other or with earlier
// batches, or when ConvPatchHessianSupported rejects the layer.
absl::Status AccumulateConvPatchHessian(const Tensor& x,
                                        const ConvParams& params,
                                        const Shape& weight_shape,
                                        ConvPatchHessian& h);

// The same, one patch at a time in doubles: the reference the test compares
// the fast path against.
absl::Status AccumulateConvPatchHessianReference(const Tensor& x,
                                                 const ConvParams& params,
                                                 const Shape& weight_shape,
                                                 ConvPatchHessian& h);

}  // namespace quantd

#endif  // QUANTD_ENGINE_CALIBRATION_CONV_PATCH_HESSIAN_H_
