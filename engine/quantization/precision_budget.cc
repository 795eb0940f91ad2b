#include "engine/quantization/precision_budget.h"

#include <algorithm>
#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

absl::Status CheckLayers(const std::vector<LayerChoices>& layers) {
  for (const LayerChoices& l : layers) {
    if (l.options.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer '", l.node, "' has no precision to choose"));
    }
    for (const LayerOption& o : l.options) {
      if (o.bytes < 0 || !(o.loss >= 0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer '", l.node, "': an option has negative bytes or loss"));
      }
    }
  }
  return absl::OkStatus();
}

// The bytes of the smallest (resp. largest) option of every layer.
int64_t ExtremeBytes(const std::vector<LayerChoices>& layers, bool largest) {
  int64_t total = 0;
  for (const LayerChoices& l : layers) {
    int64_t pick = l.options[0].bytes;
    for (const LayerOption& o : l.options) {
      pick = largest ? std::max(pick, o.bytes) : std::min(pick, o.bytes);
    }
    total += pick;
  }
  return total;
}

BudgetSolution Assemble(const std::vector<LayerChoices>& layers,
                        const std::vector<size_t>& chosen,
                        int64_t fixed_bytes) {
  BudgetSolution s;
  s.bytes = fixed_bytes;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerOption& o = layers[i].options[chosen[i]];
    s.precisions[layers[i].node] = o.precision;
    s.bytes += o.bytes;
    s.loss += o.loss;
  }
  return s;
}

absl::Status DoesNotFit(const std::vector<LayerChoices>& layers,
                        int64_t fixed_bytes, int64_t budget) {
  return absl::ResourceExhaustedError(
      absl::StrCat("no choice of precisions fits in ", budget,
                   " bytes: the smallest "
                   "model is ",
                   fixed_bytes + ExtremeBytes(layers, false), " bytes"));
}

}  // namespace

absl::StatusOr<BudgetSolution> SolvePrecisionBudget(
    const std::vector<LayerChoices>& layers, int64_t fixed_bytes,
    int64_t budget, int64_t max_buckets) {
  if (absl::Status s = CheckLayers(layers); !s.ok()) return s;
  const int64_t room = budget - fixed_bytes;
  if (room < 0 || fixed_bytes + ExtremeBytes(layers, false) > budget) {
    return DoesNotFit(layers, fixed_bytes, budget);
  }
  const int64_t granule = std::max<int64_t>(
      1, (room + max_buckets - 1) / std::max<int64_t>(1, max_buckets));
  const int64_t buckets = room / granule;
  // best[b]: least loss of the layers so far within b granules.
  std::vector<double> best(buckets + 1, 0.0), next(buckets + 1);
  std::vector<std::vector<uint8_t>> choice(
      layers.size(), std::vector<uint8_t>(buckets + 1, 0));
  for (size_t i = 0; i < layers.size(); ++i) {
    std::fill(next.begin(), next.end(), kInfinity);
    for (size_t k = 0; k < layers[i].options.size(); ++k) {
      const LayerOption& o = layers[i].options[k];
      const int64_t w = (o.bytes + granule - 1) / granule;
      for (int64_t b = w; b <= buckets; ++b) {
        const double v = best[b - w] + o.loss;
        if (v < next[b]) {
          next[b] = v;
          choice[i][b] = static_cast<uint8_t>(k);
        }
      }
    }
    best.swap(next);
  }
  if (best[buckets] == kInfinity) {
    // Rounding up to granules can lose a fit that exists byte for byte.
    return DoesNotFit(layers, fixed_bytes, budget);
  }
  std::vector<size_t> chosen(layers.size());
  int64_t b = buckets;
  for (size_t i = layers.size(); i-- > 0;) {
    chosen[i] = choice[i][b];
    b -= (layers[i].options[chosen[i]].bytes + granule - 1) / granule;
  }
  return Assemble(layers, chosen, fixed_bytes);
}

absl::StatusOr<BudgetSolution> SolvePrecisionBudgetExhaustive(
    const std::vector<LayerChoices>& layers, int64_t fixed_bytes,
    int64_t budget) {
  if (absl::Status s = CheckLayers(layers); !s.ok()) return s;
  std::vector<size_t> at(layers.size(), 0);
  std::optional<BudgetSolution> best;
  while (true) {
    BudgetSolution s = Assemble(layers, at, fixed_bytes);
    if (s.bytes <= budget && (!best.has_value() || s.loss < best->loss)) {
      best = std::move(s);
    }
    size_t i = 0;
    while (i < at.size() && ++at[i] == layers[i].options.size()) at[i++] = 0;
    if (i == at.size()) break;
  }
  if (!best.has_value()) return DoesNotFit(layers, fixed_bytes, budget);
  return *best;
}

absl::StatusOr<std::vector<BudgetSolution>> PrecisionParetoFrontier(
    const std::vector<LayerChoices>& layers, int64_t fixed_bytes, int points) {
  if (absl::Status s = CheckLayers(layers); !s.ok()) return s;
  const int64_t lo = fixed_bytes + ExtremeBytes(layers, false);
  const int64_t hi = fixed_bytes + ExtremeBytes(layers, true);
  std::vector<BudgetSolution> all;
  for (int p = 0; p < std::max(points, 2); ++p) {
    const int64_t budget = lo + (hi - lo) * p / (std::max(points, 2) - 1);
    absl::StatusOr<BudgetSolution> s =
        SolvePrecisionBudget(layers, fixed_bytes, budget);
    if (s.ok()) all.push_back(*std::move(s));
  }
  std::vector<BudgetSolution> frontier;
  for (const BudgetSolution& s : all) {
    bool beaten = false;
    for (const BudgetSolution& t : all) {
      // No more bytes and no more loss, and fewer of one.
      beaten |= t.bytes <= s.bytes && t.loss <= s.loss &&
                (t.bytes < s.bytes || t.loss < s.loss);
    }
    const bool repeat = !frontier.empty() && frontier.back().bytes == s.bytes;
    if (!beaten && !repeat) frontier.push_back(s);
  }
  return frontier;
}

}  // namespace quantd
