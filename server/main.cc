// quantd: the quantization service and its batch commands.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "server/exit_codes.h"
#include "server/run_job_command.h"
#include "server/run_model_command.h"
#include "server/serve_command.h"

namespace {

constexpr char kHelp[] = R"(quantd — quantizes ONNX models

usage: quantd COMMAND [options]

commands:
  serve       run the gRPC quantization service
              (quantd serve --help for its options)
  run-job     run a quantization job from a JSON job spec and write the
              quantized model and its report
              (quantd run-job --help for its options)
  run-model   run a model in fp32 and int8 on an .npz of inputs; print
              outputs, int8-vs-fp32 agreement and timings
              (quantd run-model --help for its options)
  version     print the version

Exit codes: 0 success, 2 bad input, 1 other failure.
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 ||
      std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "help") == 0) {
    std::fputs(kHelp, argc < 2 ? stderr : stdout);
    return argc < 2 ? quantd::kExitBadInput : quantd::kExitOk;
  }
  const std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "serve") return quantd::ServeCommand(args);
  if (command == "run-job") return quantd::RunJobCommand(args);
  if (command == "run-model") return quantd::RunModelCommand(args);
  if (command == "version" || command == "--version") {
    std::printf("quantd %s\n", QUANTD_VERSION);
    return quantd::kExitOk;
  }
  std::fprintf(stderr, "quantd: unknown command '%s'\n\n%s", command.c_str(),
               kHelp);
  return quantd::kExitBadInput;
}
