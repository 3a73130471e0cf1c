// The ring (csrc/ring) in the raw binding: one native class per kind of ring, each bound in
// its own file, which alone guards on the feature it needs:
//
//   new LocalRingHandle({ ranks, timeoutMs, devices?, transport? })   ring_local.cpp
//       P ranks as threads of this process (devices: the CUDA build's local rings of GPUs)
//   new MpiRingHandle({ timeoutMs })                                  ring_mpi.cpp
//       this process's rank of an MPI job (builds with MPI only)
//   new NcclRingHandle({ rank, size, id, device, timeoutMs })         cuda/ring_nccl.cpp
//       then connect(): one GPU rank (the CUDA build only)
//
//   handle.sigmoidLoss(image, text, options, wantGrad) → Promise
//       local: image/text are Arrays of P { data, rows, cols } shards, options.imageIds /
//       textIds Arrays of P Int32Arrays; resolves with P results { loss, grad?, stats }.
//       mpi/nccl: one shard (nccl: a DeviceMatrix handle or a host matrix); one result.
//       options: { logitScale, logitBias, imageIds?, textIds?, threads (cpu),
//                  precision, gradients (GPU ranks) }
//   handle.connect() → Promise (nccl: ncclCommInitRank on a worker thread; local over NCCL:
//       ncclCommInitAll)
//   handle.allGather(bytes) → Promise<Uint8Array> (mpi/nccl: every rank's bytes, in rank order)
//   handle.testFault(rank, mode?) (local: the test seam, ring_test_fault.h)
//   handle.dispose(); handle.kind / rank / size / disposed (ring_handle.h, all three)
//
// plus ringBuildInfo() → { mpi, mpiLibrary, mpiLaunched, nccl }, mpiFinalize(), and, in the
// CUDA build, ncclUniqueId() → Uint8Array(128) and ncclInfo().
//
// Threads: everything JavaScript (reading and checking arguments, allocating gradient
// arrays, keeping references to every borrowed typed array) happens on the JS thread; the
// ring runs in a PromiseWorker, which for a local ring starts one std::thread per rank.
// A ring runs one call at a time (lib/ring/base.ts queues them; a second native call while
// one is in flight throws ERR_SIGLIP_RING_BUSY).
//
// Failure: a rank that fails aborts its transport, so every other rank's wait throws
// ("stopped: rank k failed: …") or times out (timeoutMs); a local call rejects with the
// failing rank's error, with `rank` and `rankErrors` (one message per rank, '' where it
// succeeded) on it. A local ring gets a fresh in-process group after a failure; an MPI or
// NCCL ring is unusable after one (ERR_SIGLIP_RING_FAILED).
#pragma once
#include <napi.h>

namespace siglip::addon {

void registerRingBindings(Napi::Env env, Napi::Object exports);

// Each kind's binding (internal to csrc/addon/ring_*.cpp); the MPI one binds nothing but its
// build info where the build lacks MPI (the NCCL one: cuda_bindings.h).
void registerLocalRing(Napi::Env env, Napi::Object exports);
void registerMpiRing(Napi::Env env, Napi::Object exports);
void mpiBuildInfo(Napi::Env env, Napi::Object out);

}  // namespace siglip::addon
