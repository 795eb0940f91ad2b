#include "kernels/fake_quant.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Which scale each element of x uses: index = ((outer * blocks) + block) *
// inner + i for blocked parameters, the axis index for per-axis ones.
class ScaleIndex {
 public:
  static absl::StatusOr<ScaleIndex> Make(const Tensor& x,
                                         const FakeQuantParams& p) {
    ScaleIndex s;
    if (x.dtype() != DataType::kFloat32) {
      return absl::InvalidArgumentError("fake quantization needs f32 input");
    }
    if (p.qmin >= p.qmax) {
      return absl::InvalidArgumentError(
          absl::StrCat("qmin ", p.qmin, " must be below qmax ", p.qmax));
    }
    for (float v : p.scales) {
      if (!(v > 0) || !std::isfinite(v)) {
        return absl::InvalidArgumentError(
            "fake quantization scales must be positive and finite");
      }
    }
    int64_t expected = 1;
    if (p.axis >= 0) {
      if (p.axis >= x.rank()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "axis ", p.axis, " is out of range for ", x.DebugString()));
      }
      s.dim_ = x.dim(static_cast<int>(p.axis));
      for (int d = static_cast<int>(p.axis) + 1; d < x.rank(); ++d) {
        s.inner_ *= x.dim(d);
      }
      s.group_ = p.group_size;
      if (p.group_size > 0) {
        s.blocks_ = (s.dim_ + p.group_size - 1) / p.group_size;
        expected = x.num_elements() / s.dim_ * s.blocks_;
      } else {
        expected = s.dim_;
      }
      s.per_axis_ = true;
    }
    if (static_cast<int64_t>(p.scales.size()) != expected ||
        (!p.zero_points.empty() && p.zero_points.size() != p.scales.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fake quantization of ", x.DebugString(), " needs ", expected,
          " scales (and as many zero points or none), got ", p.scales.size()));
    }
    return s;
  }

  int64_t operator()(int64_t i) const {
    if (!per_axis_) return 0;
    const int64_t a = (i / inner_) % dim_;
    if (group_ <= 0) return a;
    const int64_t outer = i / (inner_ * dim_);
    return (outer * blocks_ + a / group_) * inner_ + i % inner_;
  }

 private:
  bool per_axis_ = false;
  int64_t dim_ = 1, inner_ = 1, group_ = 0, blocks_ = 1;
};

}  // namespace

absl::Status FakeQuantForward(const Tensor& x, const FakeQuantParams& p,
                              Tensor* y) {
  QUANTD_ASSIGN_OR_RETURN(ScaleIndex index, ScaleIndex::Make(x, p));
  *y = Tensor(DataType::kFloat32, x.shape());
  const float* src = x.data<float>();
  float* dst = y->mutable_data<float>();
  const int64_t n = x.num_elements();
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = (index)(i);
    const float s = p.scales[k];
    const int32_t z = p.zero_points.empty() ? 0 : p.zero_points[k];
    const float q = std::clamp<float>(std::nearbyint(src[i] / s) + z,
                                      static_cast<float>(p.qmin),
                                      static_cast<float>(p.qmax));
    dst[i] = (q - z) * s;
  }
  return absl::OkStatus();
}

absl::Status FakeQuantBackward(const Tensor& x, const FakeQuantParams& p,
                               const Tensor& dy, Tensor* dx,
                               std::vector<float>* dscale) {
  QUANTD_ASSIGN_OR_RETURN(ScaleIndex index, ScaleIndex::Make(x, p));
  if (dy.shape() != x.shape() || dy.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("dy is ", dy.DebugString(), "; expected f32 of x's shape ",
                     x.DebugString()));
  }
  *dx = Tensor(DataType::kFloat32, x.shape());
  const float* xs = x.data<float>();
  const float* g = dy.data<float>();
  float* out = dx->mutable_data<float>();
  const int64_t n = x.num_elements();
  const size_t scales = p.scales.size();
  std::vector<double> ds(dscale != nullptr ? scales : 0, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = (index)(i);
    const float s = p.scales[k];
    const int32_t z = p.zero_points.empty() ? 0 : p.zero_points[k];
    const float v = xs[i] / s;
    const float q = std::nearbyint(v) + z;
    float e;
    if (q < p.qmin) {
      out[i] = 0;
      e = static_cast<float>(p.qmin - z);
    } else if (q > p.qmax) {
      out[i] = 0;
      e = static_cast<float>(p.qmax - z);
    } else {
      out[i] = g[i];
      e = (q - z) - v;
    }
    if (dscale != nullptr) ds[k] += double{g[i]} * e;
  }
  if (dscale != nullptr) {
    // LSQ's gradient scale: 1 / sqrt(elements per scale * qmax).
    const double per_scale = static_cast<double>(n) / scales;
    const double gscale = 1.0 / std::sqrt(per_scale * std::max(1, p.qmax));
    dscale->resize(scales);
    for (size_t k = 0; k < scales; ++k) {
      (*dscale)[k] = static_cast<float>(ds[k] * gscale);
    }
  }
  return absl::OkStatus();
}

absl::Status FakeQuantBackwardReference(const Tensor& x,
                                        const FakeQuantParams& p,
                                        const Tensor& dy, Tensor* dx,
                                        std::vector<double>* dscale) {
  QUANTD_ASSIGN_OR_RETURN(ScaleIndex index, ScaleIndex::Make(x, p));
  *dx = Tensor(DataType::kFloat32, x.shape());
  dscale->assign(p.scales.size(), 0.0);
  const int64_t n = x.num_elements();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = (index)(i);
    const double s = p.scales[k];
    const double z = p.zero_points.empty() ? 0 : p.zero_points[k];
    const double v = double{x.data<float>()[i]} / s;
    const double q = std::nearbyint(v) + z;
    const bool inside = q >= p.qmin && q <= p.qmax;
    dx->mutable_data<float>()[i] = inside ? dy.data<float>()[i] : 0.f;
    const double e =
        inside ? (q - z) - v : (q < p.qmin ? p.qmin - z : p.qmax - z);
    (*dscale)[k] += double{dy.data<float>()[i]} * e;
  }
  const double per_scale = static_cast<double>(n) / p.scales.size();
  for (double& d : *dscale) d /= std::sqrt(per_scale * std::max(1, p.qmax));
  return absl::OkStatus();
}

}  // namespace quantd
