// The ring bindings' shared conversions (ring_convert.h): options, scalars, label ids and the
// timeout in; a rank's stats and result, and a ring's failure, out.
#include "ring_convert.h"

#include <cfloat>
#include <cmath>
#include <cstdio>

#include "convert.h"
#include "core/errors.h"
#include "ring_handle.h"

namespace siglip::addon::ring_internal {
namespace {

bool isOptionsObject(Napi::Value value) {
  return value.IsObject() && !value.IsArray() && !value.IsFunction() && !value.IsTypedArray() &&
         !value.IsArrayBuffer();
}

Napi::Object statsToJs(Napi::Env env, const ring::RingStats& s) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("steps", Napi::Number::New(env, s.steps));
  out.Set("returnHops", Napi::Number::New(env, s.returnHops));
  out.Set("bytesSent", Napi::Number::New(env, static_cast<double>(s.bytesSent)));
  out.Set("peakRingBytes", Napi::Number::New(env, static_cast<double>(s.peakRingBytes)));
  out.Set("computeSeconds", Napi::Number::New(env, s.computeSeconds));
  out.Set("waitSeconds", Napi::Number::New(env, s.waitSeconds));
  return out;
}

}  // namespace

const char* kindName(RingKind kind) {
  switch (kind) {
    case RingKind::Local:
      return "local";
    case RingKind::Mpi:
      return "mpi";
    case RingKind::Nccl:
      return "nccl";
  }
  return "local";
}

Napi::Object readOptions(Napi::Value value, const std::string& name) {
  if (!isOptionsObject(value)) throw typeError(value.Env(), name, "an object", describeValue(value));
  return value.As<Napi::Object>();
}

Scalars readScalars(Napi::Object options) {
  Scalars s;
  Napi::Value scale = options.Get("logitScale");
  s.logitScale = readFiniteNumber(scale, "options.logitScale");
  checkLogitScale(s.logitScale, describeValue(scale));  // the core's check (csrc/core/validate.cpp)
  Napi::Value bias = options.Get("logitBias");
  s.logitBias = readFiniteNumber(bias, "options.logitBias");
  checkLogitBias(s.logitBias, describeValue(bias));
  return s;
}

ring::RingDirection readDirection(Napi::Object options) {
  Napi::Value value = options.Get("direction");
  if (absent(value)) return ring::RingDirection::OneWay;
  const char* expected = "'one-way' or 'two-way'";
  if (!value.IsString()) throw typeError(options.Env(), "options.direction", expected, describeValue(value));
  const std::string name = value.As<Napi::String>().Utf8Value();
  if (name == "one-way") return ring::RingDirection::OneWay;
  if (name == "two-way") return ring::RingDirection::TwoWay;
  throw rangeError(options.Env(), "options.direction", expected, describeValue(value));
}

bool absent(Napi::Value value) { return value.IsUndefined() || value.IsNull(); }

void checkIdsTogether(Napi::Env env, bool hasImageIds, bool hasTextIds) {
  if (hasImageIds == hasTextIds) return;
  throw typeError(env, hasImageIds ? "options.textIds" : "options.imageIds",
                  "label ids (imageIds and textIds are given together or not at all)",
                  "undefined while " + std::string(hasImageIds ? "imageIds" : "textIds") + " is given");
}

std::chrono::milliseconds readTimeout(Napi::Object options) {
  return std::chrono::milliseconds(readInteger(options.Get("timeoutMs"), "options.timeoutMs", 1, kMaxRingTimeoutMs));
}

Napi::Object rankResultToJs(Napi::Env env, const LossResult& result, const ring::RingStats& stats, bool wantGrad,
                            Napi::Value image, Napi::Value text) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", Napi::Number::New(env, result.loss));
  if (wantGrad) {
    Napi::Object grad = Napi::Object::New(env);
    grad.Set("image", image);
    grad.Set("text", text);
    grad.Set("logitScale", Napi::Number::New(env, result.dLogitScale));
    grad.Set("logitBias", Napi::Number::New(env, result.dLogitBias));
    out.Set("grad", grad);
  }
  out.Set("stats", statsToJs(env, stats));
  return out;
}

std::shared_ptr<RingState> usableRing(Napi::Env env, const std::shared_ptr<RingState>& state) {
  if (!state) {
    throw makeJsError(env, ErrorKind::Internal,
                      "This ring was disposed (dispose() frees its transports; create a new Ring to go on)", "",
                      kErrDisposedCode);
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
