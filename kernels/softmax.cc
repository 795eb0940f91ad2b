#include "kernels/softmax.h"

#include <new>

#include "absl/strings/str_cat.h"
#include "kernels/dnnl_context.h"

namespace quantd {

SoftmaxForward::SoftmaxForward(int axis, bool log) : axis_(axis), log_(log) {}

absl::Status SoftmaxForward::Forward(const Tensor& x, Tensor* y) {
  const char* name = log_ ? "log_softmax" : "softmax";
  if (y == nullptr) return absl::InvalidArgumentError("output is null");
  if (x.dtype() != DataType::kFloat32 || x.rank() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " takes an f32 tensor of rank >= 1, got ",
                     x.defined() ? x.DebugString() : "an undefined tensor"));
  }
  const int rank = x.rank();
  if (axis_ < -rank || axis_ >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " axis ", axis_, " is out of range for ",
                     x.DebugString(), "; use -", rank, "..", rank - 1));
  }
  const int axis = axis_ < 0 ? axis_ + rank : axis_;
  if (!y->defined() || y->dtype() != DataType::kFloat32 ||
      y->shape() != x.shape()) {
    try {
      *y = Tensor(DataType::kFloat32, x.shape());
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot allocate the output of ", name));
    }
  }
  if (x.num_elements() == 0) return absl::OkStatus();
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= x.dim(i);
  for (int i = axis + 1; i < rank; ++i) inner *= x.dim(i);
  const int64_t len = x.dim(axis);
  const int64_t rows = outer * inner;

  absl::StatusOr<std::shared_ptr<Entry>> entry = cache_.GetOrCreate(
      absl::StrCat(rows, "x", len), [&]() -> absl::StatusOr<Entry> {
        Entry e;
        absl::Status s = CatchDnnl("softmax creation", [&] {
          e.md = PlainDesc(DataType::kFloat32, {rows, len});
          e.prim =
              dnnl::softmax_v2_forward(dnnl::softmax_v2_forward::primitive_desc(
                  dnnl::softmax_v2_forward::desc(
                      dnnl::prop_kind::forward_inference,
                      log_ ? dnnl::algorithm::softmax_log
                           : dnnl::algorithm::softmax_accurate,
                      e.md, e.md, 1),
                  CpuEngine()));
        });
        if (!s.ok()) return s;
        return e;
      });
  if (!entry.ok()) return entry.status();
  std::shared_ptr<Entry> e = *entry;
  auto run = [&](const Tensor& src, Tensor* dst) {
    SerialIfSmall serial(src.num_elements());
    return CatchDnnl(name, [&] {
      dnnl::memory ms = WrapTensor(src, e->md);
      dnnl::memory md = WrapTensor(*dst, e->md);
      e->prim.execute(ThreadStream(), {{DNNL_ARG_SRC, ms}, {DNNL_ARG_DST, md}});
      ThreadStream().wait();
    });
  };
  if (inner == 1) return run(x, y);

  absl::StatusOr<Tensor> x3 = x.Reshaped({outer, len, inner});
  if (!x3.ok()) return x3.status();
  Tensor moved, result;
  absl::Status s = to_last_.Forward(*x3, &moved);  // [outer, inner, len]
  if (!s.ok()) return s;
  s = run(moved, &moved);
  if (!s.ok()) return s;
  absl::StatusOr<Tensor> y3 = y->Reshaped({outer, len, inner});
  if (!y3.ok()) return y3.status();
  // Writes straight into y's storage: y3 has the shape Forward expects.
  return from_last_.Forward(moved, &*y3);
}

}  // namespace quantd
