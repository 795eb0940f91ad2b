// Backward (gradient) kernels for training: given the forward inputs and the
// gradient of a scalar loss with respect to the forward output (dy), each
// function computes the gradients with respect to the inputs. All f32, plain
// row-major tensors, with the same shape conventions as the forward kernels
// (convolution.h, matmul.h, eltwise.h, pooling.h, softmax.h, layer_norm.h,
// binary.h, reduction.h, reorder.h).
//
//   ConvParams p;
//   p.strides = {2, 2};
//   p.pads_begin = {1, 1};
//   p.pads_end = {1, 1};
//   ConvolutionKernel conv(p);
//   Tensor y;
//   absl::Status s = conv.Forward(x, w, &b, &y);
//   Tensor dy = ...;                        // dL/dy, y's shape
//   Tensor dx, dw, db;                      // allocated by the call
//   s = ConvolutionBackward(p, x, w, dy, &dx, &dw, &db);
//
//   s = EltwiseBackward(EltwiseOp::kGeluErf, 0.f, 0.f, x, dy_act, &dx_act);
//   s = BinaryBackward(BinaryOp::kMul, a, b, dy, &da, &db);  // da: a's shape
//
// Every output pointer may be null to skip that gradient. Outputs are always
// freshly allocated (never written in place into caller storage). Gradients
// of broadcast operands are summed over the broadcast dims (SumToShape).
//
// Which computations run where:
//  * Conv: oneDNN convolution_backward_data / convolution_backward_weights
//    (with the bias gradient) on plain layouts, forward_training hint built
//    from the same geometry (groups, strides, dilations, asymmetric pads;
//    1-D, 2-D, 3-D). ConvolutionBackwardReference is the loop version.
//    ConvTranspose reuses them: it is the data gradient of a Conv.
//    Primitives are cached per geometry; weights are read at every call
//    (no reordered copy is cached, so weights updated in place are fine).
//  * Eltwise: oneDNN eltwise_backward from the source x for the algorithms
//    it has (Relu, LeakyRelu, Sigmoid, HardSwish, Tanh, Gelu erf/tanh, Clip,
//    Exp, Log, Sqrt, Abs, Elu, Linear); Erf and HardSigmoid run as loops.
//  * Pooling: loops. Max pooling recomputes each window's arg max (the first
//    maximum in window order wins ties, padding never wins) instead of
//    running oneDNN's forward-with-workspace: a second forward would be
//    needed anyway since the inference forward keeps no workspace, and the
//    loops share ONNX's exact window rules (ceil_mode, dilation, auto_pad,
//    count_include_pad) with ResolvePoolGeometry.
//  * MatMul: oneDNN matmul on transposed (strided) views; a weight shared
//    by the whole batch gets one GEMM over the flattened batch.
//  * Everything else: loops (double accumulation where sums get long).
//
// oneDNN primitives are cached process-wide per shape and run with a
// scratchpad per execution, so every function may be called from several
// threads at once.
//
// Kinks: Relu/Clip/HardSigmoid/HardSwish/Abs take the one-sided derivative
// oneDNN uses; at exactly x == 0 Relu passes no gradient. ReduceMax/Min send
// the whole gradient to the FIRST extreme element (row-major order) of each
// reduced slice; Max pooling likewise to the first maximum of each window.
#ifndef QUANTD_KERNELS_BACKWARD_H_
#define QUANTD_KERNELS_BACKWARD_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/binary.h"
#include "kernels/convolution.h"
#include "kernels/eltwise.h"
#include "kernels/pooling.h"
#include "kernels/reduction.h"
#include "kernels/tensor.h"

namespace quantd {

// --- Broadcast helpers -----------------------------------------------------

// Sums `x` over the dims that numpy broadcasting stretched to go from
// `shape` to x's shape, giving a tensor of `shape` (the gradient of a
// broadcast operand). `shape` must broadcast to x.shape().
absl::Status SumToShape(const Tensor& x, const Shape& shape, Tensor* out);

// Bias gradient: sums dy over every dim but `axis` (negative counts from the
// end), giving [dy.dim(axis)]. Conv bias: axis 1; Gemm/MatMul bias: axis -1.
absl::Status BiasGradient(const Tensor& dy, int axis, Tensor* db);

// --- Convolution (conv_backward.cc) ----------------------------------------

// x [N, C, spatial...], w [OC, C/groups, k...], dy [N, OC, out...] ->
// dx (x's shape), dw (w's shape), db [OC].
absl::Status ConvolutionBackward(const ConvParams& params, const Tensor& x,
                                 const Tensor& w, const Tensor& dy, Tensor* dx,
                                 Tensor* dw, Tensor* db);
absl::Status ConvolutionBackwardReference(const ConvParams& params,
                                          const Tensor& x, const Tensor& w,
                                          const Tensor& dy, Tensor* dx,
                                          Tensor* dw, Tensor* db);

// ConvTranspose: x [N, C, spatial...], w [C, OC/groups, k...], dy
// [N, OC, out...] (output_padding included) -> dx, dw, db [OC]. Runs as the
// adjoint Conv's oneDNN forward (dx) and weight-gradient (dw) primitives.
absl::Status DeconvolutionBackward(const ConvParams& params, const Tensor& x,
                                   const Tensor& w, const Tensor& dy,
                                   Tensor* dx, Tensor* dw, Tensor* db);

// --- MatMul / Gemm (matmul_backward.cc) ------------------------------------

// ONNX MatMul (and Gemm without alpha/beta/transA): a [..., M, K],
// b [..., K, N] (or [..., N, K] with transpose_b), dy [bcast..., M, N] ->
// da (a's shape), db (b's shape, in b's layout), batch broadcasting summed.
// 1-D operands as in matmul.h. Gemm's bias gradient: SumToShape(dy, c's
// shape) or BiasGradient(dy, -1).
// Runs as oneDNN matmuls on transposed views (a weight shared by the whole
// batch gets one GEMM over the flattened batch); MatMulBackwardReference is
// the loop version.
absl::Status MatMulBackward(const Tensor& a, const Tensor& b, const Tensor& dy,
                            bool transpose_b, Tensor* da, Tensor* db);
absl::Status MatMulBackwardReference(const Tensor& a, const Tensor& b,
                                     const Tensor& dy, bool transpose_b,
                                     Tensor* da, Tensor* db);

// --- Eltwise (eltwise_backward.cc) -----------------------------------------

// dx = dy * f'(x) for y = f(x) as in EltwiseForward(op, alpha, beta).
// Supported: kRelu, kLeakyRelu, kSigmoid, kHardSigmoid, kHardSwish, kTanh,
// kErf, kGeluErf, kGeluTanh, kClip, kExp, kLog, kSqrt, kAbs, kNeg, kElu,
// kLinear; others are Unimplemented.
absl::Status EltwiseBackward(EltwiseOp op, float alpha, float beta,
                             const Tensor& x, const Tensor& dy, Tensor* dx);
// True when EltwiseBackward handles `op`.
bool HasEltwiseBackward(EltwiseOp op);

// --- Pooling (pooling_backward.cc) -----------------------------------------

// Max / average / global pooling: x [N, C, spatial...], dy the pooled
// shape -> dx (x's shape).
absl::Status PoolingBackward(const PoolParams& params, const Tensor& x,
                             const Tensor& dy, Tensor* dx);

// --- Softmax, LayerNorm (normalization_backward.cc) ------------------------

// From the forward output y (softmax probabilities, or log-probabilities
// when `log`) and dy, along `axis`.
absl::Status SoftmaxBackward(const Tensor& y, const Tensor& dy, int axis,
                             bool log, Tensor* dx);
// LayerNormalization over dims [axis, rank): statistics are recomputed from
// x. scale and bias may be null; bias is read only for its shape (dbias has
// it). dscale / dbias are summed over dims where scale / bias broadcast.
absl::Status LayerNormBackward(const Tensor& x, const Tensor* scale,
                               const Tensor* bias, const Tensor& dy, int axis,
                               float epsilon, Tensor* dx, Tensor* dscale,
                               Tensor* dbias);

// --- Binary (binary_backward.cc) -------------------------------------------

// Add, Sub, Mul, Div, Max, Min with numpy broadcasting: da has a's shape,
// db b's shape. Max/Min: the gradient goes to a where a >= b (a <= b for
// Min), else to b.
absl::Status BinaryBackward(BinaryOp op, const Tensor& a, const Tensor& b,
                            const Tensor& dy, Tensor* da, Tensor* db);

// --- Reductions (reduction_backward.cc) ------------------------------------

// ReduceSum / Mean / Max / Min / L1 / L2 / SumSquare / LogSum / LogSumExp
// with the forward's axes, keepdims and noop_with_empty_axes; dy has the
// forward output's shape. ReduceProd is Unimplemented. L1 takes sign(0) = 0,
// L2 a zero gradient where the norm is 0.
absl::Status ReductionBackward(ReduceOp op, const Tensor& x,
                               absl::Span<const int64_t> axes, bool keepdims,
                               bool noop_with_empty_axes, const Tensor& dy,
                               Tensor* dx);

// --- Data movement (data_movement_backward.cc) ----------------------------

// Reshape / Flatten / Squeeze / Unsqueeze need no kernel: dx is
// dy.Reshaped(x.shape()).
// Transpose by perm (as TransposeForward): dx = dy transposed by perm^-1.
absl::Status TransposeBackward(absl::Span<const int64_t> perm, const Tensor& dy,
                               Tensor* dx);
// Slice with the ONNX attributes already resolved to one (clamped) start and
// step per input dim (steps nonzero, may be negative); dy holds the slice.
// dx (input_shape) is zero except at the sliced positions.
absl::Status SliceBackward(const Shape& input_shape,
                           absl::Span<const int64_t> starts,
                           absl::Span<const int64_t> steps, const Tensor& dy,
                           Tensor* dx);
// Concat along axis of inputs with these shapes: dy is split back.
absl::Status ConcatBackward(const std::vector<Shape>& input_shapes, int axis,
                            const Tensor& dy, std::vector<Tensor>* dxs);
// Split along axis: the output gradients are concatenated (an undefined
// Tensor in dys stands for zeros, shapes then come from output_shapes).
absl::Status SplitBackward(const std::vector<Shape>& output_shapes, int axis,
                           const std::vector<Tensor>& dys, Tensor* dx);
// Gather(data, indices, axis): scatter-add of dy into zeros of data_shape.
// indices int64 or int32, negative values count from the end.
absl::Status GatherBackward(const Shape& data_shape, const Tensor& indices,
                            int axis, const Tensor& dy, Tensor* dx);

}  // namespace quantd

#endif  // QUANTD_KERNELS_BACKWARD_H_
