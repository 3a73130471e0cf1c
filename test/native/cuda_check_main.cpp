// siglip_cuda_check: the CUDA backend checked against the float64 reference, and timed.
//
//   --correctness      every path (fused, naive, simple sigmoid; chunked and naive softmax) ×
//                      every input precision (float32 exact 'fp32', float32 on TF32 tensor cores
//                      'tf32', bfloat16, float16) on seeded shapes (tiny, odd, non-multiples of
//                      the 128/64 tiles, label ids, N≠M, the blocked drivers' 4096-pair block
//                      boundary, |u| up to ~1e4, softmax at t = 100), compared with
//                      csrc/core/reference.cpp as relative L2 error. The fused sigmoid and the
//                      chunked softmax run on each GEMM path (cuda_backend.h, GemmSelection):
//                      'cublas' (backward GEMMs on cuBLAS, when it loads), 'pipelined' and
//                      'simple' (every GEMM on the tile GEMM's pipelined or single-stage main
//                      loop); the fused sigmoid also with GEMM1 on cuBLAS and the separate
//                      epilogue pass, when cuBLAS loads: 'cublas-gemm1' (default pieces) and
//                      'cublas-gemm1-p128' (128-pair pieces, so that most cases cross pieces,
//                      with the backward GEMMs on the tile GEMM). Each fused sigmoid path but
//                      'simple' runs once more with the overlapped schedule (SIGLIP_GEMM_OVERLAP:
//                      the backward GEMMs on a second stream), '<path>-overlap', which must give
//                      the same bits as its one-stream twin; and sigmoidBlock (the ring's unit)
//                      on one workspace across calls that alternate the two schedules must give
//                      a fresh workspace's bits. --gemm keeps only the runs on the listed
//                      paths. Plus: two runs give identical bits, forward-only gives
//                      the same loss, nothing is written outside the gradient buffers, and bad
//                      requests (device ordinal, out of memory, NaN, dtype/precision
//                      mismatches, cuBLAS required by SIGLIP_CUBLAS=on or SIGLIP_GEMM1=cublas
//                      but missing, a piece size out of bounds) throw siglip::Error without
//                      crashing; and 'host-loss': the entry for host memory the addon calls
//                      (cuda::lossFromHost, makeShardResident) against the reference, with its
//                      bad inputs. One line per check.
//                      --shapes N×M×D[i],… replaces the built-in cases with these shapes
//                      (written NxMxD; a trailing i: with label ids), each as a sigmoid and a
//                      softmax case named "shape NxMxD[ ids]"; --precisions fp32,tf32,bf16,fp16
//                      keeps only the runs in those precisions (both for a grid of edges: every
//                      shape in one precision, every precision on a few shapes).
//   --timing           per N and dtype: the cuBLAS floor (the same three GEMMs by cublasGemmEx),
//                      fused fwd+bwd on each GEMM path ('fused fwd+bwd': the default, backward
//                      GEMMs on cuBLAS when it loads; '… pipelined' and '… simple': every GEMM
//                      on the tile GEMM; '… cublas-gemm1': GEMM1 on cuBLAS too, then the
//                      epilogue pass, in 2048² pieces, and '… cublas-gemm1 p4096' in 4096²
//                      pieces; '… overlap': the default and both cublas-gemm1 rows again with
//                      the overlapped schedule), fused fwd (default, cublas-gemm1 and simple),
//                      chunked softmax, naive sigmoid and naive softmax fwd+bwd; CUDA-event
//                      medians, peak extra device memory; a table, and JSON with --json FILE.
//   --reference-only   the CPU half of --correctness (data and float64 references, timed) and
//                      the cuBLAS loader's failure paths, no GPU needed: a dry run for the
//                      check's CPU cost.
//
// cuBLAS is loaded at run time (csrc/cuda/cublas_loader.h) from $SIGLIP_CUBLAS_LIBRARY, which
// --cublas PATH sets, or the usual places; the floor and the backend use the same library.
//
// Tolerances (SPEC.md "Precision"), relative ‖out − ref‖ / ‖ref‖: fp32 loss 1e-5, gradients
// 1e-4; tf32 5e-3; bfloat16 / float16 2e-2. The inputs of the reduced precisions are rounded
// on the host first (bf16/fp16 as uploaded, tf32 as the tensor cores round them: nearest,
// ties away) and the reference is computed on the rounded values, so a tolerance measures
// the compute precision, not the rounding of the inputs. ∂s and ∂b are sums of many signed
// terms: their error is relative to max(|ref|, 1e-3 · Σ|terms|), as in siglip_core_check.
//
// Build: cmake -S . -B build-gpu -DSIGLIP_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90
//        cmake --build build-gpu --target siglip_cuda_check
// Run:   build-gpu/siglip_cuda_check --correctness [--filter TEXT[|TEXT…]] [--gemm PATH[,PATH…]] [--seed N]
//            [--cublas PATH] [--shapes NxMxD[i][,…]] [--precisions fp32,tf32,bf16,fp16]
//        build-gpu/siglip_cuda_check --timing --n 4096,16384 --d 768 --dtypes bf16,tf32 --runs 5
//            [--warmup 1] [--case-budget-s 6] [--deadline-s 0] [--simple-max-n N] [--cublas PATH]
//            [--json FILE]
// Exit status: 0 every check passed; 1 a check failed or a step threw; 2 no usable CUDA
// device (the reason is printed); 3 bad command line.
#include "cuda_check.h"

using namespace siglip;
using namespace siglip::cuda_check;

namespace {

void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --correctness [--filter TEXT[|TEXT...]] [--gemm PATH[,PATH...]] [--seed N] [--cublas PATH]\n"
               "                        [--shapes NxMxD[i][,...]] [--precisions fp32,tf32,bf16,fp16]\n"
               "       %s --timing [--n 4096,16384,65536] [--d 768] [--dtypes bf16,tf32] [--runs 5] [--warmup 1]\n"
               "                   [--case-budget-s 6] [--deadline-s 0] [--simple-max-n 0] [--cublas PATH] [--json FILE]\n"
               "       %s --reference-only [--filter TEXT[|TEXT...]] [--seed N]   (CPU only)\n"
               "--cublas PATH: a libcublas.so file or its folder (sets SIGLIP_CUBLAS_LIBRARY); --simple-max-n N: time the\n"
               "simple tile GEMM only up to N (0: always); --gemm: only the runs on these GEMM paths (cublas, pipelined,\n"
               "simple, cublas-gemm1, cublas-gemm1-p128, default: the naive baselines'; each but simple and default\n"
               "also as PATH-overlap, the fused sigmoid's overlapped schedule)\n",
               argv0, argv0, argv0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode, filter, jsonPath, cublasPath, gemmList, dtypeList = "bf16,tf32", nList = "4096,16384,65536";
  std::string shapeList, precisionList;
  uint64_t seed = 20240611;
  int64_t d = 768, simpleMaxN = 0;
  TimingContext tc;
  for (int k = 1; k < argc; ++k) {
    const std::string arg = argv[k];
    auto value = [&]() -> std::string {
      if (k + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        usage(argv[0]);
        std::exit(3);
      }
      return argv[++k];
    };
    if (arg == "--correctness" || arg == "--timing" || arg == "--reference-only") mode = arg.substr(2);
    else if (arg == "--filter") filter = value();
    else if (arg == "--gemm") gemmList = value();
    else if (arg == "--shapes") shapeList = value();
    else if (arg == "--precisions") precisionList = value();
    else if (arg == "--seed") seed = std::strtoull(value().c_str(), nullptr, 10);
    else if (arg == "--n") nList = value();
    else if (arg == "--d") d = std::atoll(value().c_str());
    else if (arg == "--dtypes") dtypeList = value();
    else if (arg == "--runs") tc.runs = std::max(1, std::atoi(value().c_str()));
    else if (arg == "--warmup") tc.warmup = std::max(0, std::atoi(value().c_str()));
    else if (arg == "--case-budget-s") tc.caseBudgetSeconds = std::atof(value().c_str());
    else if (arg == "--deadline-s") tc.deadlineSeconds = std::atof(value().c_str());
    else if (arg == "--json") jsonPath = value();
    else if (arg == "--cublas") cublasPath = value();
    else if (arg == "--simple-max-n") simpleMaxN = std::atoll(value().c_str());
    else {
      std::fprintf(stderr, "unknown argument: %s\n", arg.c_str());
      usage(argv[0]);
      return 3;
    }
  }
  if (mode.empty()) {
    usage(argv[0]);
    return 3;
  }
  // Before anything loads cuBLAS: the backend and the floor share the process's library.
  if (!cublasPath.empty()) setenv("SIGLIP_CUBLAS_LIBRARY", cublasPath.c_str(), 1);
  const int hardwareThreads = std::max(1, int(std::thread::hardware_concurrency()));
  if (mode == "reference-only") return referenceOnly(seed, filter, hardwareThreads);

  std::string reason;
  const int devices = sc::deviceCount(&reason);
  if (devices <= 0) {
    std::printf("no CUDA device: %s\n", reason.empty() ? "none found" : reason.c_str());
    return 2;
  }
  sc::DeviceInfo info;
  try {
    info = sc::deviceInfo(0);
  } catch (const std::exception& e) {
    std::printf("no CUDA device: device 0 unusable: %s\n", e.what());
    return 2;
  }
  std::printf("siglip_cuda_check --%s: %s (sm_%d%d, %.1f GiB, %.1f GiB free), %d device(s), driver %d, runtime %d, "
              "%d host threads\n",
              mode.c_str(), info.name.c_str(), info.computeMajor, info.computeMinor,
              double(info.totalMemory) / (1 << 30), double(info.freeMemory) / (1 << 30), devices, sc::driverVersion(),
              sc::runtimeVersion(), hardwareThreads);
  const sc::GemmPathInfo paths = sc::gemmPathInfo();
  std::printf("GEMM paths by default: forward %s, backward %s, tile %s, overlap %s%s%s%s\n", paths.forward.c_str(),
              paths.backward.c_str(), paths.tile.c_str(), paths.overlap ? "on" : "off",
              paths.cublasLibrary.empty() ? "" : (", cuBLAS " + paths.cublasLibrary + " " + paths.cublasVersion).c_str(),
              paths.reason.empty() ? "" : "; ", paths.reason.c_str());
  std::fflush(stdout);

  if (mode == "correctness") {
    const auto start = Clock::now();
    std::printf("tolerances (relative L2): fp32 loss 1e-5 grads 1e-4; tf32 5e-3; bf16/fp16 2e-2; ds/db relative to "
                "max(|ref|, 1e-3*sum|terms|); references on the rounded inputs\n");
    const std::vector<std::string> gemmPaths = parseWords(gemmList);
    for (const std::string& g : gemmPaths) {
      // A listed path no run takes here fails, rather than passing with nothing checked.
      const bool known = std::any_of(std::begin(kCheckedVariants), std::end(kCheckedVariants),
                                     [&](const GemmVariant* v) { return g == v->label; });
      if (!known) report(false, "--gemm " + g + ": no such GEMM path");
      else if (g.rfind("cublas", 0) == 0 && !cublasLoads()) report(false, "--gemm " + g + ": cuBLAS does not load here");
    }
    g_precisions = parseWords(precisionList);
    for (const std::string& p : g_precisions)
      if (!configByLabel(p)) report(false, "--precisions " + p + ": no such precision (fp32, tf32, bf16, fp16)");
    std::vector<Case> cases;
    if (shapeList.empty()) cases = buildCases(seed);
    else if (!shapeCases(shapeList, seed, &cases)) report(false, "--shapes " + shapeList + ": expected NxMxD[i][,...]");
    for (const Case& c : cases) {
      if (contextLost) break;
      const std::string label = std::string(c.kind == LossKind::Sigmoid ? "sigmoid " : "softmax ") + c.name;
      if (!matchesFilter(label, filter)) continue;
      try {
        checkCase(c, hardwareThreads, gemmPaths);
      } catch (const std::exception& e) {
        report(false, caseLabel(c, "-", "-") + "  threw outside a path: " + e.what());
      }
    }
    // With --shapes only the shapes run (not the workspace-reuse case nor the bad requests).
    if (!contextLost && shapeList.empty() && matchesFilter("sigmoid one workspace across calls", filter)) {
      try {
        checkWorkspaceReuse(gemmPaths);
      } catch (const std::exception& e) {
        report(false, std::string("one workspace across calls: setup threw: ") + e.what());
      }
    }
    if (!contextLost && shapeList.empty() && matchesFilter("bad-request", filter)) {
      try {
        checkBadRequests();
      } catch (const std::exception& e) {
        report(false, std::string("bad-request setup threw: ") + e.what());
      }
    }
    if (!contextLost && shapeList.empty() && matchesFilter("host-loss", filter)) {
      try {
        checkHostLoss();
      } catch (const std::exception& e) {
        report(false, std::string("host-loss threw: ") + e.what());
      }
    }
    std::printf("siglip_cuda_check --correctness: %d checks, %d FAILED, %.1f s\n", checks, failures, secondsSince(start));
    return failures ? 1 : 0;
  }

  // --timing
  const std::vector<int64_t> ns = parseList(nList);
  const std::vector<std::string> dtypes = parseWords(dtypeList);
  if (ns.empty() || d <= 0 || dtypes.empty()) {
    usage(argv[0]);
    return 3;
  }
  tc.jsonPath = jsonPath;
  const FloorCublas cublas;
  if (cublas.ok())
    std::printf("cuBLAS: %s%s\n", cublas.note.c_str(), cublas.lib->ltPath.empty() ? "" : (", with " + cublas.lib->ltPath).c_str());
  else
    std::printf("cuBLAS unavailable, floor rows skipped: %s\n", cublas.note.c_str());
  std::printf("timing: median of up to %d runs after %d warm-up(s), at most ~%.0f s per case%s; TFLOP/s counts 2*N*N*D "
              "per GEMM (3 GEMMs fwd+bwd, 1 fwd); extra MB = peak device memory beyond inputs and gradients (and "
              "beyond the cuBLAS handles' workspaces, 4 or 32 MiB each, held for the process: one, or two for GEMM1 on "
              "cuBLAS overlapped)\n",
              tc.runs, tc.warmup, tc.caseBudgetSeconds,
              tc.deadlineSeconds > 0 ? (", no new case after " + std::to_string(int(tc.deadlineSeconds)) + " s").c_str() : "");
  tc.header = "  \"tool\": \"siglip_cuda_check --timing\",\n  \"device\": \"" + jsonEscape(info.name) +
              "\",\n  \"compute_capability\": \"" + std::to_string(info.computeMajor) + "." +
              std::to_string(info.computeMinor) + "\",\n  \"memory_gib\": " + jsonNumber(double(info.totalMemory) / (1 << 30)) +
              ",\n  \"driver\": " + std::to_string(sc::driverVersion()) + ",\n  \"runtime\": " +
              std::to_string(sc::runtimeVersion()) + ",\n  \"cublas\": \"" + jsonEscape(cublas.note) +
              "\",\n  \"cublas_ok\": " + (cublas.ok() ? "true" : "false") + ",\n  \"gemm_forward\": \"" +
              paths.forward + "\",\n  \"gemm_overlap\": " + (paths.overlap ? "true" : "false") + ",\n  \"gemm_backward\": \"" +
              paths.backward + "\",\n  \"gemm_tile\": \"" + paths.tile + "\",\n  \"gemm_reason\": \"" +
              jsonEscape(paths.reason) + "\",\n  \"d\": " + std::to_string(d) +
              ",\n  \"runs\": " + std::to_string(tc.runs) + ",\n  \"warmup\": " + std::to_string(tc.warmup) + ",\n";
  try {
    return timing(tc, ns, d, dtypes, cublas, simpleMaxN);
  } catch (const std::exception& e) {
    std::printf("siglip_cuda_check --timing: %s\n", e.what());
    writeJson(tc);
    return 1;
  }
}
