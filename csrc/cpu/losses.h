// The CPU loss drivers behind cpu_backend.cpp (which validates and picks one).
#pragma once
#include "../core/loss_request.h"
#include "cpu_backend.h"
#include "cpu_kernels.h"

namespace siglip::cpu {

// Fused tile shape. Fixed (never derived from the thread count) so results are the same
// bits for any number of threads; a multiple of every kernel set's MR and NR.
constexpr int64_t kTileRows = 192;
constexpr int64_t kTileCols = 192;

// fused_sigmoid.cpp: tiled, the sigmoid-BCE forward and backward fused into the tile pass.
// Precision::BF16: the three GEMMs on the bf16 kernel (gemm_bf16.h), inputs from `bits`
// where given (else the request's float32 data, rounded when packed).
LossResult fusedSigmoidLoss(const KernelSet& kernels, const LossRequest& request, GradientOutputs grads,
                            Precision precision = Precision::FP32, Bf16Inputs bits = {});

// One block of pairs of a larger batch (the ring's unit of work): images X (rows at global
// index imageOffset…) against a block of texts Y (at textOffset…); positives by ids or, without
// them, where the global indices are equal. Returns the block's PairSums and, when dImage is
// given, *adds* (t/normalizer)·G·Y to dImage and (t/normalizer)·Gᵀ·X to dText.
struct SigmoidBlock {
  MatrixView image;
  MatrixView text;
  const int32_t* imageIds = nullptr;
  const int32_t* textIds = nullptr;
  int64_t imageOffset = 0;
  int64_t textOffset = 0;
  double temperature = 1;  // t = exp(logitScale)
  double bias = 0;
  double normalizer = 1;   // N, the number of image rows of the whole batch
  int threads = 1;
  // BF16: the GEMMs in bfloat16 (gemm_bf16.h); imageBf16 / textBf16, where given, are the
  // inputs as bf16 bits (image / text then only give the shapes).
  Precision precision = Precision::FP32;
  const uint16_t* imageBf16 = nullptr;
  const uint16_t* textBf16 = nullptr;
};
PairSums fusedSigmoidBlock(const KernelSet& kernels, const SigmoidBlock& block, float* dImage, float* dText);
// loss, ∂L/∂b and ∂L/∂s from the (global) sums.
LossResult sigmoidResultFromSums(const PairSums& sums, double temperature, double normalizer, bool withGradients);

// chunked_softmax.cpp: the CLIP softmax loss in two tiled passes (log-sum-exps, then
// gradients), O(N + M) statistics and never an N×M buffer. Method::Chunked.
LossResult chunkedSoftmaxLoss(const KernelSet& kernels, const LossRequest& request, GradientOutputs grads);

// naive_losses.cpp: the materialising baselines (what the Python peers do).
LossResult naiveSigmoidLoss(const KernelSet& kernels, const LossRequest& request, GradientOutputs grads);
LossResult naiveSoftmaxLoss(const KernelSet& kernels, const LossRequest& request, GradientOutputs grads);

}  // namespace siglip::cpu
