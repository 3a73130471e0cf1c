// What ring_local.cpp needs of ring_nccl.cpp in the CUDA build: local rings of GPUs may talk
// through NCCL too (internal to csrc/addon/ring_*.cpp).
#pragma once
#if defined(SIGLIP_WITH_CUDA)
#include <napi.h>

#include <memory>

#include "ring_convert.h"

namespace siglip::addon::ring_internal {

// Throws ERR_SIGLIP_NO_NCCL (a JS error) when libnccl cannot be loaded.
void requireNccl(Napi::Env env);

// connect() of a local ring over NCCL: ncclCommInitAll over the ring's devices (one endpoint
// per rank, each then driven by its rank's thread), on a worker thread as it blocks.
Napi::Value connectLocalNccl(Napi::Env env, const std::shared_ptr<RingState>& state);

}  // namespace siglip::addon::ring_internal
#endif  // SIGLIP_WITH_CUDA
