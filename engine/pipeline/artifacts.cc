#include "engine/pipeline/artifacts.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "util/status_macros.h"

namespace quantd {

absl::StatusOr<std::string> ReportToJson(const v1::QuantizationReport& report) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  if (auto s =
          google::protobuf::util::MessageToJsonString(report, &out, options);
      !s.ok()) {
    return absl::InternalError(
        absl::StrCat("the report cannot be written as JSON: ", s.ToString()));
  }
  return out;
}

absl::Status CreateOutputFolder(const std::string& dir) {
  if (dir.empty()) {
    return absl::InvalidArgumentError("the output folder name is empty");
  }
  // mkdir -p: each prefix ending before a '/', then the whole path.
  for (size_t pos = dir.find('/', 1);; pos = dir.find('/', pos + 1)) {
    const std::string prefix = dir.substr(0, pos);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create output folder '", prefix, "'"));
    }
    if (pos == std::string::npos) break;
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
      access(dir.c_str(), W_OK) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("'", dir, "' is not a writable folder"));
  }
  return absl::OkStatus();
}

absl::Status WriteArtifacts(const std::string& dir,
                            const PipelineResult& result) {
  QUANTD_RETURN_IF_ERROR(CreateOutputFolder(dir));
  std::string tmpl = absl::StrCat(dir, "/.quantd-tmp-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write in output folder '", dir, "'"));
  }
  const std::string tmp = tmpl;
  auto cleanup = [&] {
    std::remove(absl::StrCat(tmp, "/", kModelArtifact).c_str());
    std::remove(absl::StrCat(tmp, "/", kReportArtifact).c_str());
    rmdir(tmp.c_str());
  };
  absl::StatusOr<std::string> report = ReportToJson(result.report);
  if (!report.ok()) {
    cleanup();
    return report.status();
  }
  const std::pair<const char*, std::string> files[] = {
      {kModelArtifact, result.model_bytes}, {kReportArtifact, *report}};
  for (const auto& [name, bytes] : files) {
    const std::string path = absl::StrCat(tmp, "/", name);
    FILE* f = std::fopen(path.c_str(), "wb");
    bool ok = f != nullptr &&
              std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    ok = f != nullptr && std::fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    if (f != nullptr) ok = std::fclose(f) == 0 && ok;
    if (!ok) {
      cleanup();
      return absl::InternalError(absl::StrCat("cannot write '", path, "'"));
    }
  }
  // The model first, then the report: a report on disk means its model is.
  for (const auto& [name, bytes] : files) {
    if (std::rename(absl::StrCat(tmp, "/", name).c_str(),
                    absl::StrCat(dir, "/", name).c_str()) != 0) {
      cleanup();
      return absl::InternalError(
          absl::StrCat("cannot move '", name, "' into '", dir, "'"));
    }
  }
  rmdir(tmp.c_str());
  return absl::OkStatus();
}

}  // namespace quantd
