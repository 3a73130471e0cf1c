// cuBLAS loaded at run time (dlopen), never linked: the build machines have no cuBLAS, a GPU
// machine's cuBLAS often comes from PyTorch's wheel, and a package that works without it must
// not fail to load for want of it. Only the few types, values and functions this package
// uses are declared here, with the numeric values of cublas_api.h / library_types.h (the same
// in CUDA 11, 12 and 13). Plain C++ (no CUDA headers): the backend (gemm_paths.cu) and
// siglip_cuda_check's cuBLAS floor both load it through this file.
//
// Where it is looked for (cublas_loader.cu): $SIGLIP_CUBLAS_LIBRARY (a libcublas.so* file or
// its folder) when set, and then nothing else; otherwise the dynamic loader's own search
// (LD_LIBRARY_PATH, the ldconfig cache) for libcublas.so.<this build's CUDA major> and the
// other majors, then $CUDA_HOME / $CUDA_PATH / /usr/local/cuda, then the nvidia/*/lib folders
// of pip wheels (PyTorch's cuBLAS) under $VIRTUAL_ENV, $CONDA_PREFIX, ~/.local, /usr/local,
// /usr and /opt/conda.
#pragma once
#include <memory>
#include <string>

namespace siglip::cuda {

struct CublasContext;                 // cublasContext: opaque
using CublasHandle = CublasContext*;  // cublasHandle_t
using CublasStatus = int;             // cublasStatus_t: 0 = CUBLAS_STATUS_SUCCESS

// cudaDataType_t (library_types.h)
enum class CublasDataType : int { R32F = 0, R16F = 2, R16BF = 14 };
// cublasComputeType_t: float accumulation; Pedantic forbids any reduced-precision shortcut
// (the exact 'fp32' precision), FastTf32 rounds float inputs to TF32 (the 'tf32' precision).
enum class CublasCompute : int { F32 = 68, F32Pedantic = 69, F32FastTf32 = 77 };

// The functions of one loaded libcublas. It stays loaded for the life of the process
// (unloading cuBLAS while CUDA contexts live gains nothing and risks dangling kernels).
struct CublasLibrary {
  std::string path;     // the libcublas file dlopen accepted
  std::string ltPath;   // the libcublasLt loaded from the same folder first, or ""
  std::string version;  // "major.minor.patch" (cublasGetProperty), or "" when unknown

  CublasStatus (*create)(CublasHandle*) = nullptr;
  CublasStatus (*destroy)(CublasHandle) = nullptr;
  CublasStatus (*setStream)(CublasHandle, void* stream) = nullptr;  // a cudaStream_t
  CublasStatus (*setWorkspace)(CublasHandle, void* workspace, size_t bytes) = nullptr;
  CublasStatus (*setAtomicsMode)(CublasHandle, int mode) = nullptr;
  // cublasGemmEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta,
  //              C, Ctype, ldc, computeType, algo): column-major; alpha, beta float for 32F.
  CublasStatus (*gemmEx)(CublasHandle, int, int, int, int, int, const void*, const void*, int, int, const void*, int, int,
                         const void*, void*, int, int, int, int) = nullptr;
  const char* (*statusName)(CublasStatus) = nullptr;  // cublasGetStatusName (cuBLAS ≥ 11.4), or null

  // "CUBLAS_STATUS_NOT_SUPPORTED (15)", or "status 15" with an older library.
  std::string statusText(CublasStatus status) const;

  // Row-major products, inputs of type `in`, C of type `out`, alpha and beta float as in
  // cuBLAS (C = alpha·product + beta·C; float accumulation in every compute type used here).
  // cuBLAS is column-major and a row-major R×C matrix is its column-major C×R transpose, so
  // each row-major product is issued as the transposed column-major one, Cᵀ = op(B)ᵀ·op(A)ᵀ.
  // Always the default algorithm (CUBLAS_GEMM_DEFAULT), so the choice depends only on the
  // shape, the types, the workspace and the GPU: the same on every run.
  //   C (rows×cols) = alpha · A (rows×k) · B (cols×k)ᵀ + beta·C
  CublasStatus gemmABt(CublasHandle h, int rows, int cols, int k, const void* a, int lda, const void* b, int ldb, void* c,
                       int ldc, CublasDataType in, CublasDataType out, CublasCompute compute, float alpha,
                       float beta) const;
  //   C (rows×cols) = alpha · A (rows×k) · B (k×cols) + beta·C
  CublasStatus gemmAB(CublasHandle h, int rows, int cols, int k, const void* a, int lda, const void* b, int ldb, void* c,
                      int ldc, CublasDataType in, CublasDataType out, CublasCompute compute, float alpha,
                      float beta) const;
  //   C (rows×cols) = alpha · A (k×rows)ᵀ · B (k×cols) + beta·C
  CublasStatus gemmAtB(CublasHandle h, int rows, int cols, int k, const void* a, int lda, const void* b, int ldb, void* c,
                       int ldc, CublasDataType in, CublasDataType out, CublasCompute compute, float alpha,
                       float beta) const;
};

// cublasAtomicsMode_t: CUBLAS_ATOMICS_NOT_ALLOWED (the default, set explicitly by the backend).
constexpr int kCublasAtomicsNotAllowed = 0;

// Loads libcublas from `where`: a libcublas.so* file, a folder holding one, or "" for the
// search above. Never throws: returns null and sets *error (each candidate tried and why it
// failed). Each call dlopens anew; the backend loads once per process (processCublas).
std::unique_ptr<CublasLibrary> loadCublas(const std::string& where, std::string* error);

// The process's cuBLAS: loaded on first use from $SIGLIP_CUBLAS_LIBRARY or the search, and
// the outcome (the library, or why there is none) kept for the life of the process.
// Thread-safe; never throws; null when it could not be loaded (*error, when given, says why).
const CublasLibrary* processCublas(std::string* error = nullptr);

}  // namespace siglip::cuda
