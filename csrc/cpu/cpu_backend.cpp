#include "cpu_backend.h"

#include <thread>

#include "../core/errors.h"
#include "gemm.h"
#include "gemm_bf16.h"
#include "losses.h"

namespace siglip::cpu {

namespace {

// The CPU offers no 'simple' method (the CUDA kernels' own reference).
void checkCpuMethod(LossKind kind, Method method) {
  checkMethod(kind, MethodBackend::Cpu, method, std::string("the method '") + methodName(method) + "'");
}

}  // namespace

LossResult sigmoidLoss(const LossRequest& request, GradientOutputs grads) {
  checkCpuMethod(LossKind::Sigmoid, request.method);
  validateLossRequest(LossKind::Sigmoid, request);
  const KernelSet& kernels = activeKernels();
  const EpilogueSet& epilogues = activeEpilogues();
  return request.method == Method::Fused ? fusedSigmoidLoss(kernels, epilogues, request, grads)
                                         : naiveSigmoidLoss(kernels, epilogues, request, grads);
}

LossResult softmaxLoss(const LossRequest& request, GradientOutputs grads) {
  checkCpuMethod(LossKind::Softmax, request.method);
  validateLossRequest(LossKind::Softmax, request);
  const KernelSet& kernels = activeKernels();
  const EpilogueSet& epilogues = activeEpilogues();
  return request.method == Method::Chunked ? chunkedSoftmaxLoss(kernels, epilogues, request, grads)
                                           : naiveSoftmaxLoss(kernels, epilogues, request, grads);
}

LossResult sigmoidLossBf16(const LossRequest& request, Bf16Inputs bits, GradientOutputs grads) {
  if (!bits.image != !bits.text)
    throw invalidArgument(ErrorKind::Type, bits.image ? "text" : "image", "bfloat16 inputs for both image and text",
                          "one of them only");
  if (request.method != Method::Fused)
    throw invalidArgument(ErrorKind::Range, "options.method", "'fused' with precision 'bf16'",
                          std::string("'") + methodName(request.method) + "'");
  if (!bits.image) {
    validateLossRequest(LossKind::Sigmoid, request);
  } else {
    // Shapes and options as for float32 (the views point at the bits), then bf16's own scan:
    // exponent all ones is Inf or NaN.
    LossRequest shapes = request;
    shapes.image.data = reinterpret_cast<const float*>(bits.image);
    shapes.text.data = reinterpret_cast<const float*>(bits.text);
    validateLossRequest(LossKind::Sigmoid, shapes, DataScan::Skip);
    auto scan = [](const uint16_t* v, const MatrixView& m, const char* name) {
      for (int64_t k = 0; k < m.rows * m.cols; ++k) {
        if ((v[k] & 0x7f80u) == 0x7f80u) {
          throw invalidArgument(ErrorKind::Range, name, "only finite values",
                                std::string((v[k] & 0x7fu) ? "NaN" : (v[k] & 0x8000u) ? "-Infinity" : "Infinity") +
                                    " at index " + std::to_string(k) + " (row " + std::to_string(k / m.cols) +
                                    ", column " + std::to_string(k % m.cols) + ")");
        }
      }
    };
    scan(bits.image, request.image, "image.data");
    scan(bits.text, request.text, "text.data");
  }
  return fusedSigmoidLoss(activeKernels(), activeEpilogues(), request, grads, Precision::BF16, bits);
}

void gemmABt(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, int threads) {
  if (!a || !b || !c || m < 1 || n < 1 || k < 1 || threads < 1)
    throw Error(ErrorKind::Range, "gemmABt", "gemmABt needs non-null matrices, positive sizes and threads");
  parallelGemm(activeKernels(), m, n, k, StridedView{a, k, 1}, StridedView{b, 1, k}, c, n, false, threads);
}

void gemmABtBf16(const uint16_t* a, const uint16_t* b, float* c, int64_t m, int64_t n, int64_t k, int threads) {
  if (!a || !b || !c || m < 1 || n < 1 || k < 1 || threads < 1)
    throw Error(ErrorKind::Range, "gemmABtBf16", "gemmABtBf16 needs non-null matrices, positive sizes and threads");
  bf16ParallelGemm(activeBf16Kernel(), m, n, k, SourceView{a, k, 1, Element::BF16}, SourceView{b, 1, k, Element::BF16},
                   c, n, false, threads);
}

CpuInfo cpuInfo() {
  CpuInfo info;
  info.simd = activeKernels().name;
  info.simdReason = activeKernelsReason();
  info.hardwareThreads = int(std::max(1u, std::thread::hardware_concurrency()));
  info.tileRows = int(kTileRows);
  info.tileCols = int(kTileCols);
  info.bf16 = activeBf16Kernel().name;
  info.bf16Reason = activeBf16Reason();
  return info;
}

}  // namespace siglip::cpu
