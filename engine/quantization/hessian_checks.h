// Argument checks shared by the algorithms that take a layer's Hessian
// (GPTQ, learned rounding): a non-finite entry in either input would
// spread through every rounded weight.
//
//   QUANTD_RETURN_IF_ERROR(CheckFiniteHessianAndWeight(where, h, weight));
#ifndef QUANTD_ENGINE_QUANTIZATION_HESSIAN_CHECKS_H_
#define QUANTD_ENGINE_QUANTIZATION_HESSIAN_CHECKS_H_

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/tensor.h"

namespace quantd {

// InvalidArgument, prefixed with `where`, if `hessian` (float or double)
// or the float `weight` holds a NaN or an infinity.
template <typename T>
absl::Status CheckFiniteHessianAndWeight(const std::string& where,
                                         const std::vector<T>& hessian,
                                         const Tensor& weight) {
  auto finite = [](auto v) { return std::isfinite(v); };
  const auto w = weight.span<float>();
  if (!std::all_of(hessian.begin(), hessian.end(), finite) ||
      !std::all_of(w.begin(), w.end(), finite)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "the Hessian or the weight has non-finite values"));
  }
  return absl::OkStatus();
}

}  // namespace quantd

#endif  // QUANTD_ENGINE_QUANTIZATION_HESSIAN_CHECKS_H_
