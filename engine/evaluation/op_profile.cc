#include "engine/evaluation/op_profile.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "util/status_macros.h"

namespace quantd {

absl::StatusOr<std::vector<OpTime>> ProfileOps(Executor& executor,
                                               const TensorMap& feeds,
                                               int repeats) {
  std::map<std::string, OpTime> by_type;
  std::set<const Node*> seen;  // nodes counted, once per type
  absl::Time last;
  const Node* previous = nullptr;
  RunOptions options;
  options.tensor_hook = [&](const Node* producer, const std::string&, Tensor&) {
    const absl::Time now = absl::Now();
    // A node with several outputs calls the hook once per output; only the
    // first call ends its time.
    if (producer != nullptr && producer != previous) {
      const std::string type =
          producer->domain.empty()
              ? producer->op_type
              : absl::StrCat(producer->domain, ".", producer->op_type);
      OpTime& t = by_type[type];
      t.op_type = type;
      t.ms += absl::ToDoubleMilliseconds(now - last);
      if (seen.insert(producer).second) ++t.nodes;
    }
    previous = producer;
    last = absl::Now();
    return absl::OkStatus();
  };
  QUANTD_RETURN_IF_ERROR(executor.RunOutputs(feeds).status());  // warm-up
  for (int i = 0; i < repeats; ++i) {
    last = absl::Now();
    previous = nullptr;
    QUANTD_RETURN_IF_ERROR(executor.Run(feeds, options).status());
  }
  std::vector<OpTime> out;
  for (auto& [type, t] : by_type) {
    t.ms /= std::max(repeats, 1);
    out.push_back(t);
  }
  std::sort(out.begin(), out.end(),
            [](const OpTime& a, const OpTime& b) { return a.ms > b.ms; });
  return out;
}

}  // namespace quantd
