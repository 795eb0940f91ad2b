// Bytes -> a sequence of UploadBlobRequest messages (headers and chunks,
// streams ended by a commit or dropped) from two tenants -> UploadSession,
// over a real BlobStore, BlobIndex, JobStore and ServiceCore in a scratch
// folder: the UploadBlob stream's protocol without gRPC. Headers usually
// declare a payload's true size and digest and chunks usually carry the
// next slice of it, so that commits succeed as often as they fail.
//
// The stores persist across inputs (resumed uploads, quotas and duplicate
// blobs are where the protocol has state) and are recreated every
// kInputsPerService inputs so the folder stays small; a crash found late in
// a run may need the inputs before it (libFuzzer's -runs over the corpus).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_util.h"
#include "server/blob_index.h"
#include "server/blob_store.h"
#include "server/job_store.h"
#include "server/scheduler.h"
#include "server/service_core.h"
#include "server/upload_session.h"
#include "util/sha256.h"

namespace quantd {
namespace {

constexpr int kInputsPerService = 500;
constexpr size_t kMaxPayload = 4096;

// A ServiceCore over real stores whose scheduler is never started (no job
// runs), with limits small enough that inputs reach them.
struct Service {
  explicit Service(const std::string& root) {
    std::filesystem::create_directories(root);
    blobs = Must(BlobStore::Open(root));
    jobs = Must(JobStore::Open(root + "/jobs.db", "0123456789abcdef"));
    index = Must(BlobIndex::Open(root + "/blobs.db"));
    scheduler = std::make_unique<Scheduler>(jobs.get(), blobs.get(),
                                            index.get(), SchedulerOptions{});
    ServiceLimits limits;
    limits.max_upload_bytes = 3000;
    limits.max_tenant_storage_bytes = 20000;
    core = std::make_unique<ServiceCore>(jobs.get(), blobs.get(), index.get(),
                                         scheduler.get(), limits);
  }
  template <typename T>
  static T Must(absl::StatusOr<T> v) {
    if (!v.ok()) {
      std::fprintf(stderr, "fuzz_upload: %s\n", v.status().ToString().c_str());
      std::abort();
    }
    return std::move(*v);
  }

  std::unique_ptr<BlobStore> blobs;
  std::unique_ptr<JobStore> jobs;
  std::unique_ptr<BlobIndex> index;
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<ServiceCore> core;
};

Service& CurrentService() {
  static int inputs = 0;
  static std::unique_ptr<Service> service;
  static int generation = 0;
  if (service == nullptr || ++inputs > kInputsPerService) {
    service.reset();
    const std::string root = fuzz::ScratchDir() + "/store";
    std::filesystem::remove_all(root);
    service = std::make_unique<Service>(absl::StrCat(root, "/", generation++));
    inputs = 0;
  }
  return *service;
}

v1::UploadHeader MakeHeader(FuzzedDataProvider& in, const std::string& payload,
                            int64_t committed_guess) {
  v1::UploadHeader h;
  h.set_kind(static_cast<v1::BlobKind>(in.ConsumeIntegralInRange(0, 3)));
  h.set_name(in.ConsumeBool() ? "model.onnx"
                              : in.ConsumeRandomLengthString(300));
  h.set_size(in.ConsumeBool() ? static_cast<int64_t>(payload.size())
                              : in.ConsumeIntegral<int64_t>());
  h.set_sha256(in.ConsumeBool() ? Sha256Hex(payload)
                                : in.ConsumeRandomLengthString(70));
  h.set_upload_id(in.ConsumeBool()
                      ? absl::StrCat("up-", in.ConsumeIntegralInRange(0, 3))
                      : in.ConsumeRandomLengthString(70));
  h.set_offset(in.ConsumeBool() ? committed_guess
                                : in.ConsumeIntegral<int64_t>());
  return h;
}

// A committed blob is the tenant's, and its stored bytes hash to its name.
void CheckCommitted(Service& s, const std::string& tenant,
                    const v1::Blob& blob) {
  if (!s.core->GetBlob(tenant, blob.sha256()).ok()) std::abort();
  absl::StatusOr<std::string> bytes =
      s.blobs->Read(blob.sha256(), 0, blob.size() + 1);
  if (!bytes.ok() || static_cast<int64_t>(bytes->size()) != blob.size() ||
      Sha256Hex(*bytes) != blob.sha256()) {
    std::abort();
  }
}

}  // namespace
}  // namespace quantd

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  quantd::fuzz::QuietLogging((*argv)[0]);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantd;  // NOLINT: a fuzz entry point, not a library
  FuzzedDataProvider in(data, size);
  Service& service = CurrentService();
  std::string tenant = "tenant-a";
  auto session = std::make_unique<UploadSession>(service.core.get(), tenant);
  std::string payload;
  int64_t sent = 0;
  while (in.remaining_bytes() > 0) {
    switch (in.ConsumeIntegralInRange(0, 4)) {
      case 0:  // a header (the stream's first message, or a protocol error)
      {
        payload = in.ConsumeRandomLengthString(kMaxPayload);
        const v1::UploadHeader header = MakeHeader(in, payload, sent);
        if (session->Header(header).ok()) sent = header.offset();
        break;
      }
      case 1: {  // the next slice of the payload, or arbitrary bytes
        const size_t n = in.ConsumeIntegralInRange<size_t>(0, 1500);
        std::string chunk =
            in.ConsumeBool()
                ? payload.substr(std::min<size_t>(sent, payload.size()), n)
                : in.ConsumeBytesAsString(n);
        if (session->Chunk(chunk).ok()) sent += chunk.size();
        break;
      }
      case 2: {  // the client closed the stream: commit
        absl::StatusOr<v1::Blob> blob = session->Commit();
        if (blob.ok()) CheckCommitted(service, tenant, *blob);
        [[fallthrough]];
      }
      case 3:  // a new stream, possibly from the other tenant
        tenant = in.ConsumeBool() ? "tenant-a" : "tenant-b";
        session = std::make_unique<UploadSession>(service.core.get(), tenant);
        if (in.ConsumeBool()) sent = 0;
        break;
      default:  // a lone commit with nothing sent
        if (absl::StatusOr<v1::Blob> blob = session->Commit(); blob.ok()) {
          CheckCommitted(service, tenant, *blob);
        }
        break;
    }
  }
  return 0;
}
