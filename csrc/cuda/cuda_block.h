// The fused sigmoid loss's unit of work on the GPU: one PairBlock (core/pair_block.h), as
// cpu::fusedSigmoidBlock is on the CPU. sigmoidLoss runs the whole batch as one such block;
// the ring (through CudaBlockBackend, cuda_block_backend.h) runs one per step.
//
// Plain C++ (no CUDA headers): the stream is taken as CUstream_st*, which *is* cudaStream_t,
// so CUDA callers pass their cudaStream_t unchanged and others pass nullptr.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda_backend.h"
#include "overlap_stream.h"

struct CUstream_st;

namespace siglip::cuda {

// On the GPU a PairBlock's data is device memory on `image.device`: image and text in their
// dtype (the same for both), ids as int32 (both or neither; ids that are not 4-byte aligned,
// as where the ring appends them to a 16-bit text block of odd size, are copied to aligned
// scratch first), the gradients float32. Precision TF32 or FP32 (FP32 only with float32
// data); block.threads is not used.

// Device scratch that sigmoidBlock reuses between calls (the gradient block G, two slots of it
// with SIGLIP_GEMM_OVERLAP=on; the float32 similarity block S when GEMM1 runs on cuBLAS; the
// per-CTA partial sums, the totals, aligned copies of misaligned ids) and the overlapped
// schedule's second stream. Grows as needed; freed with the workspace. One workspace per
// stream at a time.
struct SigmoidBlockWorkspace {
  DeviceBuffer gradient;
  DeviceBuffer similarities;
  DeviceBuffer partials;
  DeviceBuffer totals;
  DeviceBuffer ids;
  OverlapStream overlap;
  size_t bytes() const {
    return gradient.bytes() + similarities.bytes() + partials.bytes() + totals.bytes() + ids.bytes();
  }
};

// Computes the block on `stream` (null: a stream of its own) and, when block.dImage is given,
// *adds* (t/normalizer)·G·Y to dImage (n × D float32, device) and (t/normalizer)·Gᵀ·X to
// dText (m × D); dImage and dText are given together or not at all. Returns when the
// stream has finished (the sums are read back), so the gradients are complete on return.
// Deterministic: the same bits on every run. Checks shapes, dtypes, devices, pointers and
// scalars (siglip::Error), not the data's finiteness (sigmoidLoss scans its inputs first).
// `workspace` (optional) avoids allocating the scratch on every call.
PairSums sigmoidBlock(const PairBlock& block, CUstream_st* stream = nullptr, SigmoidBlockWorkspace* workspace = nullptr);

}  // namespace siglip::cuda
