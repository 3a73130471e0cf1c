// The base of every AsyncWorker of the addon: settles its Promise on the JS thread, and
// never lets a failure to do so end the process.
//
// node-addon-api's AsyncWorker calls OnOK() inside a wrapper that turns a C++ exception into
// a JavaScript throw; when the environment is shutting down (a Worker thread was terminated,
// or called process.exit(), while the call ran) no JavaScript can run: resolving the Promise
// fails, throwing it fails too, and the wrapper's exception reaches std::terminate, which
// aborts the whole process. Here the work completes as usual; if its environment is gone,
// nobody is left to receive the result, so it is dropped and the worker freed.
#pragma once
#include <napi.h>

namespace siglip::addon {

class SettlingWorker : public Napi::AsyncWorker {
 protected:
  SettlingWorker(Napi::Env env, const char* resourceName) : Napi::AsyncWorker(env, resourceName) {}

  // Derived classes capture every failure of Execute() themselves and settle in OnOK().
  void OnError(const Napi::Error&) final {}

 private:
  void OnWorkComplete(Napi::Env env, napi_status status) final {
    if (status != napi_cancelled) {
      try {
        Napi::HandleScope scope(env);
        OnOK();
      } catch (...) {
        // The environment can no longer run JavaScript (see above): the result has no taker.
      }
    }
    Destroy();
  }
};

}  // namespace siglip::addon
