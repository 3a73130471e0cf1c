// Finding and loading libcublas at run time (cublas_loader.h), through the platform's
// dynamic-library helper. Host code only.
#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "../platform/dynamic_library.h"
#include "cublas_loader.h"
#include "cuda_backend.h"

namespace siglip::cuda {
namespace {

using platform::Candidate;
using platform::filesStartingWith;
using platform::isDirectory;

// cublasOperation_t
constexpr int kOpN = 0;
constexpr int kOpT = 1;
// cublasGemmAlgo_t: CUBLAS_GEMM_DEFAULT, the library's heuristic (a function of the problem
// and the device, not of timing, so it picks the same kernel every run).
constexpr int kGemmDefault = -1;
// libraryPropertyType: MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
constexpr int kPropertyMajor = 0, kPropertyMinor = 1, kPropertyPatch = 2;

// `file` (a path, or a bare soname for the dynamic loader's search), after the libcublasLt of
// `dir` (when given), so the dependency resolves even where `dir` is not on the loader's path.
Candidate candidate(const std::string& file, const std::string& dir) {
  Candidate c{file, {}};
  if (!dir.empty())
    for (const std::string& name : filesStartingWith(dir, "libcublasLt.so")) c.dependencies.push_back(dir + "/" + name);
  return c;
}

// Every libcublas.so* of `dir`, shortest name first; false (with the reason in *errors) when
// it holds none.
bool addDirectory(const std::string& dir, std::vector<Candidate>& candidates, std::string* errors) {
  const std::vector<std::string> names = filesStartingWith(dir, "libcublas.so");
  for (const std::string& name : names) candidates.push_back(candidate(dir + "/" + name, dir));
  if (names.empty()) *errors += "\n    " + dir + ": no libcublas.so* there";
  return !names.empty();
}

// Folders that commonly hold libcublas, in the order tried after the loader's own search.
std::vector<std::string> usualDirectories() {
  std::vector<std::string> dirs;
  auto add = [&](const std::string& d) {
    if (!d.empty() && isDirectory(d) && std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(d);
  };
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* root = std::getenv(var)) add(std::string(root) + "/lib64");
  add("/usr/local/cuda/lib64");
  for (const char* arch : {"x86_64-linux", "sbsa-linux", "aarch64-linux"})
    add(std::string("/usr/local/cuda/targets/") + arch + "/lib");
  // pip wheels: nvidia/cublas/lib (CUDA 12 wheels), nvidia/cu13/lib (CUDA 13 wheels), …
  for (const std::string& d : platform::pythonWheelLibraryDirs()) add(d);
  return dirs;
}

// The search of cublas_loader.h: sonames through the dynamic loader, this build's CUDA major
// first (a driver that runs this build runs the cuBLAS of the same release), then the files
// of the usual folders. *without: those folders that exist but hold no libcublas.
std::vector<Candidate> searchCandidates(std::string* without) {
  const int major = runtimeVersion() / 1000;
  std::vector<Candidate> candidates;
  if (major > 0) candidates.push_back(candidate("libcublas.so." + std::to_string(major), ""));
  for (int other : {13, 12, 11})
    if (other != major) candidates.push_back(candidate("libcublas.so." + std::to_string(other), ""));
  candidates.push_back(candidate("libcublas.so", ""));
  for (const std::string& dir : usualDirectories()) {
    const std::vector<std::string> names = filesStartingWith(dir, "libcublas.so");
    if (names.empty()) *without += (without->empty() ? "" : ", ") + dir;
    for (const std::string& name : names) candidates.push_back(candidate(dir + "/" + name, dir));
  }
  return candidates;
}

// Opens the first candidate that has every function CublasLibrary needs; the others' reasons
// go to *errors, one indented line each.
std::unique_ptr<CublasLibrary> loadFirst(const std::vector<Candidate>& candidates, std::string* errors) {
  auto lib = std::make_unique<CublasLibrary>();
  using GetPropertyFn = CublasStatus (*)(int, int*);
  using platform::optionalSymbol;
  using platform::requiredSymbol;
  GetPropertyFn getProperty = nullptr;
  const platform::OpenedLibrary opened = platform::openFirst(
      candidates,
      {requiredSymbol("cublasCreate_v2", lib->create), requiredSymbol("cublasDestroy_v2", lib->destroy),
       requiredSymbol("cublasSetStream_v2", lib->setStream), requiredSymbol("cublasSetWorkspace_v2", lib->setWorkspace),
       requiredSymbol("cublasSetAtomicsMode", lib->setAtomicsMode), requiredSymbol("cublasGemmEx", lib->gemmEx),
       optionalSymbol("cublasGetStatusName", lib->statusName), optionalSymbol("cublasGetProperty", getProperty)},
      platform::WhenIncomplete::TryNext);
  for (const platform::Refusal& r : opened.refusals)
    *errors += "\n    " + (r.missing.empty() ? r.dlerror  // names the file
                                               : r.file + ": lacks" + platform::joined(r.missing, " ", " ") +
                                                     " (cuBLAS older than 11.x?)");
  if (!opened) return nullptr;
  lib->path = opened.path;
  lib->ltPath = opened.dependency;
  int major = 0, minor = 0, patch = 0;
  if (getProperty && getProperty(kPropertyMajor, &major) == 0 && getProperty(kPropertyMinor, &minor) == 0 &&
      getProperty(kPropertyPatch, &patch) == 0)
    lib->version = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  return lib;
}

}  // namespace

std::string CublasLibrary::statusText(CublasStatus status) const {
  const char* name = statusName ? statusName(status) : nullptr;
  return name ? std::string(name) + " (" + std::to_string(status) + ")" : "status " + std::to_string(status);
}

CublasStatus CublasLibrary::gemmABt(CublasHandle h, int rows, int cols, int k, const void* a, int lda, const void* b,
                                    int ldb, void* c, int ldc, CublasDataType in, CublasDataType out,
                                    CublasCompute compute, float alpha, float beta) const {
  // Cᵀ (cols×rows) = B (cols×k) · Aᵀ: B's column-major view is Bᵀ, so op T; Aᵀ is a as stored, op N.
  return gemmEx(h, kOpT, kOpN, cols, rows, k, &alpha, b, int(in), ldb, a, int(in), lda, &beta, c,
                int(out), ldc, int(compute), kGemmDefault);
}

CublasStatus CublasLibrary::gemmAB(CublasHandle h, int rows, int cols, int k, const void* a, int lda, const void* b,
                                   int ldb, void* c, int ldc, CublasDataType in, CublasDataType out,
                                   CublasCompute compute, float alpha, float beta) const {
  // Cᵀ = Bᵀ · Aᵀ, both as stored: op N, N.
  return gemmEx(h, kOpN, kOpN, cols, rows, k, &alpha, b, int(in), ldb, a, int(in), lda, &beta, c,
                int(out), ldc, int(compute), kGemmDefault);
}

CublasStatus CublasLibrary::gemmAtB(CublasHandle h, int rows, int cols, int k, const void* a, int lda, const void* b,
                                    int ldb, void* c, int ldc, CublasDataType in, CublasDataType out,
                                    CublasCompute compute, float alpha, float beta) const {
  // Cᵀ = Bᵀ · A: Bᵀ is b as stored, op N; A (k×rows) is the transpose of a's column-major view, op T.
  return gemmEx(h, kOpN, kOpT, cols, rows, k, &alpha, b, int(in), ldb, a, int(in), lda, &beta, c,
                int(out), ldc, int(compute), kGemmDefault);
}

std::unique_ptr<CublasLibrary> loadCublas(const std::string& where, std::string* error) {
  std::string errors;
  std::unique_ptr<CublasLibrary> lib;
  if (where.empty()) {
    std::string without;  // the usual folders that exist but hold no libcublas
    lib = loadFirst(searchCandidates(&without), &errors);
    if (!lib && !without.empty()) errors += "\n    no libcublas.so* in " + without;
  } else if (isDirectory(where)) {
    std::vector<Candidate> candidates;
    if (addDirectory(where, candidates, &errors)) lib = loadFirst(candidates, &errors);
  } else {
    const size_t slash = where.rfind('/');
    lib = loadFirst({candidate(where, slash == std::string::npos ? "" : where.substr(0, slash))}, &errors);
  }
  if (!lib && error)
    *error = "libcublas could not be loaded" + (where.empty() ? std::string() : " from " + where) + ":" + errors;
  return lib;
}

const CublasLibrary* processCublas(std::string* error) {
  // Never freed: the library stays loaded for the life of the process (see CublasLibrary).
  static const CublasLibrary* library = nullptr;
  static std::string* failure = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* where = std::getenv("SIGLIP_CUBLAS_LIBRARY");
    std::string why;
    library = loadCublas(where ? where : "", &why).release();
    if (!library) {
      failure = new std::string(why + (where ? std::string()
                                             : "\n  (set SIGLIP_CUBLAS_LIBRARY to a libcublas.so file or its folder)"));
    }
  });
  if (!library && error) *error = *failure;
  return library;
}

}  // namespace siglip::cuda
