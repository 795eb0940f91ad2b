// Elementwise ops: unary activations and math on oneDNN eltwise kernels,
// broadcasting binary arithmetic and comparisons, variadic Max/Min/Sum,
// PRelu, and boolean logic.
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "kernels/binary.h"
#include "kernels/eltwise.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Elementwise in, elementwise out: y is x's layout (tensor.h).
absl::Status ForwardKeepingLayout(EltwiseForward& eltwise, const Tensor& x,
                                  Tensor* y) {
  QUANTD_RETURN_IF_ERROR(eltwise.Forward(x, y));
  return y->set_layout(x.layout());
}

// Unary ops read a channels-last f32 input 0 like a plain one; their
// integer paths allocate plain outputs, so those stay plain.
bool AcceptsFloatInputZero(int input, absl::Span<const Tensor* const> inputs) {
  return input == 0 && inputs[0] != nullptr &&
         inputs[0]->dtype() == DataType::kFloat32;
}

// Unary f32 ops. Neg and Abs also run on integers, which shape arithmetic
// in exported graphs uses.
class UnaryKernel : public OpKernel {
 public:
  UnaryKernel(EltwiseOp op, float alpha, float beta)
      : op_(op), eltwise_(op, alpha, beta) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    if ((x)->dtype() == DataType::kInt64 &&
        (op_ == EltwiseOp::kNeg || op_ == EltwiseOp::kAbs)) {
      Tensor y(DataType::kInt64, (x)->shape());
      const int64_t* in = (x)->data<int64_t>();
      int64_t* out = y.mutable_data<int64_t>();
      for (int64_t i = 0; i < y.num_elements(); ++i) {
        out[i] = op_ == EltwiseOp::kNeg ? -in[i] : std::llabs(in[i]);
      }
      ctx.set_output(0, std::move(y));
      return absl::OkStatus();
    }
    QUANTD_RETURN_IF_ERROR(ExpectDtype(*x, DataType::kFloat32, "input"));
    return ForwardKeepingLayout(eltwise_, *x, ctx.output(0));
  }

  bool AcceptsChannelsLast(
      int input, absl::Span<const Tensor* const> inputs) const override {
    return AcceptsFloatInputZero(input, inputs);
  }

 private:
  EltwiseOp op_;
  EltwiseForward eltwise_;
};

OpKernelFactory Unary(EltwiseOp op, float alpha = 0.f, float beta = 0.f) {
  return [op, alpha, beta](
             const OpKernelInfo&) -> absl::StatusOr<std::unique_ptr<OpKernel>> {
    return std::make_unique<UnaryKernel>(op, alpha, beta);
  };
}

// Unary op whose parameters come from attributes.
OpKernelFactory UnaryWithAttrs(EltwiseOp op, const char* alpha_name,
                               float alpha_default, const char* beta_name,
                               float beta_default) {
  return [=](const OpKernelInfo& info)
             -> absl::StatusOr<std::unique_ptr<OpKernel>> {
    float alpha = alpha_name != nullptr
                      ? info.node.attributes.GetFloat(alpha_name, alpha_default)
                      : alpha_default;
    float beta = beta_name != nullptr
                     ? info.node.attributes.GetFloat(beta_name, beta_default)
                     : beta_default;
    return std::make_unique<UnaryKernel>(op, alpha, beta);
  };
}

// Clip: min/max were attributes before opset 11 and are optional inputs
// since; integer inputs are clipped with a loop.
class ClipKernel : public OpKernel {
 public:
  explicit ClipKernel(const OpKernelInfo& info) : opset_(info.opset) {
    attr_min_ = info.node.attributes.GetFloat("min", -INFINITY);
    attr_max_ = info.node.attributes.GetFloat("max", INFINITY);
  }
  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    float lo = attr_min_, hi = attr_max_;
    if (opset_ >= 11) {
      lo = -INFINITY;
      hi = INFINITY;
      if (const Tensor* t = ctx.input(1); t != nullptr && t->defined()) {
        QUANTD_ASSIGN_OR_RETURN(float v, ReadScalarFloat(*t, "Clip min"));
        lo = v;
      }
      if (const Tensor* t = ctx.input(2); t != nullptr && t->defined()) {
        QUANTD_ASSIGN_OR_RETURN(float v, ReadScalarFloat(*t, "Clip max"));
        hi = v;
      }
    }
    if ((x)->dtype() == DataType::kInt64) {
      Tensor y = (x)->Clone();
      for (int64_t& v : y.mutable_span<int64_t>()) {
        if (v < lo) v = static_cast<int64_t>(lo);
        if (v > hi) v = static_cast<int64_t>(hi);
      }
      ctx.set_output(0, std::move(y));
      return absl::OkStatus();
    }
    if ((x)->dtype() != DataType::kFloat32) {
      return absl::UnimplementedError(absl::StrCat(
          "Clip of ", DataTypeName((x)->dtype()), " is not supported"));
    }
    if (lo != lo_ || hi != hi_ || kernel_ == nullptr) {
      lo_ = lo;
      hi_ = hi;
      kernel_ = std::make_unique<EltwiseForward>(EltwiseOp::kClip, lo, hi);
    }
    return ForwardKeepingLayout(*kernel_, *x, ctx.output(0));
  }

  bool AcceptsChannelsLast(
      int input, absl::Span<const Tensor* const> inputs) const override {
    return AcceptsFloatInputZero(input, inputs);
  }

 private:
  int64_t opset_;
  float attr_min_, attr_max_;
  float lo_ = 0, hi_ = 0;
  std::unique_ptr<EltwiseForward> kernel_;
};

class GeluKernel : public OpKernel {
 public:
  explicit GeluKernel(const OpKernelInfo& info)
      : eltwise_(info.node.attributes.GetString("approximate", "none") == "tanh"
                     ? EltwiseOp::kGeluTanh
                     : EltwiseOp::kGeluErf) {}
  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    return ForwardKeepingLayout(eltwise_, *x, ctx.output(0));
  }

  bool AcceptsChannelsLast(
      int input, absl::Span<const Tensor* const> inputs) const override {
    return AcceptsFloatInputZero(input, inputs);
  }

 private:
  EltwiseForward eltwise_;
};

class BinaryKernel : public OpKernel {
 public:
  explicit BinaryKernel(BinaryOp op) : binary_(op) {}
  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* a, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* b, ctx.required_input(1));
    QUANTD_RETURN_IF_ERROR(binary_.Forward(*a, *b, ctx.output(0)));
    // Only same-shape channels-last pairs arrive channels-last (below).
    return ctx.output(0)->set_layout(a->layout());
  }

  // Two operands of one shape in one layout are elementwise: a residual
  // Add of two conv outputs stays channels-last. Broadcasting reads plain.
  bool AcceptsChannelsLast(
      int input, absl::Span<const Tensor* const> inputs) const override {
    if (inputs.size() != 2 || inputs[0] == nullptr || inputs[1] == nullptr) {
      return false;
    }
    return inputs[0]->shape() == inputs[1]->shape() &&
           inputs[0]->channels_last() && inputs[1]->channels_last();
  }

 private:
  BinaryForward binary_;
};

OpKernelFactory Binary(BinaryOp op) {
  return
      [op](const OpKernelInfo&) -> absl::StatusOr<std::unique_ptr<OpKernel>> {
        return std::make_unique<BinaryKernel>(op);
      };
}

// Max, Min, Sum, Mean: any number of broadcasting inputs, folded pairwise.
class VariadicKernel : public OpKernel {
 public:
  VariadicKernel(BinaryOp op, bool mean) : binary_(op), mean_(mean) {}
  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* first, ctx.required_input(0));
    Tensor acc = *first;
    for (int i = 1; i < ctx.num_inputs(); ++i) {
      QUANTD_ASSIGN_OR_RETURN(const Tensor* next, ctx.required_input(i));
      Tensor out;
      QUANTD_RETURN_IF_ERROR(binary_.Forward(acc, *next, &out));
      acc = std::move(out);
    }
    if (mean_ && ctx.num_inputs() > 1) {
      QUANTD_RETURN_IF_ERROR(
          ExpectDtype(acc, DataType::kFloat32, "Mean input"));
      const float inv = 1.f / ctx.num_inputs();
      for (float& v : acc.mutable_span<float>()) v *= inv;
    } else if (ctx.num_inputs() == 1) {
      acc = acc.Clone();
    }
    ctx.set_output(0, std::move(acc));
    return absl::OkStatus();
  }

 private:
  BinaryForward binary_;
  bool mean_;
};

OpKernelFactory Variadic(BinaryOp op, bool mean = false) {
  return [op, mean](
             const OpKernelInfo&) -> absl::StatusOr<std::unique_ptr<OpKernel>> {
    return std::make_unique<VariadicKernel>(op, mean);
  };
}

// PRelu: y = x < 0 ? slope * x : x, slope broadcast to x
// = max(x, 0) + slope * min(x, 0).
class PReluKernel : public OpKernel {
 public:
  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* slope, ctx.required_input(1));
    Tensor zero = Tensor::Scalar<float>(0.f);
    Tensor pos, neg, scaled, y;
    QUANTD_RETURN_IF_ERROR(max_.Forward(*x, zero, &pos));
    QUANTD_RETURN_IF_ERROR(min_.Forward(*x, zero, &neg));
    QUANTD_RETURN_IF_ERROR(mul_.Forward(neg, *slope, &scaled));
    QUANTD_RETURN_IF_ERROR(add_.Forward(pos, scaled, &y));
    if (y.shape() != (x)->shape()) {
      return absl::InvalidArgumentError(
          absl::StrCat("slope of shape ", ShapeToString((slope)->shape()),
                       " does not broadcast to the input's shape ",
                       ShapeToString((x)->shape())));
    }
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  }

 private:
  BinaryForward max_{BinaryOp::kMax}, min_{BinaryOp::kMin},
      mul_{BinaryOp::kMul}, add_{BinaryOp::kAdd};
};

// Not, And, Or, Xor on bool tensors; And/Or/Xor broadcast.
absl::Status NotOp(OpKernelContext& ctx) {
  QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
  QUANTD_RETURN_IF_ERROR(ExpectDtype(*x, DataType::kBool, "input"));
  Tensor y(DataType::kBool, (x)->shape());
  const uint8_t* in = (x)->data<uint8_t>();
  uint8_t* out = y.mutable_data<uint8_t>();
  for (int64_t i = 0; i < y.num_elements(); ++i) out[i] = in[i] ? 0 : 1;
  ctx.set_output(0, std::move(y));
  return absl::OkStatus();
}

enum class Logic { kAnd, kOr, kXor };

OpFunction LogicOp(Logic logic) {
  return [logic](OpKernelContext& ctx) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* a, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* b, ctx.required_input(1));
    for (const Tensor* t : {a, b}) {
      QUANTD_RETURN_IF_ERROR(ExpectDtype(*t, DataType::kBool, "input"));
    }
    QUANTD_ASSIGN_OR_RETURN(Shape shape,
                            BroadcastShapes((a)->shape(), (b)->shape()));
    // A plain broadcasting loop: logic ops are rare and tiny in real models.
    Tensor y(DataType::kBool, shape);
    const int rank = static_cast<int>(shape.size());
    auto strides = [&](const Tensor& t) {
      std::vector<int64_t> s(rank, 0);
      int64_t stride = 1;
      for (int d = t.rank() - 1; d >= 0; --d) {
        const int od = d + rank - t.rank();
        s[od] = t.dim(d) == 1 ? 0 : stride;
        stride *= t.dim(d);
      }
      return s;
    };
    std::vector<int64_t> sa = strides(*a), sb = strides(*b);
    std::vector<int64_t> index(rank, 0);
    const uint8_t* pa = (a)->data<uint8_t>();
    const uint8_t* pb = (b)->data<uint8_t>();
    uint8_t* out = y.mutable_data<uint8_t>();
    for (int64_t i = 0; i < y.num_elements(); ++i) {
      int64_t ia = 0, ib = 0;
      for (int d = 0; d < rank; ++d) {
        ia += index[d] * sa[d];
        ib += index[d] * sb[d];
      }
      const bool x = pa[ia] != 0, z = pb[ib] != 0;
      out[i] = logic == Logic::kAnd  ? (x && z)
               : logic == Logic::kOr ? (x || z)
                                     : (x != z);
      for (int d = rank - 1; d >= 0; --d) {
        if (++index[d] < (shape)[d]) break;
        index[d] = 0;
      }
    }
    ctx.set_output(0, std::move(y));
    return absl::OkStatus();
  };
}

}  // namespace

void RegisterElementwiseOps(OpRegistry& r) {
  r.Register("Relu", Unary(EltwiseOp::kRelu));
  r.Register("LeakyRelu", UnaryWithAttrs(EltwiseOp::kLeakyRelu, "alpha", 0.01f,
                                         nullptr, 0.f));
  r.Register("Sigmoid", Unary(EltwiseOp::kSigmoid));
  r.Register("HardSigmoid", UnaryWithAttrs(EltwiseOp::kHardSigmoid, "alpha",
                                           0.2f, "beta", 0.5f));
  r.Register("HardSwish", Unary(EltwiseOp::kHardSwish));
  r.Register("Tanh", Unary(EltwiseOp::kTanh));
  r.Register("Erf", Unary(EltwiseOp::kErf));
  r.Register("Exp", Unary(EltwiseOp::kExp));
  r.Register("Log", Unary(EltwiseOp::kLog));
  r.Register("Sqrt", Unary(EltwiseOp::kSqrt));
  r.Register("Abs", Unary(EltwiseOp::kAbs));
  r.Register("Neg", Unary(EltwiseOp::kNeg));
  r.Register("Reciprocal", Unary(EltwiseOp::kReciprocal));
  r.Register("Softplus", Unary(EltwiseOp::kSoftplus));
  r.Register("Elu",
             UnaryWithAttrs(EltwiseOp::kElu, "alpha", 1.f, nullptr, 0.f));
  r.Register("Selu", UnaryWithAttrs(EltwiseOp::kSelu, "alpha", 1.67326319f,
                                    "gamma", 1.05070102f));
  r.Register("Gelu", MakeFactory<GeluKernel>());
  r.Register("Clip", MakeFactory<ClipKernel>());

  r.Register("Add", Binary(BinaryOp::kAdd));
  r.Register("Sub", Binary(BinaryOp::kSub));
  r.Register("Mul", Binary(BinaryOp::kMul));
  r.Register("Div", Binary(BinaryOp::kDiv));
  r.Register("Pow", Binary(BinaryOp::kPow));
  r.Register("Equal", Binary(BinaryOp::kEqual));
  r.Register("Less", Binary(BinaryOp::kLess));
  r.Register("Greater", Binary(BinaryOp::kGreater));
  r.Register("LessOrEqual", Binary(BinaryOp::kLessOrEqual));
  r.Register("GreaterOrEqual", Binary(BinaryOp::kGreaterOrEqual));
  r.Register("Max", Variadic(BinaryOp::kMax));
  r.Register("Min", Variadic(BinaryOp::kMin));
  r.Register("Sum", Variadic(BinaryOp::kAdd));
  r.Register("Mean", Variadic(BinaryOp::kAdd, /*mean=*/true));
  r.Register(
      "PRelu",
      [](const OpKernelInfo&) -> absl::StatusOr<std::unique_ptr<OpKernel>> {
        return std::make_unique<PReluKernel>();
      });
  r.Register("Not", FunctionFactory(NotOp));
  r.Register("And", FunctionFactory(LogicOp(Logic::kAnd)));
  r.Register("Or", FunctionFactory(LogicOp(Logic::kOr)));
  r.Register("Xor", FunctionFactory(LogicOp(Logic::kXor)));
}

}  // namespace quantd
