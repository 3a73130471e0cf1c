// siglip_cuda_check --correctness: the cases, their float64 references, each path run
// against them, and the ring's unit on one workspace across calls.
#include "cuda_check.h"

namespace siglip::cuda_check {

std::vector<Case> buildCases(uint64_t seed) {
  const double ln10 = std::log(10.0), clipScale = std::log(1 / 0.07);
  const double extremeScale = std::log(112.0), extremeBias = -24;
  // |u| = |t·S + b| up to ~1e4: rows of norm r give |S| <= r², so r = sqrt(1e4 / 112).
  const double extremeNorm = std::sqrt(1e4 / 112.0);
  std::vector<Case> cases;
  uint64_t s = seed;
  auto add = [&](const std::string& name, LossKind kind, int64_t n, int64_t m, int64_t d, bool ids, bool extreme,
                 double noise = 0.6) {
    const bool sig = kind == LossKind::Sigmoid;
    const double scale = extreme ? extremeScale : sig ? ln10 : clipScale;
    const double bias = sig ? (extreme ? extremeBias : -10) : 0;
    cases.push_back({name, kind, n, m, d, ids, scale, bias, extreme ? extremeNorm : 1.0, noise, ++s});
  };
  for (LossKind kind : {LossKind::Sigmoid, LossKind::Softmax}) {
    add("tiny", kind, 1, 1, 1, false, false);
    add("odd", kind, 7, 7, 3, false, false);
    add("ids, N != M", kind, 129, 131, 96, true, false);
    add("ids, N > M", kind, 130, 61, 9, true, false);
    add("D odd (unaligned rows)", kind, 257, 257, 13, false, false);
    add("wide D", kind, 300, 300, 768, false, false);
    add("tall", kind, 1000, 1000, 64, false, false);
    add("extreme |u|~1e4", kind, 65, 65, 48, false, true);
    add("extreme, ids", kind, 70, 90, 20, true, true);
    add("extreme, random pairs", kind, 97, 97, 24, false, true, 1e3);
  }
  // Sigmoid only: the fused driver's 4096 × 4096 pair blocks (crossed in both directions,
  // with and without ids), a bigger extreme case, and s = b = 0.
  add("extreme, 300 x 300", LossKind::Sigmoid, 300, 300, 256, false, true);
  add("bias 0, s 0", LossKind::Sigmoid, 40, 40, 8, false, false);
  cases.back().logitScale = 0, cases.back().logitBias = 0;
  add("ids across 4096 blocks", LossKind::Sigmoid, 4200, 4300, 16, true, false);
  add("4096 block boundary", LossKind::Sigmoid, 4097, 4097, 128, false, false);
  // Softmax only: t = 100 (logitScale ln 100, CLIP's clamp) on unit rows, with and without
  // ids, and the chunked driver's 4096 × 4096 pair blocks crossed in both directions (its
  // statistics merge across blocks), with ids and N != M too.
  add("logitScale ln 100", LossKind::Softmax, 200, 200, 64, false, false, 2.0);
  cases.back().logitScale = std::log(100.0);
  add("logitScale ln 100, ids", LossKind::Softmax, 150, 170, 32, true, false);
  cases.back().logitScale = std::log(100.0);
  add("4096 block boundary", LossKind::Softmax, 4097, 4097, 32, false, false);
  add("ids across 4096 blocks", LossKind::Softmax, 4200, 4300, 16, true, false);
  return cases;
}

// --shapes: "NxMxD" (N = M) or "NxMxDi" (with ids), comma-separated; each as a sigmoid and a
// softmax case (usual scale and bias, unit rows). False when an item does not parse.
bool shapeCases(const std::string& list, uint64_t seed, std::vector<Case>* out) {
  for (const std::string& item : parseWords(list)) {
    long long n = 0, m = 0, d = 0;
    char ids = 0, extra = 0;
    const int got = std::sscanf(item.c_str(), "%lldx%lldx%lld%c%c", &n, &m, &d, &ids, &extra);
    if (got < 3 || got > 4 || (got == 4 && ids != 'i') || n < 1 || m < 1 || d < 1) return false;
    if (got == 3 && n != m) return false;  // without ids row i pairs with row i: N = M
    const std::string name = "shape " + std::to_string(n) + "x" + std::to_string(m) + "x" + std::to_string(d) +
                             (got == 4 ? " ids" : "");
    for (LossKind kind : {LossKind::Sigmoid, LossKind::Softmax}) {
      const bool sig = kind == LossKind::Sigmoid;
      out->push_back({name, kind, n, m, d, got == 4, sig ? std::log(10.0) : std::log(1 / 0.07), sig ? -10.0 : 0.0, 1.0,
                      0.6, ++seed});
    }
  }
  return true;
}

// ---- correctness: the reference ------------------------------------------------------------

double dotDouble(const float* a, const float* b, int64_t d) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // four chains: the floor scale needs no exact order
  int64_t k = 0;
  for (; k + 4 <= d; k += 4) {
    s0 += double(a[k]) * b[k];
    s1 += double(a[k + 1]) * b[k + 1];
    s2 += double(a[k + 2]) * b[k + 2];
    s3 += double(a[k + 3]) * b[k + 3];
  }
  for (; k < d; ++k) s0 += double(a[k]) * b[k];
  return (s0 + s1) + (s2 + s3);
}

ScalarScales scalarScales(const Case& c, const std::vector<float>& x, const std::vector<float>& y, const Data& data,
                          int threads) {
  ScalarScales out;
  const double t = std::exp(c.logitScale);
  if (c.kind == LossKind::Softmax) {
    auto maxNorm = [&](const std::vector<float>& v, int64_t rows) {
      double best = 0;
      for (int64_t i = 0; i < rows; ++i) best = std::max(best, std::sqrt(dotDouble(&v[size_t(i * c.d)], &v[size_t(i * c.d)], c.d)));
      return best;
    };
    out.scale = 2 * t * maxNorm(x, c.n) * maxNorm(y, c.m);
    return out;
  }
  threads = std::max(1, std::min<int>(threads, int(c.n)));
  std::vector<ScalarScales> part(static_cast<size_t>(threads));
  std::vector<std::thread> pool;
  for (int w = 0; w < threads; ++w) {
    pool.emplace_back([&, w] {
      for (int64_t i = w; i < c.n; i += threads) {
        for (int64_t j = 0; j < c.m; ++j) {
          const double s = dotDouble(&x[size_t(i * c.d)], &y[size_t(j * c.d)], c.d);
          const bool positive = c.ids ? data.imageIds[size_t(i)] == data.textIds[size_t(j)] : i == j;
          double dTerm = 0;
          sigmoidPairTerm<double>(s, positive, t, c.logitBias, &dTerm);
          const double g = std::fabs(dTerm) / double(c.n);
          part[size_t(w)].bias += g;
          part[size_t(w)].scale += t * g * std::fabs(s);
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  for (const auto& p : part) out.bias += p.bias, out.scale += p.scale;
  return out;
}

Reference computeReference(const Case& c, const Data& data, Rounding rounding, int scaleThreads) {
  Reference ref;
  ref.rounding = rounding;
  const auto start = Clock::now();
  try {
    std::vector<float> x = data.x, y = data.y;
    for (auto& v : x) v = roundTo(v, rounding);
    for (auto& v : y) v = roundTo(v, rounding);
    LossRequest r;
    r.image = {x.data(), c.n, c.d};
    r.text = {y.data(), c.m, c.d};
    if (c.ids) r.imageIds = data.imageIds.data(), r.textIds = data.textIds.data();
    r.logitScale = c.logitScale;
    r.logitBias = c.logitBias;
    ref.dx.resize(size_t(c.n * c.d));
    ref.dy.resize(size_t(c.m * c.d));
    ref.result = c.kind == LossKind::Sigmoid ? referenceSigmoidLoss(r, {ref.dx.data(), ref.dy.data()})
                                             : referenceSoftmaxLoss(r, {ref.dx.data(), ref.dy.data()});
    ref.scales = scalarScales(c, x, y, data, scaleThreads);
  } catch (const std::exception& e) {
    ref.error = e.what();
  }
  ref.seconds = secondsSince(start);
  return ref;
}

std::vector<Run> runsFor(LossKind kind) {
  std::vector<Run> runs;
  // The fused sigmoid and the chunked softmax on every GEMM path; exact 'fp32' runs the SIMT
  // kernel whatever the tile setting, so its 'simple' run would repeat its 'pipelined' one.
  // GEMM1 on cuBLAS is the fused sigmoid's alone (the softmax's epilogue needs whole tiles).
  // The overlapped schedule is the fused sigmoid's alone too, after its one-stream twins (whose
  // bits it must repeat).
  std::vector<const GemmVariant*> variants = {&kPipelinedGemm, &kSimpleGemm};
  if (cublasLoads()) variants.insert(variants.begin(), &kCublasGemm);
  if (cublasLoads() && kind == LossKind::Sigmoid) variants.insert(variants.end(), {&kCublasGemm1, &kCublasGemm1Small});
  if (kind == LossKind::Sigmoid) {
    if (cublasLoads()) variants.push_back(&kCublasOverlap);
    variants.push_back(&kPipelinedOverlap);
    if (cublasLoads()) variants.insert(variants.end(), {&kCublasGemm1Overlap, &kCublasGemm1SmallOverlap});
  }
  const Path blocked = kind == LossKind::Softmax ? Path::SoftmaxChunked : Path::Fused;
  for (const GemmVariant* v : variants)
    for (const Config* c : {&kFp32, &kTf32, &kBf16, &kFp16})
      if (!(v == &kSimpleGemm && c == &kFp32)) runs.push_back({blocked, c, v});
  // The naive baselines share those GEMMs: once, on the default path.
  const Path naive = kind == LossKind::Softmax ? Path::SoftmaxNaive : Path::Naive;
  for (const Config* c : {&kFp32, &kTf32, &kBf16, &kFp16}) runs.push_back({naive, c, &kDefaultGemm});
  // The simple kernels ignore the precision (plain float32 FMA): 'tf32' would repeat 'fp32'.
  if (kind == LossKind::Sigmoid)
    for (const Config* c : {&kFp32, &kBf16, &kFp16}) runs.push_back({Path::Simple, c, nullptr});
  return runs;
}

// Every rounding a case's runs need a reference for.
std::vector<Rounding> roundingsFor(LossKind kind) {
  (void)kind;
  return {Rounding::None, Rounding::Tf32, Rounding::BFloat16, Rounding::Float16};
}

std::vector<Reference> computeReferences(const Case& c, const Data& data, int hardwareThreads) {
  // One per rounding, concurrently (the 4097² case takes seconds each).
  const std::vector<Rounding> roundings = roundingsFor(c.kind);
  const int scaleThreads = std::max(1, hardwareThreads / int(roundings.size()));
  std::vector<std::future<Reference>> pending;
  for (Rounding r : roundings)
    pending.push_back(std::async(std::launch::async, [&, r] { return computeReference(c, data, r, scaleThreads); }));
  std::vector<Reference> refs;
  for (auto& f : pending) refs.push_back(f.get());
  return refs;
}


// ---- correctness: running the backend ---------------------------------------------------

DeviceGrads makeDeviceGrads(size_t count) {
  std::vector<float> host(count + 2 * kCanary, kCanaryValue);
  std::fill(host.begin() + kCanary, host.end() - kCanary, std::numeric_limits<float>::quiet_NaN());
  DeviceGrads g;
  g.buffer = uploadBytes(host.data(), host.size() * sizeof(float));
  g.count = count;
  return g;
}

// Downloads the inside; returns false when a canary was overwritten.
bool readDeviceGrads(const DeviceGrads& g, std::vector<float>& out) {
  std::vector<float> host(g.count + 2 * kCanary);
  g.buffer.download(host.data(), host.size() * sizeof(float));
  out.assign(host.begin() + kCanary, host.end() - kCanary);
  for (size_t k = 0; k < kCanary; ++k)
    if (host[k] != kCanaryValue || host[host.size() - 1 - k] != kCanaryValue) return false;
  return true;
}

LossResult callPath(Path path, sc::CudaLossRequest req, siglip::GradientOutputs grads) {
  switch (path) {
    case Path::Fused: req.method = Method::Fused; return sc::sigmoidLoss(req, grads);
    case Path::Naive: req.method = Method::Naive; return sc::sigmoidLoss(req, grads);
    case Path::Simple: return sc::sigmoidLossSimple(req, grads);
    case Path::SoftmaxChunked: req.method = Method::Chunked; return sc::softmaxLoss(req, grads);
    default: req.method = Method::Naive; return sc::softmaxLoss(req, grads);
  }
}

sc::CudaLossRequest makeCudaRequest(const Case& c, const Data& data, const DeviceInputs& in, const Config& cfg) {
  sc::CudaLossRequest r;
  r.image = {in.x.data(), c.n, c.d, cfg.dtype, 0};
  r.text = {in.y.data(), c.m, c.d, cfg.dtype, 0};
  if (c.ids) r.imageIds = data.imageIds.data(), r.textIds = data.textIds.data();
  r.logitScale = c.logitScale;
  r.logitBias = c.logitBias;
  r.precision = cfg.precision;
  return r;
}

Output runOnDevice(Path path, const sc::CudaLossRequest& req, bool withGrads) {
  Output out;
  const size_t nx = size_t(req.image.rows * req.image.cols), ny = size_t(req.text.rows * req.text.cols);
  DeviceGrads gx, gy;
  siglip::GradientOutputs grads;
  if (withGrads) {
    gx = makeDeviceGrads(nx);
    gy = makeDeviceGrads(ny);
    grads.image = gx.data();
    grads.text = gy.data();
  }
  const auto start = Clock::now();
  out.result = callPath(path, req, grads);
  out.ms = secondsSince(start) * 1e3;
  if (withGrads) out.inBounds = readDeviceGrads(gx, out.dx) && readDeviceGrads(gy, out.dy);
  return out;
}

bool sameBits(const Output& a, const Output& b) {
  auto same = [](double p, double q) { return std::memcmp(&p, &q, sizeof p) == 0; };
  return same(a.result.loss, b.result.loss) && same(a.result.dLogitScale, b.result.dLogitScale) &&
         same(a.result.dLogitBias, b.result.dLogitBias) && a.dx.size() == b.dx.size() && a.dy.size() == b.dy.size() &&
         std::memcmp(a.dx.data(), b.dx.data(), a.dx.size() * sizeof(float)) == 0 &&
         std::memcmp(a.dy.data(), b.dy.data(), a.dy.size() * sizeof(float)) == 0;
}



// --gemm: the runs on one of the listed GEMM paths (every run when the list is empty; the
// simple kernels, which run no GEMM, only then).
// --precisions: only the runs in the listed precisions (every run when the list is empty).
std::vector<std::string> g_precisions;

std::vector<Run> selectRuns(LossKind kind, const std::vector<std::string>& gemmPaths) {
  std::vector<Run> runs;
  for (const Run& run : runsFor(kind))
    if ((gemmPaths.empty() ||
         (run.gemm && std::find(gemmPaths.begin(), gemmPaths.end(), run.gemm->label) != gemmPaths.end())) &&
        (g_precisions.empty() ||
         std::find(g_precisions.begin(), g_precisions.end(), run.config->label) != g_precisions.end()))
      runs.push_back(run);
  return runs;
}

void checkCase(const Case& c, int hardwareThreads, const std::vector<std::string>& gemmPaths) {
  const std::vector<Run> runs = selectRuns(c.kind, gemmPaths);
  if (runs.empty()) return;
  const Data data = makeData(c);
  const std::vector<Reference> refs = computeReferences(c, data, hardwareThreads);
  double refSeconds = 0;
  for (const auto& r : refs) refSeconds = std::max(refSeconds, r.seconds);
  auto refFor = [&](Rounding r) -> const Reference& {
    for (const auto& ref : refs)
      if (ref.rounding == r) return ref;
    return refs.front();
  };

  // Device inputs per dtype (float32 shared by fp32 and tf32: the tensor cores round).
  DeviceInputs inputs[3];
  bool uploaded[3] = {false, false, false};
  // Each run's results, by GEMM path, loss path and precision: a run that must repeat another
  // path's bits (GemmVariant::sameBitsAs) finds its twin's here.
  std::map<std::string, Output> results;

  for (const Run& run : runs) {
    if (contextLost) return;
    const Config& cfg = *run.config;
    // The simple kernels are exact float32 whatever the dtype: float32 inputs use fp32's tolerance.
    const Reference& ref = refFor(cfg.rounding);
    std::string path = pathName(run.path);
    if (run.gemm && run.gemm != &kDefaultGemm) path = path + "/" + run.gemm->label;
    std::string detail;
    bool ok = false;
    try {
      if (run.gemm) sc::setGemmSelection(run.gemm->selection);
      if (!ref.error.empty()) throw std::runtime_error("the float64 reference threw: " + ref.error);
      const int slot = int(cfg.dtype);
      if (!uploaded[slot]) {
        const auto bx = encode(data.x, cfg.dtype), by = encode(data.y, cfg.dtype);
        inputs[slot].x = uploadBytes(bx.data(), bx.size());
        inputs[slot].y = uploadBytes(by.data(), by.size());
        uploaded[slot] = true;
      }
      const sc::CudaLossRequest req = makeCudaRequest(c, data, inputs[slot], cfg);
      const Output one = runOnDevice(run.path, req, true);
      const Output two = runOnDevice(run.path, req, true);
      const Output fwd = runOnDevice(run.path, req, false);

      const double eLoss = scalarError(one.result.loss, ref.result.loss, 0);
      const double eDx = relativeError(one.dx, ref.dx), eDy = relativeError(one.dy, ref.dy);
      const double eDs = scalarError(one.result.dLogitScale, ref.result.dLogitScale, ref.scales.scale);
      const double eDb = c.kind == LossKind::Sigmoid ? scalarError(one.result.dLogitBias, ref.result.dLogitBias, ref.scales.bias)
                                                     : std::fabs(one.result.dLogitBias);
      const bool deterministic = sameBits(one, two);
      const double eFwd = std::fabs(fwd.result.loss - one.result.loss) / std::max(std::fabs(one.result.loss), 1e-300);
      const bool fwdSameBits = std::memcmp(&fwd.result.loss, &one.result.loss, sizeof(double)) == 0;
      const bool fwdOk = eFwd <= 1e-12 && fwd.result.dLogitScale == 0 && fwd.result.dLogitBias == 0;
      const bool accurate = eLoss <= cfg.lossTol && eDx <= cfg.gradTol && eDy <= cfg.gradTol && eDs <= cfg.gradTol &&
                            eDb <= cfg.gradTol;
      ok = accurate && deterministic && fwdOk && one.inBounds && two.inBounds;
      const auto key = [&](const GemmVariant* gemm) {
        return std::string(gemm ? gemm->label : "-") + " " + pathName(run.path) + " " + cfg.label;
      };
      results[key(run.gemm)] = one;
      std::string versusTwin;
      if (run.gemm && run.gemm->sameBitsAs) {
        const auto found = results.find(key(run.gemm->sameBitsAs));
        if (found != results.end()) {
          const bool same = sameBits(one, found->second);
          const std::string twin = run.gemm->sameBitsAs->label;
          versusTwin = same ? "  = " + twin + " bits" : "  DIFFERS FROM " + twin;
          ok = ok && same;
        }
      }
      char buffer[640];
      std::snprintf(buffer, sizeof buffer,
                    "loss %.1e (ref %.6g)  dX %.1e  dY %.1e  ds %.1e  db %.1e  [tol %.0e/%.0e]  2 runs %s  fwd-only %s  "
                    "%.1f ms%s%s",
                    eLoss, ref.result.loss, eDx, eDy, eDs, eDb, cfg.lossTol, cfg.gradTol,
                    deterministic ? "same bits" : "DIFFER", fwdOk ? (fwdSameBits ? "same bits" : "same") : "DIFFERS",
                    one.ms, versusTwin.c_str(), one.inBounds && two.inBounds ? "" : "  WROTE OUTSIDE THE GRADIENT BUFFERS");
      detail = buffer;
    } catch (const Error& e) {
      detail = std::string("threw siglip::Error (") + kindName(e.kind()) + ", " + e.argument() + "): " + e.what();
    } catch (const std::exception& e) {
      detail = std::string("threw: ") + e.what();
    }
    report(ok, caseLabel(c, path.c_str(), cfg.label) + "  " + detail);
    std::string why;
    if (!contextHealthy(&why)) {
      contextLost = true;
      report(false, "CUDA context lost after the case above (" + why + "): stopping the correctness checks");
    }
  }
  std::printf("       (float64 references: %.2f s)\n", refSeconds);
}

// ---- correctness: the ring's unit, one workspace call after call ---------------------------

// The ring runs sigmoidBlock step after step on one stream with one workspace. Here one
// workspace serves calls that alternate the one-stream and the overlapped schedule (G grows
// from one slot to two; the second stream and its events are created once, then reused, the
// first two pieces of a call relying on the previous call having drained it), each call's sums
// and gradients compared bit for bit with a call on a fresh workspace. 4200 × 4300 pairs
// cross the tile path's 4096-pair pieces both ways (four pieces, both slots twice).
void checkWorkspaceReuse(const std::vector<std::string>& gemmPaths) {
  const Case c{"one workspace across calls", LossKind::Sigmoid, 4200, 4300, 16, true, std::log(10.0), -10, 1.0, 0.6, 7};
  const Config& cfg = kBf16;
  const Data data = makeData(c);
  const auto bx = encode(data.x, cfg.dtype), by = encode(data.y, cfg.dtype);
  const sc::DeviceBuffer x = uploadBytes(bx.data(), bx.size()), y = uploadBytes(by.data(), by.size());
  const sc::DeviceBuffer imageIds = uploadBytes(data.imageIds.data(), data.imageIds.size() * sizeof(int32_t));
  const sc::DeviceBuffer textIds = uploadBytes(data.textIds.data(), data.textIds.size() * sizeof(int32_t));
  const size_t nx = size_t(c.n * c.d), ny = size_t(c.m * c.d);
  sc::DeviceBuffer gx(0, nx * sizeof(float)), gy(0, ny * sizeof(float));
  siglip::PairBlock block;
  block.image = {x.data(), c.n, c.d, cfg.dtype, 0};
  block.text = {y.data(), c.m, c.d, cfg.dtype, 0};
  block.imageIds = static_cast<const int32_t*>(imageIds.data());
  block.textIds = static_cast<const int32_t*>(textIds.data());
  block.temperature = std::exp(c.logitScale);
  block.bias = c.logitBias;
  block.normalizer = double(c.n);
  block.precision = cfg.precision;
  cudaStream_t stream = nullptr;
  cudaCheck(cudaStreamCreate(&stream), "cudaStreamCreate");
  struct BlockOutput {
    siglip::PairSums sums;
    std::vector<float> dx, dy;
  };
  // sigmoidBlock adds to the gradients: zeroed first, read back after (it returns synchronised).
  const auto run = [&](sc::SigmoidBlockWorkspace* workspace) {
    gx.zero();
    gy.zero();
    BlockOutput out;
    siglip::PairBlock withGradients = block;
    withGradients.dImage = static_cast<float*>(gx.data());
    withGradients.dText = static_cast<float*>(gy.data());
    out.sums = sc::sigmoidBlock(withGradients, stream, workspace);
    out.dx.resize(nx);
    out.dy.resize(ny);
    gx.download(out.dx.data(), nx * sizeof(float));
    gy.download(out.dy.data(), ny * sizeof(float));
    return out;
  };
  const auto same = [](const BlockOutput& a, const BlockOutput& b) {
    return std::memcmp(&a.sums, &b.sums, sizeof a.sums) == 0 &&
           std::memcmp(a.dx.data(), b.dx.data(), a.dx.size() * sizeof(float)) == 0 &&
           std::memcmp(a.dy.data(), b.dy.data(), a.dy.size() * sizeof(float)) == 0;
  };
  for (const GemmVariant* overlap : {&kPipelinedOverlap, &kCublasOverlap, &kCublasGemm1SmallOverlap}) {
    if (contextLost) break;
    const sc::GemmSelection& selection = overlap->selection;
    const bool needsCublas = selection.backward == sc::BackwardGemm::Cublas || selection.forward == sc::ForwardGemm::Cublas;
    if (needsCublas && !cublasLoads()) continue;
    if (!gemmPaths.empty() && std::find(gemmPaths.begin(), gemmPaths.end(), overlap->label) == gemmPaths.end()) continue;
    const GemmVariant& serial = *overlap->sameBitsAs;
    std::string detail;
    bool ok = true;
    try {
      sc::setGemmSelection(serial.selection);
      const BlockOutput want = run(nullptr);
      sc::SigmoidBlockWorkspace workspace;
      for (const GemmVariant* v : {&serial, overlap, overlap, &serial}) {
        sc::setGemmSelection(v->selection);
        const bool equal = same(run(&workspace), want);
        detail += std::string(v == overlap ? "  overlapped" : "  one-stream") + (equal ? " same bits" : " DIFFERS");
        ok = ok && equal;
      }
    } catch (const std::exception& e) {
      ok = false;
      detail += std::string("  threw: ") + e.what();
    }
    report(ok, caseLabel(c, (std::string("block/") + overlap->label).c_str(), cfg.label) +
                   "  calls on one workspace vs a fresh one:" + detail);
    std::string why;
    if (!contextHealthy(&why)) {
      contextLost = true;
      report(false, "CUDA context lost after the check above (" + why + ")");
    }
  }
  sc::setGemmSelection(kDefaultGemm.selection);
  cudaStreamDestroy(stream);
}

}  // namespace siglip::cuda_check
