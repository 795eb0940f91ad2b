// A small client for the S3 object API (PUT, multipart upload, GET, HEAD,
// DELETE) on libcurl, which signs each request with AWS Signature V4
// (CURLOPT_AWS_SIGV4): quantd writes no signing code of its own. Every
// request carries the payload's sha256 as x-amz-content-sha256, so the
// server verifies each body (each part of a multipart upload) against the
// signed hash. Objects appear whole or not at all: a single PUT is atomic
// and a multipart upload becomes visible only at its completion (aborted
// on any failure). Transient failures (connection errors, 500, 503
// SlowDown) are retried three times with backoff.
//
// Thread-safe: each call uses its own curl handle.
//
//   absl::StatusOr<std::unique_ptr<S3Client>> s3 = S3Client::Create(config);
//   (*s3)->PutFile("blobs/ab/abcd...", "/tmp/blob", sha256_hex, size);
//   (*s3)->Get("blobs/ab/abcd...", [&](absl::string_view bytes) {
//     return sink.Write(bytes);
//   });
#ifndef QUANTD_SERVER_S3_CLIENT_H_
#define QUANTD_SERVER_S3_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/s3_config.h"

namespace quantd {

class S3Client {
 public:
  // Receives a GET's body in pieces; an error stops the transfer.
  using Sink = std::function<absl::Status(absl::string_view)>;

  // `config` must have passed FillS3ConfigFromEnv.
  static absl::StatusOr<std::unique_ptr<S3Client>> Create(S3Config config);

  // Uploads the first `size` bytes of the file at `path` under `key` (the
  // config's prefix is prepended to every key). `sha256` is the hex digest
  // of those bytes: sent with a single PUT, checked by the server. Above
  // the multipart threshold the file goes up in parts, each read and hashed
  // on its own, so memory stays at one part.
  absl::Status PutFile(const std::string& key, const std::string& path,
                       const std::string& sha256, int64_t size);
  absl::Status PutBytes(const std::string& key, absl::string_view bytes);
  // Streams the object's bytes to `sink`. NotFound if there is none.
  absl::Status Get(const std::string& key, const Sink& sink);
  // The object's size, or NotFound.
  absl::StatusOr<int64_t> Size(const std::string& key);
  // Deletes the object (no error if there was none).
  absl::Status Delete(const std::string& key);

  const S3Config& config() const { return config_; }

  // One request and its answer (defined in s3_client.cc).
  struct Request;
  struct Response;

 private:
  explicit S3Client(S3Config config) : config_(std::move(config)) {}
  std::string Url(const std::string& key, const std::string& query) const;
  // One request, retried while the failure is transient.
  absl::StatusOr<Response> Send(const Request& request);
  absl::StatusOr<Response> SendOnce(const Request& request);
  absl::Status PutMultipart(const std::string& key, const std::string& path,
                            int64_t size);

  const S3Config config_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_S3_CLIENT_H_
