// ThreadSanitizer builds only (QUANTD_SANITIZE=thread adds this file to every
// test binary): Debian's Abseil is not compiled with -fsanitize=thread, so
// TSan cannot see absl::Mutex, CondVar or Notification order memory, and
// reports every ABSL_GUARDED_BY member touched by two threads as a race.
// These definitions take precedence over libabsl_synchronization.so's (the
// executable comes first in symbol lookup), call the real function and tell
// TSan what it synchronizes: an unlock releases the mutex, a lock acquires
// it, a wait does both. With an Abseil built for TSan this file is
// unnecessary (Abseil annotates itself).
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);

namespace {

// The library's own definition of the function whose mangled name is given.
template <typename F>
F Real(const char* mangled) {
  void* f = dlsym(RTLD_NEXT, mangled);
  if (f == nullptr) {
    std::fprintf(stderr, "tsan absl annotations: %s not found: %s\n", mangled,
                 dlerror());
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

#define QUANTD_ABSL(name) "_ZN4absl7debian3" name

// A condition is evaluated with the mutex held but inside the library,
// before the wrapper below returns, and the library may then unlock to wait:
// acquire before and release after, so the condition's reads of guarded
// members are ordered with the other threads' locked writes.
struct AnnotatedCondition {
  const absl::Condition* cond;
  absl::Mutex* mu;
  static bool Eval(void* self) {
    auto* c = static_cast<AnnotatedCondition*>(self);
    __tsan_acquire(c->mu);
    const bool met = c->cond->Eval();
    // A false condition means the library unlocks to wait, unseen.
    __tsan_release(c->mu);
    return met;
  }
};

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static auto real = Real<void (*)(Mutex*)>(QUANTD_ABSL("5Mutex4LockEv"));
  real(this);
  __tsan_acquire(this);
}

void Mutex::ReaderLock() {
  static auto real =
      Real<void (*)(Mutex*)>(QUANTD_ABSL("5Mutex10ReaderLockEv"));
  real(this);
  __tsan_acquire(this);
}

bool Mutex::TryLock() {
  static auto real = Real<bool (*)(Mutex*)>(QUANTD_ABSL("5Mutex7TryLockEv"));
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  static auto real =
      Real<bool (*)(Mutex*)>(QUANTD_ABSL("5Mutex13ReaderTryLockEv"));
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

void Mutex::Unlock() {
  static auto real = Real<void (*)(Mutex*)>(QUANTD_ABSL("5Mutex6UnlockEv"));
  __tsan_release(this);
  real(this);
}

void Mutex::ReaderUnlock() {
  static auto real =
      Real<void (*)(Mutex*)>(QUANTD_ABSL("5Mutex12ReaderUnlockEv"));
  __tsan_release(this);
  real(this);
}

void Mutex::LockWhen(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Condition&)>(
      QUANTD_ABSL("5Mutex8LockWhenERKNS0_9ConditionE"));
  AnnotatedCondition annotated{&cond, this};
  real(this, Condition(&AnnotatedCondition::Eval, &annotated));
  __tsan_acquire(this);
}

// Await and the waits release the mutex while blocked and hold it again on
// return.
void Mutex::Await(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Condition&)>(
      QUANTD_ABSL("5Mutex5AwaitERKNS0_9ConditionE"));
  __tsan_release(this);
  AnnotatedCondition annotated{&cond, this};
  real(this, Condition(&AnnotatedCondition::Eval, &annotated));
  __tsan_acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      QUANTD_ABSL("5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE"));
  __tsan_release(this);
  AnnotatedCondition annotated{&cond, this};
  const bool met =
      real(this, Condition(&AnnotatedCondition::Eval, &annotated), timeout);
  __tsan_acquire(this);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  static auto real = Real<void (*)(CondVar*, Mutex*)>(
      QUANTD_ABSL("7CondVar4WaitEPNS0_5MutexE"));
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, absl::Duration)>(
      QUANTD_ABSL("7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE"));
  __tsan_release(mu);
  const bool timed_out = real(this, mu, timeout);
  __tsan_acquire(mu);
  return timed_out;
}

void Notification::Notify() {
  static auto real =
      Real<void (*)(Notification*)>(QUANTD_ABSL("12Notification6NotifyEv"));
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  static auto real = Real<void (*)(const Notification*)>(
      QUANTD_ABSL("12Notification19WaitForNotificationEv"));
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

ABSL_NAMESPACE_END
}  // namespace absl
