// SIGLIP_HOST_DEVICE: marks the core's small math and sum types as callable from CUDA device
// code where nvcc compiles them, and expands to nothing elsewhere, so csrc/core stays plain C++.
#pragma once

#if defined(__CUDACC__)
#define SIGLIP_HOST_DEVICE __host__ __device__
#else
#define SIGLIP_HOST_DEVICE
#endif
