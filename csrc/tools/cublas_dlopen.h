// cuBLAS loaded at run time (dlopen), for siglip_cuda_check's "floor": the same three GEMMs
// the loss runs (X·Yᵀ, G·Y, Gᵀ·X) done by cuBLAS. No cuBLAS headers or link-time dependency:
// the build machine has none, and the GPU machine's cuBLAS comes from PyTorch's wheel. Only
// the few types, values and functions used are declared, with the numeric values of
// cublas_api.h / library_types.h (CUDA 11–13; library_types.h checked against CUDA 13.0).
#pragma once
#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace siglip::tools {

using CublasStatus = int;  // cublasStatus_t: 0 = CUBLAS_STATUS_SUCCESS
struct CublasContext;
using CublasHandle = CublasContext*;  // cublasHandle_t
using CudaStreamHandle = void*;       // cudaStream_t (a CUstream_st*)

// cublasOperation_t
constexpr int kCublasOpN = 0;
constexpr int kCublasOpT = 1;
// cudaDataType_t (library_types.h)
constexpr int kCudaR32F = 0;
constexpr int kCudaR16F = 2;
constexpr int kCudaR16BF = 14;
// cublasComputeType_t
constexpr int kCublasCompute32F = 68;          // float accumulate (tensor cores for 16-bit inputs)
constexpr int kCublasCompute32FFastTf32 = 77;  // float accumulate, inputs rounded to TF32
// cublasGemmAlgo_t
constexpr int kCublasGemmDefault = -1;

class Cublas {
 public:
  using CreateFn = CublasStatus (*)(CublasHandle*);
  using DestroyFn = CublasStatus (*)(CublasHandle);
  using SetStreamFn = CublasStatus (*)(CublasHandle, CudaStreamHandle);
  using GetVersionFn = CublasStatus (*)(CublasHandle, int*);
  // cublasGemmEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta,
  //              C, Ctype, ldc, computeType, algo); column-major, alpha/beta float for 32F.
  using GemmExFn = CublasStatus (*)(CublasHandle, int, int, int, int, int, const void*, const void*, int, int,
                                    const void*, int, int, const void*, void*, int, int, int, int);

  Cublas() = default;
  Cublas(const Cublas&) = delete;
  Cublas& operator=(const Cublas&) = delete;
  ~Cublas() {
    if (handle_ && destroy_) destroy_(handle_);
    // The libraries stay loaded: unloading cuBLAS while the CUDA context lives gains nothing.
  }

  // `where`: a libcublas.so* file, a directory holding one, or empty (the loader's search
  // path). Returns false and fills error() on any failure; never throws.
  bool load(const std::string& where) {
    std::vector<std::string> candidates;
    std::string dir;
    struct stat st {};
    if (!where.empty() && stat(where.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      dir = where;
      for (const std::string& name : listCublas(where, "libcublas.so")) candidates.push_back(where + "/" + name);
      if (candidates.empty()) return fail("no libcublas.so* in " + where);
    } else if (!where.empty()) {
      candidates.push_back(where);
      const size_t slash = where.rfind('/');
      if (slash != std::string::npos) dir = where.substr(0, slash);
    } else {
      candidates = {"libcublas.so", "libcublas.so.13", "libcublas.so.12", "libcublas.so.11"};
    }
    // cuBLAS needs cuBLASLt of the same release; load it first from the same directory so the
    // dependency resolves even when that directory is not on the loader's path.
    if (!dir.empty()) {
      for (const std::string& name : listCublas(dir, "libcublasLt.so")) {
        if (dlopen((dir + "/" + name).c_str(), RTLD_NOW | RTLD_GLOBAL)) {
          ltPath_ = dir + "/" + name;
          break;
        }
      }
    }
    std::string errors;
    for (const std::string& path : candidates) {
      lib_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (lib_) {
        path_ = path;
        break;
      }
      const char* e = dlerror();
      errors += "\n    " + path + ": " + (e ? e : "unknown dlopen error");
    }
    if (!lib_) return fail("dlopen failed:" + errors);
    create_ = reinterpret_cast<CreateFn>(dlsym(lib_, "cublasCreate_v2"));
    destroy_ = reinterpret_cast<DestroyFn>(dlsym(lib_, "cublasDestroy_v2"));
    setStream_ = reinterpret_cast<SetStreamFn>(dlsym(lib_, "cublasSetStream_v2"));
    getVersion_ = reinterpret_cast<GetVersionFn>(dlsym(lib_, "cublasGetVersion_v2"));
    gemmEx_ = reinterpret_cast<GemmExFn>(dlsym(lib_, "cublasGemmEx"));
    if (!create_ || !destroy_ || !setStream_ || !gemmEx_)
      return fail(path_ + " lacks cublasCreate_v2 / cublasDestroy_v2 / cublasSetStream_v2 / cublasGemmEx");
    const CublasStatus status = create_(&handle_);
    if (status != 0) {
      handle_ = nullptr;
      return fail("cublasCreate_v2 returned status " + std::to_string(status));
    }
    if (getVersion_) getVersion_(handle_, &version_);
    return true;
  }

  bool setStream(CudaStreamHandle stream) { return setStream_(handle_, stream) == 0; }

  // Row-major helpers (cuBLAS is column-major: a row-major R×C matrix is its column-major
  // transpose, so each row-major product is issued as the transposed column-major one).
  //   C (rows×cols, ldc) = alpha · A (rows×k, row-major, lda) · B (cols×k, row-major, ldb)ᵀ + beta·C
  CublasStatus gemmABt(int rows, int cols, int k, const void* a, int lda, const void* b, int ldb, void* c, int ldc,
                       int inType, int outType, int compute, float alpha, float beta) const {
    // Cᵀ (cols×rows) = B (cols×k) · Aᵀ: column-major B is bᵀ-as-stored → op T; Aᵀ is a as stored → op N.
    return gemmEx_(handle_, kCublasOpT, kCublasOpN, cols, rows, k, &alpha, b, inType, ldb, a, inType, lda, &beta, c,
                   outType, ldc, compute, kCublasGemmDefault);
  }
  //   C (rows×cols) = alpha · A (rows×k, row-major) · B (k×cols, row-major) + beta·C
  CublasStatus gemmAB(int rows, int cols, int k, const void* a, int lda, const void* b, int ldb, void* c, int ldc,
                      int inType, int outType, int compute, float alpha, float beta) const {
    // Cᵀ = Bᵀ · Aᵀ, both as stored → op N, N.
    return gemmEx_(handle_, kCublasOpN, kCublasOpN, cols, rows, k, &alpha, b, inType, ldb, a, inType, lda, &beta, c,
                   outType, ldc, compute, kCublasGemmDefault);
  }
  //   C (rows×cols) = alpha · A (k×rows, row-major)ᵀ · B (k×cols, row-major) + beta·C
  CublasStatus gemmAtB(int rows, int cols, int k, const void* a, int lda, const void* b, int ldb, void* c, int ldc,
                       int inType, int outType, int compute, float alpha, float beta) const {
    // Cᵀ = Bᵀ · A: Bᵀ is b as stored → op N; A (k×rows col-major view of aᵀ) → op T.
    return gemmEx_(handle_, kCublasOpN, kCublasOpT, cols, rows, k, &alpha, b, inType, ldb, a, inType, lda, &beta, c,
                   outType, ldc, compute, kCublasGemmDefault);
  }

  bool ok() const { return handle_ != nullptr; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }
  const std::string& ltPath() const { return ltPath_; }
  int version() const { return version_; }

 private:
  bool fail(const std::string& message) {
    error_ = message;
    return false;
  }

  static std::vector<std::string> listCublas(const std::string& dir, const std::string& prefix) {
    std::vector<std::string> names;
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name.compare(0, prefix.size(), prefix) == 0) names.push_back(name);
      }
      closedir(d);
    }
    // Shortest first: libcublas.so.12 before libcublas.so.12.8.4.1 (same library).
    std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
      return a.size() != b.size() ? a.size() < b.size() : a < b;
    });
    return names;
  }

  void* lib_ = nullptr;
  CublasHandle handle_ = nullptr;
  CreateFn create_ = nullptr;
  DestroyFn destroy_ = nullptr;
  SetStreamFn setStream_ = nullptr;
  GetVersionFn getVersion_ = nullptr;
  GemmExFn gemmEx_ = nullptr;
  std::string path_, ltPath_, error_;
  int version_ = 0;
};

}  // namespace siglip::tools
