// The ring bindings' shared conversions (ring_convert.h): scalars, direction and the timeout
// in; the checks before a call; a ring's failure out.
#include "ring_convert.h"

#include "convert.h"
#include "core/errors.h"

namespace siglip::addon::ring_internal {

const char* kindName(RingKind kind) {
  static const char* const names[] = {"local", "mpi", "nccl"};  // in RingKind's order
  return names[int(kind)];
}

Scalars readRingScalars(Napi::Object options) {
  const Scalars s = readScalars(options, LossKind::Sigmoid);
  Napi::Env env = options.Env();
  checkLogitScale(s.logitScale, describeValue(Napi::Number::New(env, s.logitScale)));  // csrc/core/validate.cpp
  checkLogitBias(s.logitBias, describeValue(Napi::Number::New(env, s.logitBias)));
  return s;
}

ring::RingDirection readDirection(Napi::Object options) {
  Napi::Value value = options.Get("direction");
  if (absent(value)) return ring::RingDirection::OneWay;
  return readChoice(value, "options.direction", {"one-way", "two-way"}, "'one-way' or 'two-way'") == "two-way"
             ? ring::RingDirection::TwoWay
             : ring::RingDirection::OneWay;
}

std::chrono::milliseconds readTimeout(Napi::Object options) {
  return std::chrono::milliseconds(readInteger(options.Get("timeoutMs"), "options.timeoutMs", 1, kMaxRingTimeoutMs));
}

std::shared_ptr<RingState> usableRing(Napi::Env env, const std::shared_ptr<RingState>& state) {
  if (!state) {
    throw makeJsError(env, ErrorKind::Internal,
                      "This ring was disposed (dispose() frees its transports; create a new Ring to go on)", "",
                      kErrDisposed);
  }
  if (state->busy) {
    throw makeJsError(env, ErrorKind::Internal,
                      "This ring is busy with another call (a ring runs one call at a time; wait for it to settle)", "",
                      kErrRingBusy);
  }
  if (!state->broken.empty()) {
    throw makeJsError(env, ErrorKind::Internal,
                      "This ring failed earlier and cannot be used any more (dispose it and create a new one): " +
                          state->broken,
                      "", kErrRingFailed);
  }
  return state;
}

std::shared_ptr<RingState> connectedRing(Napi::Env env, const std::shared_ptr<RingState>& state) {
  usableRing(env, state);
  if (state->endpoints.empty()) {
    throw makeJsError(env, ErrorKind::Internal, "This ring is not connected yet (await connect() first)", "",
                      kErrRingFailed);
  }
  return state;
}

Napi::Value resolvedPromise(Napi::Env env) {
  Napi::Promise::Deferred done = Napi::Promise::Deferred::New(env);
  done.Resolve(env.Undefined());
  return done.Promise();
}

Napi::Error ringError(Napi::Env env, const CapturedError& error) {
  if (error.kind == ErrorKind::Internal && error.argument == "ring") {
    return makeJsError(env, error.kind, error.message, "", kErrRingFailed);
  }
  return toJsError(env, error);
}

}  // namespace siglip::addon::ring_internal
