#include "client/transfer_commands.h"

#include <cstdio>
#include <memory>

#include "client/exit_codes.h"

namespace quantd::client {
namespace {

struct DownloadArgs {
  std::string name, kind, out;
};

struct UploadArgs {
  std::string file, kind;
};

int Download(const GlobalOptions& g, const DownloadArgs& a) {
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::ArtifactHeader> h = (*client)->Download(
      JobName(a.name),
      a.kind == "report" ? v1::ARTIFACT_KIND_REPORT : v1::ARTIFACT_KIND_MODEL,
      a.out);
  if (!h.ok()) return Fail(h.status(), "download " + a.kind);
  if (g.json) {
    PrintJson(*h);
  } else {
    std::printf("%s: %lld bytes, sha256 %s (verified)\n", a.out.c_str(),
                static_cast<long long>(h->size()), h->sha256().c_str());
  }
  return kExitOk;
}

int Upload(const GlobalOptions& g, const UploadArgs& a) {
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  v1::Blob blob;
  absl::StatusOr<std::string> d = UploadAndSay(
      client->get(), a.file,
      a.kind == "dataset" ? v1::BLOB_KIND_DATASET : v1::BLOB_KIND_MODEL, &blob);
  if (!d.ok()) return Fail(d.status(), "upload " + a.file);
  if (g.json) {
    PrintJson(blob);
  } else {
    std::printf("%s\n", d->c_str());
  }
  return kExitOk;
}

void AddDownloadCommand(CLI::App* app, CommandContext* context) {
  auto args = std::make_shared<DownloadArgs>();
  CLI::App* download = app->add_subcommand(
      "download",
      "Download a job's artifact (resuming a partial FILE.partial, sha256 "
      "verified)");
  download->add_option("NAME", args->name, "jobs/ID or ID")->required();
  download->add_option("--kind", args->kind, "model or report")
      ->required()
      ->check(CLI::IsMember({"model", "report"}));
  download->add_option("--out", args->out, "destination file")->required();
  download->footer(SubcommandFooter());
  OnParsed(download, context,
           [context, args] { return Download(context->global, *args); });
}

void AddUploadCommand(CLI::App* app, CommandContext* context) {
  auto args = std::make_shared<UploadArgs>();
  CLI::App* upload = app->add_subcommand(
      "upload",
      "Upload a model or dataset (skipped when the server has it, resumed "
      "after an interruption); prints its sha256");
  upload->add_option("FILE", args->file, "the file")
      ->required()
      ->check(CLI::ExistingFile);
  upload->add_option("--kind", args->kind, "model or dataset")
      ->required()
      ->check(CLI::IsMember({"model", "dataset"}));
  upload->footer(SubcommandFooter());
  OnParsed(upload, context,
           [context, args] { return Upload(context->global, *args); });
}

}  // namespace

void AddTransferCommands(CLI::App* app, CommandContext* context) {
  AddDownloadCommand(app, context);
  AddUploadCommand(app, context);
}

absl::StatusOr<std::string> UploadAndSay(Client* client,
                                         const std::string& path,
                                         v1::BlobKind kind, v1::Blob* blob) {
  absl::StatusOr<UploadResult> r = client->Upload(path, kind);
  if (!r.ok()) return r.status();
  if (r->skipped) {
    std::fprintf(stderr,
                 "%s: already on the server, upload skipped (sha256 %s)\n",
                 path.c_str(), r->blob.sha256().c_str());
  } else if (r->resumed_from > 0) {
    std::fprintf(
        stderr, "%s: upload resumed at byte %lld, %lld bytes (sha256 %s)\n",
        path.c_str(), static_cast<long long>(r->resumed_from),
        static_cast<long long>(r->blob.size()), r->blob.sha256().c_str());
  } else {
    std::fprintf(stderr, "%s: uploaded %lld bytes (sha256 %s)\n", path.c_str(),
                 static_cast<long long>(r->blob.size()),
                 r->blob.sha256().c_str());
  }
  if (blob != nullptr) *blob = r->blob;
  return r->blob.sha256();
}

}  // namespace quantd::client
