// Internal interface of the CUDA emulation's runtime (runtime.cpp, memory.cpp) for hooks.cpp.
#pragma once
#include <cstddef>
#include <cstdint>

namespace siglip_emu {
// A load or store of `size` bytes at `addr` by instrumented code.
void onAccess(const void* addr, size_t size, bool write);
extern bool g_checking;  // false until the runtime is initialised
}  // namespace siglip_emu

extern "C" {
// Number of problems reported so far (races, deadlocks, bounds, misuse); the test driver
// fails on any.
long siglip_emu_report_count();
// Resets the count (a driver that expects a report, e.g. from a deliberate misuse).
void siglip_emu_reset_reports();
}
