// One-rank-per-process rings in the raw binding: this process's rank of an MPI job (host
// shards, CPU) or of an NCCL ring (one GPU; CUDA build only), one call at a time, in an
// AsyncWorker (internal to csrc/addon/ring_*.cpp; ring_bindings.h documents the calls).
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "js_errors.h"
#include "ring/transport.h"
#include "ring_convert.h"
#include "ring_worker.h"

namespace siglip::addon::ring_internal {

// handle.sigmoidLoss(image, text, options, wantGrad) of an MPI ring: one host shard; a
// Promise of this rank's result. A failure breaks the ring (state->broken).
Napi::Value mpiSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state);

#if defined(SIGLIP_WITH_CUDA)
// The same for an NCCL ring: image/text are device matrix handles on the ring's device or
// host { data, rows, cols } (float32, uploaded for the call).
Napi::Value ncclSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state);

// ncclCommInitRank blocks until every rank has joined: a worker thread, never the JS thread.
class NcclConnectWorker : public RankCallWorker {
 public:
  NcclConnectWorker(Napi::Env env, std::shared_ptr<RingState> state)
      : RankCallWorker(env, "siglip:ncclConnect", std::move(state)), id_(state_->ncclId) {}

 protected:
  void run() override;
  Napi::Value result(Napi::Env env) override;

 private:
  std::vector<uint8_t> id_;
  std::unique_ptr<ring::Transport> transport_;
};

// A local ring of GPUs over NCCL: ncclCommInitAll over the ring's devices (one endpoint per
// rank, each then driven by its rank's thread), on a worker thread as it blocks.
class LocalNcclConnectWorker : public RankCallWorker {
 public:
  LocalNcclConnectWorker(Napi::Env env, std::shared_ptr<RingState> state)
      : RankCallWorker(env, "siglip:ncclConnectLocal", std::move(state)) {}

 protected:
  void run() override;
  Napi::Value result(Napi::Env env) override;

 private:
  std::vector<std::unique_ptr<ring::Transport>> endpoints_;
};

// Throws ERR_SIGLIP_NO_NCCL (a JS error) when libnccl cannot be loaded.
void requireNccl(Napi::Env env);
#endif  // SIGLIP_WITH_CUDA

}  // namespace siglip::addon::ring_internal
