// The durable job store: jobs, their event logs and the artifacts they
// produced, so that a server killed at any moment restarts with every
// committed job intact and every watcher able to replay events from the
// sequence number it last saw. It knows nothing of gRPC: the service
// handlers, the scheduler and the workers sit on top of it and translate its
// absl::Status codes directly.
//
// Two backends implement this interface and pass the same test suite
// (job_store_test.cc): SQLite, one file beside the server (the default,
// sqlite_job_store.h), and PostgreSQL, shared by several replicas
// (postgres_job_store.h). JobStore::Open picks one from the location.
//
// Example:
//
//   absl::StatusOr<std::unique_ptr<JobStore>> store =
//       JobStore::Open("/var/lib/quantd/jobs.db", page_token_key);
//   // or JobStore::Open("postgresql://quantd@db/quantd", page_token_key)
//   if (!store.ok()) return store.status();
//   JobRecord job;
//   job.tenant = "team-a";
//   job.request_id = "3f1c...";  // optional: makes Create idempotent
//   job.spec = spec.SerializeAsString();
//   absl::StatusOr<std::pair<JobRecord, bool>> created =
//       (*store)->Create(std::move(job));
//   ...
//   // Scheduler:
//   absl::StatusOr<std::optional<JobRecord>> next = (*store)->NextQueued();
//   absl::StatusOr<JobRecord> running = (*store)->Transition(
//       (*next)->id, {JobState::kQueued}, JobState::kRunning);
//   // Worker:
//   (*store)->AppendEvent(id, event.SerializeAsString());
//   (*store)->SetArtifacts(id, model_sha, model_size, report_sha, size);
//   (*store)->Transition(id, {JobState::kRunning}, JobState::kSucceeded);
//
// Thread safety: a JobStore is safe to use from many threads; each backend
// serializes calls on one connection.
#ifndef QUANTD_SERVER_JOB_STORE_H_
#define QUANTD_SERVER_JOB_STORE_H_

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace quantd {

// The numbers match the API's Job.State values and are what the database
// stores, so they must never be renumbered.
enum class JobState {
  kQueued = 1,
  kRunning = 2,
  kSucceeded = 3,
  kFailed = 4,
  kCancelling = 5,
  kCancelled = 6
};

// SUCCEEDED, FAILED and CANCELLED: the job will never change again (except
// by being deleted).
bool IsTerminal(JobState s);

// "QUEUED", "RUNNING", ...: for messages that tell the user the state.
absl::string_view JobStateName(JobState s);

// Whether a job store location is a PostgreSQL URL ("postgres://...",
// "postgresql://...") rather than an SQLite file path.
bool IsPostgresUrl(absl::string_view location);

// Limits enforced by Create, so that one request cannot bloat the database.
inline constexpr size_t kMaxSpecBytes = 16 << 20;
inline constexpr size_t kMaxLabels = 64;
inline constexpr size_t kMaxKeyBytes = 128;  // ids, tenants, request ids
inline constexpr size_t kMaxLabelKeyBytes = 128;
inline constexpr size_t kMaxLabelValueBytes = 1024;
inline constexpr size_t kMaxDisplayNameBytes = 1024;
inline constexpr size_t kMaxEventPayloadBytes = 1 << 20;
// A report with thousands of layers stays well under this.
inline constexpr size_t kMaxReportSummaryBytes = 16 << 20;
inline constexpr int32_t kMaxEventsPerCall = 10000;

struct JobRecord {
  std::string id;  // "job-" + 16 random hex chars, assigned by Create
  std::string tenant;
  std::string request_id;  // idempotency key, unique per tenant if non-empty
  JobState state = JobState::kQueued;
  int32_t priority = 0;  // higher runs first
  std::string spec;      // serialized JobSpec (opaque here)
  std::string display_name;
  std::map<std::string, std::string> labels;
  int32_t attempts = 0;  // times the job started running
  std::string error;     // why it failed / was cancelled
  int64_t create_time_us = 0, update_time_us = 0, start_time_us = 0,
          end_time_us = 0;
  std::string model_artifact_sha256, report_artifact_sha256;
  int64_t model_artifact_size = 0, report_artifact_size = 0;
  // The job's summary, kept with it so that reading a job reads one row:
  // the last progress (serialized v1::Progress) and, once SUCCEEDED, the
  // report (serialized v1::QuantizationReport). Opaque here.
  std::string progress;
  std::string report;
  // The replica running the job (RUNNING or CANCELLING, claimed with
  // Claim) and until when its lease holds; empty and 0 otherwise. A lease
  // not renewed in time (the replica died or lost the database) lets
  // RecoverExpired on any replica re-queue the job.
  std::string lease_owner;
  int64_t lease_expiry_us = 0;
};

// How many QUEUED jobs CreateJob admits, in all and per tenant.
struct QueueLimits {
  int64_t max_queued = std::numeric_limits<int64_t>::max();
  int64_t max_queued_per_tenant = std::numeric_limits<int64_t>::max();
};

struct JobEvent {
  std::string job_id;
  int64_t sequence = 0;  // 1, 2, 3, ... per job, without gaps
  int64_t time_us = 0;
  std::string payload;  // serialized event (opaque here)
};

// The events to append when a job changes state, built from the job as it
// is after the change (state, error): serialized payloads, appended in the
// same transaction as the change, so that a crash never leaves a job in a
// state without the event that explains it.
using EventsOnMove =
    std::function<std::vector<std::string>(const JobRecord& moved)>;

struct JobPage {
  std::vector<JobRecord> jobs;
  std::string next_page_token;  // empty on the last page
};

class JobStore {
 public:
  // Opens the store at `location`: a "postgres://" or "postgresql://" URL
  // (libpq's connection URI) for PostgreSQL, anything else is the path of
  // an SQLite file, created if missing. The schema is created or migrated
  // here; a database written by a newer quantd (higher schema version) is
  // refused with FailedPrecondition rather than misread. `page_token_key`
  // (>= 16 bytes) signs page tokens so that clients cannot forge positions
  // or reuse a token across tenants or filters.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(
      const std::string& location, const std::string& page_token_key);

  virtual ~JobStore() = default;

  // Inserts `job` as a new QUEUED job; its id, state, times, attempts, error
  // and artifacts are assigned here, whatever the caller set. If the tenant
  // already has a job with the same non-empty request_id, returns that job
  // unchanged when its spec bytes and priority are equal (a retried request)
  // and AlreadyExists otherwise. A new job beyond `limits` (counted in the
  // same transaction as the insert, so concurrent calls cannot overshoot) is
  // ResourceExhausted. `.second` is true when a job was created.
  virtual absl::StatusOr<std::pair<JobRecord, bool>> Create(
      JobRecord job, const QueueLimits& limits = {}) = 0;

  // NotFound also for other tenants' jobs, so ids reveal nothing.
  virtual absl::StatusOr<JobRecord> Get(const std::string& tenant,
                                        const std::string& id) = 0;

  // The tenant's jobs, newest first, optionally only those in `state`.
  // page_size in [1, 1000], 0 means 50. A token only works with the tenant
  // and filter it was issued for; anything else is InvalidArgument.
  virtual absl::StatusOr<JobPage> List(const std::string& tenant,
                                       std::optional<JobState> state,
                                       int32_t page_size,
                                       const std::string& page_token) = 0;

  // Compare-and-set: moves the job to `to` if its current state is one of
  // `from`, else FailedPrecondition naming the current state. Entering
  // RUNNING sets start_time and counts an attempt; entering a terminal state
  // sets end_time; a non-empty `error` replaces the job's error. `events`
  // (if set) are appended with the change; `appended` receives them with
  // their sequence numbers, for live watchers. A non-empty `owner` also
  // requires the job to be leased to it (a worker ending its job: another
  // replica may have taken the job over since this one's lease expired).
  // Leaving RUNNING/CANCELLING ends the lease.
  virtual absl::StatusOr<JobRecord> Transition(
      const std::string& id, std::initializer_list<JobState> from, JobState to,
      const std::string& error = "", const EventsOnMove& events = nullptr,
      std::vector<JobEvent>* appended = nullptr,
      const std::string& owner = "") = 0;

  // Records the digests (64 lowercase hex chars) and sizes of the job's
  // outputs. Callers set them before the transition to SUCCEEDED so that a
  // succeeded job always has its artifacts.
  // `report` is the report itself (serialized), kept as the job's summary.
  virtual absl::Status SetArtifacts(const std::string& id,
                                    const std::string& model_sha256,
                                    int64_t model_size,
                                    const std::string& report_sha256,
                                    int64_t report_size,
                                    const std::string& report = "") = 0;

  // Appends an event and returns its sequence number (1 for the first);
  // the event is on disk when this returns, so it can be sent to watchers.
  // With `progress`, the job's last progress is set to it in the same
  // transaction. A non-empty `owner` requires the job to be leased to it
  // (FailedPrecondition otherwise), so a replica that lost its lease
  // cannot add to the log of a job another replica now runs.
  virtual absl::StatusOr<int64_t> AppendEvent(
      const std::string& job_id, const std::string& payload,
      const std::string* progress = nullptr, const std::string& owner = "") = 0;

  // Events with sequence > `after`, ascending, at most `limit` (in [1,
  // kMaxEventsPerCall]). NotFound if the job does not exist.
  virtual absl::StatusOr<std::vector<JobEvent>> EventsAfter(
      const std::string& job_id, int64_t after, int32_t limit) = 0;

  // Deletes a terminal job and its events and returns it, so the caller can
  // drop artifact blobs nothing else references (see ReferencesBlob).
  // FailedPrecondition if the job is not terminal (cancel it first).
  virtual absl::StatusOr<JobRecord> Delete(const std::string& tenant,
                                           const std::string& id) = 0;

  // The QUEUED job to run next: highest priority, then oldest. nullopt if
  // none is queued.
  // Jobs of `skip_tenants` (at their concurrency limit) are passed over,
  // looking at most 256 jobs deep.
  virtual absl::StatusOr<std::optional<JobRecord>> NextQueued(
      const std::set<std::string>& skip_tenants = {}) = 0;

  // NextQueued's job moved to RUNNING in the same transaction, with its
  // attempt counted and a lease to `owner` until now + `lease`; `events`
  // and `appended` as for Transition. Replicas claiming at once get
  // different jobs (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one
  // writer). nullopt if nothing is queued (beyond `skip_tenants`).
  virtual absl::StatusOr<std::optional<JobRecord>> Claim(
      const std::string& owner, absl::Duration lease,
      const std::set<std::string>& skip_tenants,
      const EventsOnMove& events = nullptr,
      std::vector<JobEvent>* appended = nullptr) = 0;

  // Extends every lease of `owner` (its RUNNING and CANCELLING jobs) to now
  // + `lease` and returns those jobs' states by id: the owner learns of a
  // cancel requested through another replica (CANCELLING), and a job
  // missing from the map is no longer its to run.
  virtual absl::StatusOr<std::map<std::string, JobState>> RenewLeases(
      const std::string& owner, absl::Duration lease) = 0;

  // Recover for a store shared by replicas: only RUNNING and CANCELLING
  // jobs whose lease expired (a job without a lease counts as expired).
  // Any replica may call it at any time; each job is moved once.
  virtual absl::StatusOr<std::vector<JobRecord>> RecoverExpired(
      int32_t max_attempts, const EventsOnMove& events = nullptr,
      std::vector<JobEvent>* appended = nullptr) = 0;

  // Calls `on_event(job_id)` from a thread of the store's whenever any
  // process sharing the store appended an event to that job (after the
  // event is committed), and `on_event("")` when notifications may have
  // been missed (the connection was re-established): re-read everything.
  // For live watchers of jobs running on other replicas. Unimplemented for
  // stores one process owns (SQLite), where the process sees its own
  // writes. Called at most once; the thread stops with the store.
  virtual absl::Status WatchEvents(
      std::function<void(const std::string& job_id)> on_event) {
    return absl::UnimplementedError(
        "this job store has no change notifications");
  }
  // Stops the WatchEvents thread (joins it): no on_event call after this
  // returns. The store's destructor does it too.
  virtual void StopWatchingEvents() {}

  // Jobs in `state` for `tenant`, or for all tenants if `tenant` is empty.
  virtual absl::StatusOr<int64_t> CountInState(
      JobState state, const std::string& tenant = "") = 0;

  // Start-up recovery, before any worker runs: jobs left RUNNING or
  // CANCELLING were interrupted by the process dying. CANCELLING becomes
  // CANCELLED; RUNNING becomes QUEUED again while attempts < max_attempts,
  // else FAILED (so a job that crashes the server cannot do so forever).
  // Returns the jobs it changed, as they are now; `events` and `appended`
  // as for Transition, per job.
  virtual absl::StatusOr<std::vector<JobRecord>> Recover(
      int32_t max_attempts, const EventsOnMove& events = nullptr,
      std::vector<JobEvent>* appended = nullptr) = 0;

  // Whether any job of any tenant names `sha256` as one of its artifacts.
  virtual absl::StatusOr<bool> ReferencesBlob(const std::string& sha256) = 0;
  // Bytes of the tenant's job artifacts, each digest once (all tenants' if
  // `tenant` is empty): what they count toward the storage quota.
  virtual absl::StatusOr<int64_t> ArtifactBytes(const std::string& tenant) = 0;
  // The job's state, whichever tenant owns it; NotFound once deleted.
  virtual absl::StatusOr<JobState> StateOf(const std::string& id) = 0;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_JOB_STORE_H_
