// Helpers shared by server/ tests (include only from *_test.cc).
//
//   std::string bytes = server_test::ReadTestdata("fmnist_mlp/model.onnx");
#ifndef QUANTD_SERVER_SERVER_TEST_UTIL_H_
#define QUANTD_SERVER_SERVER_TEST_UTIL_H_

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace quantd {
namespace server_test {

// The bytes of a file under testdata/.
inline std::string ReadTestdata(const std::string& rel) {
  std::ifstream f(absl::StrCat(QUANTD_TESTDATA_DIR, "/", rel),
                  std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace server_test
}  // namespace quantd

#endif  // QUANTD_SERVER_SERVER_TEST_UTIL_H_
