// Local rings: P ranks of one ring, one std::thread each, in a PromiseWorker over an
// in-process transport group, each rank on the CPU or (the CUDA build) on a GPU. A fault
// armed by the test seam (ring_test_fault.h) makes one rank fail on purpose.
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "convert.h"
#include "core/errors.h"
#include "cuda_bindings.h"
#include "js_errors.h"
#include "promise_worker.h"
#include "ring/local_transport.h"
#include "ring_bindings.h"
#include "ring_handle.h"
#include "ring_rank.h"
#include "ring_test_fault.h"

namespace siglip::addon::ring_internal {
namespace {

bool isStoppedByAnother(const CapturedError& e) { return e.message.find(" stopped: ") != std::string::npos; }

// The in-process endpoints of a local ring: host messages, or device messages (each rank's
// buffers on its GPU) for a ring of GPUs (state.devices).
std::vector<std::unique_ptr<ring::Transport>> createLocalEndpoints(const RingState& state) {
  if (state.devices.empty()) return ring::createLocalGroup(state.size, state.timeout);
  return createLocalGpuEndpoints(state);
}

// What the P ranks of one call leave behind: their calls (results, stats) and failures.
struct LocalRun {
  std::vector<std::unique_ptr<RankCall>> ranks;
  std::vector<CapturedError> errors;
};

// One rank of a local ring, on its own thread.
void runLocalRank(ring::Transport& endpoint, RankCall& call, RingFault fault, CapturedError& error) {
  try {
    failIfAbsent(fault, endpoint.rank());
    FaultyTransport faulty(endpoint);
    call.run(fault.mode == FaultMode::Abort && fault.hits(endpoint.rank()) ? faulty : endpoint);
  } catch (...) {
    error = captureCurrentException();
  }
}

LocalRun runLocalRanks(RingState& state, LocalRun run, RingFault fault) {
  const size_t p = run.ranks.size();
  run.errors.resize(p);
  std::vector<std::thread> threads;
  threads.reserve(p);
  try {
    for (size_t r = 0; r < p; ++r) {
      threads.emplace_back(runLocalRank, std::ref(*state.endpoints[r]), std::ref(*run.ranks[r]), fault,
                           std::ref(run.errors[r]));
    }
  } catch (...) {
    // A thread could not start: the ranks already running would wait for it until the
    // timeout; abort the group so they stop at once.
    const CapturedError error = captureCurrentException();
    state.endpoints[0]->abort(error.message);
    for (size_t r = threads.size(); r < p; ++r) run.errors[r] = error;
  }
  for (std::thread& t : threads) t.join();
  return run;
}

// Back on the JS thread: P results, or the failing rank's error with `rank` and `rankErrors`.
Napi::Value localRunToJs(Napi::Env env, RingState& state, const LocalRun& run, const std::vector<HeldGradients>& held) {
  const size_t p = run.ranks.size();
  int root = -1;
  for (size_t r = 0; r < p && root < 0; ++r)
    if (run.errors[r].present && !isStoppedByAnother(run.errors[r])) root = int(r);
  for (size_t r = 0; r < p && root < 0; ++r)
    if (run.errors[r].present) root = int(r);
  if (root >= 0) {
    // The group is aborted (and may hold stale messages): the next call gets a new one;
    // NCCL communicators, once aborted, are not remade (ncclCommInitAll blocks): the ring is
    // broken, as a ring of NCCL ranks is.
    if (state.localNccl) {
      state.broken = run.errors[size_t(root)].message;
    } else {
      try {
        state.endpoints = createLocalEndpoints(state);
      } catch (...) {
        state.broken = captureCurrentException().message;
      }
    }
    Napi::Error error = ringError(env, run.errors[size_t(root)]);
    Napi::Array messages = Napi::Array::New(env, p);
    for (size_t r = 0; r < p; ++r)
      messages.Set(uint32_t(r), Napi::String::New(env, run.errors[r].present ? run.errors[r].message : ""));
    error.Set("rank", Napi::Number::New(env, root));
    error.Set("rankErrors", messages);
    throw error;
  }
  Napi::Array out = Napi::Array::New(env, p);
  for (size_t r = 0; r < p; ++r)
    out.Set(uint32_t(r), rankResultToJs(env, *run.ranks[r], r < held.size() ? held[r].arrays() : GradientArrays{}));
  return out;
}

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

// handle.sigmoidLoss(imageShards, textShards, options, wantGrad): reads and checks the
// arguments on the JS thread, then runs the P ranks in a PromiseWorker; a Promise of P
// results, or of the failing rank's error (with `rank` and `rankErrors`).
Napi::Value localSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
  Napi::Env env = info.Env();
  const size_t p = size_t(state->size);
  const std::string shardsWhat = "shards (one per rank)";
  Napi::Array images = readArray(info[0], "imageShards", p, shardsWhat);
  Napi::Array texts = readArray(info[1], "textShards", p, shardsWhat);
  HostInputs inputs(InputUse::Copy);
  LocalRun run;
  int64_t d = 0, imageRows = 0, textRows = 0;
  const bool onGpu = !state->devices.empty();
  for (size_t r = 0; r < p; ++r) {
    const std::string k = "[" + std::to_string(r) + "]";
    if (onGpu) {
      run.ranks.push_back(readGpuRank(images.Get(uint32_t(r)), texts.Get(uint32_t(r)), "imageShards" + k,
                                      "textShards" + k, state->devices[r], r == 0 ? nullptr : run.ranks[0].get(),
                                      "imageShards[0]", inputs));
    } else {
      auto call = std::make_unique<CpuRankCall>();
      call->shard.image = BlockMatrix::host(readMatrix(images.Get(uint32_t(r)), "imageShards" + k, inputs));
      call->shard.text = BlockMatrix::host(readMatrix(texts.Get(uint32_t(r)), "textShards" + k, inputs));
      call->shard.imageName = "imageShards" + k + ".data";
      call->shard.textName = "textShards" + k + ".data";
      run.ranks.push_back(std::move(call));
    }
    const ring::RingShard& shard = run.ranks.back()->shard;
    if (r == 0) d = shard.image.cols;
    for (const auto& [name, cols] : {std::pair<std::string, int64_t>{"imageShards" + k, shard.image.cols},
                                     {"textShards" + k, shard.text.cols}}) {
      if (cols != d) {
        throw rangeError(env, name + ".cols", std::to_string(d) + " (imageShards[0].cols: every shard has the same width D)",
                         describeValue(Napi::Number::New(env, double(cols))));
      }
    }
    imageRows += shard.image.rows;
    textRows += shard.text.rows;
  }

  Napi::Object options = readObject(info[2], "options");
  const Scalars scalars = readRingScalars(options);
  Napi::Value imageIds = options.Get("imageIds"), textIds = options.Get("textIds");
  checkIdsTogether(env, !absent(imageIds), !absent(textIds));
  if (!absent(imageIds)) {
    Napi::Array imageIdArrays = readArray(imageIds, "options.imageIds", p, "Int32Arrays (one per rank)");
    Napi::Array textIdArrays = readArray(textIds, "options.textIds", p, "Int32Arrays (one per rank)");
    for (size_t r = 0; r < p; ++r) {
      const std::string k = "[" + std::to_string(r) + "]";
      ring::RingShard& shard = run.ranks[r]->shard;
      shard.imageIds = readIdArray(imageIdArrays.Get(uint32_t(r)), "options.imageIds" + k, shard.image.rows, inputs);
      shard.textIds = readIdArray(textIdArrays.Get(uint32_t(r)), "options.textIds" + k, shard.text.rows, inputs);
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
    std::vector<RankCall*> ranks;
    for (const auto& call : run.ranks) ranks.push_back(call.get());
    hostGradients = readGpuRankOptions(options, ranks);
  } else {
    ringOptions.threads = static_cast<int>(readInteger(options.Get("threads"), "options.threads", 1, kMaxThreads));
  }

  const RingFault fault = state->fault;  // the test seam's, for this call only
  state->fault = RingFault{};

  const bool wantGrad = readBoolean(info[3], "wantGrad");
  std::vector<HeldGradients> held;
  for (size_t r = 0; r < p; ++r) {
    RankCall& call = *run.ranks[r];
    call.options = ringOptions;
    call.wantGrad = wantGrad;
    if (wantGrad && hostGradients) {
      const GradientArrays grads = allocateGradients(env, call.shard.image.rows * d, call.shard.text.rows * d,
                                                     std::to_string(r));
      call.hostGrads = grads.outputs();
      held.emplace_back(grads);
    }
  }
  inputs.persist();
  state->busy = true;
  return queuePromise(
      env, "siglip:ringSigmoidLoss",
      [state, run = std::move(run), fault, inputs = std::move(inputs)]() mutable {
        return runLocalRanks(*state, std::move(run), fault);
      },
      [state, held = std::move(held)](Napi::Env env, const LocalRun& run) {
        state->busy = false;
        return localRunToJs(env, *state, run, held);
      },
      [state](Napi::Env env, const CapturedError& error) {
        state->busy = false;
        return toJsError(env, error);
      });
}

// new LocalRingHandle({ ranks, timeoutMs, devices?, transport? }).
class LocalRingHandle : public RingHandleBase<LocalRingHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return defineRingClass(env, "LocalRingHandle", false, {InstanceMethod("testFault", &LocalRingHandle::TestFault)});
  }

  explicit LocalRingHandle(const Napi::CallbackInfo& info) : RingHandleBase(info) {
    Napi::Env env = info.Env();
    construct(info, RingKind::Local, [&](RingState& state, Napi::Object options) {
      state.size = static_cast<int>(readInteger(options.Get("ranks"), "options.ranks", 1, kMaxRingRanks));
      // options.devices: rank r on CUDA device devices[r] (lib/ring/options.ts resolved the
      // names and checked the GPUs); the CUDA build only.
      if (!absent(options.Get("devices"))) readLocalDevices(env, options.Get("devices"), state);
      Napi::Value transport = options.Get("transport");
      if (!absent(transport))
        state.localNccl = readChoice(transport, "options.transport", {"memcpy", "nccl"}, "'memcpy' or 'nccl'") == "nccl";
      if (state.localNccl) {
        requireLocalNccl(env, state);  // the endpoints come with connect() (ncclCommInitAll blocks)
      } else {
        state.endpoints = createLocalEndpoints(state);
      }
    });
  }

  Napi::Value loss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
    return localSigmoidLoss(info, state);
  }
  // A local ring over NCCL (the others are connected when made).
  Napi::Value join(Napi::Env env, const std::shared_ptr<RingState>& state) { return connectLocalNccl(env, state); }

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
