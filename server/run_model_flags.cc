#include "server/run_model_flags.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/command_flags.h"

namespace quantd {
namespace {

constexpr char kSummary[] =
    "run a model in fp32 and int8 on an .npz of inputs; print outputs, "
    "int8-vs-fp32 agreement and timings\n"
    "(quantd run-model --help for its options)";

constexpr char kDescription[] =
    R"(Loads an ONNX model, prepares it (constant folding, BatchNorm folding),
runs it in fp32 on the inputs in an .npz file, derives int8 activation
ranges from that run, lowers Conv/Gemm/MatMul to oneDNN int8 kernels, runs
again, and prints both results and their timings. With --weight-only 4 or 8
it instead quantizes Gemm/MatMul weights (round-to-nearest, symmetric, in
groups of --group-size along K, default 128) and runs them on quantd's
weight-only kernel with f32 activations: the batch-1 decoder case.
)";

constexpr char kFooter[] =
    "Exit codes: 0 success, 2 bad input (model, data, flags), 1 other "
    "failure.";

// run-model's counts: 1 to a million, one message for any bad value.
IntFlagParser Count(std::string name) {
  return [name = std::move(name)](absl::string_view text, int64_t* value) {
    if (!absl::SimpleAtoi(text, value) || *value < 1 || *value > 1000000) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " takes a number >= 1"));
    }
    return absl::OkStatus();
  };
}

}  // namespace

CLI::App* AddRunModelCommand(CLI::App& app, RunModelFlags* flags) {
  CLI::App* cmd = AddCommand(app, "run-model", kSummary, kDescription, kFooter);
  // --model and --data are checked by CheckRunModelFlags, not CLI11's
  // required(), to keep the one message for both that scripts know.
  cmd->add_option("--model", flags->model_path,
                  "ONNX model (opset 7 to 23); required")
      ->type_name("FILE");
  cmd->add_option("--data", flags->data_path,
                  ".npz with one array per model input, keyed by input name; "
                  "arrays named like model outputs are reference outputs; "
                  "required")
      ->type_name("FILE");
  AddIntFlag(*cmd, "--samples", &flags->samples, Count("--samples"),
             "use at most N samples (leading axis)");
  AddIntFlag(*cmd, "--repeats", &flags->repeats, Count("--repeats"),
             "timed runs per precision, median reported");
  AddIntFlag(
      *cmd, "--weight-only", &flags->weight_only_bits,
      [](absl::string_view text, int64_t* value) {
        if (!absl::SimpleAtoi(text, value) || (*value != 4 && *value != 8)) {
          return absl::InvalidArgumentError("--weight-only takes 4 or 8");
        }
        return absl::OkStatus();
      },
      "instead of int8: Gemm/MatMul weights round-to-nearest to 4 or 8 "
      "bits, symmetric, activations f32, on the weight-only kernel");
  AddIntFlag(
      *cmd, "--group-size", &flags->group_size,
      [](absl::string_view text, int64_t* value) {
        if (!absl::SimpleAtoi(text, value) || *value < 0 || *value > 65536) {
          return absl::InvalidArgumentError(
              "--group-size takes 0 (per column) to 65536");
        }
        return absl::OkStatus();
      },
      "with --weight-only: rows of K per scale (0: one per column)");
  cmd->add_flag("--profile", flags->profile,
                "also print the time per op type, fp32 and quantized "
                "(hooked runs: no layout planning or fusion)");
  cmd->callback([flags] { ThrowIfError(CheckRunModelFlags(*flags)); });
  return cmd;
}

absl::Status CheckRunModelFlags(const RunModelFlags& flags) {
  if (flags.model_path.empty() || flags.data_path.empty()) {
    return absl::InvalidArgumentError("--model and --data are required");
  }
  return absl::OkStatus();
}

}  // namespace quantd
