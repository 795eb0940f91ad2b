// The process's resident memory, from Linux's /proc/self/status, and a
// sampler that measures the peak of one phase of work (the job report's
// per-stage peak RSS) without touching the kernel's high-water mark, which
// `time -v`, getrusage() and container tooling read:
//
//   RssSampler sampler(absl::Milliseconds(20));
//   ... one stage ...
//   int64_t peak = sampler.TakePeak();   // that stage's peak; restarts
//
// The figures are the whole process's: in a server running several jobs at
// once they mix the jobs, so only one-job processes (quantd run-job) report
// them.
#ifndef QUANTD_UTIL_PROCESS_MEMORY_H_
#define QUANTD_UTIL_PROCESS_MEMORY_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/time/time.h"

namespace quantd {

// VmRSS and VmHWM (the peak since the process started), in bytes; nullopt
// where /proc is not readable.
std::optional<int64_t> CurrentRssBytes();
std::optional<int64_t> PeakRssBytes();

// Samples VmRSS on a thread every `period`. TakePeak() returns the largest
// RSS since the previous call (or construction) and starts a new interval.
// Where the kernel's high-water mark rose during the interval, it is the
// interval's exact peak and is used; otherwise a spike shorter than the
// period can be missed (filling a gigabyte takes longer than 20 ms).
class RssSampler {
 public:
  explicit RssSampler(absl::Duration period);
  ~RssSampler();
  RssSampler(const RssSampler&) = delete;
  RssSampler& operator=(const RssSampler&) = delete;

  int64_t TakePeak();

 private:
  void Loop();

  const absl::Duration period_;
  std::mutex mutex_;  // held while sampling and by TakePeak
  std::atomic<int64_t> peak_{0};
  int64_t hwm_at_start_ = 0;
  std::condition_variable wake_;
  bool stop_ = false;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace quantd

#endif  // QUANTD_UTIL_PROCESS_MEMORY_H_
