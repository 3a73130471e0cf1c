#include "js_errors.h"

#include <exception>
#include <new>

namespace siglip::addon {

const char* errorCode(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Type:
      return "ERR_INVALID_ARG_TYPE";
    case ErrorKind::Range:
      return "ERR_INVALID_ARG_VALUE";
    case ErrorKind::OutOfMemory:
      return "ERR_SIGLIP_OUT_OF_MEMORY";
    case ErrorKind::Internal:
      break;
  }
  return "ERR_SIGLIP_INTERNAL";
}

Napi::Error makeJsError(Napi::Env env, ErrorKind kind, const std::string& message, const std::string& argument,
                        const char* code) {
  Napi::Error error;
  switch (kind) {
    case ErrorKind::Type:
      error = Napi::TypeError::New(env, message);
      break;
    case ErrorKind::Range:
      error = Napi::RangeError::New(env, message);
      break;
    default:
      error = Napi::Error::New(env, message);
      break;
  }
  error.Set("code", Napi::String::New(env, code != nullptr ? code : errorCode(kind)));
  if (!argument.empty()) error.Set("argument", Napi::String::New(env, argument));
  return error;
}

Napi::Error typeError(Napi::Env env, const std::string& argument, const std::string& expected,
                      const std::string& received) {
  const Error e = invalidArgument(ErrorKind::Type, argument, expected, received);
  return makeJsError(env, e.kind(), e.what(), e.argument());
}

Napi::Error rangeError(Napi::Env env, const std::string& argument, const std::string& expected,
                       const std::string& received) {
  const Error e = invalidArgument(ErrorKind::Range, argument, expected, received);
  return makeJsError(env, e.kind(), e.what(), e.argument());
}

CapturedError captureCurrentException() {
  CapturedError captured;
  captured.present = true;
  try {
    throw;
  } catch (const Error& e) {
    captured.kind = e.kind();
    captured.argument = e.argument();
    captured.message = e.what();
  } catch (const std::bad_alloc&) {
    captured.kind = ErrorKind::OutOfMemory;
    captured.message = "Out of memory: a native allocation failed (try a smaller batch or fewer threads)";
  } catch (const std::exception& e) {
    captured.kind = ErrorKind::Internal;
    captured.message = std::string("Internal error in siglip-kernels: ") + e.what();
  } catch (...) {
    captured.kind = ErrorKind::Internal;
    captured.message = "Internal error in siglip-kernels: unknown native exception";
  }
  return captured;
}

Napi::Error toJsError(Napi::Env env, const CapturedError& error) {
  return makeJsError(env, error.kind, error.message, error.argument);
}

}  // namespace siglip::addon
