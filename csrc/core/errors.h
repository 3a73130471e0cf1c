// Errors the native core raises. The core never crashes on bad input: it throws one of
// these, and the N-API layer turns it into a JavaScript TypeError / RangeError / Error
// with the same message. `argument` names the offending argument so callers see which one.
#pragma once
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace siglip {

enum class ErrorKind {
  Type,         // wrong kind of value (maps to TypeError)
  Range,        // right kind, bad value: sizes, non-finite numbers (maps to RangeError)
  OutOfMemory,  // an allocation failed (maps to Error with code ERR_SIGLIP_OUT_OF_MEMORY)
  Internal,     // anything else (maps to Error)
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string argument, const std::string& message)
      : std::runtime_error(message), kind_(kind), argument_(std::move(argument)) {}
  ErrorKind kind() const { return kind_; }
  const std::string& argument() const { return argument_; }

 private:
  ErrorKind kind_;
  std::string argument_;
};

// "Expected <expected> for <argument> but received <received>": the one form every
// validation message takes (as in sharp), so users learn to read them once.
inline Error invalidArgument(ErrorKind kind, const std::string& argument, const std::string& expected,
                             const std::string& received) {
  return Error(kind, argument, "Expected " + expected + " for " + argument + " but received " + received);
}

// A double in a message, exactly: the shortest-looking form is not enough where two values
// that differ by 1e-12 must not print the same ("ring ranks disagree"). %.17g round-trips.
inline std::string formatNumber(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.17g", v);
  return buffer;
}

}  // namespace siglip
