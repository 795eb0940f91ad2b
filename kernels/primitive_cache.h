// PrimitiveCache: oneDNN primitives are expensive to create (JIT code
// generation), so each kernel object keeps the ones it made, keyed by the
// shapes and parameters they were made for. Thread-safe.
//
//   PrimitiveCache<ConvEntry> cache_;
//   absl::StatusOr<std::shared_ptr<ConvEntry>> e = cache_.GetOrCreate(key,
//       [&]() -> absl::StatusOr<ConvEntry> { ...build primitive... });
//
// Entries are handed out as shared_ptr: when the cache is full it starts
// afresh, and an entry another thread is still executing must outlive that.
#ifndef QUANTD_KERNELS_PRIMITIVE_CACHE_H_
#define QUANTD_KERNELS_PRIMITIVE_CACHE_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace quantd {

template <typename Value>
class PrimitiveCache {
 public:
  // A model run with many distinct shapes (dynamic batch, varying sequence
  // length) would otherwise grow without bound; past this many entries the
  // cache starts afresh.
  static constexpr size_t kMaxEntries = 64;

  template <typename Make>
  absl::StatusOr<std::shared_ptr<Value>> GetOrCreate(const std::string& key,
                                                     Make&& make) {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) return it->second;
    absl::StatusOr<Value> made = make();
    if (!made.ok()) return made.status();
    if (entries_.size() >= kMaxEntries) entries_.clear();
    auto owned = std::make_shared<Value>(std::move(*made));
    entries_.emplace(key, owned);
    return owned;
  }

  size_t size() const {
    absl::MutexLock lock(&mu_);
    return entries_.size();
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Value>> entries_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace quantd

#endif  // QUANTD_KERNELS_PRIMITIVE_CACHE_H_
