#include "gpu_rank.h"

#include <exception>
#include <memory>

#include "cuda/cuda_block_backend.h"

namespace siglip::ring {

GpuRankResult gpuRankSigmoidLoss(Transport& tp, const GpuRankInputs& in, const RingOptions& options) {
  cuda::ResidentShard s;
  std::unique_ptr<cuda::CudaBlockBackend> backend;  // its stream and scratch live for the call only
  try {
    s = cuda::makeShardResident(in.image, in.text, in.imageIds, in.textIds, in.wantGrad, in.imageName, in.textName);
    backend = std::make_unique<cuda::CudaBlockBackend>(in.device, s.image.dtype, in.precision);
  } catch (const std::exception& e) {
    tp.abort(e.what());
    throw;
  }
  RingShard shard;
  shard.image = BlockMatrix{s.image.buffer->data(), s.image.rows, s.image.cols, s.image.dtype, in.device};
  shard.text = BlockMatrix{s.text.buffer->data(), s.text.rows, s.text.cols, s.text.dtype, in.device};
  shard.imageIds = s.imageIds();
  shard.textIds = s.textIds();
  GradientOutputs grads;
  if (in.wantGrad)
    grads = GradientOutputs{static_cast<float*>(s.gradImage.buffer->data()), static_cast<float*>(s.gradText.buffer->data())};
  GpuRankResult out;
  out.result = ringSigmoidLoss(tp, *backend, shard, options, grads, &out.stats);
  backend.reset();
  if (in.wantGrad && in.hostGrads.wanted()) {
    cuda::downloadGradients(s.gradImage, s.gradText, in.hostGrads.image, in.hostGrads.text);
  } else {
    out.gradImage = s.gradImage;
    out.gradText = s.gradText;
  }
  return out;
}

}  // namespace siglip::ring
