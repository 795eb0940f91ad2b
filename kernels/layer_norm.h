// Layer normalization (ONNX LayerNormalization, opset 17) on f32 tensors:
// every slice x[i0.., :, :] over the trailing dims from `axis` on is
// normalized to zero mean and unit variance, then scaled and shifted.
//
//   LayerNormForward ln(/*axis=*/-1, /*epsilon=*/1e-5f);
//   Tensor y, mean, inv_std;
//   absl::Status s = ln.Forward(x, &gamma, &beta, &y);    // x: [B, T, 768]
//   s = ln.Forward(x, &gamma, nullptr, &y, &mean, &inv_std);
//
// scale (gamma) and bias (beta) are optional (nullptr) and must broadcast to
// the normalized dims x.shape[axis:] without changing them (e.g. [768] or
// [1, 768] for normalized dims [768]; [768] for [12, 768] is tiled). The
// optional mean and inverse-standard-deviation outputs have ONNX's shape:
// x's leading dims followed by 1s, e.g. [B, T, 1]. Statistics use the biased
// variance: y = (x - mean) / sqrt(var + epsilon) * scale + bias.
//
// oneDNN's layer normalization normalizes over the last dim only, so x is
// viewed as [prod(leading dims), prod(normalized dims)]; gamma and beta go
// in through normalization_flags::use_scale / use_shift (separate f32
// arrays, available since oneDNN 2.6).
#ifndef QUANTD_KERNELS_LAYER_NORM_H_
#define QUANTD_KERNELS_LAYER_NORM_H_

#include "absl/status/status.h"
#include "kernels/primitive_cache.h"
#include "kernels/tensor.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace quantd {

class LayerNormForward {
 public:
  // axis may be negative; it is checked against the input's rank in Forward.
  explicit LayerNormForward(int axis = -1, float epsilon = 1e-5f);
  absl::Status Forward(const Tensor& x, const Tensor* scale, const Tensor* bias,
                       Tensor* y, Tensor* mean = nullptr,
                       Tensor* inv_std_dev = nullptr);

 private:
  struct Entry {
    dnnl::layer_normalization_forward prim;
    dnnl::memory::desc data_md, scale_md, stat_md;
  };
  int axis_;
  float epsilon_;
  PrimitiveCache<Entry> cache_;
};

// Plain-loop reference (two-pass statistics in double).
absl::Status LayerNormReference(const Tensor& x, const Tensor* scale,
                                const Tensor* bias, int axis, float epsilon,
                                Tensor* y, Tensor* mean = nullptr,
                                Tensor* inv_std_dev = nullptr);

}  // namespace quantd

#endif  // QUANTD_KERNELS_LAYER_NORM_H_
