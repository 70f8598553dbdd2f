// The outcome of a store or key-service operation: success, or a one-line message that can be
// shown to an operator. Errors are values, never exceptions, so the request path can map them
// to responses without try/catch.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace redline::store {

struct Status {
  bool ok = true;
  std::string message;  // empty when ok

  static Status success() { return {}; }
  static Status error(std::string message) { return {false, std::move(message)}; }
  explicit operator bool() const { return ok; }
};

// A value or an error message. `value()` may only be read when ok().
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit, so `return value;` works
  Result(Status error) : error_(std::move(error.message)) { assert(!error.ok); }  // NOLINT

  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  const std::string& error() const { return error_; }

  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::optional<T> value_;
  std::string error_;
};

}  // namespace redline::store
