// Local rings: P ranks of one ring, one std::thread each, in an AsyncWorker over an
// in-process transport group (a fault armed by the test seam, ring_test_fault.h, makes one
// rank fail on purpose).
#include "ring_local.h"

#include <exception>
#include <functional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "convert.h"
#include "core/errors.h"
#include "cpu/cpu_block_backend.h"
#include "js_errors.h"
#include "ring/local_transport.h"
#include "ring/ring_sigmoid.h"
#include "ring_bindings.h"
#include "ring_handle.h"
#include "ring_test_fault.h"
#include "settling_worker.h"
#if defined(SIGLIP_WITH_CUDA)
#include <climits>

#include "cuda/cuda_block_backend.h"
#include "ring_gpu_rank.h"
#include "ring_nccl.h"
#endif

namespace siglip::addon::ring_internal {
namespace {

bool isStoppedByAnother(const CapturedError& e) { return e.message.find(" stopped: ") != std::string::npos; }

// ---- local rings: P ranks, one std::thread each ----------------------------------------

struct RankWork {
  ring::RingShard shard;            // host views (CPU ranks; GPU ranks' host inputs) and ids
  std::string imageName, textName;  // "imageShards[k].data", for the data scan's message
  GradientOutputs grads;            // host gradients
  bool wantGrad = false;
  LossResult result;
  ring::RingStats stats;
  CapturedError error;
#if defined(SIGLIP_WITH_CUDA)
  bool onGpu = false;
  GpuRankInputs gpu;
  GpuRankOutcome gpuOutcome;
#endif
};

// One rank of a local ring, on its own thread: scan the shard, then the ring. A shard that
// fails the scan aborts the group, so the other ranks stop instead of waiting for it.
void runLocalRank(ring::Transport& endpoint, RankWork& work, const ring::RingOptions& options, RingFault fault) {
  const int r = endpoint.rank();
  try {
    failIfAbsent(fault, r);
    FaultyTransport faulty(endpoint);
    ring::Transport& tp = fault.mode == FaultMode::Abort && fault.hits(r) ? faulty : endpoint;
#if defined(SIGLIP_WITH_CUDA)
    if (work.onGpu) {
      work.gpuOutcome = runGpuRank(tp, work.shard, work.gpu, options, work.wantGrad, work.grads.image,
                                   work.grads.text, work.imageName, work.textName);
      work.result = work.gpuOutcome.result;
      work.stats = work.gpuOutcome.stats;
      return;
    }
#endif
    try {
      checkFinite(work.shard.image, work.imageName);
      checkFinite(work.shard.text, work.textName);
    } catch (const std::exception& e) {
      endpoint.abort(e.what());
      throw;
    }
    cpu::CpuBlockBackend backend;
    work.result = ring::ringSigmoidLoss(tp, backend, work.shard, options, work.grads, &work.stats);
  } catch (...) {
    work.error = captureCurrentException();
  }
}

class LocalRingWorker : public SettlingWorker {
 public:
  LocalRingWorker(Napi::Env env, std::shared_ptr<RingState> state, std::vector<RankWork> work,
                  const ring::RingOptions& options, RingFault fault, bool wantGrad,
                  HostInputs&& inputs, const std::vector<Napi::Float32Array>& gradImages,
                  const std::vector<Napi::Float32Array>& gradTexts)
      : SettlingWorker(env, "siglip:ringSigmoidLoss"),
        state_(std::move(state)),
        work_(std::move(work)),
        options_(options),
        fault_(fault),
        wantGrad_(wantGrad),
        deferred_(Napi::Promise::Deferred::New(env)),
        inputs_(std::move(inputs)) {
    inputs_.persist();
    for (const Napi::Float32Array& a : gradImages) gradImages_.push_back(Napi::Persistent(static_cast<Napi::Object>(a)));
    for (const Napi::Float32Array& a : gradTexts) gradTexts_.push_back(Napi::Persistent(static_cast<Napi::Object>(a)));
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    const size_t p = work_.size();
    std::vector<std::thread> threads;
    threads.reserve(p);
    try {
      for (size_t r = 0; r < p; ++r) {
        threads.emplace_back(runLocalRank, std::ref(*state_->endpoints[r]), std::ref(work_[r]), std::cref(options_),
                             fault_);
      }
    } catch (...) {
      // A thread could not start: the ranks already running would wait for it until the
      // timeout; abort the group so they stop at once.
      const CapturedError error = captureCurrentException();
      state_->endpoints[0]->abort(error.message);
      for (size_t r = threads.size(); r < p; ++r) work_[r].error = error;
    }
    for (std::thread& t : threads) t.join();
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    state_->busy = false;
    int root = -1;
    for (size_t r = 0; r < work_.size() && root < 0; ++r)
      if (work_[r].error.present && !isStoppedByAnother(work_[r].error)) root = int(r);
    for (size_t r = 0; r < work_.size() && root < 0; ++r)
      if (work_[r].error.present) root = int(r);
    try {
      if (root >= 0) {
        // The group is aborted (and may hold stale messages): the next call gets a new one;
        // NCCL communicators, once aborted, are not remade (ncclCommInitAll blocks): the
        // ring is broken, as a ring of NCCL ranks is.
        if (state_->localNccl) {
          state_->broken = work_[size_t(root)].error.message;
        } else {
          try {
            state_->endpoints = createLocalEndpoints(*state_);
          } catch (...) {
            state_->broken = captureCurrentException().message;
          }
        }
        Napi::Error error = ringError(env, work_[size_t(root)].error);
        Napi::Array messages = Napi::Array::New(env, work_.size());
        for (size_t r = 0; r < work_.size(); ++r)
          messages.Set(uint32_t(r), Napi::String::New(env, work_[r].error.present ? work_[r].error.message : ""));
        error.Set("rank", Napi::Number::New(env, root));
        error.Set("rankErrors", messages);
        deferred_.Reject(error.Value());
        return;
      }
      Napi::Array out = Napi::Array::New(env, work_.size());
      for (size_t r = 0; r < work_.size(); ++r) {
        Napi::Value image = wantGrad_ && r < gradImages_.size() ? gradImages_[r].Value() : env.Undefined();
        Napi::Value text = wantGrad_ && r < gradTexts_.size() ? gradTexts_[r].Value() : env.Undefined();
#if defined(SIGLIP_WITH_CUDA)
        if (wantGrad_ && work_[r].onGpu)
          std::tie(image, text) = gpuRankGradients(env, work_[r].gpu, work_[r].gpuOutcome, image, text);
#endif
        out.Set(uint32_t(r), rankResultToJs(env, work_[r].result, work_[r].stats, wantGrad_, image, text));
      }
      deferred_.Resolve(out);
    } catch (const Napi::Error& e) {  // building the result failed (out of JS heap)
      deferred_.Reject(e.Value());
    }
  }

 private:
  std::shared_ptr<RingState> state_;
  std::vector<RankWork> work_;
  ring::RingOptions options_;
  RingFault fault_;
  bool wantGrad_;
  Napi::Promise::Deferred deferred_;
  HostInputs inputs_;  // the memory work_'s host views point into
  std::vector<Napi::ObjectReference> gradImages_;
  std::vector<Napi::ObjectReference> gradTexts_;
};

}  // namespace

std::vector<std::unique_ptr<ring::Transport>> createLocalEndpoints(const RingState& state) {
  if (state.devices.empty()) return ring::createLocalGroup(state.size, state.timeout);
#if defined(SIGLIP_WITH_CUDA)
  return ring::createLocalGroup(state.size, state.timeout, cuda::deviceMessageMemory());
#else
  throw Error(ErrorKind::Internal, "options.devices", "local rings of GPUs need the CUDA build");
#endif
}

namespace {

// An Array of exactly `count` elements named `name`.
Napi::Array readArray(Napi::Value value, const std::string& name, size_t count, const std::string& what) {
  if (!value.IsArray()) {
    throw typeError(value.Env(), name, "an Array of " + std::to_string(count) + " " + what, describeValue(value));
  }
  Napi::Array array = value.As<Napi::Array>();
  if (array.Length() != count) {
    throw rangeError(value.Env(), name, "an Array of " + std::to_string(count) + " " + what, describeValue(value));
  }
  return array;
}

}  // namespace

Napi::Value localSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
  Napi::Env env = info.Env();
  const size_t p = size_t(state->size);
  const std::string shardsWhat = "shards (one per rank)";
  Napi::Array images = readArray(info[0], "imageShards", p, shardsWhat);
  Napi::Array texts = readArray(info[1], "textShards", p, shardsWhat);
  HostInputs inputs(InputUse::Copy);
  std::vector<RankWork> work(p);
  int64_t d = 0, imageRows = 0, textRows = 0;
  const bool onGpu = !state->devices.empty();
  for (size_t r = 0; r < p; ++r) {
    const std::string k = "[" + std::to_string(r) + "]";
    RankWork& w = work[r];
    if (onGpu) {
#if defined(SIGLIP_WITH_CUDA)
      w.onGpu = true;
      w.gpu.device = state->devices[r];
      w.gpu.image = readGpuRankInput(images.Get(uint32_t(r)), "imageShards" + k, w.gpu.device, w.shard.image, inputs);
      w.gpu.text = readGpuRankInput(texts.Get(uint32_t(r)), "textShards" + k, w.gpu.device, w.shard.text, inputs);
      const cuda::DType dtype = work[0].gpu.image.dtype;
      for (const auto& [name, m] : {std::pair<std::string, const DeviceMatrixData*>{"imageShards" + k, &w.gpu.image},
                                    {"textShards" + k, &w.gpu.text}}) {
        if (m->dtype != dtype) {
          throw typeError(env, name, std::string("a matrix of the dtype of imageShards[0] (") + cuda::dtypeName(dtype) + ")",
                          std::string("one of dtype ") + cuda::dtypeName(m->dtype));
        }
      }
#endif
    } else {
      w.shard.image = readMatrix(images.Get(uint32_t(r)), "imageShards" + k, inputs);
      w.shard.text = readMatrix(texts.Get(uint32_t(r)), "textShards" + k, inputs);
    }
    const int64_t imageCols = w.shard.image.cols, textCols = w.shard.text.cols;
    if (r == 0) d = imageCols;
    if (imageCols != d) {
      throw rangeError(env, "imageShards" + k + ".cols",
                       std::to_string(d) + " (imageShards[0].cols: every shard has the same width D)",
                       describeValue(Napi::Number::New(env, double(imageCols))));
    }
    if (textCols != d) {
      throw rangeError(env, "textShards" + k + ".cols",
                       std::to_string(d) + " (imageShards[0].cols: every shard has the same width D)",
                       describeValue(Napi::Number::New(env, double(textCols))));
    }
    imageRows += w.shard.image.rows;
    textRows += w.shard.text.rows;
    w.imageName = "imageShards" + k + ".data";
    w.textName = "textShards" + k + ".data";
  }

  Napi::Object options = readOptions(info[2], "options");
  const Scalars scalars = readScalars(options);
  Napi::Value imageIds = options.Get("imageIds"), textIds = options.Get("textIds");
  checkIdsTogether(env, !absent(imageIds), !absent(textIds));
  if (!absent(imageIds)) {
    Napi::Array imageIdArrays = readArray(imageIds, "options.imageIds", p, "Int32Arrays (one per rank)");
    Napi::Array textIdArrays = readArray(textIds, "options.textIds", p, "Int32Arrays (one per rank)");
    for (size_t r = 0; r < p; ++r) {
      const std::string k = "[" + std::to_string(r) + "]";
      work[r].shard.imageIds =
          readIdArray(imageIdArrays.Get(uint32_t(r)), "options.imageIds" + k, work[r].shard.image.rows, inputs);
      work[r].shard.textIds =
          readIdArray(textIdArrays.Get(uint32_t(r)), "options.textIds" + k, work[r].shard.text.rows, inputs);
    }
  } else if (imageRows != textRows) {
    throw rangeError(env, "textShards",
                     std::to_string(imageRows) +
                         " text rows in all (as many as image rows over all shards: without label ids row i of the "
                         "global image batch pairs with row i of the global text batch)",
                     std::to_string(textRows) + " rows");
  }
  ring::RingOptions ringOptions;
  ringOptions.logitScale = scalars.logitScale;
  ringOptions.logitBias = scalars.logitBias;
  ringOptions.direction = readDirection(options);
  bool hostGradients = true;
  if (onGpu) {
#if defined(SIGLIP_WITH_CUDA)
    readGpuRankOptions(options, work[0].gpu);
    for (RankWork& w : work) {
      w.gpu.precision = work[0].gpu.precision;
      w.gpu.gradientsOnDevice = work[0].gpu.gradientsOnDevice;
    }
    hostGradients = !work[0].gpu.gradientsOnDevice;
#endif
  } else {
    ringOptions.threads = static_cast<int>(readInteger(options.Get("threads"), "options.threads", 1, kMaxThreads));
  }

  const RingFault fault = state->fault;  // the test seam's, for this call only
  state->fault = RingFault{};

  if (!info[3].IsBoolean()) throw typeError(env, "wantGrad", "a boolean", describeValue(info[3]));
  const bool wantGrad = info[3].As<Napi::Boolean>().Value();
  std::vector<Napi::Float32Array> gradImages, gradTexts;
  for (RankWork& w : work) w.wantGrad = wantGrad;
  if (wantGrad && hostGradients) {
    for (size_t r = 0; r < p; ++r) {
      const ring::RingShard& s = work[r].shard;
      gradImages.push_back(allocateFloat32Array(env, s.image.rows * d, "the image gradient of rank " + std::to_string(r)));
      gradTexts.push_back(allocateFloat32Array(env, s.text.rows * d, "the text gradient of rank " + std::to_string(r)));
      work[r].grads = GradientOutputs{gradImages.back().Data(), gradTexts.back().Data()};
    }
  }
  auto* worker = new LocalRingWorker(env, state, std::move(work), ringOptions, fault, wantGrad,
                                     std::move(inputs), gradImages, gradTexts);  // deletes itself when complete
  Napi::Promise promise = worker->promise();
  state->busy = true;
  worker->Queue();
  return promise;
}

namespace {

// new LocalRingHandle({ ranks, timeoutMs, devices?, transport? }).
class LocalRingHandle : public RingHandleBase<LocalRingHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return defineRingClass(env, "LocalRingHandle",
                           {InstanceMethod("sigmoidLoss", &LocalRingHandle::SigmoidLoss),
                            InstanceMethod("connect", &LocalRingHandle::Connect),
                            InstanceMethod("testFault", &LocalRingHandle::TestFault)});
  }

  explicit LocalRingHandle(const Napi::CallbackInfo& info) : RingHandleBase(info) {
    Napi::Env env = info.Env();
    construct(env, RingKind::Local, [&](RingState& state) {
      Napi::Object options = readOptions(info[0], "options");
      state.timeout = readTimeout(options);
      state.size = static_cast<int>(readInteger(options.Get("ranks"), "options.ranks", 1, kMaxRingRanks));
      readDevices(env, options.Get("devices"), state);
      Napi::Value transport = options.Get("transport");
      if (!absent(transport)) {
        const std::string name = transport.IsString() ? transport.As<Napi::String>().Utf8Value() : "";
        if (!transport.IsString()) throw typeError(env, "options.transport", "'memcpy' or 'nccl'", describeValue(transport));
        if (name != "memcpy" && name != "nccl")
          throw rangeError(env, "options.transport", "'memcpy' or 'nccl'", describeValue(transport));
        state.localNccl = name == "nccl";
      }
      if (state.localNccl) {
        requireLocalNccl(env, state);  // the endpoints come with connect() (ncclCommInitAll blocks)
      } else {
        state.endpoints = createLocalEndpoints(state);
      }
    });
  }

 private:
  // options.devices: rank r on CUDA device devices[r] (lib/ring/options.ts resolved the names
  // and checked the GPUs); the CUDA build only.
  static void readDevices(Napi::Env env, Napi::Value devices, RingState& state) {
    if (absent(devices)) return;
#if defined(SIGLIP_WITH_CUDA)
    const std::string expected = "an Array of " + std::to_string(state.size) + " CUDA ordinals (one per rank)";
    if (!devices.IsArray() || devices.As<Napi::Array>().Length() != uint32_t(state.size))
      throw typeError(env, "options.devices", expected, describeValue(devices));
    Napi::Array list = devices.As<Napi::Array>();
    for (uint32_t r = 0; r < list.Length(); ++r)
      state.devices.push_back(
          static_cast<int>(readInteger(list.Get(r), "options.devices[" + std::to_string(r) + "]", 0, INT_MAX)));
#else
    (void)state;
    throw makeJsError(env, ErrorKind::Internal,
                      "Local rings of GPUs need the CUDA build of siglip-kernels (this is the CPU build)", "",
                      "ERR_SIGLIP_NO_CUDA");
#endif
  }

  static void requireLocalNccl(Napi::Env env, const RingState& state) {
#if defined(SIGLIP_WITH_CUDA)
    if (state.devices.empty())
      throw typeError(env, "options.transport", "'memcpy' for a CPU ring ('nccl' needs GPU ranks)", "'nccl'");
    requireNccl(env);
#else
    (void)state;
    throw makeJsError(env, ErrorKind::Internal,
                      "Local rings over NCCL need the CUDA build of siglip-kernels (this is the CPU build)", "",
                      "ERR_SIGLIP_NO_CUDA");
#endif
  }

  Napi::Value SigmoidLoss(const Napi::CallbackInfo& info) {
    return withJsErrors(info.Env(), [&]() -> Napi::Value { return localSigmoidLoss(info, connected(info.Env())); });
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return withJsErrors(env, [&]() -> Napi::Value {
      std::shared_ptr<RingState> state = usable(env);
#if defined(SIGLIP_WITH_CUDA)
      if (state->localNccl && state->endpoints.empty()) return connectLocalNccl(env, state);
#endif
      return resolvedPromise(env);  // other local rings are connected when made
    });
  }

  // The test seam (ring_test_fault.h): testFault(rank, mode?) arms a fault for the next call.
  void TestFault(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    withJsErrors(env, [&]() -> Napi::Value {
      std::shared_ptr<RingState> state = usable(env);
      state->fault = readRingFault(info[0], info[1], state->size);
      return env.Undefined();
    });
  }
};

}  // namespace
}  // namespace siglip::addon::ring_internal

namespace siglip::addon {

void registerLocalRing(Napi::Env env, Napi::Object exports) {
  exports.Set("LocalRingHandle", ring_internal::LocalRingHandle::define(env));
}

}  // namespace siglip::addon
