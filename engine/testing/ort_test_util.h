// Running models in ONNX Runtime from C++ tests (include only from
// *_test.cc): onnxruntime-node 1.30.0 on the CPU execution provider, driven
// by tests/ort/run_model.js through node.
//
//   SKIP_WITHOUT_ORT();   // GTEST_SKIP with the reason when ORT is missing
//   absl::StatusOr<std::vector<Tensor>> out =
//       ort_test::RunOrt(model_bytes, feeds, {"logits"},
//                        ort_test::kOrtUnoptimized);
#ifndef QUANTD_ENGINE_TESTING_ORT_TEST_UTIL_H_
#define QUANTD_ENGINE_TESTING_ORT_TEST_UTIL_H_

#include <stdlib.h>
#include <sys/stat.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/data/array_file.h"
#include "engine/data/npy.h"
#include "gtest/gtest.h"

namespace quantd {
namespace ort_test {

inline std::string SourceRoot() {
  return std::string(QUANTD_TESTDATA_DIR) + "/..";
}

// Why ORT cannot run here, or "" when it can.
inline std::string OrtUnavailableReason() {
  if (std::system("node --version >/dev/null 2>&1") != 0) {
    return "node is not installed (tools/install-deps.sh installs nodejs "
           "and npm)";
  }
  struct stat st;
  const std::string pkg =
      SourceRoot() + "/tests/ort/node_modules/onnxruntime-node/package.json";
  if (stat(pkg.c_str(), &st) != 0) {
    return "onnxruntime-node is not installed; run tests/ort/install.sh";
  }
  return "";
}

#define SKIP_WITHOUT_ORT()                                                 \
  do {                                                                     \
    const std::string reason = ::quantd::ort_test::OrtUnavailableReason(); \
    if (!reason.empty()) GTEST_SKIP() << "ONNX Runtime: " << reason;       \
  } while (0)

inline absl::Status WriteFile(const std::string& path,
                              const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// ORT session settings for RunOrt (flags of tests/ort/run_model.js).
inline constexpr char kOrtOptimized[] = "";
inline constexpr char kOrtUnoptimized[] = "--no-opt";
// ORT fuses blocked int4 DequantizeLinear + MatMul into MatMulNBits, which
// by default (accuracy level 4) quantizes the activations to int8 per block
// on the fly; level 0 keeps them float.
inline constexpr char kOrtOptimizedFloatMatMulNBits[] =
    "--config=session.qdq_matmulnbits_accuracy_level=0";

// Runs model bytes in ONNX Runtime; returns the named outputs. A model with
// external data comes with the data file's bytes and the name the model
// gives it (written beside the model).
inline absl::StatusOr<std::vector<Tensor>> RunOrt(
    const std::string& model_bytes, const TensorMap& feeds,
    const std::vector<std::string>& outputs, const std::string& flags,
    const std::string& external_data = "",
    const std::string& external_data_name = "") {
  std::string tmpl = ::testing::TempDir() + "/qdq_ort_XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError("mkdtemp failed");
  }
  const std::string dir = tmpl;
  const std::string model = dir + "/model.onnx";
  if (absl::Status s = WriteFile(model, model_bytes); !s.ok()) return s;
  if (!external_data_name.empty()) {
    absl::Status s = WriteFile(dir + "/" + external_data_name, external_data);
    if (!s.ok()) return s;
  }
  mkdir((dir + "/in").c_str(), 0755);
  for (const auto& [name, t] : feeds) {
    absl::Status s = WriteFile(dir + "/in/" + name + ".npy", SerializeNpy(t));
    if (!s.ok()) return s;
  }
  const std::string cmd =
      absl::StrCat("node '", SourceRoot(), "/tests/ort/run_model.js' '", model,
                   "' '", dir, "/in' '", dir, "/out' ", flags, " 2>&1");
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError("popen failed");
  std::string log;
  std::array<char, 512> buf;
  while (fgets(buf.data(), buf.size(), pipe) != nullptr) log += buf.data();
  const int rc = pclose(pipe);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("ONNX Runtime failed (", cmd, "):\n", log));
  }
  std::vector<Tensor> out;
  for (const std::string& name : outputs) {
    absl::StatusOr<std::unique_ptr<ArrayFile>> f =
        ArrayFile::Open(dir + "/out/" + name + ".npy");
    if (!f.ok()) return f.status();
    absl::StatusOr<Tensor> t = (*f)->ReadArray("");
    if (!t.ok()) return t.status();
    out.push_back(std::move(*t));
  }
  std::system(absl::StrCat("rm -rf '", dir, "'").c_str());
  return out;
}

}  // namespace ort_test
}  // namespace quantd

#endif  // QUANTD_ENGINE_TESTING_ORT_TEST_UTIL_H_
