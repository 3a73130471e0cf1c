// What the three native ring classes share (LocalRingHandle in ring_local.cpp, MpiRingHandle
// in ring_mpi.cpp, NcclRingHandle in ring_nccl.cpp): the RingState, construction that turns a
// transport's failure into ERR_SIGLIP_RING_FAILED, the checks before a call (disposed, busy,
// broken, connected), dispose() and the kind / rank / size / disposed accessors. Each class
// adds its own constructor and calls; none switches on the kind.
#pragma once
#include <napi.h>

#include <memory>
#include <utility>
#include <vector>

#include "js_errors.h"
#include "ring_convert.h"

namespace siglip::addon::ring_internal {

template <class Handle>
class RingHandleBase : public Napi::ObjectWrap<Handle> {
 public:
  explicit RingHandleBase(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Handle>(info) {}

 protected:
  using Members = std::vector<Napi::ClassPropertyDescriptor<Handle>>;
  using Wrap = Napi::ObjectWrap<Handle>;

  // dispose() and the accessors, followed by the class's own `members`.
  static Napi::Function defineRingClass(Napi::Env env, const char* name, Members members) {
    members.push_back(Wrap::InstanceMethod("dispose", &Handle::Dispose));
    members.push_back(Wrap::InstanceAccessor("kind", &Handle::Kind, nullptr));
    members.push_back(Wrap::InstanceAccessor("rank", &Handle::Rank, nullptr));
    members.push_back(Wrap::InstanceAccessor("size", &Handle::Size, nullptr));
    members.push_back(Wrap::InstanceAccessor("disposed", &Handle::Disposed, nullptr));
    return Wrap::DefineClass(env, name, members);
  }

  // Runs the constructor's body: argument errors keep their JS type, anything else (MPI_Init
  // failed, ...) becomes ERR_SIGLIP_RING_FAILED.
  template <class Body>
  void construct(Napi::Env env, RingKind kind, Body&& body) {
    try {
      auto state = std::make_shared<RingState>();
      state->kind = kind;
      body(*state);
      state_ = std::move(state);
      kind_ = kind;
    } catch (const Napi::Error&) {
      throw;
    } catch (...) {
      throw ringError(env, captureCurrentException());
    }
  }

  std::shared_ptr<RingState> usable(Napi::Env env) { return usableRing(env, state_); }
  std::shared_ptr<RingState> connected(Napi::Env env) { return connectedRing(env, state_); }

  void Dispose(const Napi::CallbackInfo&) { state_.reset(); }
  Napi::Value Kind(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), kindName(kind_)); }
  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), state_ ? state_->rank : 0); }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), state_ ? state_->size : 0); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

  std::shared_ptr<RingState> state_;
  RingKind kind_ = RingKind::Local;
};

}  // namespace siglip::addon::ring_internal
