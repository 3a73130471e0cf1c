// A 64-byte aligned float buffer (packed GEMM panels and tiles want cache-line alignment).
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>

namespace siglip::cpu {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t floats) { resize(floats); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
  ~AlignedBuffer() { std::free(data_); }

  // Throws std::bad_alloc when the memory is not there (the addon reports it as an
  // out-of-memory error instead of crashing).
  void resize(size_t floats) {
    if (floats <= size_) return;
    const size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    std::free(data_);
    data_ = static_cast<float*>(p);
    size_ = floats;
  }
  float* data() { return data_; }
  size_t size() const { return size_; }

 private:
  float* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace siglip::cpu
