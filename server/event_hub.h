// Live delivery of job events to watchers. Events are durable in the job
// store before they are published here, so a watcher that is told "job X
// has news" reads the store from its last sequence on: nothing is lost or
// duplicated, whatever the timing, and a reconnecting watcher replays the
// same way.
//
//   EventHub hub;
//   int64_t id = hub.Subscribe("job-1", [] { /* read the store */ });
//   hub.Publish("job-1");     // from JobRunner's on_event
//   hub.Unsubscribe(id);
//   hub.CloseAll();           // shutdown: every watcher is told to stop
#ifndef QUANTD_SERVER_EVENT_HUB_H_
#define QUANTD_SERVER_EVENT_HUB_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"

namespace quantd {

class EventHub {
 public:
  // `notify(closing)` runs on the publisher's thread: keep it short. It is
  // called with closing = true once, by CloseAll().
  using Notify = std::function<void(bool closing)>;

  int64_t Subscribe(const std::string& job_id, Notify notify);
  void Unsubscribe(int64_t id);
  void Publish(const std::string& job_id);
  // Tells every watcher to re-read the store: after the store's change
  // notifications may have missed events (JobStore::WatchEvents), and on a
  // timer as a safety net when replicas share a job store.
  void PublishAll();
  // Tells every watcher the server is closing; later subscriptions are told
  // at once.
  void CloseAll();
  size_t watchers() const;

 private:
  struct Watcher {
    std::string job_id;
    Notify notify;
  };
  mutable absl::Mutex mu_;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::map<int64_t, Watcher> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace quantd

#endif  // QUANTD_SERVER_EVENT_HUB_H_
