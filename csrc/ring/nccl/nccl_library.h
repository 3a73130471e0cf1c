// The NCCL library of the NCCL transport (nccl_transport.cpp, its only includer): our
// declarations of the part of the NCCL API the transport uses (no nccl.h), the table of its
// functions, loaded once per process through platform/dynamic_library.h, and NCCL's errors
// as siglip::Error. The search (nccl_transport.h): $SIGLIP_NCCL_LIBRARY (a file, or a
// folder holding libnccl.so.2) when set, and then nothing else; otherwise libnccl.so.2 and
// libnccl.so through the loader's search, a few usual locations, then the pip wheels of the
// Python environments in reach (platform/library_search.h). The first library that opens is
// the one used, or the one the error names (an NCCL older than 2.7 is not skipped over).
#pragma once
#include <cuda_runtime.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "../../core/errors.h"
#include "../../platform/dynamic_library.h"
#include "nccl_transport.h"

namespace siglip::ring {

// ---- our declarations of the NCCL API -------------------------------------------------
// These match nccl.h (NVIDIA/nccl src/nccl.h.in) from 2.7, where ncclSend / ncclRecv
// appeared, through the current 2.2x releases, checked against the header of the 2.30 line:
// ncclUniqueId is { char internal[NCCL_UNIQUE_ID_BYTES = 128] }, ncclComm_t an opaque
// pointer, ncclResult_t and ncclDataType_t C enums (int-sized) whose values below never
// changed (later releases only appended values: ncclRemoteError 6, ncclInProgress 7,
// ncclTimeout 8), and the function signatures are unchanged since 2.7 (ncclCommFinalize and
// ncclGetLastError exist from 2.13/2.14 on and are optional here).
struct NcclCommOpaque;
using ncclComm_t = NcclCommOpaque*;
struct ncclUniqueId {
  char internal[kNcclUniqueIdBytes];
};
enum ncclResult_t : int { ncclSuccess = 0, ncclInProgress = 7 };
enum ncclDataType_t : int { ncclInt8 = 0 };  // = ncclChar: messages are counted in bytes

using GetVersionFn = ncclResult_t (*)(int*);
using GetUniqueIdFn = ncclResult_t (*)(ncclUniqueId*);
using CommInitRankFn = ncclResult_t (*)(ncclComm_t*, int, ncclUniqueId, int);
using CommInitAllFn = ncclResult_t (*)(ncclComm_t*, int, const int*);
using CommFn = ncclResult_t (*)(ncclComm_t);  // ncclCommDestroy, ncclCommAbort, ncclCommFinalize
using CommGetAsyncErrorFn = ncclResult_t (*)(ncclComm_t, ncclResult_t*);
using GetErrorStringFn = const char* (*)(ncclResult_t);
using GetLastErrorFn = const char* (*)(ncclComm_t);
using SendFn = ncclResult_t (*)(const void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
using RecvFn = ncclResult_t (*)(void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
using AllGatherFn = ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclComm_t, cudaStream_t);
using GroupFn = ncclResult_t (*)();

// The loaded library (never unloaded), or why there is none.
struct Nccl {
  void* handle = nullptr;
  std::string path;
  std::string error;  // empty when usable
  int versionCode = 0;
  int major = 0, minor = 0, patch = 0;
  GetVersionFn getVersion = nullptr;
  GetUniqueIdFn getUniqueId = nullptr;
  CommInitRankFn commInitRank = nullptr;
  CommInitAllFn commInitAll = nullptr;
  CommFn commDestroy = nullptr;
  CommFn commAbort = nullptr;
  CommFn commFinalize = nullptr;  // optional (2.14+)
  CommGetAsyncErrorFn commGetAsyncError = nullptr;
  GetErrorStringFn getErrorString = nullptr;
  GetLastErrorFn getLastError = nullptr;  // optional (2.13+)
  SendFn send = nullptr;
  RecvFn recv = nullptr;
  AllGatherFn allGather = nullptr;
  GroupFn groupStart = nullptr;
  GroupFn groupEnd = nullptr;
};

// The places of the search above, in order.
inline std::vector<platform::Candidate> ncclCandidates(const char* env) {
  if (env && *env) {
    const std::string given(env);
    return {{platform::isDirectory(given) ? given + "/libnccl.so.2" : given, {}}};
  }
  std::vector<platform::Candidate> candidates;
  for (const char* file : {"libnccl.so.2", "libnccl.so", "/usr/lib/x86_64-linux-gnu/libnccl.so.2",
                           "/usr/lib/aarch64-linux-gnu/libnccl.so.2", "/usr/local/cuda/lib64/libnccl.so.2",
                           "/usr/local/nccl/lib/libnccl.so.2", "/usr/lib64/libnccl.so.2",
                           "/usr/local/lib/libnccl.so.2"})
    candidates.push_back({file, {}});
  // pip wheels (nvidia-nccl-cu12/13, PyTorch's dependency: nvidia/nccl/lib).
  for (const std::string& dir : platform::pythonWheelLibraryDirs()) {
    struct stat st {};
    if (stat((dir + "/libnccl.so.2").c_str(), &st) == 0) candidates.push_back({dir + "/libnccl.so.2", {}});
  }
  return candidates;
}

inline Nccl loadNccl() {
  Nccl lib;
  using platform::optionalSymbol;
  using platform::requiredSymbol;
  const char* env = std::getenv("SIGLIP_NCCL_LIBRARY");
  const platform::OpenedLibrary opened = platform::openFirst(
      ncclCandidates(env),
      {requiredSymbol("ncclGetVersion", lib.getVersion), requiredSymbol("ncclGetUniqueId", lib.getUniqueId),
       requiredSymbol("ncclCommInitRank", lib.commInitRank), requiredSymbol("ncclCommInitAll", lib.commInitAll),
       requiredSymbol("ncclCommDestroy", lib.commDestroy), requiredSymbol("ncclCommAbort", lib.commAbort),
       optionalSymbol("ncclCommFinalize", lib.commFinalize),
       requiredSymbol("ncclCommGetAsyncError", lib.commGetAsyncError),
       requiredSymbol("ncclGetErrorString", lib.getErrorString), optionalSymbol("ncclGetLastError", lib.getLastError),
       requiredSymbol("ncclSend", lib.send), requiredSymbol("ncclRecv", lib.recv),
       requiredSymbol("ncclAllGather", lib.allGather), requiredSymbol("ncclGroupStart", lib.groupStart),
       requiredSymbol("ncclGroupEnd", lib.groupEnd)},
      platform::WhenIncomplete::Stop);
  if (!opened) {
    const platform::Refusal& last = opened.refusals.back();  // there is always a candidate
    if (!last.missing.empty()) {
      lib.error = last.path + " lacks " + platform::joined(last.missing, "", ", ") + " (NCCL 2.7 or newer is needed)";
      return lib;
    }
    std::string tried;
    for (const platform::Refusal& r : opened.refusals) tried += "\n  " + r.dlerror;  // names the file
    lib.error = std::string("libnccl could not be loaded (") +
                (env && *env ? "SIGLIP_NCCL_LIBRARY" : "set SIGLIP_NCCL_LIBRARY to the file or its folder") +
                "); tried:" + tried;
    return lib;
  }
  lib.handle = opened.handle;
  lib.path = opened.path;  // the file actually opened (libnccl.so.2 is found on the search path)
  if (lib.getVersion(&lib.versionCode) != ncclSuccess) {
    lib.error = lib.path + ": ncclGetVersion failed";
    return lib;
  }
  // NCCL_VERSION_CODE: X·1000 + Y·100 + Z up to 2.8, X·10000 + Y·100 + Z from 2.9 on.
  const int v = lib.versionCode;
  if (v < 10000) {
    lib.major = v / 1000, lib.minor = (v / 100) % 10, lib.patch = v % 100;
  } else {
    lib.major = v / 10000, lib.minor = (v / 100) % 100, lib.patch = v % 100;
  }
  if (lib.major < 2 || (lib.major == 2 && lib.minor < 7))
    lib.error = lib.path + " is NCCL " + std::to_string(lib.major) + "." + std::to_string(lib.minor) +
                "; the ring needs 2.7 or newer (send/receive)";
  return lib;
}

// The process's NCCL: loaded on first use (thread-safe), the outcome kept.
inline const Nccl& nccl() {
  static const Nccl lib = loadNccl();
  return lib;
}

inline const Nccl& requireNccl() {
  const Nccl& lib = nccl();
  if (!lib.error.empty()) throw Error(ErrorKind::Internal, "nccl", "NCCL is not available: " + lib.error);
  return lib;
}

// "unhandled cuda error (ncclResult_t 1): <the library's last error>".
inline std::string resultText(ncclResult_t result, ncclComm_t comm) {
  const Nccl& lib = nccl();
  std::string text = lib.getErrorString ? lib.getErrorString(result) : "error";
  text += " (ncclResult_t " + std::to_string(int(result)) + ")";
  if (lib.getLastError) {
    const char* last = lib.getLastError(comm);
    if (last && *last) text += ": " + std::string(last);
  }
  return text;
}

inline void checkNccl(ncclResult_t result, const char* what, ncclComm_t comm = nullptr) {
  if (result != ncclSuccess)
    throw Error(ErrorKind::Internal, "nccl", std::string("NCCL error in ") + what + ": " + resultText(result, comm));
}

}  // namespace siglip::ring
