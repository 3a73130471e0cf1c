// GCC's -fsanitize=thread instrumentation, without libtsan: the kernel translation units are
// compiled with it so that every load and store they make calls one of these functions, which
// hand the access to the emulation's checks (memory.cpp: shared-memory races and bounds,
// device-memory bounds). Atomics are performed as asked (there is one OS thread).
#include <cstddef>
#include <cstdint>

#include "runtime.h"

#define SIGLIP_EMU_HOOK extern "C" __attribute__((visibility("default")))

namespace {
inline void access(const void* p, size_t n, bool w) {
  if (siglip_emu::g_checking) siglip_emu::onAccess(p, n, w);
}
}  // namespace

SIGLIP_EMU_HOOK void __tsan_init() {}
SIGLIP_EMU_HOOK void __tsan_func_entry(void*) {}
SIGLIP_EMU_HOOK void __tsan_func_exit() {}
SIGLIP_EMU_HOOK void __tsan_vptr_update(void**, void*) {}
SIGLIP_EMU_HOOK void __tsan_vptr_read(void**) {}
SIGLIP_EMU_HOOK void __tsan_read_range(const void* p, size_t n) { access(p, n, false); }
SIGLIP_EMU_HOOK void __tsan_write_range(const void* p, size_t n) { access(p, n, true); }

#define SIGLIP_EMU_RW(N)                                                                      \
  SIGLIP_EMU_HOOK void __tsan_read##N(const void* p) { access(p, N, false); }                 \
  SIGLIP_EMU_HOOK void __tsan_write##N(const void* p) { access(p, N, true); }                 \
  SIGLIP_EMU_HOOK void __tsan_unaligned_read##N(const void* p) { access(p, N, false); }       \
  SIGLIP_EMU_HOOK void __tsan_unaligned_write##N(const void* p) { access(p, N, true); }       \
  SIGLIP_EMU_HOOK void __tsan_volatile_read##N(const void* p) { access(p, N, false); }        \
  SIGLIP_EMU_HOOK void __tsan_volatile_write##N(const void* p) { access(p, N, true); }        \
  SIGLIP_EMU_HOOK void __tsan_unaligned_volatile_read##N(const void* p) { access(p, N, false); } \
  SIGLIP_EMU_HOOK void __tsan_unaligned_volatile_write##N(const void* p) { access(p, N, true); }
SIGLIP_EMU_RW(1)
SIGLIP_EMU_RW(2)
SIGLIP_EMU_RW(4)
SIGLIP_EMU_RW(8)
SIGLIP_EMU_RW(16)

// Atomics: memory orders ignored (one OS thread); the access is reported like any other.
#define SIGLIP_EMU_ATOMICS(BITS, T)                                                                           \
  SIGLIP_EMU_HOOK T __tsan_atomic##BITS##_load(const volatile T* a, int) {                                    \
    access((const void*)a, sizeof(T), false);                                                                 \
    return __atomic_load_n(a, __ATOMIC_SEQ_CST);                                                              \
  }                                                                                                           \
  SIGLIP_EMU_HOOK void __tsan_atomic##BITS##_store(volatile T* a, T v, int) {                                 \
    access((const void*)a, sizeof(T), true);                                                                  \
    __atomic_store_n(a, v, __ATOMIC_SEQ_CST);                                                                 \
  }                                                                                                           \
  SIGLIP_EMU_HOOK T __tsan_atomic##BITS##_exchange(volatile T* a, T v, int) {                                 \
    access((const void*)a, sizeof(T), true);                                                                  \
    return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST);                                                       \
  }                                                                                                           \
  SIGLIP_EMU_HOOK T __tsan_atomic##BITS##_fetch_add(volatile T* a, T v, int) {                                \
    access((const void*)a, sizeof(T), true);                                                                  \
    return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);                                                        \
  }                                                                                                           \
  SIGLIP_EMU_HOOK T __tsan_atomic##BITS##_fetch_sub(volatile T* a, T v, int) {                                \
    access((const void*)a, sizeof(T), true);                                                                  \
    return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST);                                                        \
  }                                                                                                           \
  SIGLIP_EMU_HOOK T __tsan_atomic##BITS##_fetch_and(volatile T* a, T v, int) {                                \
    access((const void*)a, sizeof(T), true);                                                                  \
    return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST);                                                        \
  }                                                                                                           \
  SIGLIP_EMU_HOOK T __tsan_atomic##BITS##_fetch_or(volatile T* a, T v, int) {                                 \
    access((const void*)a, sizeof(T), true);                                                                  \
    return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST);                                                         \
  }                                                                                                           \
  SIGLIP_EMU_HOOK T __tsan_atomic##BITS##_fetch_xor(volatile T* a, T v, int) {                                \
    access((const void*)a, sizeof(T), true);                                                                  \
    return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST);                                                        \
  }                                                                                                           \
  SIGLIP_EMU_HOOK T __tsan_atomic##BITS##_fetch_nand(volatile T* a, T v, int) {                               \
    access((const void*)a, sizeof(T), true);                                                                  \
    return __atomic_fetch_nand(a, v, __ATOMIC_SEQ_CST);                                                       \
  }                                                                                                           \
  SIGLIP_EMU_HOOK int __tsan_atomic##BITS##_compare_exchange_strong(volatile T* a, T* c, T v, int, int) {     \
    access((const void*)a, sizeof(T), true);                                                                  \
    return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                   \
  }                                                                                                           \
  SIGLIP_EMU_HOOK int __tsan_atomic##BITS##_compare_exchange_weak(volatile T* a, T* c, T v, int, int) {       \
    access((const void*)a, sizeof(T), true);                                                                  \
    return __atomic_compare_exchange_n(a, c, v, true, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                    \
  }                                                                                                           \
  SIGLIP_EMU_HOOK T __tsan_atomic##BITS##_compare_exchange_val(volatile T* a, T c, T v, int, int) {           \
    access((const void*)a, sizeof(T), true);                                                                  \
    __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                         \
    return c;                                                                                                 \
  }
SIGLIP_EMU_ATOMICS(8, uint8_t)
SIGLIP_EMU_ATOMICS(16, uint16_t)
SIGLIP_EMU_ATOMICS(32, uint32_t)
SIGLIP_EMU_ATOMICS(64, uint64_t)
SIGLIP_EMU_HOOK void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
SIGLIP_EMU_HOOK void __tsan_atomic_signal_fence(int) {}
