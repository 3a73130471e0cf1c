// What the three native ring classes share (LocalRingHandle in ring_local.cpp, MpiRingHandle
// in ring_mpi.cpp, NcclRingHandle in cuda/ring_nccl.cpp): the RingState, construction that
// turns a transport's failure into ERR_SIGLIP_RING_FAILED, the checks before a call (disposed,
// busy, broken, connected), sigmoidLoss(), connect(), allGather() (one-rank-per-process rings),
// dispose() and the kind / rank / size / disposed accessors. Each class adds its constructor's
// body, loss(info, state) (sigmoidLoss on a connected ring) and join(env, state) (connect() of
// a ring not yet connected); none switches on the kind.
#pragma once
#include <napi.h>

#include <memory>
#include <utility>
#include <vector>

#include "convert.h"
#include "js_errors.h"
#include "ring_convert.h"
#include "ring_rank.h"

namespace siglip::addon::ring_internal {

template <class Handle>
class RingHandleBase : public Napi::ObjectWrap<Handle> {
 public:
  explicit RingHandleBase(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Handle>(info) {}

 protected:
  using Members = std::vector<Napi::ClassPropertyDescriptor<Handle>>;
  using Wrap = Napi::ObjectWrap<Handle>;

  // The shared members, allGather() where `oneRankPerProcess`, then the class's own `members`.
  static Napi::Function defineRingClass(Napi::Env env, const char* name, bool oneRankPerProcess, Members members = {}) {
    members.push_back(Wrap::InstanceMethod("sigmoidLoss", &Handle::SigmoidLoss));
    members.push_back(Wrap::InstanceMethod("connect", &Handle::Connect));
    if (oneRankPerProcess) members.push_back(Wrap::InstanceMethod("allGather", &Handle::AllGather));
    members.push_back(Wrap::InstanceMethod("dispose", &Handle::Dispose));
    members.push_back(Wrap::InstanceAccessor("kind", &Handle::Kind, nullptr));
    members.push_back(Wrap::InstanceAccessor("rank", &Handle::Rank, nullptr));
    members.push_back(Wrap::InstanceAccessor("size", &Handle::Size, nullptr));
    members.push_back(Wrap::InstanceAccessor("disposed", &Handle::Disposed, nullptr));
    return Wrap::DefineClass(env, name, members);
  }

  // Runs the constructor's body on the options object (its timeoutMs already read): argument
  // errors keep their JS type, anything else (MPI_Init failed, ...) becomes ERR_SIGLIP_RING_FAILED.
  template <class Body>
  void construct(const Napi::CallbackInfo& info, RingKind kind, Body&& body) {
    try {
      auto state = std::make_shared<RingState>();
      state->kind = kind;
      Napi::Object options = readObject(info[0], "options");
      state->timeout = readTimeout(options);
      body(*state, options);
      state_ = std::move(state);
      kind_ = kind;
    } catch (const Napi::Error&) {
      throw;
    } catch (...) {
      throw ringError(info.Env(), captureCurrentException());
    }
  }

  std::shared_ptr<RingState> usable(Napi::Env env) { return usableRing(env, state_); }

  Napi::Value SigmoidLoss(const Napi::CallbackInfo& info) {
    return withJsErrors(info.Env(), [&]() -> Napi::Value {
      return static_cast<Handle*>(this)->loss(info, connectedRing(info.Env(), state_));
    });
  }
  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return withJsErrors(env, [&]() -> Napi::Value {
      std::shared_ptr<RingState> state = usable(env);
      if (state->endpoints.empty()) return static_cast<Handle*>(this)->join(env, state);
      return resolvedPromise(env);  // connected
    });
  }
  Napi::Value AllGather(const Napi::CallbackInfo& info) {
    return withJsErrors(info.Env(), [&]() -> Napi::Value { return rankAllGather(info, connectedRing(info.Env(), state_)); });
  }
  void Dispose(const Napi::CallbackInfo&) { state_.reset(); }
  Napi::Value Kind(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), kindName(kind_)); }
  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), state_ ? state_->rank : 0); }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), state_ ? state_->size : 0); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

  std::shared_ptr<RingState> state_;
  RingKind kind_ = RingKind::Local;
};

}  // namespace siglip::addon::ring_internal
