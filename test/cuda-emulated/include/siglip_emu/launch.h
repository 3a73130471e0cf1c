// Kernel launches in the CUDA emulation: siglip::cuda::launchKernel (cuda_common.cuh) calls
// siglip_emu::launch, which checks the configuration as the device would and queues the grid on
// the stream; the runtime runs it at the stream's next synchronisation point.
#pragma once
#include <functional>
#include <tuple>
#include <utility>

namespace siglip_emu {

struct LaunchConfig {
  const void* kernel;
  dim3 grid, block;
  size_t dynamicSmem;
};
// Queues body (one call = one CUDA thread's run of the kernel) for grid × block threads.
void enqueueKernel(const LaunchConfig& config, cudaStream_t stream, std::function<void()> body);
// Dynamic shared memory of the running block (exactly the launch's size, then a red zone).
unsigned char* dynamicShared();

template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  // The arguments are copied at launch, converted to the kernel's parameter types, as on the device.
  auto params = std::make_shared<std::tuple<std::decay_t<Params>...>>(std::decay_t<Params>(std::forward<Args>(args))...);
  enqueueKernel(LaunchConfig{reinterpret_cast<const void*>(kernel), grid, block, smem}, stream,
                [kernel, params] { std::apply(kernel, *params); });
}

}  // namespace siglip_emu

// extern __shared__ T name[] has no C++ spelling: csrc/cuda writes SIGLIP_DYNAMIC_SHARED(T, name).
#define SIGLIP_EMU_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(::siglip_emu::dynamicShared())
