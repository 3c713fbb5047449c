// Status and StatusOr: how every clickrt library function reports failure.
//
// Library code never throws across a boundary and never aborts on bad input: a malformed model, a
// foreign engine file or a bad request come back as a Status whose message names what and where.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace clickrt {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,   // the caller's input is wrong (bad tensor, bad flag)
  kNotFound,          // a file, input or feature that should exist does not
  kUnimplemented,     // valid input that clickrt does not support (an op, a dtype, an attribute)
  kOutOfRange,        // an index outside its valid range (embedding id, axis)
  kDataLoss,          // a truncated or corrupt file
  kFailedPrecondition,// the system is not in a state to do this (engine for another GPU)
  kResourceExhausted, // memory, queue capacity
  kDeadlineExceeded,
  kUnavailable,
  kInternal,          // a bug in clickrt
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "CODE: message", or "OK".
  std::string ToString() const;
  // Returns a copy whose message is "context: message" (no-op on OK).
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// A value or the Status saying why there is none.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    // (void): nvcc warns on the ignored Status& of a [[nodiscard]] type's assignment.
    if (status_.ok()) (void)(status_ = Internal("StatusOr built from an OK status without a value"));
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace clickrt

#define CLICKRT_CONCAT_INNER(a, b) a##b
#define CLICKRT_CONCAT(a, b) CLICKRT_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::clickrt::Status _clickrt_status = (expr);        \
    if (!_clickrt_status.ok()) return _clickrt_status; \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

// ASSIGN_OR_RETURN(auto x, Foo()); declares x from a StatusOr or returns its error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(CLICKRT_CONCAT(_clickrt_or_, __LINE__), lhs, expr)
