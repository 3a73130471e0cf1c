// Which kernels run the GEMMs (cuda_backend.h, gemm_paths.cuh): the selection, and the pool of
// cuBLAS handles the calls' GEMMs use. Host code only.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <mutex>
#include <vector>

#include "gemm_paths.cuh"

namespace siglip::cuda {
namespace {

// ---- the selection --------------------------------------------------------------------

struct SelectionState {
  std::mutex mutex;
  bool read = false;          // the environment has been read
  bool overridden = false;    // setGemmSelection was called
  GemmSelection selection;    // the one in force when `error` is empty
  std::string error;          // an invalid environment value (until setGemmSelection)
  std::string errorArgument;  // the variable it names
};

SelectionState& selectionState() {
  static SelectionState state;
  return state;
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

// Environment variable `name`, lowercased, as the index of one of `choices` (unset or empty:
// the first); -1, with `state`'s error naming the variable, for any other value.
int readChoice(SelectionState& state, const char* name, std::initializer_list<const char*> choices,
               const char* expected) {
  const char* raw = std::getenv(name);
  const std::string value = lowercase(raw ? raw : "");
  if (value.empty()) return 0;
  int index = 0;
  for (const char* choice : choices) {
    if (value == choice) return index;
    ++index;
  }
  state.error = invalidArgument(ErrorKind::Range, name, expected, std::string("'") + raw + "'").what();
  state.errorArgument = name;
  return -1;
}

// Reads SIGLIP_CUBLAS, SIGLIP_TILE_GEMM, SIGLIP_GEMM1 and SIGLIP_GEMM_OVERLAP into `state`
// (unset or empty: the defaults); the first invalid one is the error.
void readEnvironment(SelectionState& state) {
  state.read = true;
  const int cublas = readChoice(state, "SIGLIP_CUBLAS", {"auto", "on", "off"},
                                "'auto', 'on' or 'off' (a library path goes in SIGLIP_CUBLAS_LIBRARY)");
  if (cublas < 0) return;
  if (cublas == 1) state.selection.backward = BackwardGemm::Cublas;
  if (cublas == 2) state.selection.backward = BackwardGemm::Tile;
  const int tile = readChoice(state, "SIGLIP_TILE_GEMM", {"pipelined", "simple"}, "'pipelined' or 'simple'");
  if (tile < 0) return;
  if (tile == 1) state.selection.tile = TileGemm::Simple;
  const int gemm1 = readChoice(state, "SIGLIP_GEMM1", {"tile", "cublas"}, "'tile' or 'cublas'");
  if (gemm1 < 0) return;
  if (gemm1 == 1) state.selection.forward = ForwardGemm::Cublas;
  const int overlap = readChoice(state, "SIGLIP_GEMM_OVERLAP", {"off", "on"}, "'on' or 'off'");
  if (overlap == 1) state.selection.overlap = true;
}

// ---- the cuBLAS handles -----------------------------------------------------------------

struct PooledHandle {
  CublasHandle handle = nullptr;
  DeviceBuffer* workspace = nullptr;
};

struct HandlePool {
  std::mutex mutex;
  std::map<int, std::vector<PooledHandle>> idle;  // per device
  std::map<int, std::string> unusable;            // device → why cuBLAS cannot run there
};

// Never destroyed: handles and workspaces must not be freed by static destructors at exit,
// when the CUDA contexts they belong to may already be gone (the process frees everything).
HandlePool& handlePool() {
  static HandlePool* pool = new HandlePool;
  return *pool;
}

// cuBLAS's recommended workspace: 32 MiB on Hopper and later, 4 MiB before.
size_t workspaceBytes(int device) {
  int major = 0;
  SIGLIP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return size_t(major >= 9 ? 32 : 4) << 20;
}

// A new handle with its workspace, atomics not allowed (cuBLAS's default, set so that no
// library default can change it). Null with *failure when cuBLAS cannot create one here.
PooledHandle createHandle(const CublasLibrary& lib, int device, std::string* failure) {
  auto workspace = std::make_unique<DeviceBuffer>(device, workspaceBytes(device));
  CublasHandle handle = nullptr;
  CublasStatus status = lib.create(&handle);
  if (status != 0) {
    *failure = "cublasCreate_v2 returned " + lib.statusText(status) + " (" + lib.path + ")";
    return {};
  }
  status = lib.setAtomicsMode(handle, kCublasAtomicsNotAllowed);
  if (status != 0) {
    lib.destroy(handle);
    *failure = "cublasSetAtomicsMode returned " + lib.statusText(status) + " (" + lib.path + ")";
    return {};
  }
  return {handle, workspace.release()};
}

std::string describeUnusable(const HandlePool& pool) {
  std::string text;
  for (const auto& [device, why] : pool.unusable)
    text += (text.empty() ? "" : "; ") + std::string("cuBLAS cannot be used on cuda:") + std::to_string(device) + ": " + why;
  return text;
}

}  // namespace

GemmSelection gemmSelection() {
  SelectionState& state = selectionState();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (!state.read && !state.overridden) readEnvironment(state);
  if (!state.error.empty()) throw Error(ErrorKind::Range, state.errorArgument, state.error);
  return state.selection;
}

void setGemmSelection(const GemmSelection& selection) {
  if (selection.cublasGemm1Piece < kMinCublasGemm1Piece || selection.cublasGemm1Piece > kMaxCublasGemm1Piece)
    throw invalidArgument(ErrorKind::Range, "cublasGemm1Piece",
                          "a piece side from " + std::to_string(kMinCublasGemm1Piece) + " to " +
                              std::to_string(kMaxCublasGemm1Piece),
                          std::to_string(selection.cublasGemm1Piece));
  SelectionState& state = selectionState();
  std::lock_guard<std::mutex> lock(state.mutex);
  state.overridden = true;
  state.selection = selection;
  state.error.clear();
}

TileGemm selectedTileGemm() { return gemmSelection().tile; }

CublasLease::CublasLease(CublasLease&& other) noexcept { *this = std::move(other); }

CublasLease& CublasLease::operator=(CublasLease&& other) noexcept {
  if (this != &other) {
    release();
    library_ = other.library_, handle_ = other.handle_, workspace_ = other.workspace_;
    device_ = other.device_, stream_ = other.stream_;
    gemm1_ = other.gemm1_, backward_ = other.backward_;
    other.handle_ = nullptr;
  }
  return *this;
}

CublasLease::~CublasLease() { release(); }

void CublasLease::release() noexcept {
  if (!handle_) return;
  // GEMMs this call enqueued may still be running on the workspace, and the next holder may
  // use another stream: the handle goes back only once its stream is idle. If the wait fails
  // the context is broken, and the handle is abandoned rather than shared.
  if (cudaStreamSynchronize(stream_) == cudaSuccess) {
    HandlePool& pool = handlePool();
    std::lock_guard<std::mutex> lock(pool.mutex);
    pool.idle[device_].push_back({handle_, workspace_});
  }
  handle_ = nullptr;
}

void CublasLease::check(CublasStatus status, const char* what, int64_t m, int64_t n, int64_t k,
                        const char* instead) const {
  if (status == 0) return;
  throw Error(ErrorKind::Internal, "device",
              std::string("cublasGemmEx (") + what + ", " + std::to_string(m) + "×" + std::to_string(n) + "×" +
                  std::to_string(k) + ") failed: " + library_->statusText(status) + " (" + library_->path + "); " +
                  instead + " runs this package's own kernel instead");
}

void CublasLease::throwTooLarge(const char* what) {
  throw Error(ErrorKind::Internal, "device",
              std::string("cuBLAS GEMM (") + what + ") dimensions past 2^31 (cuBLAS takes int sizes)");
}

CublasLease leaseCublas(int device, cudaStream_t stream, const GemmSelection& selection, CublasUse use) {
  const bool gemm1 = use.gemm1 && selection.forward == ForwardGemm::Cublas;
  const bool backward = use.backward && selection.backward != BackwardGemm::Tile;
  if (!gemm1 && !backward) return {};
  const auto unusable = [&](const std::string& why) {
    const std::string where = "cuBLAS cannot be used on cuda:" + std::to_string(device) + ": " + why;
    if (gemm1)
      throw Error(ErrorKind::Internal, "SIGLIP_GEMM1",
                  "SIGLIP_GEMM1=cublas, but " + where +
                      "\n(SIGLIP_GEMM1=tile runs X·Yᵀ on this package's own kernel)");
    if (selection.backward == BackwardGemm::Cublas)
      throw Error(ErrorKind::Internal, "SIGLIP_CUBLAS",
                  "SIGLIP_CUBLAS=on, but " + where +
                      "\n(SIGLIP_CUBLAS=auto or off runs the backward GEMMs on this package's own kernel)");
    return CublasLease();
  };
  std::string why;
  const CublasLibrary* lib = processCublas(&why);
  if (!lib) return unusable(why);

  HandlePool& pool = handlePool();
  PooledHandle pooled;
  {
    std::lock_guard<std::mutex> lock(pool.mutex);
    const auto bad = pool.unusable.find(device);
    if (bad != pool.unusable.end()) why = bad->second;
    std::vector<PooledHandle>& idle = pool.idle[device];
    if (why.empty() && !idle.empty()) {
      pooled = idle.back();
      idle.pop_back();
    }
  }
  if (!why.empty()) return unusable(why);
  if (!pooled.handle) {
    pooled = createHandle(*lib, device, &why);
    if (!pooled.handle) {
      std::lock_guard<std::mutex> lock(pool.mutex);
      pool.unusable.emplace(device, why);
      return unusable(why);
    }
  }
  CublasLease lease;  // from here on the handle returns to the pool whatever happens
  lease.library_ = lib, lease.handle_ = pooled.handle, lease.workspace_ = pooled.workspace;
  lease.device_ = device, lease.stream_ = stream;
  lease.gemm1_ = gemm1, lease.backward_ = backward;
  // cublasSetStream resets the handle to cuBLAS's default workspace: set ours after it.
  CublasStatus status = lib->setStream(pooled.handle, stream);
  if (status == 0) status = lib->setWorkspace(pooled.handle, pooled.workspace->data(), pooled.workspace->bytes());
  if (status != 0)
    throw Error(ErrorKind::Internal, "device",
                "cuBLAS set-up of a handle (cublasSetStream_v2 / cublasSetWorkspace_v2) failed: " + lib->statusText(status));
  return lease;
}

GemmPathInfo gemmPathInfo() {
  GemmPathInfo info;
  info.forward = "tile";
  info.backward = "tile";
  info.tile = "pipelined";
  GemmSelection selection;
  try {
    selection = gemmSelection();
  } catch (const std::exception& e) {
    info.reason = e.what();
    return info;
  }
  info.tile = selection.tile == TileGemm::Simple ? "simple" : "pipelined";
  info.overlap = selection.overlap;
  const bool forwardOnCublas = selection.forward == ForwardGemm::Cublas;
  if (forwardOnCublas) info.forward = "cublas";
  std::string why;  // why cuBLAS cannot be used, when something asks for it
  if (forwardOnCublas || selection.backward != BackwardGemm::Tile) {
    if (const CublasLibrary* lib = processCublas(&why)) {
      info.cublasLibrary = lib->path;
      info.cublasVersion = lib->version;
      HandlePool& pool = handlePool();
      std::lock_guard<std::mutex> lock(pool.mutex);
      why = describeUnusable(pool);
    }
  }
  const bool required = selection.backward == BackwardGemm::Cublas;
  std::string demands;  // the settings that make calls throw without cuBLAS
  if (required) demands = "SIGLIP_CUBLAS=on";
  if (forwardOnCublas) demands += (demands.empty() ? "" : " and ") + std::string("SIGLIP_GEMM1=cublas");
  if (selection.backward == BackwardGemm::Tile)
    info.reason = "SIGLIP_CUBLAS=off";
  else if (why.empty() || required)
    info.backward = "cublas";
  if (!why.empty()) {
    const std::string text = demands.empty() ? why
                                             : demands + ", but " + why +
                                                   (required ? "\n(CUDA loss calls will throw)"
                                                             : "\n(CUDA sigmoid loss calls will throw)");
    info.reason += (info.reason.empty() ? "" : "; ") + text;
  }
  return info;
}

}  // namespace siglip::cuda
