// The ring (csrc/ring) in the raw binding: a native ring object, RingHandle, for
//
//   new RingHandle('local', { ranks, timeoutMs })       P ranks as threads of this process
//   new RingHandle('mpi', { timeoutMs })                 this process's rank of an MPI job
//                                                        (builds with SIGLIP_WITH_MPI only)
//   new RingHandle('nccl', { rank, size, id, device, timeoutMs }) then connect()
//                                                        one GPU rank (CUDA build only)
//
//   handle.sigmoidLoss(image, text, options, wantGrad) → Promise
//       local: image/text are Arrays of P { data, rows, cols } shards, options.imageIds /
//       textIds Arrays of P Int32Arrays; resolves with P results { loss, grad?, stats }.
//       mpi/nccl: one shard (nccl: a DeviceMatrix handle or a host matrix); one result.
//       options: { logitScale, logitBias, imageIds?, textIds?, threads (cpu),
//                  precision, gradients (nccl), failRank?, failMode? (local test hook) }
//   handle.connect() → Promise (nccl: ncclCommInitRank on a worker thread)
//   handle.allGather(bytes) → Promise<Uint8Array> (mpi/nccl: every rank's bytes, in rank order)
//   handle.dispose(); handle.kind / rank / size / disposed
//
// plus ringBuildInfo() → { mpi, mpiLibrary, mpiLaunched, nccl }, mpiFinalize(), and, in the
// CUDA build, ncclUniqueId() → Uint8Array(128) and ncclInfo().
//
// Threads: everything JavaScript (reading and checking arguments, allocating gradient
// arrays, keeping references to every borrowed typed array) happens on the JS thread; the
// ring runs in an AsyncWorker, which for a local ring starts one std::thread per rank.
// A ring runs one call at a time (lib/ring.ts queues them; a second native call while one is
// in flight throws ERR_SIGLIP_RING_BUSY).
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

}  // namespace siglip::addon
