#include "fuzz/fuzz_util.h"

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "util/logging.h"

namespace quantd {
namespace fuzz {
namespace {

std::string* MakeScratchDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(tmp != nullptr ? tmp : "/tmp") + "/quantd_fuzz_XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::perror("quantd fuzz: mkdtemp");
    std::abort();
  }
  static std::string* dir = new std::string(tmpl);
  std::atexit([] {
    std::error_code ignored;
    std::filesystem::remove_all(*dir, ignored);
  });
  return dir;
}

}  // namespace

void QuietLogging(const char* argv0) {
  InitLogging(argv0);
  FLAGS_minloglevel = google::GLOG_ERROR;
}

const std::string& ScratchDir() {
  static const std::string* dir = MakeScratchDir();
  return *dir;
}

void WriteFileOrDie(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data),
          static_cast<std::streamsize>(size));
  f.close();
  if (!f) {
    std::fprintf(stderr, "quantd fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

}  // namespace fuzz
}  // namespace quantd
