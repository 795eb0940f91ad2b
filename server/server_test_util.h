// Helpers shared by server/ tests (include only from *_test.cc).
//
//   std::string bytes = server_test::ReadTestdata("fmnist_mlp/model.onnx");
#ifndef QUANTD_SERVER_SERVER_TEST_UTIL_H_
#define QUANTD_SERVER_SERVER_TEST_UTIL_H_

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/blob_index.h"
#include "server/blob_store.h"

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

// Stores `bytes` and records `tenant` as their uploader, as a finished
// upload does; returns the digest.
inline std::string PutOwned(BlobStore& blobs, BlobIndex& index,
                            const std::string& tenant,
                            const std::string& bytes) {
  absl::StatusOr<std::string> digest = blobs.Put(bytes);
  if (!digest.ok()) return "";
  v1::Blob blob;
  blob.set_sha256(*digest);
  blob.set_size(static_cast<int64_t>(bytes.size()));
  if (!index.Record(tenant, blob).ok()) return "";
  return *digest;
}

}  // namespace server_test
}  // namespace quantd

#endif  // QUANTD_SERVER_SERVER_TEST_UTIL_H_
