// Early return on error, written once. Debian 12's Abseil (20220623) has no
// public status macros, so these follow the shape of the ones Google's code
// bases use, under a QUANTD_ prefix: Protobuf 3.21 ships its own
// RETURN_IF_ERROR/ASSIGN_OR_RETURN in a header that may be included
// alongside, and the two must not collide.
//
//   absl::Status Prepare(Graph& g) {
//     QUANTD_RETURN_IF_ERROR(FoldConstants(g, registry));
//     QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> ex,
//                             Executor::Create(g));
//     QUANTD_ASSIGN_OR_RETURN(auto [a, b], Split(x));  // not supported: one
//     ...                                              // declarator only
//   }
#ifndef QUANTD_UTIL_STATUS_MACROS_H_
#define QUANTD_UTIL_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status) once; returns it from the enclosing
// function unless it is OK.
#define QUANTD_RETURN_IF_ERROR(expr)                                  \
  do {                                                                \
    if (::absl::Status quantd_status_ = (expr); !quantd_status_.ok()) \
      return quantd_status_;                                          \
  } while (0)

// Evaluates `rexpr` (an absl::StatusOr<T>) once; returns its status from the
// enclosing function on error, otherwise moves the value into `lhs`, which
// may declare a variable ("std::string s") or name an existing one ("s").
#define QUANTD_ASSIGN_OR_RETURN(lhs, rexpr) \
  QUANTD_ASSIGN_OR_RETURN_IMPL_(            \
      QUANTD_STATUS_MACROS_CONCAT_(quantd_statusor_, __LINE__), lhs, rexpr)

#define QUANTD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                  \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

#define QUANTD_STATUS_MACROS_CONCAT_INNER_(a, b) a##b
#define QUANTD_STATUS_MACROS_CONCAT_(a, b) \
  QUANTD_STATUS_MACROS_CONCAT_INNER_(a, b)

#endif  // QUANTD_UTIL_STATUS_MACROS_H_
