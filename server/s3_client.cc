#include "server/s3_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/file_util.h"
#include "server/s3_xml.h"
#include "util/logging.h"
#include "util/sha256.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

constexpr char kEmptySha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
// Error bodies and XML answers are small; a larger one is not S3's.
constexpr size_t kMaxResponseBody = 1 << 20;
constexpr int kAttempts = 4;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// A request body: bytes in memory or a range of an open file, read from
// the start again when a request is retried.
struct Body {
  absl::string_view bytes;
  int fd = -1;
  int64_t offset = 0;
  int64_t length = 0;
  int64_t sent = 0;

  int64_t size() const { return fd >= 0 ? length : bytes.size(); }
};

size_t ReadBody(char* out, size_t size, size_t n, void* user) {
  Body* b = static_cast<Body*>(user);
  const int64_t want = std::min<int64_t>(size * n, b->size() - b->sent);
  if (want <= 0) return 0;
  if (b->fd < 0) {
    std::copy_n(b->bytes.data() + b->sent, want, out);
    b->sent += want;
    return want;
  }
  const ssize_t got = pread(b->fd, out, want, b->offset + b->sent);
  if (got <= 0) return CURL_READFUNC_ABORT;
  b->sent += got;
  return got;
}

// sha256 of `length` bytes of `fd` from `offset`, read in 1 MiB pieces.
absl::StatusOr<std::string> HashRange(int fd, int64_t offset, int64_t length) {
  Sha256 hash;
  std::string buf(1 << 20, '\0');
  for (int64_t done = 0; done < length;) {
    const ssize_t got =
        pread(fd, buf.data(), std::min<int64_t>(buf.size(), length - done),
              offset + done);
    if (got <= 0) return absl::DataLossError("the file shrank while uploading");
    hash.Update(absl::string_view(buf.data(), got));
    done += got;
  }
  return hash.HexDigest();
}

absl::Status CurlStatus(CURLcode code, const char* errbuf) {
  return absl::UnavailableError(
      absl::StrCat("object storage unreachable: ", curl_easy_strerror(code),
                   errbuf[0] != '\0' ? absl::StrCat(" (", errbuf, ")") : ""));
}

}  // namespace

struct S3Client::Request {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string key;
  std::string query;  // canonical: sorted, "name=value" pairs, escaped
  Body body;
  std::string body_sha256 = kEmptySha256;
  std::string content_type;
  const Sink* sink = nullptr;  // GET: where the body goes
};

struct S3Client::Response {
  long http = 0;
  std::string body;  // unless a sink took it
  std::string etag;
  int64_t content_length = -1;
  int64_t delivered = 0;  // bytes handed to the sink
  absl::Status sink_status;
};

namespace {

struct Transfer {
  S3Client::Response* response;
  const S3Client::Sink* sink;
};

size_t WriteBody(char* data, size_t size, size_t n, void* user) {
  Transfer* t = static_cast<Transfer*>(user);
  const absl::string_view bytes(data, size * n);
  const bool ok = t->response->http >= 200 && t->response->http < 300;
  if (t->sink != nullptr && ok) {
    t->response->sink_status = (*t->sink)(bytes);
    if (!t->response->sink_status.ok()) return 0;  // stops the transfer
    t->response->delivered += bytes.size();
    return bytes.size();
  }
  if (t->response->body.size() + bytes.size() > kMaxResponseBody) return 0;
  t->response->body.append(bytes.data(), bytes.size());
  return bytes.size();
}

size_t ReadHeader(char* data, size_t size, size_t n, void* user) {
  Transfer* t = static_cast<Transfer*>(user);
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) {
    const std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    int code = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &code)) {
      t->response->http = code;
    }
    return line.size();
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return line.size();
  const std::string name = absl::AsciiStrToLower(line.substr(0, colon));
  const absl::string_view value =
      absl::StripAsciiWhitespace(line.substr(colon + 1));
  if (name == "etag") t->response->etag = std::string(value);
  if (name == "content-length") {
    int64_t len = -1;
    if (absl::SimpleAtoi(value, &len)) t->response->content_length = len;
  }
  return line.size();
}

// What an S3 answer outside 2xx means for the caller.
absl::Status HttpStatus(const S3Client::Response& r, const std::string& what) {
  const S3Error e = ParseS3Error(r.body);
  // HEAD answers carry no body: say what a bare 404 means.
  std::string detail = absl::StrCat("HTTP ", r.http);
  if (!e.code.empty()) {
    detail = absl::StrCat(e.code, ": ", e.message);
  } else if (r.http == 404) {
    detail = "HTTP 404: no such object, or no such bucket";
  }
  const std::string msg =
      absl::StrCat("object storage refused ", what, " (", detail, ")");
  if (r.http == 404) return absl::NotFoundError(msg);
  if (r.http == 401 || r.http == 403) {
    return absl::PermissionDeniedError(
        absl::StrCat(msg, "; check the credentials and the bucket's policy"));
  }
  if (e.code == "XAmzContentSHA256Mismatch" || e.code == "BadDigest") {
    return absl::DataLossError(msg);
  }
  if (r.http >= 500 || r.http == 429) return absl::UnavailableError(msg);
  return absl::FailedPreconditionError(msg);
}

}  // namespace

absl::StatusOr<std::unique_ptr<S3Client>> S3Client::Create(S3Config config) {
  if (config.bucket.empty() || config.endpoint.empty() ||
      config.access_key_id.empty()) {
    return absl::InvalidArgumentError(
        "the S3 client needs a bucket, an endpoint and credentials");
  }
  GlobalInitOnce();
  return std::unique_ptr<S3Client>(new S3Client(std::move(config)));
}

std::string S3Client::Url(const std::string& key,
                          const std::string& query) const {
  return absl::StrCat(config_.endpoint, "/", config_.bucket, "/",
                      config_.prefix, key, query.empty() ? "" : "?", query);
}

absl::StatusOr<S3Client::Response> S3Client::SendOnce(const Request& req) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  Response response;
  Transfer transfer{&response, req.sink};
  Body body = req.body;
  char errbuf[CURL_ERROR_SIZE] = {0};
  const std::string url = Url(req.key, req.query);
  const std::string sigv4 = absl::StrCat("aws:amz:", config_.region, ":s3");
  const std::string userpwd =
      absl::StrCat(config_.access_key_id, ":", config_.secret_access_key);
  curl_slist* headers = nullptr;
  // No "Expect:" to switch off 100-continue: libcurl 7.88 would still sign
  // the removed header and S3 would refuse the signature (caught by the
  // tests' botocore check).
  std::vector<std::string> lines = {
      absl::StrCat("x-amz-content-sha256: ", req.body_sha256)};
  if (!config_.session_token.empty()) {
    lines.push_back(
        absl::StrCat("x-amz-security-token: ", config_.session_token));
  }
  if (!req.content_type.empty()) {
    lines.push_back(absl::StrCat("Content-Type: ", req.content_type));
  }
  for (const std::string& l : lines)
    headers = curl_slist_append(headers, l.c_str());

  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4.c_str());
  curl_easy_setopt(curl, CURLOPT_USERPWD, userpwd.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  // A stalled transfer (under 1 KB/s for 60 s) fails; a large one may
  // take as long as it needs.
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, ReadHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  if (req.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT") {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, ReadBody);
    curl_easy_setopt(curl, CURLOPT_READDATA, &body);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                     static_cast<curl_off_t>(body.size()));
  } else if (req.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    // Never null: without POSTFIELDS libcurl would read the body from its
    // default read callback (stdin).
    const char* fields =
        req.body.bytes.data() != nullptr ? req.body.bytes.data() : "";
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, fields);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(req.body.bytes.size()));
  } else if (req.method == "DELETE") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "DELETE");
  }
  const CURLcode code = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (!response.sink_status.ok()) return response.sink_status;
  if (code != CURLE_OK) return CurlStatus(code, errbuf);
  return response;
}

absl::StatusOr<S3Client::Response> S3Client::Send(const Request& req) {
  absl::Duration backoff = absl::Milliseconds(200);
  const std::string what =
      absl::StrCat(req.method, " ", config_.prefix, req.key);
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<Response> r = SendOnce(req);
    absl::Status s = r.status();
    if (r.ok()) {
      if (r->http >= 200 && r->http < 300) return r;
      s = HttpStatus(*r, what);
    }
    // A GET that already handed bytes to its sink cannot be replayed.
    const bool replayable = !r.ok() || r->delivered == 0;
    if (!absl::IsUnavailable(s) || !replayable || attempt == kAttempts) {
      return s;
    }
    absl::SleepFor(backoff);
    backoff *= 4;
  }
}

absl::Status S3Client::PutBytes(const std::string& key,
                                absl::string_view bytes) {
  Request req;
  req.method = "PUT";
  req.key = key;
  req.body.bytes = bytes;
  req.body_sha256 = Sha256Hex(bytes);
  req.content_type = "application/octet-stream";
  return Send(req).status();
}

absl::Status S3Client::PutFile(const std::string& key, const std::string& path,
                               const std::string& sha256, int64_t size) {
  if (size > config_.multipart_threshold) return PutMultipart(key, path, size);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", path);
  Request req;
  req.method = "PUT";
  req.key = key;
  req.body.fd = fd;
  req.body.length = size;
  req.body_sha256 = sha256;
  req.content_type = "application/octet-stream";
  const absl::Status s = Send(req).status();
  close(fd);
  return s;
}

absl::Status S3Client::PutMultipart(const std::string& key,
                                    const std::string& path, int64_t size) {
  Request start;
  start.method = "POST";
  start.key = key;
  start.query = "uploads=";
  start.content_type = "application/octet-stream";
  QUANTD_ASSIGN_OR_RETURN(Response started, Send(start));
  const std::string upload_id = XmlElement(started.body, "UploadId");
  if (upload_id.empty()) {
    return absl::UnavailableError(
        "object storage started a multipart upload without an UploadId");
  }
  char* escaped = curl_easy_escape(nullptr, upload_id.data(), upload_id.size());
  const std::string id_query = absl::StrCat("uploadId=", escaped);
  curl_free(escaped);

  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  absl::Status status = fd < 0 ? Errno("cannot open", path) : absl::OkStatus();
  std::vector<std::string> etags;
  for (int64_t offset = 0; status.ok() && offset < size;
       offset += config_.part_size) {
    Request part;
    part.method = "PUT";
    part.key = key;
    part.query = absl::StrCat("partNumber=", etags.size() + 1, "&", id_query);
    part.body.fd = fd;
    part.body.offset = offset;
    part.body.length = std::min(config_.part_size, size - offset);
    absl::StatusOr<std::string> hash = HashRange(fd, offset, part.body.length);
    if (!hash.ok()) {
      status = hash.status();
      break;
    }
    part.body_sha256 = *hash;
    absl::StatusOr<Response> r = Send(part);
    status = r.status();
    if (r.ok()) etags.push_back(r->etag);
  }
  if (fd >= 0) close(fd);
  if (status.ok()) {
    Request finish;
    finish.method = "POST";
    finish.key = key;
    finish.query = id_query;
    finish.content_type = "application/xml";
    const std::string xml = CompleteMultipartXml(etags);
    finish.body.bytes = xml;
    finish.body_sha256 = Sha256Hex(xml);
    absl::StatusOr<Response> r = Send(finish);
    status = r.status();
    // S3 may answer 200 and report a failure in the body.
    if (r.ok() && !ParseS3Error(r->body).code.empty()) {
      Response failed;
      failed.http = 500;
      failed.body = r->body;
      status = HttpStatus(failed, "completing an upload");
    }
  }
  if (!status.ok()) {
    Request abort;
    abort.method = "DELETE";
    abort.key = key;
    abort.query = id_query;
    // Parts left behind cost storage until a lifecycle rule expires them.
    LogIfError(Send(abort).status(), "aborting a multipart upload");
  }
  return status;
}

absl::Status S3Client::Get(const std::string& key, const Sink& sink) {
  Request req;
  req.key = key;
  req.sink = &sink;
  return Send(req).status();
}

absl::StatusOr<int64_t> S3Client::Size(const std::string& key) {
  Request req;
  req.method = "HEAD";
  req.key = key;
  QUANTD_ASSIGN_OR_RETURN(Response r, Send(req));
  if (r.content_length < 0) {
    return absl::UnavailableError(
        "object storage answered HEAD without a size");
  }
  return r.content_length;
}

absl::Status S3Client::Delete(const std::string& key) {
  Request req;
  req.method = "DELETE";
  req.key = key;
  absl::Status s = Send(req).status();
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

}  // namespace quantd
