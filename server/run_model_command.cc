#include "server/run_model_command.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/evaluation/model_run.h"
#include "server/exit_codes.h"

namespace quantd {
namespace {

constexpr char kUsage[] =
    R"(usage: quantd run-model --model FILE --data FILE [options]

Loads an ONNX model, prepares it (constant folding, BatchNorm folding),
runs it in fp32 on the inputs in an .npz file, derives int8 activation
ranges from that run, lowers Conv/Gemm/MatMul to oneDNN int8 kernels, runs
again, and prints both results and their timings.

  --model FILE     ONNX model (opset 7 to 17)
  --data FILE      .npz with one array per model input, keyed by input name;
                   arrays named like model outputs are reference outputs
  --samples N      use at most N samples (leading axis) (default 1024)
  --repeats N      timed runs per precision, median reported (default 10)
  --help           this text

Exit codes: 0 success, 2 bad input (model, data, flags), 1 other failure.
)";

std::string Top1(float v) {
  return v < 0 ? "n/a" : absl::StrFormat("%.2f%%", 100 * v);
}

}  // namespace

int RunModelCommand(const std::vector<std::string>& args) {
  ModelRunOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* flag) -> const std::string* {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "quantd run-model: %s needs a value\n", flag);
        return nullptr;
      }
      return &args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    } else if (a == "--model") {
      const std::string* v = value("--model");
      if (v == nullptr) return kExitBadInput;
      options.model_path = *v;
    } else if (a == "--data") {
      const std::string* v = value("--data");
      if (v == nullptr) return kExitBadInput;
      options.data_path = *v;
    } else if (a == "--samples" || a == "--repeats") {
      const std::string* v = value(a.c_str());
      int64_t n;
      if (v == nullptr || !absl::SimpleAtoi(*v, &n) || n < 1 || n > 1000000) {
        std::fprintf(stderr, "quantd run-model: %s takes a number >= 1\n",
                     a.c_str());
        return kExitBadInput;
      }
      if (a == "--samples") {
        options.max_samples = n;
      } else {
        options.repeats = static_cast<int>(n);
      }
    } else {
      std::fprintf(stderr, "quantd run-model: unknown argument '%s'\n%s",
                   a.c_str(), kUsage);
      return kExitBadInput;
    }
  }
  if (options.model_path.empty() || options.data_path.empty()) {
    std::fprintf(stderr,
                 "quantd run-model: --model and --data are required\n%s",
                 kUsage);
    return kExitBadInput;
  }
  absl::StatusOr<ModelRunReport> r = RunModel(options);
  if (!r.ok()) {
    std::fprintf(stderr, "quantd run-model: %s\n",
                 std::string(r.status().message()).c_str());
    return ExitCodeFor(r.status());
  }
  std::printf("model      %s (%s, opset %lld", options.model_path.c_str(),
              r->producer.c_str(), static_cast<long long>(r->source_opset));
  if (r->opset != r->source_opset) {
    std::printf(" converted to %lld", static_cast<long long>(r->opset));
  }
  std::printf(")\n");
  if (!r->conversion_note.empty()) {
    std::printf("note       %s\n", r->conversion_note.c_str());
  }
  std::printf(
      "prepare    %d -> %d nodes: %d folded constants, %d static reshapes, "
      "%d BatchNorms into Conv, %d identities removed\n",
      r->nodes_loaded, r->nodes_prepared, r->prepare.folding.nodes_folded,
      r->prepare.folding.reshapes_made_static, r->prepare.batchnorms_folded,
      r->prepare.identities_removed);
  std::printf(
      "int8       %d Conv + %d Gemm/MatMul lowered, %d ReLU fused; weights "
      "in [-%d, %d] (cpu %s)\n",
      r->lowering.convs, r->lowering.matmuls, r->lowering.relus_fused,
      r->weight_qmax, r->weight_qmax, r->cpu_isa.c_str());
  std::printf("samples    %lld\n", static_cast<long long>(r->samples));
  for (const OutputComparison& c : r->outputs) {
    std::printf("output     %s %s\n", c.name.c_str(),
                ShapeToString(c.shape).c_str());
    if (c.has_reference) {
      std::printf("  fp32 vs reference: max |diff| %.3g, top-1 agreement %s\n",
                  c.fp32_max_abs_diff, Top1(c.top1_fp32_vs_reference).c_str());
    }
    std::printf("  int8 vs fp32:      max |diff| %.3g, top-1 agreement %s\n",
                c.int8_max_abs_diff, Top1(c.top1_int8_vs_fp32).c_str());
  }
  if (!r->fp32_outputs.empty() && r->fp32_outputs[0].rank() == 2 &&
      r->fp32_outputs[0].dtype() == DataType::kFloat32) {
    const Tensor& logits = r->fp32_outputs[0];
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
  std::printf(
      "latency    batch %lld: fp32 %.3f ms, int8 %.3f ms (medians of %d; "
      "fp32 range %.3f-%.3f, int8 %.3f-%.3f) -> int8 speedup %.2fx\n",
      static_cast<long long>(r->samples), r->fp32.median_ms, r->int8.median_ms,
      options.repeats, r->fp32.min_ms, r->fp32.max_ms, r->int8.min_ms,
      r->int8.max_ms,
      r->int8.median_ms > 0 ? r->fp32.median_ms / r->int8.median_ms : 0.0);
  return kExitOk;
}

}  // namespace quantd
