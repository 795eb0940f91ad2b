#include "util/process_memory.h"

#include <cstdio>
#include <cstring>

namespace quantd {
namespace {

// The value of a "Key:   123 kB" line of /proc/self/status, in bytes.
std::optional<int64_t> StatusField(const char* key) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return std::nullopt;
  char line[256];
  std::optional<int64_t> out;
  const size_t key_len = std::strlen(key);
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, key, key_len) != 0 || line[key_len] != ':') {
      continue;
    }
    long long kb = 0;
    if (std::sscanf(line + key_len + 1, "%lld", &kb) == 1) out = kb * 1024;
    break;
  }
  std::fclose(f);
  return out;
}

void RaiseTo(std::atomic<int64_t>& peak, int64_t value) {
  int64_t seen = peak.load();
  while (value > seen && !peak.compare_exchange_weak(seen, value)) {
  }
}

}  // namespace

std::optional<int64_t> CurrentRssBytes() { return StatusField("VmRSS"); }

std::optional<int64_t> PeakRssBytes() { return StatusField("VmHWM"); }

RssSampler::RssSampler(absl::Duration period)
    : period_(period),
      peak_(CurrentRssBytes().value_or(0)),
      hwm_at_start_(PeakRssBytes().value_or(0)),
      thread_([this] { Loop(); }) {}

RssSampler::~RssSampler() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void RssSampler::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    RaiseTo(peak_, CurrentRssBytes().value_or(0));
    wake_.wait_for(lock, absl::ToChronoNanoseconds(period_),
                   [this] { return stop_; });
  }
}

int64_t RssSampler::TakePeak() {
  // Under the sampler's lock: a sample read before this call cannot land in
  // the next interval after it.
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t now = CurrentRssBytes().value_or(0);
  RaiseTo(peak_, now);
  const int64_t hwm = PeakRssBytes().value_or(0);
  int64_t peak = peak_.exchange(now);
  if (hwm > hwm_at_start_) peak = std::max(peak, hwm);  // exact: it rose
  hwm_at_start_ = hwm;
  return peak;
}

}  // namespace quantd
