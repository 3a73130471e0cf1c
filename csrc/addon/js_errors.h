// Turning native failures into JavaScript errors, in one place.
//
// The core throws siglip::Error (kind + argument + message); allocation failures surface as
// std::bad_alloc. Both become JS errors here: Type → TypeError, Range → RangeError,
// OutOfMemory → Error with code ERR_SIGLIP_OUT_OF_MEMORY, anything else → Error. Every error
// gets a `code` (Node's own code where one fits) and, when known, the `argument` it is about.
#pragma once
#include <napi.h>

#include <string>

#include "core/errors.h"

namespace siglip::addon {

// The error codes the package's errors carry (the TypeScript layer uses the same ones): one
// per ErrorKind, and the addon's own.
const char* errorCode(ErrorKind kind);
constexpr const char* kErrDisposed = "ERR_SIGLIP_DISPOSED";  // a disposed DeviceMatrix or ring
constexpr const char* kErrRingBusy = "ERR_SIGLIP_RING_BUSY";
constexpr const char* kErrRingFailed = "ERR_SIGLIP_RING_FAILED";
constexpr const char* kErrNoNccl = "ERR_SIGLIP_NO_NCCL";
constexpr const char* kErrNoCuda = "ERR_SIGLIP_NO_CUDA";

Napi::Error makeJsError(Napi::Env env, ErrorKind kind, const std::string& message, const std::string& argument,
                        const char* code = nullptr);

// Shorthands for the addon's own validation, in the one message form of errors.h.
Napi::Error typeError(Napi::Env env, const std::string& argument, const std::string& expected,
                      const std::string& received);
Napi::Error rangeError(Napi::Env env, const std::string& argument, const std::string& expected,
                       const std::string& received);

// A native failure captured where no JavaScript may run (a PromiseWorker's compute), to be
// turned into a JS error later on the JS thread.
struct CapturedError {
  bool present = false;
  ErrorKind kind = ErrorKind::Internal;
  std::string argument;
  std::string message;
};

// Call only inside a catch block: classifies the exception being handled.
CapturedError captureCurrentException();

Napi::Error toJsError(Napi::Env env, const CapturedError& error);

// Runs `body`, letting JS errors through and translating every native exception, so that no
// C++ exception other than Napi::Error ever reaches node-addon-api's callback wrapper.
template <class Body>
auto withJsErrors(Napi::Env env, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw toJsError(env, captureCurrentException());
  }
}

}  // namespace siglip::addon
