#include "server/run_model_command.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/evaluation/model_run.h"
#include "server/exit_codes.h"

namespace quantd {
namespace {

std::string Top1(float v) {
  return v < 0 ? "n/a" : absl::StrFormat("%.2f%%", 100 * v);
}

// What was loaded, and what preparing and lowering it did.
void PrintModel(const std::string& path, const ModelRunReport& r) {
  std::printf("model      %s (%s, opset %lld", path.c_str(), r.producer.c_str(),
              static_cast<long long>(r.source_opset));
  if (r.opset != r.source_opset) {
    std::printf(" converted to %lld", static_cast<long long>(r.opset));
  }
  std::printf(")\n");
  if (!r.conversion_note.empty()) {
    std::printf("note       %s\n", r.conversion_note.c_str());
  }
  std::printf(
      "prepare    %d -> %d nodes: %d folded constants, %d static reshapes, "
      "%d BatchNorms into Conv, %d identities removed\n",
      r.nodes_loaded, r.nodes_prepared, r.prepare.folding.nodes_folded,
      r.prepare.folding.reshapes_made_static, r.prepare.batchnorms_folded,
      r.prepare.identities_removed);
  if (r.weight_only.has_value()) {
    const WeightOnlyLoweringStats& w = r.weight_only->lowering;
    std::printf(
        "%-10s %d Gemm/MatMul on the weight-only kernel (%s), %d on "
        "fake-quantized f32 weights; weights %.1f -> %.1f MB\n",
        r.quantized_label.c_str(), w.matmuls, r.weight_only->kernel_isa.c_str(),
        w.fake_quantized, w.float_weight_bytes / 1e6,
        w.lowered_weight_bytes / 1e6);
  } else {
    const Int8LoweringStats& l = r.lowering;
    std::printf(
        "int8       %d Conv + %d Gemm/MatMul lowered, %d ReLU fused; u8 "
        "between ops: %d Conv/MatMul outputs, %d Adds, %d MaxPools, %d values "
        "dequantized for float readers; weights in [-%d, %d] (cpu %s)\n",
        l.convs, l.matmuls, l.relus_fused, l.outputs_chained, l.adds_quantized,
        l.pools_u8, l.dequantized, r.weight_qmax, r.weight_qmax,
        r.cpu_isa.c_str());
  }
  std::printf("samples    %lld\n", static_cast<long long>(r.samples));
}

// Each output against the reference and fp32; for [N, classes] logits, the
// first samples' classes too.
void PrintOutputs(const ModelRunReport& r) {
  for (const OutputComparison& c : r.outputs) {
    std::printf("output     %s %s\n", c.name.c_str(),
                ShapeToString(c.shape).c_str());
    if (c.has_reference) {
      std::printf("  fp32 vs reference: max |diff| %.3g, top-1 agreement %s\n",
                  c.fp32_max_abs_diff, Top1(c.top1_fp32_vs_reference).c_str());
    }
    std::printf("  %-6s vs fp32:    max |diff| %.3g, top-1 agreement %s\n",
                r.quantized_label.c_str(), c.int8_max_abs_diff,
                Top1(c.top1_int8_vs_fp32).c_str());
  }
  if (r.fp32_outputs.empty() || r.fp32_outputs[0].rank() != 2 ||
      r.fp32_outputs[0].dtype() != DataType::kFloat32) {
    return;
  }
  const Tensor& logits = r.fp32_outputs[0];
  const int64_t show = std::min<int64_t>(logits.dim(0), 8);
  std::vector<int64_t> classes;
  for (int64_t i = 0; i < show; ++i) {
    const float* row = logits.data<float>() + i * logits.dim(1);
    classes.push_back(std::max_element(row, row + logits.dim(1)) - row);
  }
  std::printf("  argmax of the first %lld samples: %s\n",
              static_cast<long long>(show),
              absl::StrJoin(classes, " ").c_str());
}

void PrintLatency(const ModelRunReport& r, int repeats) {
  std::printf(
      "latency    batch %lld: fp32 %.3f ms, %s %.3f ms (medians of %d; "
      "fp32 range %.3f-%.3f, %s %.3f-%.3f) -> %s speedup %.2fx\n",
      static_cast<long long>(r.samples), r.fp32.median_ms,
      r.quantized_label.c_str(), r.int8.median_ms, repeats, r.fp32.min_ms,
      r.fp32.max_ms, r.quantized_label.c_str(), r.int8.min_ms, r.int8.max_ms,
      r.quantized_label.c_str(),
      r.int8.median_ms > 0 ? r.fp32.median_ms / r.int8.median_ms : 0.0);
}

// The most expensive op types of one run, as run-model --profile prints.
void PrintProfile(const char* label, const std::vector<OpTime>& profile) {
  double total = 0;
  for (const OpTime& t : profile) total += t.ms;
  std::printf("profile    %s: %.3f ms in ops\n", label, total);
  for (size_t i = 0; i < profile.size() && i < 8; ++i) {
    const OpTime& t = profile[i];
    std::printf("  %-28s %9.3f ms %5.1f%%  %d nodes\n", t.op_type.c_str(), t.ms,
                total > 0 ? 100 * t.ms / total : 0.0, t.nodes);
  }
}

}  // namespace

int RunModelCommand(const RunModelFlags& flags) {
  ModelRunOptions options;
  options.model_path = flags.model_path;
  options.data_path = flags.data_path;
  options.max_samples = flags.samples;
  options.repeats = static_cast<int>(flags.repeats);
  options.weight_only_bits = static_cast<int>(flags.weight_only_bits);
  options.weight_only_group_size = flags.group_size;
  options.profile = flags.profile;
  absl::StatusOr<ModelRunReport> r = RunModel(options);
  if (!r.ok()) {
    std::fprintf(stderr, "quantd run-model: %s\n",
                 std::string(r.status().message()).c_str());
    return ExitCodeFor(r.status());
  }
  PrintModel(options.model_path, *r);
  PrintOutputs(*r);
  PrintLatency(*r, options.repeats);
  if (options.profile) {
    PrintProfile("fp32", r->fp32_profile);
    PrintProfile(r->quantized_label.c_str(), r->int8_profile);
  }
  return kExitOk;
}

}  // namespace quantd
