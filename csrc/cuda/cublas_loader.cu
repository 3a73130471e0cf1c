// Finding and loading libcublas at run time (cublas_loader.h). Host code only.
#include <dirent.h>
#include <dlfcn.h>
#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "../core/library_search.h"
#include "cublas_loader.h"
#include "cuda_backend.h"

namespace siglip::cuda {
namespace {

// cublasOperation_t
constexpr int kOpN = 0;
constexpr int kOpT = 1;
// cublasGemmAlgo_t: CUBLAS_GEMM_DEFAULT, the library's heuristic (a function of the problem
// and the device, not of timing, so it picks the same kernel every run).
constexpr int kGemmDefault = -1;
// libraryPropertyType: MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
constexpr int kPropertyMajor = 0, kPropertyMinor = 1, kPropertyPatch = 2;

// The files in `dir` whose names start with `prefix`, shortest first: libcublas.so.12 before
// libcublas.so.12.8.4.1 (the same library; the shorter name is the one the soname uses).
std::vector<std::string> filesStartingWith(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (const dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name.compare(0, prefix.size(), prefix) == 0) names.push_back(name);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  return names;
}

std::string dlerrorText() {
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
}

// Resolves the functions of an opened libcublas into `lib`; false (with *missing) when a
// required one is absent.
bool resolve(void* handle, CublasLibrary& lib, std::string* missing) {
  auto symbol = [&](const char* name) { return dlsym(handle, name); };
  lib.create = reinterpret_cast<decltype(lib.create)>(symbol("cublasCreate_v2"));
  lib.destroy = reinterpret_cast<decltype(lib.destroy)>(symbol("cublasDestroy_v2"));
  lib.setStream = reinterpret_cast<decltype(lib.setStream)>(symbol("cublasSetStream_v2"));
  lib.setWorkspace = reinterpret_cast<decltype(lib.setWorkspace)>(symbol("cublasSetWorkspace_v2"));
  lib.setAtomicsMode = reinterpret_cast<decltype(lib.setAtomicsMode)>(symbol("cublasSetAtomicsMode"));
  lib.gemmEx = reinterpret_cast<decltype(lib.gemmEx)>(symbol("cublasGemmEx"));
  lib.statusName = reinterpret_cast<decltype(lib.statusName)>(symbol("cublasGetStatusName"));
  std::string absent;
  if (!lib.create) absent += " cublasCreate_v2";
  if (!lib.destroy) absent += " cublasDestroy_v2";
  if (!lib.setStream) absent += " cublasSetStream_v2";
  if (!lib.setWorkspace) absent += " cublasSetWorkspace_v2";
  if (!lib.setAtomicsMode) absent += " cublasSetAtomicsMode";
  if (!lib.gemmEx) absent += " cublasGemmEx";
  if (!absent.empty()) {
    *missing = "lacks" + absent + " (cuBLAS older than 11.x?)";
    return false;
  }
  using GetPropertyFn = CublasStatus (*)(int, int*);
  if (auto getProperty = reinterpret_cast<GetPropertyFn>(symbol("cublasGetProperty"))) {
    int major = 0, minor = 0, patch = 0;
    if (getProperty(kPropertyMajor, &major) == 0 && getProperty(kPropertyMinor, &minor) == 0 &&
        getProperty(kPropertyPatch, &patch) == 0)
      lib.version = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  }
  return true;
}

// One attempt: dlopen `file` (a path, or a bare soname for the dynamic loader's search) after
// the libcublasLt of `dir` (when given), so the dependency resolves even where `dir` is not on
// the loader's path. Appends why it failed to *errors.
std::unique_ptr<CublasLibrary> tryLoad(const std::string& file, const std::string& dir, std::string* errors) {
  auto lib = std::make_unique<CublasLibrary>();
  if (!dir.empty()) {
    for (const std::string& name : filesStartingWith(dir, "libcublasLt.so")) {
      if (dlopen((dir + "/" + name).c_str(), RTLD_NOW | RTLD_GLOBAL)) {
        lib->ltPath = dir + "/" + name;
        break;
      }
    }
  }
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    *errors += "\n    " + dlerrorText();  // names the file
    return nullptr;
  }
  std::string missing;
  if (!resolve(handle, *lib, &missing)) {
    *errors += "\n    " + file + ": " + missing;
    dlclose(handle);
    return nullptr;
  }
  lib->path = file;
  if (file.find('/') == std::string::npos) {
    // Found by soname: report the file the loader picked.
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(lib->gemmEx), &info) && info.dli_fname) lib->path = info.dli_fname;
  }
  return lib;
}

// The first libcublas.so* of `dir` that loads.
std::unique_ptr<CublasLibrary> loadFromDirectory(const std::string& dir, std::string* errors) {
  const std::vector<std::string> names = filesStartingWith(dir, "libcublas.so");
  if (names.empty()) {
    *errors += "\n    " + dir + ": no libcublas.so* there";
    return nullptr;
  }
  for (const std::string& name : names)
    if (auto lib = tryLoad(dir + "/" + name, dir, errors)) return lib;
  return nullptr;
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
  for (const std::string& d : pythonWheelLibraryDirs()) add(d);
  return dirs;
}

// The search of cublas_loader.h: sonames through the dynamic loader, this build's CUDA major
// first (a driver that runs this build runs the cuBLAS of the same release), then the folders.
std::unique_ptr<CublasLibrary> search(std::string* errors) {
  const int major = runtimeVersion() / 1000;
  std::vector<std::string> sonames;
  if (major > 0) sonames.push_back("libcublas.so." + std::to_string(major));
  for (int other : {13, 12, 11})
    if (other != major) sonames.push_back("libcublas.so." + std::to_string(other));
  sonames.push_back("libcublas.so");
  for (const std::string& soname : sonames)
    if (auto lib = tryLoad(soname, "", errors)) return lib;
  std::string without;  // the usual folders that exist but hold no libcublas
  for (const std::string& dir : usualDirectories()) {
    if (filesStartingWith(dir, "libcublas.so").empty()) {
      without += (without.empty() ? "" : ", ") + dir;
    } else if (auto lib = loadFromDirectory(dir, errors)) {
      return lib;
    }
  }
  if (!without.empty()) *errors += "\n    no libcublas.so* in " + without;
  return nullptr;
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
    lib = search(&errors);
  } else if (isDirectory(where)) {
    lib = loadFromDirectory(where, &errors);
  } else {
    const size_t slash = where.rfind('/');
    lib = tryLoad(where, slash == std::string::npos ? "" : where.substr(0, slash), &errors);
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
