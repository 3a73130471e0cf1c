// The CUDA backend's public entry points. Plain C++ (no CUDA headers), so the N-API addon
// and the C++ tools include it from ordinary translation units; everything CUDA lives in
// the .cu files behind it. Built only when CMake finds a CUDA compiler (SIGLIP_WITH_CUDA).
//
// Every function reports failure by throwing siglip::Error: a missing driver or GPU, an
// invalid ordinal, out-of-memory (ErrorKind::OutOfMemory) and kernel faults alike.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "../core/loss_request.h"
#include "../core/pair_block.h"

namespace siglip::cuda {

// core's DType (float32, bfloat16, float16) and Precision: how float32 inputs are multiplied,
// TF32 tensor cores (the default here) or exact float32 (SIMT); 16-bit inputs always use
// tensor cores with float32 accumulation. BF16 is the CPU's and refused here.
using siglip::DType;
using siglip::dtypeName;
using siglip::dtypeSize;
using siglip::Precision;

// Number of usable GPUs; 0 (never an exception) when there is no driver or no device.
// `reason` (optional) receives why, e.g. the CUDA error text.
int deviceCount(std::string* reason = nullptr);

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int computeMajor = 0;
  int computeMinor = 0;
  size_t totalMemory = 0;
  size_t freeMemory = 0;
};
DeviceInfo deviceInfo(int ordinal);  // throws for an invalid ordinal
// Throws a RangeError-kind siglip::Error naming options.device unless `ordinal` is a usable GPU.
void requireDevice(int ordinal);
int runtimeVersion();                // the CUDA runtime this build links (e.g. 13000)
int driverVersion();                 // 0 without a driver

// Device memory this library holds now, and the most it has held since the last reset (all
// devices, whole process): the benchmarks' measure of a loss call's extra device memory.
size_t allocatedBytes();
size_t peakAllocatedBytes();
void resetPeakAllocatedBytes();

// Device memory on one GPU, owned (freed on destruction). Movable, not copyable.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(int device, size_t bytes);  // throws OutOfMemory when the GPU has no room
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  void upload(const void* host, size_t bytes, size_t offset = 0);
  void download(void* host, size_t bytes, size_t offset = 0) const;
  void zero();
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  int device() const { return device_; }
  void release();  // frees now (dispose())

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  int device_ = -1;
};

// A matrix resident on a GPU: rows × cols of dtype, row-major and contiguous.
struct DeviceMatrixView {
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  DType dtype = DType::Float32;
  int device = 0;
  // As the block contract's matrix (core/pair_block.h).
  BlockMatrix block() const { return BlockMatrix{data, rows, cols, dtype, device}; }
};

struct CudaLossRequest {
  DeviceMatrixView image;              // X: N×D
  DeviceMatrixView text;               // Y: M×D, same dtype and device as image
  const int32_t* imageIds = nullptr;   // host arrays (copied to the device per call), or null
  const int32_t* textIds = nullptr;
  double logitScale = 0;
  double logitBias = 0;
  Method method = Method::Fused;       // Fused, Naive or Simple (sigmoid); Chunked or Naive (softmax)
  Precision precision = Precision::TF32;
};

// Gradients (core's GradientOutputs) are float32 device arrays (N×D and M×D) on the request's
// device here; null = forward only.

// Validates (sizes, dtypes, devices, non-finite values — scanned on the GPU) and computes.
// Synchronous: returns when the GPU has finished. Deterministic: same bits on every run.
// Sigmoid: Method::Fused, Method::Naive or Method::Simple (sigmoidLossSimple).
LossResult sigmoidLoss(const CudaLossRequest& request, GradientOutputs grads);
// Softmax: Method::Chunked (two tiled passes, O(N + M) statistics, never N×M;
// chunked_softmax.cu) or Method::Naive (materialises the N×M similarities; the baseline).
LossResult softmaxLoss(const CudaLossRequest& request, GradientOutputs grads);

// The simple, obviously correct kernels (one thread per row, then one per column; no tiles,
// no tensor cores, float32 FMA): the GPU's own reference for the fast kernels.
LossResult sigmoidLossSimple(const CudaLossRequest& request, GradientOutputs grads);

// ---- which kernels run the GEMMs (gemm_paths.cu) ----------------------------------------
// X·Yᵀ (GEMM1) of the fused sigmoid runs on this package's tile GEMM, whose epilogue computes
// the loss on the accumulators (S never reaches memory), or, when chosen, on cuBLAS into a
// float32 block S followed by a separate pass with the same per-pair math (on Hopper cuBLAS's
// wgmma kernels outrun any WMMA kernel, and S stays in L2 between the two). The backward GEMMs
// (∂X += G·Y, ∂Y += Gᵀ·X, plain products) run on cuBLAS, loaded at run time, when it can be
// loaded. Either way the results are deterministic (cublasGemmEx with its default
// algorithm, atomics not allowed, and a fixed workspace per handle: the same bits on every
// run on the same GPU model and cuBLAS version).
enum class BackwardGemm { Auto, Cublas, Tile };  // SIGLIP_CUBLAS = auto (default) | on | off
enum class TileGemm { Pipelined, Simple };      // SIGLIP_TILE_GEMM = pipelined (default) | simple
enum class ForwardGemm { Tile, Cublas };        // SIGLIP_GEMM1 = tile (default) | cublas
// The side of the fused sigmoid's pair pieces when GEMM1 runs on cuBLAS: 2048 keeps a piece's
// S (16 MB in float32) and G in an H100's 50 MB L2 from the GEMM to the pass. (On the tile
// GEMM, which never writes S, pieces are 4096.)
constexpr int64_t kDefaultCublasGemm1Piece = 2048;
constexpr int64_t kMinCublasGemm1Piece = 128, kMaxCublasGemm1Piece = 16384;
struct GemmSelection {
  BackwardGemm backward = BackwardGemm::Auto;  // Auto: cuBLAS when it loads; Cublas: or throw
  TileGemm tile = TileGemm::Pipelined;
  ForwardGemm forward = ForwardGemm::Tile;     // Cublas: cuBLAS or throw (never a silent fallback)
  int64_t cublasGemm1Piece = kDefaultCublasGemm1Piece;  // within [kMin…, kMax…CublasGemm1Piece]
  // SIGLIP_GEMM_OVERLAP = off (default) | on. On: the fused sigmoid's backward GEMMs run on a
  // second stream, piece p's while piece p + 1's GEMM1 and epilogue run on the call's stream
  // (two gradient blocks instead of one; with cuBLAS, a second handle for the second stream).
  // The same bits either way: each stream keeps its own launches in piece order.
  bool overlap = false;
};
// The selection in force: setGemmSelection's, else the environment's (read once, on first
// use). Throws siglip::Error (Range, naming the variable) for a value not listed above.
GemmSelection gemmSelection();
// Replaces the selection for the whole process (siglip_cuda_check compares the paths in one
// run). A call already running may see the change at its next GEMM: set it between calls.
// Throws siglip::Error (Range) for a piece side outside its bounds.
void setGemmSelection(const GemmSelection& selection);

struct GemmPathInfo {
  std::string forward;        // "tile" or "cublas": what X·Yᵀ of a fused sigmoid call uses
  std::string backward;       // "cublas" or "tile": what the backward GEMMs of a loss call use
  std::string tile;           // "pipelined" or "simple": the tile GEMM's main loop
  bool overlap = false;       // the fused sigmoid's backward GEMMs overlap the next GEMM1
  std::string cublasLibrary;  // the libcublas file loaded, or ""
  std::string cublasVersion;  // e.g. "12.8.4", or ""
  std::string reason;         // why the backward GEMMs do not use cuBLAS ("" when they do), or
                              // why calls will throw (SIGLIP_CUBLAS=on or SIGLIP_GEMM1=cublas
                              // without a usable cuBLAS)
};
// Never throws. Loads cuBLAS (dlopen only: no GPU context) when the selection may use it.
GemmPathInfo gemmPathInfo();

}  // namespace siglip::cuda
