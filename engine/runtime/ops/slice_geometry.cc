#include "engine/runtime/ops/slice_geometry.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/shape_util.h"
#include "util/status_macros.h"

namespace quantd {

absl::StatusOr<SliceGeometry> ResolveSlice(const Shape& in,
                                           const SliceArgs& args) {
  const int rank = static_cast<int>(in.size());
  const size_t n = args.starts.size();
  if (args.ends.size() != n || (args.has_axes && args.axes.size() != n) ||
      (!args.steps.empty() && args.steps.size() != n)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "starts, ends, axes and steps must have one length; got ", n, ", ",
        args.ends.size(), ", ", args.has_axes ? args.axes.size() : n, ", ",
        args.steps.empty() ? n : args.steps.size()));
  }
  std::vector<int64_t> axes = args.axes;
  if (!args.has_axes) {
    if (n > static_cast<size_t>(rank)) {
      return absl::InvalidArgumentError(
          absl::StrCat(n, " starts given for an input of rank ", rank));
    }
    for (size_t i = 0; i < n; ++i) axes.push_back(static_cast<int64_t>(i));
  }
  QUANTD_ASSIGN_OR_RETURN(std::vector<int> norm,
                          NormalizeAxes(axes, rank, "'axes'"));

  Shape out = in;
  std::vector<int64_t> start(rank, 0), step(rank, 1);
  for (size_t i = 0; i < n; ++i) {
    const int a = (norm)[i];
    const int64_t d = in[a];
    const int64_t st = args.steps.empty() ? 1 : args.steps[i];
    if (st == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("steps[", i, "] (axis ", a, ") is 0"));
    }
    // Negative starts/ends count from the back (adding d cannot overflow:
    // the value is negative and d is not), then clamp. Forward steps clamp
    // both to [0, d]; backward steps clamp start to [0, d-1] and end to
    // [-1, d-1], so that INT64_MIN as end slices through index 0.
    int64_t s = args.starts[i], e = args.ends[i];
    if (s < 0) s += d;
    if (e < 0) e += d;
    int64_t len = 0;
    if (st > 0) {
      s = std::clamp<int64_t>(s, 0, d);
      e = std::clamp<int64_t>(e, 0, d);
      if (e > s) len = (e - s - 1) / st + 1;
    } else if (d > 0) {
      s = std::clamp<int64_t>(s, 0, d - 1);
      e = std::clamp<int64_t>(e, -1, d - 1);
      const int64_t mag = st == std::numeric_limits<int64_t>::min()
                              ? std::numeric_limits<int64_t>::max()
                              : -st;
      if (s > e) len = (s - e - 1) / mag + 1;
    } else {
      s = 0;
    }
    start[a] = s;
    step[a] = st;
    out[a] = len;
  }
  return SliceGeometry{std::move(start), std::move(step), std::move(out)};
}

}  // namespace quantd
