// The learnable rounding of one weight, shared by learned rounding's two
// objectives: the layer's output error through its Hessian
// (learned_rounding.h) and a whole block's output error through autograd
// (engine/pipeline/block_reconstruction.h). Per element an offset v in
// [-0.5, 0.5] added before rounding; per scale clipping factors a (top of
// the range) and b (bottom) in [0.5, 1]:
//
//   q = clamp(round(w / s(a, b) + o + v) + zp, qmin, qmax)
//   w_q = s (q - zp)
//
// o is 0 from round-to-nearest, or the start's level minus round(w / s)
// (whole steps) when the start is another algorithm's result (GPTQ's). Steps
// are signed (AutoRound's SignRound): each variable moves by the learning rate
// against the sign of its gradient, which comes through round()
// straight-through.
//
//   absl::StatusOr<RoundingProblem> p =
//       MakeRoundingProblem(w, slot, scheme, /*start=*/nullptr, true);
//   RoundingClipping clip(*p);
//   RoundingVariables vars(*p, clip, 0, p->layout.n);  // every channel
//   for (step) {
//     vars.Quantize(false);            // vars.wq(): the weight to run with
//     ... dloss/dw_q per element, in vars' order ...
//     vars.Step(grad, lr);
//   }
//   vars.KeepAll();  // or KeepRow(r) where row r's loss improved
//   Tensor out(...); vars.WriteBest(out.mutable_data<float>());
//   QuantParams params = BestParams(*p, clip);
#ifndef QUANTD_ENGINE_QUANTIZATION_ROUNDING_VARIABLES_H_
#define QUANTD_ENGINE_QUANTIZATION_ROUNDING_VARIABLES_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/quantization_plan.h"
#include "engine/quantization/weight_quantization.h"
#include "kernels/tensor.h"

namespace quantd {

// Where the optimization starts instead of round-to-nearest: another
// algorithm's result (GPTQ's), as integers on its own scales. Offsets then
// move each weight around that algorithm's level and the clipping factors
// scale its scales; the first step reproduces it.
struct RoundingStart {
  QuantParams params;  // ComputeWeightParams' layout and range
  Tensor weights;      // on the grid of `params`, the weight's orientation
};

// The weight seen as W[c][i] (output channel c, input i), whatever its
// orientation: MatMul [K, N] has its inputs first; Gemm transB [N, K] and
// Conv [OC, C/g, k...] keep each channel's inputs contiguous.
struct RoundingLayout {
  bool inputs_first = false;
  int64_t n = 0;
  int64_t kin = 0;
  int64_t Flat(int64_t c, int64_t i) const {
    return inputs_first ? i * n + c : c * kin + i;
  }
};

// What one weight's variables are measured against; the weight is shared,
// not copied, and must outlive the problem.
struct RoundingProblem {
  RoundingLayout layout;
  Shape shape;
  const float* w = nullptr;
  QuantParams start;  // RTN's or the start's parameters
  bool symmetric = true;
  bool learn_clipping = true;  // never for per-tensor scales
  std::vector<float> lo, hi;   // per scale: the range, 0 inside
  // Per element (weight order): the start's level minus round(w / s), in
  // whole steps; empty: RTN.
  std::vector<float> offset;
};

// InvalidArgument for weights that are not 2-D MatMul/Gemm or Conv
// [OC, ...] weights, or a start that does not match the scheme.
absl::StatusOr<RoundingProblem> MakeRoundingProblem(const Tensor& weight,
                                                    const WeightSlot& slot,
                                                    const WeightScheme& scheme,
                                                    const RoundingStart* start,
                                                    bool learn_clipping);

// Clipping factors of every scale, current and best (shared by the slices
// of one weight: each scale belongs to one output channel, or to all when
// per tensor, where it is not learned).
struct RoundingClipping {
  explicit RoundingClipping(const RoundingProblem& p)
      : a(p.lo.size(), 1.f), b(p.lo.size(), 1.f), best_a(a), best_b(b) {}
  std::vector<float> a, b, best_a, best_b;
};

// The scales and zero points for the best clipping factors.
QuantParams BestParams(const RoundingProblem& p, const RoundingClipping& clip);

// The variables of output channels [c0, c0 + m); element e is (c0 + e / K,
// e % K).
class RoundingVariables {
 public:
  RoundingVariables(const RoundingProblem& p, RoundingClipping& clip,
                    int64_t c0, int64_t m);

  // w_q and whether each element is clamped, for the current variables (or
  // the best kept ones).
  void Quantize(bool best);
  const std::vector<float>& wq() const { return wq_; }
  float W(int64_t e) const { return p_.w[Flat(e)]; }
  // Flat index in the weight of element e.
  int64_t Flat(int64_t e) const { return p_.layout.Flat(c0_ + e / k_, e % k_); }
  int64_t size() const { return m_ * k_; }

  // One signed step against dloss/dw_q (per element), after Quantize(false).
  void Step(const std::vector<double>& dloss_dwq, double lr);

  // The current variables of row r (or all rows) become the best.
  void KeepRow(int64_t r);
  void KeepAll();

  // Writes the best w_q into `out` (the weight's orientation).
  void WriteBest(float* out);

 private:
  const RoundingProblem& p_;
  RoundingClipping& clip_;
  const int64_t c0_, m_, k_;
  std::vector<int64_t> param_;  // scale index of each element
  std::vector<float> v_, best_v_, wq_;
  std::vector<char> clamped_;
  std::vector<double> grad_a_, grad_b_;
};

}  // namespace quantd

#endif  // QUANTD_ENGINE_QUANTIZATION_ROUNDING_VARIABLES_H_
