// registerRingBindings: the three ring classes (ring_bindings.h) and ringBuildInfo().
#include "ring_bindings.h"

#include "cuda_bindings.h"

namespace siglip::addon {
namespace {

Napi::Value RingBuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  mpiBuildInfo(env, out);
  ncclBuildInfo(env, out);
  return out;
}

}  // namespace

void registerRingBindings(Napi::Env env, Napi::Object exports) {
  registerLocalRing(env, exports);
  registerMpiRing(env, exports);
  registerNcclRing(env, exports);
  exports.Set("ringBuildInfo", Napi::Function::New(env, RingBuildInfo, "ringBuildInfo"));
}

}  // namespace siglip::addon
