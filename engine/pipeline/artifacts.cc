#include "engine/pipeline/artifacts.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
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
    for (const char* name :
         {kModelDataArtifact, kModelArtifact, kReportArtifact}) {
      std::remove(absl::StrCat(tmp, "/", name).c_str());
    }
    rmdir(tmp.c_str());
  };
  absl::StatusOr<std::string> report = ReportToJson(result.report);
  if (!report.ok()) {
    cleanup();
    return report.status();
  }
  // Views, not copies: the model may be gigabytes. In rename order: the
  // data, then the model that points into it, then the report, so a report
  // on disk means its model is complete.
  std::vector<std::pair<const char*, absl::string_view>> files;
  if (!result.model_external_data.empty()) {
    files.emplace_back(kModelDataArtifact, result.model_external_data);
  }
  files.emplace_back(kModelArtifact, result.model_bytes);
  files.emplace_back(kReportArtifact, *report);
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
  if (result.model_external_data.empty()) {
    std::remove(absl::StrCat(dir, "/", kModelDataArtifact).c_str());
  }
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
