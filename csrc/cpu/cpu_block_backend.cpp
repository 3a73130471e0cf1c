#include "cpu_block_backend.h"

#include <cstring>

#include "aligned_buffer.h"
#include "losses.h"

namespace siglip::cpu {

CpuBlockBackend::CpuBlockBackend() = default;
CpuBlockBackend::~CpuBlockBackend() = default;

void* CpuBlockBackend::allocate(size_t bytes) {
  buffers_.push_back(std::make_unique<AlignedBuffer>((bytes + sizeof(float) - 1) / sizeof(float)));
  allocated_ += bytes;
  return buffers_.back()->data();
}

void CpuBlockBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

void CpuBlockBackend::zero(void* dst, size_t bytes) {
  if (bytes) std::memset(dst, 0, bytes);
}

void CpuBlockBackend::add(float* dst, const float* src, int64_t count) {
  for (int64_t e = 0; e < count; ++e) dst[e] += src[e];
}

PairSums CpuBlockBackend::computeBlock(const PairBlock& block) {
  return fusedSigmoidBlock(activeKernels(), activeEpilogues(), block);
}

}  // namespace siglip::cpu
