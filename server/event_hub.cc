#include "server/event_hub.h"

#include <vector>

namespace quantd {

int64_t EventHub::Subscribe(const std::string& job_id, Notify notify) {
  bool closed;
  int64_t id;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
    closed = closed_;
    if (!closed) watchers_[id] = {job_id, notify};
  }
  if (closed) notify(true);
  return id;
}

void EventHub::Unsubscribe(int64_t id) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(id);
}

void EventHub::Publish(const std::string& job_id) {
  // Callbacks run outside the lock: they may unsubscribe or publish.
  std::vector<Notify> to_call;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, w] : watchers_) {
      if (w.job_id == job_id) to_call.push_back(w.notify);
    }
  }
  for (const Notify& n : to_call) n(false);
}

void EventHub::PublishAll() {
  std::vector<Notify> to_call;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, w] : watchers_) to_call.push_back(w.notify);
  }
  for (const Notify& n : to_call) n(false);
}

void EventHub::CloseAll() {
  std::vector<Notify> to_call;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    for (const auto& [id, w] : watchers_) to_call.push_back(w.notify);
    watchers_.clear();
  }
  for (const Notify& n : to_call) n(true);
}

size_t EventHub::watchers() const {
  absl::MutexLock lock(&mu_);
  return watchers_.size();
}

}  // namespace quantd
