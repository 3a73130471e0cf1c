// A test double of libcublas for the CUDA emulation (docs/CUDA_EMULATION.md): built as
// build-emu/doubles/libcublas.so.13 and loaded by the package's own loader
// (csrc/cuda/cublas_loader.cu, SIGLIP_CUBLAS_LIBRARY=build-emu/doubles), so that the GEMM paths
// on cuBLAS run on the emulation too. It implements the documented semantics of exactly the
// functions the package calls (cuBLAS library documentation, "cublasGemmEx", "cublasSetStream",
// "cublasSetWorkspace", "cublasSetAtomicsMode", "cublasGetProperty", "cublasGetStatusName"),
// plus cublasSetMathMode / cublasGetMathMode, which decide what the 32F compute type may do:
//
// * column-major operands; op(A) is m×k, op(B) k×n, C m×n; transposes N, T (and C, which is
//   T for real types); leading dimensions checked (lda ≥ max(1, N ? m : k), ldb ≥ max(1, N ? k
//   : n), ldc ≥ max(1, m)) as is every argument cuBLAS checks: CUBLAS_STATUS_INVALID_VALUE or
//   CUBLAS_STATUS_NOT_SUPPORTED (a type / compute-type combination the table does not list);
// * C = alpha·op(A)·op(B) + beta·C with alpha, beta float (host pointers); when beta is zero C
//   is not read (NaN there does not propagate); k = 0 scales C by beta;
// * compute types 32F and 32F_PEDANTIC: float products, float accumulation (in k order: this
//   double is deterministic, as CUBLAS_GEMM_DEFAULT with atomics not allowed is);
//   32F_FAST_TF32, and 32F with float inputs under CUBLAS_TF32_TENSOR_OP_MATH: A and B rounded
//   to TF32 (nearest, ties away, as cvt.rna does) before the products;
// * the work runs on the handle's stream (cudaLaunchHostFunc of the emulation), in order with
//   the kernels around it; the operands are checked to lie inside live device allocations
//   when it runs; the workspace (cublasSetWorkspace, checked the same way) is overwritten
//   with NaN by every GEMM, so that memory a caller shares with a live workspace is caught.
//
// test/cuda-emulated/doubles/cublas_double_check.cpp checks it against a plain float64
// product. Not a part of the package.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "siglip_emu/runtime_api.h"

namespace {

enum Status : int {
  kSuccess = 0,
  kNotInitialized = 1,
  kInvalidValue = 7,
  kExecutionFailed = 13,
  kNotSupported = 15,
};
enum DataType : int { kR32F = 0, kR16F = 2, kR16BF = 14 };
enum Compute : int { k32F = 68, k32FPedantic = 69, k32FFastTf32 = 77 };
enum MathMode : int { kDefaultMath = 0, kTensorOpMath = 1, kPedanticMath = 2, kTf32TensorOpMath = 3 };
constexpr unsigned kMathModeMask = 0xf;  // the low bits: the mode; higher bits: flags (e.g. 16 = disallow reduced-precision reduction)

constexpr uint32_t kMagic = 0x43424c53;  // "CBLS": a live handle

struct Handle {
  uint32_t magic = kMagic;
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;
  size_t workspaceBytes = 0;
  int atomicsMode = 0;
  int mathMode = kDefaultMath;
};

bool live(const Handle* h) { return h && h->magic == kMagic; }

float tf32(float v) {  // cvt.rna.tf32.f32
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u) return v;
  bits = (bits + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &bits, 4);
  return v;
}

float load(const void* p, int type, int64_t index) {
  if (type == kR32F) return static_cast<const float*>(p)[index];
  uint16_t h;
  std::memcpy(&h, static_cast<const unsigned char*>(p) + 2 * index, 2);
  if (type == kR16BF) {
    const uint32_t bits = uint32_t(h) << 16;
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
  }
  // IEEE binary16
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float v = std::ldexp(float(m), -24);
    return sign ? -v : v;
  }
  const uint32_t bits = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e - 15 + 127) << 23) | (m << 13));
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

int typeBytes(int type) { return type == kR32F ? 4 : 2; }

// One GEMM, queued on the stream and run there.
struct Job {
  int transa, transb, m, n, k;
  float alpha, beta;
  const void* a;
  int atype, lda;
  const void* b;
  int btype, ldb;
  void* c;
  int ctype, ldc;
  bool roundTf32;
  void* workspace;
  size_t workspaceBytes;
};

// Bytes a column-major rows×cols operand with leading dimension ld spans.
size_t span(int64_t rows, int64_t cols, int64_t ld, int type) {
  if (rows == 0 || cols == 0) return 0;
  return size_t((cols - 1) * ld + rows) * size_t(typeBytes(type));
}

void runJob(void* data) {
  Job* job = static_cast<Job*>(data);
  const Job& j = *job;
  const int64_t aRows = j.transa == 0 ? j.m : j.k, aCols = j.transa == 0 ? j.k : j.m;
  const int64_t bRows = j.transb == 0 ? j.k : j.n, bCols = j.transb == 0 ? j.n : j.k;
  bool ok = siglip_emu_check_device_range(j.c, span(j.m, j.n, j.ldc, j.ctype), "cublasGemmEx: C");
  if (j.k > 0 && j.alpha != 0.0f) {
    ok = siglip_emu_check_device_range(j.a, span(aRows, aCols, j.lda, j.atype), "cublasGemmEx: A") && ok;
    ok = siglip_emu_check_device_range(j.b, span(bRows, bCols, j.ldb, j.btype), "cublasGemmEx: B") && ok;
  }
  if (j.workspace && j.workspaceBytes)
    ok = siglip_emu_check_device_range(j.workspace, j.workspaceBytes, "cublasGemmEx: workspace") && ok;
  if (ok) {
    if (j.workspace) std::memset(j.workspace, 0xff, j.workspaceBytes);  // NaN: whatever else lived there is gone
    std::vector<float> col(size_t(j.k));
    for (int64_t jj = 0; jj < j.n; ++jj) {
      // op(B)(:, jj)
      for (int64_t l = 0; l < j.k; ++l) {
        const float v = load(j.b, j.btype, j.transb == 0 ? l + jj * j.ldb : jj + l * j.ldb);
        col[size_t(l)] = j.roundTf32 ? tf32(v) : v;
      }
      for (int64_t i = 0; i < j.m; ++i) {
        float acc = 0.0f;
        if (j.alpha != 0.0f)
          for (int64_t l = 0; l < j.k; ++l) {
            const float v = load(j.a, j.atype, j.transa == 0 ? i + l * j.lda : l + i * j.lda);
            acc = std::fma(j.roundTf32 ? tf32(v) : v, col[size_t(l)], acc);
          }
        float* out = static_cast<float*>(j.c) + i + jj * j.ldc;
        *out = j.beta == 0.0f ? j.alpha * acc : j.alpha * acc + j.beta * *out;
      }
    }
  }
  delete job;
}

bool supported(int atype, int btype, int ctype, int compute) {
  if (atype != btype) return false;
  switch (compute) {
    case k32F:
    case k32FPedantic:
      // The 32F rows of cublasGemmEx's table (real types this double knows): 16BF → 16BF or 32F,
      // 16F → 16F or 32F, 32F → 32F. Output in 16 bits is not implemented here: the package
      // never asks for it, and a double must not pretend.
      if (ctype != kR32F) return false;
      return atype == kR32F || atype == kR16F || atype == kR16BF;
    case k32FFastTf32:
      return atype == kR32F && ctype == kR32F;
    // 32F_FAST_16F / 32F_FAST_16BF (float inputs rounded to 16 bits): valid in cuBLAS, never
    // used by the package, not implemented by this double: refused rather than imitated.
    default:
      return false;
  }
}

bool validAlgo(int algo) { return (algo >= -1 && algo <= 23) || (algo >= 99 && algo <= 115); }

}  // namespace

#define CUBLAS_DOUBLE extern "C" __attribute__((visibility("default")))

CUBLAS_DOUBLE int cublasCreate_v2(Handle** handle) {
  if (!handle) return kInvalidValue;
  *handle = new Handle();
  return kSuccess;
}

CUBLAS_DOUBLE int cublasDestroy_v2(Handle* handle) {
  if (!live(handle)) return kNotInitialized;
  // As cuBLAS: destroying synchronises the handle's stream (its work may still use the handle).
  cudaStreamSynchronize(handle->stream);
  handle->magic = 0;
  delete handle;
  return kSuccess;
}

CUBLAS_DOUBLE int cublasSetStream_v2(Handle* handle, cudaStream_t stream) {
  if (!live(handle)) return kNotInitialized;
  handle->stream = stream;
  // "cublasSetStream() unconditionally resets the cuBLAS library workspace back to the default
  // workspace pool": the user workspace is forgotten.
  handle->workspace = nullptr;
  handle->workspaceBytes = 0;
  return kSuccess;
}

CUBLAS_DOUBLE int cublasSetWorkspace_v2(Handle* handle, void* workspace, size_t bytes) {
  if (!live(handle)) return kNotInitialized;
  // The workspace pointer must be 256-byte aligned ("CUBLAS_STATUS_INVALID_VALUE if the
  // workspace is not properly aligned") and is device memory of at least `bytes`.
  if (workspace && reinterpret_cast<uintptr_t>(workspace) % 256 != 0) return kInvalidValue;
  if (workspace && !siglip_emu_check_device_range(workspace, bytes, "cublasSetWorkspace_v2")) return kInvalidValue;
  handle->workspace = workspace;
  handle->workspaceBytes = workspace ? bytes : 0;
  return kSuccess;
}

CUBLAS_DOUBLE int cublasSetAtomicsMode(Handle* handle, int mode) {
  if (!live(handle)) return kNotInitialized;
  if (mode != 0 && mode != 1) return kInvalidValue;
  handle->atomicsMode = mode;
  return kSuccess;
}

CUBLAS_DOUBLE int cublasSetMathMode(Handle* handle, int mode) {
  if (!live(handle)) return kNotInitialized;
  if ((unsigned(mode) & kMathModeMask) > kTf32TensorOpMath) return kInvalidValue;
  handle->mathMode = mode;
  return kSuccess;
}

CUBLAS_DOUBLE int cublasGetMathMode(Handle* handle, int* mode) {
  if (!live(handle)) return kNotInitialized;
  if (!mode) return kInvalidValue;
  *mode = handle->mathMode;
  return kSuccess;
}

CUBLAS_DOUBLE int cublasGemmEx(Handle* handle, int transa, int transb, int m, int n, int k, const void* alpha,
                               const void* a, int atype, int lda, const void* b, int btype, int ldb, const void* beta,
                               void* c, int ctype, int ldc, int computeType, int algo) {
  if (!live(handle)) return kNotInitialized;
  auto op = [](int t) { return t == 0 ? 0 : t == 1 || t == 2 ? 1 : -1; };  // C = T for real types
  const int ta = op(transa), tb = op(transb);
  if (ta < 0 || tb < 0 || m < 0 || n < 0 || k < 0 || !alpha || !beta) return kInvalidValue;
  if (lda < std::max(1, ta == 0 ? m : k) || ldb < std::max(1, tb == 0 ? k : n) || ldc < std::max(1, m))
    return kInvalidValue;
  if (!supported(atype, btype, ctype, computeType)) return kNotSupported;
  if (!validAlgo(algo)) return kInvalidValue;
  if (m == 0 || n == 0) return kSuccess;  // quick return
  Job* job = new Job{ta,    tb, m,     n,     k,    *static_cast<const float*>(alpha), *static_cast<const float*>(beta),
                     a,     atype, lda, b,     btype, ldb, c, ctype, ldc, false, handle->workspace,
                     handle->workspaceBytes};
  const int mode = handle->mathMode & int(kMathModeMask);
  job->roundTf32 = atype == kR32F && (computeType == k32FFastTf32 || (computeType == k32F && mode == kTf32TensorOpMath));
  if (cudaLaunchHostFunc(handle->stream, runJob, job) != cudaSuccess) {
    delete job;
    cudaGetLastError();
    return kExecutionFailed;
  }
  return kSuccess;
}

CUBLAS_DOUBLE const char* cublasGetStatusName(int status) {
  switch (status) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 16: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

// MAJOR_VERSION 0, MINOR_VERSION 1, PATCH_LEVEL 2: the emulated CUDA 13.0's cuBLAS.
CUBLAS_DOUBLE int cublasGetProperty(int type, int* value) {
  if (!value) return kInvalidValue;
  switch (type) {
    case 0: *value = 13; return kSuccess;
    case 1: *value = 0; return kSuccess;
    case 2: *value = 0; return kSuccess;
    default: return kInvalidValue;
  }
}
