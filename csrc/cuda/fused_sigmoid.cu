// The fused sigmoid loss on the GPU. The unit is sigmoidBlock (cuda_block.h): images against
// a block of texts at global offsets, accumulating into the gradients; sigmoidLoss is the
// whole batch as one block, the ring runs one per step. A block's pair grid is processed in
// pieces of at most P × P pairs (P = kPairBlock on the tile GEMM, the selection's
// cublasGemm1Piece with GEMM1 on cuBLAS). For piece (r, c):
//   1. S = X_r · Y_cᵀ on tensor cores (tile_gemm.cuh); the sigmoid epilogue runs on the
//      accumulators and writes only the gradient block G (in the input dtype) and per-CTA sums;
//      or, with SIGLIP_GEMM1=cublas, S on cuBLAS into a float32 block and the same epilogue as
//      a separate pass over it (cublas_gemm1.cuh);
//   2. ∂X_r += (t/N) · G · Y_c    and    3. ∂Y_c += (t/N) · Gᵀ · X_r (Gᵀ read in place):
//      plain GEMMs with float32 accumulation (backward_gemms.cuh: cuBLAS when it loads,
//      else the tile GEMM; SIGLIP_CUBLAS).
// On the tile GEMM S never exists in memory; G is one block (32 MB in bf16 at 4096², L2-sized
// on an H100); on cuBLAS the scratch is one S block and one G block (16 + 8 MB in bf16 at
// 2048²). Either way it is independent of N and M. Every launch goes to one stream in a fixed
// order and every output element has one writer per launch, so results are deterministic.
//
// With SIGLIP_GEMM_OVERLAP=on the backward GEMMs (2, 3) run on a second stream instead
// (overlap_stream.h), piece p's beside piece p + 1's GEMM1 and epilogue: the per-pair math is
// ALU-bound and the backward GEMMs of one piece fill less than one wave of the SMs, so each
// has room for the other. G then has two slots, p's and p + 1's; S stays one block, since
// GEMM1 and the pass that reads it share the call's stream. Each stream keeps its launches in
// piece order (partial sums on the call's stream, gradient accumulations on the second), so
// the bits are those of the one-stream schedule.
//
// Why this "blocked logits → epilogue → two GEMMs" scheme rather than one kernel that keeps
// a row block's ∂X in registers: at D = 768–1152 a CTA's ∂X and ∂Y accumulators would not
// fit on chip, forcing atomics (non-deterministic) or a fourth GEMM to recompute S for the
// column owner. Here the three GEMMs are plain, each can use the best kernel (the backward
// two the vendor's), and the only extra traffic is G (N·M·2 bytes, about 1/D of the GEMM
// work's operand traffic).
#include <algorithm>
#include <cmath>
#include <exception>
#include <memory>
#include <string>

#include "backward_gemms.cuh"
#include "cublas_gemm1.cuh"
#include "cuda_block.h"
#include "request_prep.cuh"
#include "sigmoid_epilogue.cuh"
#include "tile_gemm.cuh"

namespace siglip::cuda {

// One block of kAccumulateThreads: thread i sums partials i, i + 256, … in order, then the
// block reduces in a fixed tree (writeBlockSums), so the order, and the bits, never vary.
__global__ void accumulatePartialsKernel(const double* partials, int64_t blocks, double* totals) {
  PairSums mine;
  for (int64_t b = threadIdx.x; b < blocks; b += blockDim.x) {
    mine.softplus += partials[3 * b];
    mine.dLogit += partials[3 * b + 1];
    mine.dLogitSim += partials[3 * b + 2];
  }
  __shared__ double blockTotal[3];
  writeBlockSums(mine, blockTotal);
  __syncthreads();
  if (threadIdx.x == 0) totals[0] += blockTotal[0], totals[1] += blockTotal[1], totals[2] += blockTotal[2];
}

namespace {

constexpr int64_t kPairBlock = 4096;

// Makes `buffer` hold at least `bytes` on `device` (reallocating, contents lost, if not).
void reserve(DeviceBuffer& buffer, int device, size_t bytes) {
  if (buffer.device() != device || buffer.bytes() < bytes) {
    buffer.release();
    buffer = DeviceBuffer(device, bytes);
  }
}

bool aligned4(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 3) == 0; }

// If the call throws after giving the second stream work, that work still reads G and writes
// the gradients: it must end before the workspace's slots are reused or freed.
class DrainOnThrow {
 public:
  explicit DrainOnThrow(OverlapStream* overlap) : overlap_(overlap), exceptions_(std::uncaught_exceptions()) {}
  ~DrainOnThrow() {
    if (overlap_ && std::uncaught_exceptions() > exceptions_) overlap_->drain();
  }
  DrainOnThrow(const DrainOnThrow&) = delete;
  DrainOnThrow& operator=(const DrainOnThrow&) = delete;

 private:
  OverlapStream* overlap_;
  int exceptions_;
};

// The block, on `stream`, with scratch from `ws`: pieces of at most P × P pairs, each (1)
// S = X_r·Y_cᵀ through the sigmoid epilogue (G and per-CTA sums), fused into the tile GEMM or
// as a pass over S from cuBLAS, (2) the sums into the totals in a fixed order, (3)
// ∂X_r += α·G·Y_c and ∂Y_c += α·Gᵀ·X_r, on `stream` or, overlapped, on ws.overlap's stream.
// G's lines (and S's) are padded to 16 bytes, which the pipelined tile GEMM needs to read G and
// the pass's vectors need.
template <class T>
PairSums blockedSigmoid(const PairBlock& blk, cudaStream_t stream, SigmoidBlockWorkspace& ws) {
  const int64_t n = blk.image.rows, m = blk.text.rows, d = blk.image.cols;
  const int device = blk.image.device;
  const T* x = static_cast<const T*>(blk.image.data);
  const T* y = static_cast<const T*>(blk.text.data);
  const bool exact = blk.precision == Precision::FP32;
  float* const dImage = blk.dImage;
  float* const dText = blk.dText;
  const bool wantGrad = blk.wantsGradients();
  const GemmSelection selection = gemmSelection();
  // Forward-only calls have no backward GEMMs to overlap.
  const bool overlap = selection.overlap && wantGrad;
  if (overlap) ws.overlap.prepare(device);
  const cudaStream_t backwardStream = overlap ? ws.overlap.get() : stream;
  // cuBLAS handles, held until return: one for every GEMM selected for cuBLAS on the call's
  // stream, and, overlapped, one of its own for the backward GEMMs on the second stream (a
  // handle and its workspace serve one stream at a time).
  const CublasLease cublas = leaseCublas(device, stream, selection, CublasUse{true, wantGrad && !overlap});
  const CublasLease backwardCublas =
      overlap ? leaseCublas(device, backwardStream, selection, CublasUse{false, true}) : CublasLease();
  const bool gemm1OnCublas = cublas.gemm1();
  const int64_t piece = gemm1OnCublas ? selection.cublasGemm1Piece : kPairBlock;
  const int64_t br = std::min(n, piece), bc = std::min(m, piece);
  const int64_t ldg = alignedLineStride(bc);
  const double temperature = blk.temperature;

  // G's slots: piece p writes slot p % 2 (one slot unless overlapped). Each starts at a multiple
  // of 256 bytes from the allocation, so every slot is as aligned as cudaMalloc's base: cuBLAS
  // may choose its kernel by the operands' alignment, and slot 1 must get the kernel, and the
  // bits, that the one-slot schedule gets.
  const int slots = overlap ? 2 : 1;
  constexpr size_t kSlotAlignment = 256;
  const size_t slotBytes = (size_t(br) * size_t(ldg) * sizeof(T) + kSlotAlignment - 1) / kSlotAlignment * kSlotAlignment;
  reserve(ws.gradient, device, wantGrad ? size_t(slots) * slotBytes : 0);
  reserve(ws.similarities, device, gemm1OnCublas ? size_t(br) * size_t(ldg) * sizeof(float) : 0);
  const int64_t maxPartials = gemm1OnCublas ? cublasGemm1Blocks(br, ldg) : gemmBlockCount(br, bc, exact);
  reserve(ws.partials, device, size_t(maxPartials) * 3 * sizeof(double));
  reserve(ws.totals, device, 3 * sizeof(double));
  SIGLIP_CUDA_CHECK(cudaMemsetAsync(ws.totals.data(), 0, 3 * sizeof(double), stream));

  // Ids the epilogue reads as int32 must be 4-byte aligned.
  const int32_t* imageIds = blk.imageIds;
  const int32_t* textIds = blk.textIds;
  if (imageIds && (!aligned4(imageIds) || !aligned4(textIds))) {
    reserve(ws.ids, device, size_t(n + m) * sizeof(int32_t));
    int32_t* copy = static_cast<int32_t*>(ws.ids.data());
    SIGLIP_CUDA_CHECK(cudaMemcpyAsync(copy, imageIds, size_t(n) * sizeof(int32_t), cudaMemcpyDeviceToDevice, stream));
    SIGLIP_CUDA_CHECK(cudaMemcpyAsync(copy + n, textIds, size_t(m) * sizeof(int32_t), cudaMemcpyDeviceToDevice, stream));
    imageIds = copy;
    textIds = copy + n;
  }

  char* gSlots = static_cast<char*>(ws.gradient.data());
  double* totals = static_cast<double*>(ws.totals.data());
  float* sBlock = static_cast<float*>(ws.similarities.data());
  const float alpha = float(temperature / blk.normalizer) / kGradStoreScale<T>;
  const BackwardGemms<T> backward(overlap ? backwardCublas : cublas, backwardStream, exact);
  const DrainOnThrow drainOnThrow(overlap ? &ws.overlap : nullptr);

  int64_t p = 0;  // the piece's index, in launch order
  for (int64_t r0 = 0; r0 < n; r0 += br) {
    const int64_t rows = std::min(br, n - r0);
    for (int64_t c0 = 0; c0 < m; c0 += bc, ++p) {
      const int64_t cols = std::min(bc, m - c0);
      T* gBlock = reinterpret_cast<T*>(gSlots + size_t(p % slots) * slotBytes);
      if (overlap) ws.overlap.awaitSlot(stream, p);
      SigmoidEpilogue<T> ep;
      ep.g = wantGrad ? gBlock : nullptr;
      ep.ldg = ldg;
      ep.temperature = float(temperature);
      ep.bias = float(blk.bias);
      ep.rowIds = imageIds ? imageIds + r0 : nullptr;
      ep.colIds = textIds ? textIds + c0 : nullptr;
      ep.rowOffset = blk.imageOffset + r0;
      ep.colOffset = blk.textOffset + c0;
      ep.partials = static_cast<double*>(ws.partials.data());
      const GemmOperands<T> op{x + r0 * d, d, y + c0 * d, d, rows, cols, d};
      int64_t partials = 0;
      if (gemm1OnCublas) {
        partials = cublasGemm1(cublas, op, sBlock, ep, exact, stream);
      } else {
        launchGemm<T, false, true>(op, ep, exact, stream);
        partials = gemmBlockCount(rows, cols, exact);
      }
      // G is complete here: the second stream may start on it while the partials are summed.
      if (overlap) ws.overlap.handOff(stream, p);
      launchKernel(accumulatePartialsKernel, 1, kAccumulateThreads, 0, stream, ep.partials, partials, totals);
      SIGLIP_CUDA_CHECK_LAUNCH("accumulatePartialsKernel");
      if (!wantGrad) continue;
      backward.run({gBlock, ldg, x + r0 * d, y + c0 * d, rows, cols, d, dImage + r0 * d, dText + c0 * d, alpha, true});
      if (overlap) ws.overlap.releaseSlot(p);
    }
  }
  if (overlap) ws.overlap.join(stream);
  SIGLIP_CUDA_CHECK(cudaStreamSynchronize(stream));
  double sums[3];
  ws.totals.download(sums, sizeof sums);
  return PairSums{sums[0], sums[1], sums[2]};
}

void checkBlock(const PairBlock& b) {
  const auto fail = [](const std::string& what) { throw Error(ErrorKind::Internal, "block", "cuda::sigmoidBlock: " + what); };
  if (b.image.dtype != b.text.dtype) fail("image and text have different dtypes");
  if (b.image.device != b.text.device) fail("image and text are on different devices");
  if (b.image.device == kHostMemory) fail("image and text are host memory");
  if (b.image.cols != b.text.cols) fail("image and text have different numbers of columns");
  if (b.image.rows < 0 || b.text.rows < 0 || b.image.cols < 0) fail("negative sizes");
  if (b.image.rows >= (int64_t(1) << 31) || b.text.rows >= (int64_t(1) << 31)) fail("2^31 rows or more");
  if (b.image.rows > 0 && b.text.rows > 0) {
    if (b.image.cols == 0) fail("zero columns");
    if (!b.image.data || !b.text.data) fail("null data");
  }
  if ((b.imageIds == nullptr) != (b.textIds == nullptr)) fail("imageIds and textIds must be given together");
  if ((b.dImage == nullptr) != (b.dText == nullptr)) fail("dImage and dText must be given together");
  if (b.precision == Precision::BF16) fail("precision bf16 is the CPU's (tf32 or fp32 here)");
  if (b.precision == Precision::FP32 && b.image.dtype != DType::Float32) fail("precision fp32 needs float32 data");
  if (!std::isfinite(b.temperature) || !std::isfinite(b.bias)) fail("non-finite temperature or bias");
  if (!(b.normalizer > 0) || !std::isfinite(b.normalizer)) fail("the normalizer must be positive and finite");
}

}  // namespace

PairSums sigmoidBlock(const PairBlock& block, CUstream_st* stream, SigmoidBlockWorkspace* workspace) {
  checkBlock(block);
  DeviceGuard guard(block.image.device);
  if (block.image.rows == 0 || block.text.rows == 0) {
    if (stream) SIGLIP_CUDA_CHECK(cudaStreamSynchronize(stream));
    return PairSums{};
  }
  std::unique_ptr<Stream> own;
  if (!stream) {
    own = std::make_unique<Stream>(block.image.device);
    stream = own->get();
  }
  SigmoidBlockWorkspace local;
  SigmoidBlockWorkspace& ws = workspace ? *workspace : local;
  return dispatchDType(block.image.dtype,
                       [&](auto tag) { return blockedSigmoid<decltype(tag)>(block, stream, ws); });
}

LossResult naiveSigmoidLossCuda(const CudaLossRequest& request, const DeviceIds& ids, GradientOutputs grads);

LossResult sigmoidLoss(const CudaLossRequest& request, GradientOutputs grads) {
  if (request.method == Method::Simple) return sigmoidLossSimple(request, grads);  // validates itself
  validateCudaRequest(LossKind::Sigmoid, request, grads);
  const DeviceIds ids = uploadIds(request);
  if (request.method == Method::Naive) return naiveSigmoidLossCuda(request, ids, grads);

  // The whole batch as one block: global offsets 0, normaliser N, gradients zeroed first.
  const int64_t n = request.image.rows, m = request.text.rows, d = request.image.cols;
  const int device = request.image.device;
  DeviceGuard guard(device);
  Stream stream(device);
  if (grads.wanted()) {
    SIGLIP_CUDA_CHECK(cudaMemsetAsync(grads.image, 0, size_t(n) * d * sizeof(float), stream.get()));
    SIGLIP_CUDA_CHECK(cudaMemsetAsync(grads.text, 0, size_t(m) * d * sizeof(float), stream.get()));
  }
  PairBlock block = wholeBatchBlock(request.image.block(), request.text.block(), ids.image, ids.text,
                                    request.logitScale, request.logitBias);
  block.precision = request.precision;
  block.dImage = grads.image;
  block.dText = grads.text;
  SigmoidBlockWorkspace ws;
  const PairSums sums = dispatchDType(request.image.dtype,
                                      [&](auto tag) { return blockedSigmoid<decltype(tag)>(block, stream.get(), ws); });
  return sigmoidResultFromSums(sums, block.temperature, block.normalizer, grads.wanted());
}

}  // namespace siglip::cuda
