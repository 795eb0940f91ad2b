// Runs ONNX's own backend node tests (Debian's libonnx-testdata) through the
// engine: every test whose ops are all registered and whose tensors use
// supported element types must reproduce the reference outputs.
//
//   conformance_node_tests [--data DIR] [--known FILE] [--filter SUBSTRING]
//
// Prints one line per failure and ends with "N passed, N failed, N skipped".
// Tests listed in the known-failures file (one name per line, '#' starts the
// reason) are counted as skipped with that reason; a listed test that passes
// is reported so the list stays honest. Exit code 1 if anything unexpectedly
// failed or passed.
#include <dirent.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "engine/onnx/model_loader.h"
#include "engine/onnx/onnx_convert.h"
#include "engine/runtime/executor.h"

namespace quantd {
namespace {

constexpr float kRelTol = 1e-3f;  // ONNX's backend test default
// ONNX uses atol 1e-7; oneDNN's vectorized exp/tanh/erf differ from libm by a
// few ulps, which near zero needs a slightly larger absolute slack.
constexpr float kAbsTol = 1e-5f;

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

absl::StatusOr<Tensor> ReadTensorFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileBounded(path, 1 << 30);
  if (!bytes.ok()) return bytes.status();
  onnx::TensorProto proto;
  if (!proto.ParseFromString(*bytes) || proto.data_type() == 0) {
    return absl::UnimplementedError(
        absl::StrCat(path, " is not a plain tensor (sequence or optional?)"));
  }
  return TensorFromProto(proto, ModelLimits(), path);
}

// Empty string on match, else a description of the first mismatch.
std::string Compare(const Tensor& got, const Tensor& want) {
  if (got.dtype() != want.dtype()) {
    return absl::StrCat("dtype ", DataTypeName(got.dtype()), " != expected ",
                        DataTypeName(want.dtype()));
  }
  if (got.shape() != want.shape()) {
    return absl::StrCat("shape ", ShapeToString(got.shape()), " != expected ",
                        ShapeToString(want.shape()));
  }
  if (got.dtype() == DataType::kFloat32) {
    for (int64_t i = 0; i < got.num_elements(); ++i) {
      float g = got.data<float>()[i], w = want.data<float>()[i];
      if (std::isnan(w) && std::isnan(g)) continue;
      if (std::isinf(w) && g == w) continue;
      if (!(std::fabs(g - w) <= kAbsTol + kRelTol * std::fabs(w))) {
        return absl::StrCat("element ", i, ": got ", g, ", expected ", w);
      }
    }
    return "";
  }
  if (std::memcmp(got.raw_data(), want.raw_data(), got.byte_size()) != 0) {
    return "integer/bool values differ";
  }
  return "";
}

enum class Outcome { kPassed, kFailed, kSkipped };

// An op quantd registers may still refuse a variant it does not implement
// (an element type such as double or uint8 arithmetic, training mode): that
// is a gap in coverage, reported as a skip with its reason, like an op that
// is not registered at all. Wrong results are failures.
Outcome SkipIfUnimplemented(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnimplemented ? Outcome::kSkipped
                                                      : Outcome::kFailed;
}

Outcome RunOne(const std::string& dir, std::string* detail) {
  LoadOptions options;
  options.check_ops = false;
  absl::StatusOr<LoadedModel> model =
      LoadModelFromFile(dir + "/model.onnx", options);
  if (!model.ok()) {
    *detail = std::string(model.status().message());
    return model.status().code() == absl::StatusCode::kUnimplemented
               ? Outcome::kSkipped
               : Outcome::kFailed;
  }
  if (absl::Status s = CheckOpsSupported(model->graph, DefaultOpRegistry());
      !s.ok()) {
    *detail = std::string(s.message());
    return Outcome::kSkipped;
  }
  std::vector<std::string> output_names;
  for (const ValueInfo& o : model->graph.outputs)
    output_names.push_back(o.name);
  std::vector<std::string> input_names;
  for (const ValueInfo& i : model->graph.inputs) input_names.push_back(i.name);
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      Executor::Create(std::move(model->graph));
  if (!executor.ok()) {
    *detail = std::string(executor.status().message());
    return SkipIfUnimplemented(executor.status());
  }
  int sets = 0;
  for (const std::string& set : ListDir(dir)) {
    if (!absl::StartsWith(set, "test_data_set_")) continue;
    ++sets;
    const std::string set_dir = dir + "/" + set;
    TensorMap feeds;
    for (size_t i = 0; i < input_names.size(); ++i) {
      absl::StatusOr<Tensor> t =
          ReadTensorFile(absl::StrCat(set_dir, "/input_", i, ".pb"));
      if (!t.ok()) {
        *detail = std::string(t.status().message());
        return Outcome::kSkipped;
      }
      feeds[input_names[i]] = std::move(*t);
    }
    absl::StatusOr<std::vector<Tensor>> outputs =
        (*executor)->RunOutputs(feeds);
    if (!outputs.ok()) {
      *detail = std::string(outputs.status().message());
      return SkipIfUnimplemented(outputs.status());
    }
    for (size_t i = 0; i < output_names.size(); ++i) {
      const std::string path = absl::StrCat(set_dir, "/output_", i, ".pb");
      if (!Exists(path)) continue;
      absl::StatusOr<Tensor> want = ReadTensorFile(path);
      if (!want.ok()) {
        *detail = std::string(want.status().message());
        return Outcome::kSkipped;
      }
      std::string diff = Compare((*outputs)[i], *want);
      if (!diff.empty()) {
        *detail = absl::StrCat(set, " output '", output_names[i], "': ", diff);
        return Outcome::kFailed;
      }
    }
  }
  if (sets == 0) {
    *detail = "no test data sets";
    return Outcome::kSkipped;
  }
  return Outcome::kPassed;
}

std::map<std::string, std::string> ReadKnownFailures(const std::string& path) {
  std::map<std::string, std::string> known;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#') continue;
    size_t hash = l.find('#');
    std::string name(absl::StripAsciiWhitespace(l.substr(0, hash)));
    std::string reason =
        hash == absl::string_view::npos
            ? ""
            : std::string(absl::StripAsciiWhitespace(l.substr(hash + 1)));
    known[name] = reason;
  }
  return known;
}

int Main(int argc, char** argv) {
  std::string data = "/usr/share/libonnx-testdata/data/node";
  std::string known_path = QUANTD_CONFORMANCE_KNOWN_FAILURES;
  std::string filter;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--data" && i + 1 < argc) {
      data = argv[++i];
    } else if (a == "--known" && i + 1 < argc) {
      known_path = argv[++i];
    } else if (a == "--filter" && i + 1 < argc) {
      filter = argv[++i];
    } else if (a == "--verbose") {
      verbose = true;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--data DIR] [--known FILE] [--filter SUBSTRING] "
                   "[--verbose]\n",
                   argv[0]);
      return 2;
    }
  }
  std::vector<std::string> tests = ListDir(data);
  if (tests.empty()) {
    std::fprintf(stderr, "no node tests under %s (install libonnx-testdata)\n",
                 data.c_str());
    return 1;
  }
  std::map<std::string, std::string> known = ReadKnownFailures(known_path);
  int passed = 0, failed = 0, skipped = 0, known_failed = 0;
  std::vector<std::string> unexpected_passes;
  for (const std::string& name : tests) {
    if (!filter.empty() && name.find(filter) == std::string::npos) continue;
    std::string detail;
    Outcome outcome = RunOne(data + "/" + name, &detail);
    auto k = known.find(name);
    if (k != known.end()) {
      if (outcome == Outcome::kPassed) unexpected_passes.push_back(name);
      if (outcome == Outcome::kFailed) {
        ++known_failed;
        ++skipped;
        continue;
      }
    }
    switch (outcome) {
      case Outcome::kPassed:
        ++passed;
        if (verbose) std::printf("PASS %s\n", name.c_str());
        break;
      case Outcome::kFailed:
        ++failed;
        std::printf("FAIL %s: %s\n", name.c_str(), detail.c_str());
        break;
      case Outcome::kSkipped:
        ++skipped;
        if (verbose) std::printf("SKIP %s: %s\n", name.c_str(), detail.c_str());
        break;
    }
  }
  for (const std::string& name : unexpected_passes) {
    std::printf("UNEXPECTED PASS %s: remove it from %s\n", name.c_str(),
                known_path.c_str());
  }
  std::printf(
      "conformance: %d known failures (listed in %s) counted as "
      "skipped\n",
      known_failed, known_path.c_str());
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed == 0 && unexpected_passes.empty() ? 0 : 1;
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) { return quantd::Main(argc, argv); }
