#include <cstring>

#include "ring_backend.h"

namespace siglip::ring {

void* CpuRingBackend::allocate(size_t bytes) {
  buffers_.push_back(std::make_unique<cpu::AlignedBuffer>((bytes + sizeof(float) - 1) / sizeof(float)));
  allocated_ += bytes;
  return buffers_.back()->data();
}

void CpuRingBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

void CpuRingBackend::zero(void* dst, size_t bytes) {
  if (bytes) std::memset(dst, 0, bytes);
}

void CpuRingBackend::add(float* dst, const float* src, int64_t count) {
  for (int64_t e = 0; e < count; ++e) dst[e] += src[e];
}

cpu::PairSums CpuRingBackend::computeBlock(const cpu::SigmoidBlock& block, float* dImage, float* dText) {
  return cpu::fusedSigmoidBlock(cpu::activeKernels(), block, dImage, dText);
}

}  // namespace siglip::ring
