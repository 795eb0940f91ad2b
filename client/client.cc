#include "client/client.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace quantd::client {
namespace {

constexpr int64_t kChunkBytes = 1 << 20;

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Codes after which a stream is worth reopening: the server went away or
// restarts, or the connection broke.
bool Retryable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::UNKNOWN ||
         s.error_code() == grpc::StatusCode::INTERNAL ||
         s.error_code() == grpc::StatusCode::ABORTED;
}

int64_t FileSizeOr0(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

}  // namespace

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                              EVP_MD_CTX_free);
  if (ctx == nullptr ||
      EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("OpenSSL: cannot start a sha256");
  }
  std::string block(kChunkBytes, '\0');
  while (f) {
    f.read(block.data(), static_cast<std::streamsize>(block.size()));
    const std::streamsize n = f.gcount();
    if (n > 0)
      EVP_DigestUpdate(ctx.get(), block.data(), static_cast<size_t>(n));
  }
  if (f.bad()) {
    return absl::DataLossError(absl::StrCat("error reading '", path, "'"));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

std::string UploadIdFor(const std::string& sha256) {
  // The server allows 64 characters of [A-Za-z0-9._-]: a hex digest is one.
  return sha256.substr(0, 64);
}

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(
    const ClientOptions& options) {
  if (options.address.empty()) {
    return absl::InvalidArgumentError("the server address is empty");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (!options.tls_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadWholeFile(options.tls_ca_file);
    if (!ca.ok()) return ca.status();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = *ca;
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(options.address, credentials, args);
  if (channel == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot make a channel to '", options.address, "'"));
  }
  return std::unique_ptr<Client>(new Client(std::move(channel), options));
}

Client::Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : channel_(std::move(channel)),
      stub_(v1::QuantizationService::NewStub(channel_)),
      options_(std::move(options)) {}

std::unique_ptr<grpc::ClientContext> Client::Context(bool deadline) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options_.token.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", options_.token));
  }
  if (deadline) {
    context->set_deadline(
        absl::ToChronoTime(absl::Now() + options_.call_timeout));
  }
  return context;
}

absl::StatusOr<UploadResult> Client::Upload(const std::string& path,
                                            v1::BlobKind kind) {
  absl::StatusOr<std::string> sha256 = Sha256OfFile(path);
  if (!sha256.ok()) return sha256.status();
  const int64_t size = FileSizeOr0(path);
  // The blob, if the server already holds these bytes for this tenant.
  auto stored = [&]() -> absl::StatusOr<std::optional<UploadResult>> {
    v1::GetBlobRequest request;
    request.set_sha256(*sha256);
    UploadResult result;
    auto context = Context(true);
    grpc::Status s = stub_->GetBlob(context.get(), request, &result.blob);
    if (s.ok()) {
      result.skipped = true;
      return std::optional<UploadResult>(std::move(result));
    }
    if (s.error_code() != grpc::StatusCode::NOT_FOUND) return FromGrpc(s);
    return std::optional<UploadResult>();
  };
  {
    absl::StatusOr<std::optional<UploadResult>> done = stored();
    if (!done.ok()) return done.status();
    if (done->has_value()) return **done;
  }
  // Up to three streams: the first, and resumptions after the connection
  // broke or another writer moved the committed size.
  absl::Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    int64_t offset = 0;
    v1::GetUploadStatusRequest request;
    request.set_upload_id(UploadIdFor(*sha256));
    v1::UploadStatus status;
    auto context = Context(true);
    grpc::Status s = stub_->GetUploadStatus(context.get(), request, &status);
    if (s.ok() && status.sha256() == *sha256 && status.size() == size &&
        status.committed_size() <= size) {
      offset = status.committed_size();
    } else if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND) {
      return FromGrpc(s);
    }
    absl::StatusOr<UploadResult> r =
        UploadFrom(path, kind, *sha256, size, offset);
    if (r.ok()) return r;
    last = r.status();
    // Two clients uploading the same bytes share one upload session (its id
    // is the digest): when the other one finished first, the session is gone
    // (NOT_FOUND) or its size moved (FAILED_PRECONDITION), and the blob is
    // stored. Seen in the crash soak: two jobs submitted at once with the
    // same model.
    if (last.code() == absl::StatusCode::kNotFound ||
        last.code() == absl::StatusCode::kFailedPrecondition) {
      absl::StatusOr<std::optional<UploadResult>> done = stored();
      if (done.ok() && done->has_value()) return **done;
    }
    // NOT_FOUND otherwise: the session went away under this stream, because
    // the server restarted, the janitor removed a partial upload, or the
    // other client's stream finished and the blob was not yet visible to
    // the check above (the crash soak hit that one at offset 0). The next
    // attempt asks again and starts a new session if it must.
    if (last.code() != absl::StatusCode::kUnavailable &&
        last.code() != absl::StatusCode::kFailedPrecondition &&
        last.code() != absl::StatusCode::kNotFound) {
      return last;
    }
  }
  return last;
}

absl::StatusOr<UploadResult> Client::UploadFrom(const std::string& path,
                                                v1::BlobKind kind,
                                                const std::string& sha256,
                                                int64_t size, int64_t offset) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  f.seekg(offset);
  UploadResult result;
  result.resumed_from = offset;
  auto context = Context(false);
  std::unique_ptr<grpc::ClientWriter<v1::UploadBlobRequest>> writer =
      stub_->UploadBlob(context.get(), &result.blob);
  v1::UploadBlobRequest request;
  v1::UploadHeader* header = request.mutable_header();
  header->set_kind(kind);
  header->set_name(
      std::filesystem::path(path).filename().string().substr(0, 255));
  header->set_size(size);
  header->set_sha256(sha256);
  header->set_upload_id(UploadIdFor(sha256));
  header->set_offset(offset);
  bool open = writer->Write(request);
  std::string block(kChunkBytes, '\0');
  for (int64_t sent = offset; open && sent < size;) {
    f.read(block.data(), static_cast<std::streamsize>(
                             std::min<int64_t>(kChunkBytes, size - sent)));
    const std::streamsize n = f.gcount();
    if (n <= 0) break;
    request.set_chunk(block.data(), static_cast<size_t>(n));
    open = writer->Write(request);
    sent += n;
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpc(s);
  return result;
}

absl::StatusOr<v1::Job> Client::CreateJob(const v1::JobSpec& spec,
                                          const std::string& request_id,
                                          int priority) {
  v1::CreateJobRequest request;
  *request.mutable_spec() = spec;
  request.set_request_id(request_id);
  request.set_priority(priority);
  v1::Job job;
  auto context = Context(true);
  grpc::Status s = stub_->CreateJob(context.get(), request, &job);
  if (!s.ok()) return FromGrpc(s);
  return job;
}

absl::StatusOr<v1::Job> Client::GetJob(const std::string& name) {
  v1::GetJobRequest request;
  request.set_name(name);
  v1::Job job;
  auto context = Context(true);
  grpc::Status s = stub_->GetJob(context.get(), request, &job);
  if (!s.ok()) return FromGrpc(s);
  return job;
}

absl::StatusOr<v1::ListJobsResponse> Client::ListJobs(
    const v1::ListJobsRequest& request) {
  v1::ListJobsResponse response;
  auto context = Context(true);
  grpc::Status s = stub_->ListJobs(context.get(), request, &response);
  if (!s.ok()) return FromGrpc(s);
  return response;
}

absl::StatusOr<v1::Job> Client::CancelJob(const std::string& name) {
  v1::CancelJobRequest request;
  request.set_name(name);
  v1::Job job;
  auto context = Context(true);
  grpc::Status s = stub_->CancelJob(context.get(), request, &job);
  if (!s.ok()) return FromGrpc(s);
  return job;
}

absl::Status Client::DeleteJob(const std::string& name) {
  v1::DeleteJobRequest request;
  request.set_name(name);
  google::protobuf::Empty empty;
  auto context = Context(true);
  return FromGrpc(stub_->DeleteJob(context.get(), request, &empty));
}

absl::Status Client::Watch(const std::string& name, int64_t after_sequence,
                           const EventCallback& callback) {
  int64_t last = after_sequence;
  absl::Time last_contact = absl::Now();
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    v1::WatchJobRequest request;
    request.set_name(name);
    request.set_after_sequence(last);
    auto context = Context(false);
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
        stub_->WatchJob(context.get(), request);
    v1::JobEvent event;
    bool terminal = false;
    while (reader->Read(&event)) {
      last_contact = absl::Now();
      backoff = absl::Milliseconds(100);
      if (event.sequence() <= last) continue;  // a replay overlapped
      last = event.sequence();
      if (!callback(event)) {
        context->TryCancel();
        // CANCELLED is what was asked for; anything else is worth reporting.
        const grpc::Status finished = reader->Finish();
        return finished.ok() ||
                       finished.error_code() == grpc::StatusCode::CANCELLED
                   ? absl::OkStatus()
                   : FromGrpc(finished);
      }
      if (event.has_state_change() && IsTerminal(event.state_change())) {
        terminal = true;
      }
    }
    const grpc::Status s = reader->Finish();
    if (terminal) return absl::OkStatus();
    if (s.ok()) {
      // The stream ended without a terminal event: the server is draining,
      // or the terminal event is at or before `last` already.
      absl::StatusOr<v1::Job> job = GetJob(name);
      if (job.ok() && IsTerminal(job->state())) return absl::OkStatus();
      if (!job.ok() && job.status().code() != absl::StatusCode::kUnavailable) {
        return job.status();
      }
    } else if (!Retryable(s) ||
               absl::Now() - last_contact > options_.reconnect_window) {
      return FromGrpc(s);
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

Client::DownloadAttempt Client::DownloadFrom(const std::string& job,
                                             v1::ArtifactKind kind,
                                             int64_t offset,
                                             const std::string& partial,
                                             absl::Time* last_contact) {
  v1::DownloadArtifactRequest request;
  request.set_job(job);
  request.set_kind(kind);
  request.set_offset(offset);
  auto context = Context(false);
  std::unique_ptr<grpc::ClientReader<v1::DownloadArtifactResponse>> reader =
      stub_->DownloadArtifact(context.get(), request);
  v1::DownloadArtifactResponse response;
  DownloadAttempt attempt;
  std::ofstream out;
  while (reader->Read(&response)) {
    *last_contact = absl::Now();
    if (response.has_header()) {
      attempt.header = response.header();
      attempt.have_header = true;
      if (attempt.header.offset() != offset) {
        context->TryCancel();
        break;
      }
      out.open(partial, std::ios::binary | std::ios::app);
      if (!out) {
        context->TryCancel();
        attempt.write_failed = true;
        break;
      }
      continue;
    }
    if (!attempt.have_header) continue;
    out.write(response.chunk().data(),
              static_cast<std::streamsize>(response.chunk().size()));
    if (!out) {
      context->TryCancel();
      attempt.write_failed = true;
      break;
    }
  }
  attempt.status = reader->Finish();
  return attempt;
}

absl::StatusOr<v1::ArtifactHeader> Client::Download(const std::string& job,
                                                    v1::ArtifactKind kind,
                                                    const std::string& path) {
  const std::string partial = path + ".partial";
  // Like `quantd run-job --out`, missing parent folders are created.
  const std::filesystem::path parent =
      std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  absl::Time last_contact = absl::Now();
  bool restarted = false;  // from 0 after a partial file that did not fit
  // Drops the partial file; true if starting over from 0 is still allowed
  // (once per download).
  auto restart = [&] {
    std::filesystem::remove(partial);
    if (restarted) return false;
    restarted = true;
    return true;
  };
  while (true) {
    const int64_t offset = FileSizeOr0(partial);
    const DownloadAttempt a =
        DownloadFrom(job, kind, offset, partial, &last_contact);
    const grpc::Status& s = a.status;
    if (a.write_failed) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot write '", partial, "'"));
    }
    if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) {
      // A partial file longer than this artifact: start over.
      if (s.error_code() == grpc::StatusCode::OUT_OF_RANGE && offset > 0 &&
          restart()) {
        continue;
      }
      if (Retryable(s) &&
          absl::Now() - last_contact <= options_.reconnect_window) {
        absl::SleepFor(absl::Milliseconds(200));
        continue;
      }
      return FromGrpc(s);
    }
    if (!a.have_header) {
      return absl::InternalError(
          "the server's download stream carried no ArtifactHeader");
    }
    const int64_t got = FileSizeOr0(partial);
    if (a.header.offset() != offset || got != a.header.size()) {
      if (restart()) continue;
      return absl::DataLossError(
          absl::StrCat("downloaded ", got, " bytes of ", a.header.size()));
    }
    absl::StatusOr<std::string> digest = Sha256OfFile(partial);
    if (!digest.ok()) return digest.status();
    if (*digest != a.header.sha256()) {
      // The partial file was from other bytes, or these bytes are wrong.
      if (offset > 0 && restart()) continue;
      std::filesystem::remove(partial);
      return absl::DataLossError(absl::StrCat("downloaded sha256 ", *digest,
                                              " but the server announced ",
                                              a.header.sha256()));
    }
    if (std::rename(partial.c_str(), path.c_str()) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot rename '", partial, "' to '", path, "'"));
    }
    return a.header;
  }
}

}  // namespace quantd::client
