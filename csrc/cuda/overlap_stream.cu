// The overlapped schedule's second stream and its events (overlap_stream.h).
#include <utility>

#include "cuda_common.cuh"
#include "overlap_stream.h"

namespace siglip::cuda {

OverlapStream::OverlapStream(OverlapStream&& other) noexcept { *this = std::move(other); }

OverlapStream& OverlapStream::operator=(OverlapStream&& other) noexcept {
  if (this != &other) {
    destroy();
    std::swap(device_, other.device_);
    std::swap(stream_, other.stream_);
    std::swap(written_, other.written_);
    std::swap(read_, other.read_);
    std::swap(drained_, other.drained_);
  }
  return *this;
}

OverlapStream::~OverlapStream() { destroy(); }

void OverlapStream::destroy() noexcept {
  if (!stream_) return;
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(device_);
  cudaStreamSynchronize(stream_);  // never throws from a destructor; nothing to undo on failure
  // Only events that exist (prepare may have failed half-way): destroying a null event would
  // leave an error behind for the next launch check to report.
  const auto release = [](cudaEvent_t& e) {
    if (e) cudaEventDestroy(e);
    e = nullptr;
  };
  for (cudaEvent_t& e : written_) release(e);
  for (cudaEvent_t& e : read_) release(e);
  release(drained_);
  cudaStreamDestroy(stream_);
  stream_ = nullptr;
  cudaSetDevice(previous);
  device_ = -1;
}

void OverlapStream::prepare(int device) {
  if (stream_ && device_ == device) return;
  destroy();
  device_ = device;
  // Timing off: the events only order the streams, and untimed events are the cheapest.
  const auto event = [](cudaEvent_t* e) { SIGLIP_CUDA_CHECK(cudaEventCreateWithFlags(e, cudaEventDisableTiming)); };
  // From here on destroy() releases whatever was created, should a later step throw.
  SIGLIP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  for (cudaEvent_t& e : written_) event(&e);
  for (cudaEvent_t& e : read_) event(&e);
  event(&drained_);
}

void OverlapStream::awaitSlot(cudaStream_t call, int64_t piece) {
  if (piece >= 2) SIGLIP_CUDA_CHECK(cudaStreamWaitEvent(call, read_[piece % 2], 0));
}

void OverlapStream::handOff(cudaStream_t call, int64_t piece) {
  SIGLIP_CUDA_CHECK(cudaEventRecord(written_[piece % 2], call));
  SIGLIP_CUDA_CHECK(cudaStreamWaitEvent(stream_, written_[piece % 2], 0));
}

void OverlapStream::releaseSlot(int64_t piece) { SIGLIP_CUDA_CHECK(cudaEventRecord(read_[piece % 2], stream_)); }

void OverlapStream::join(cudaStream_t call) {
  SIGLIP_CUDA_CHECK(cudaEventRecord(drained_, stream_));
  SIGLIP_CUDA_CHECK(cudaStreamWaitEvent(call, drained_, 0));
}

void OverlapStream::drain() noexcept {
  if (stream_) cudaStreamSynchronize(stream_);
}

}  // namespace siglip::cuda
