// siglip_cuda_check's shared part: what its files (cuda_check_*.cpp, one job each; the
// command line and what each mode does are described in cuda_check_main.cpp) have in common:
// the precisions and GEMM paths checked, the cases, the float64 references, running the
// backend with canaried gradients, the PASS/FAIL counters, and the timing rows.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/errors.h"
#include "check_support.h"
#include "core/loss_request.h"
#include "core/reference.h"
#include "core/sigmoid_math.h"
#include "cuda/cublas_loader.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_block.h"

namespace siglip::cuda_check {

using namespace siglip::check;
namespace sc = siglip::cuda;

using Clock = std::chrono::steady_clock;
inline double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// ---- precisions -------------------------------------------------------------------------

enum class Rounding { None, Tf32, BFloat16, Float16 };

struct Config {
  const char* label;
  sc::DType dtype;
  sc::Precision precision;
  Rounding rounding;
  double lossTol, gradTol;
};

// ---- paths ------------------------------------------------------------------------------

enum class Path { Fused, Naive, Simple, SoftmaxChunked, SoftmaxNaive };

// The GEMM paths a loss call can take (cuda_backend.h). Each is set for the whole process
// (setGemmSelection) before the runs that use it. A path whose results must repeat another's
// bit for bit names it in sameBitsAs (checked when both run on a case).
struct GemmVariant {
  const char* label;
  sc::GemmSelection selection;
  const GemmVariant* sameBitsAs = nullptr;
};

// ---- cases and references ---------------------------------------------------------------

// Case, its makeData and ScalarScales: check_support.h (shared with siglip_core_check).

struct Reference {
  Rounding rounding = Rounding::None;
  LossResult result;
  std::vector<double> dx, dy;
  ScalarScales scales;
  double seconds = 0;
  std::string error;  // non-empty when the reference itself threw
};

// The paths (and precisions) each loss is checked on.
struct Run {
  Path path;
  const Config* config;
  const GemmVariant* gemm;  // null: the path runs no GEMM
};

// ---- running the backend ----------------------------------------------------------------

// Gradient buffers on the device between canaries (must survive), their inside NaN (so an
// element the backend forgets shows up as an infinite error).
constexpr size_t kCanary = 64;
constexpr float kCanaryValue = -12345.f;

struct DeviceGrads {
  sc::DeviceBuffer buffer;
  size_t count = 0;
  float* data() const { return static_cast<float*>(buffer.data()) + kCanary; }
};

struct Output {
  LossResult result;
  std::vector<float> dx, dy;
  bool inBounds = true;
  double ms = 0;
};

struct DeviceInputs {
  sc::DeviceBuffer x, y;
};

// ---- timing -----------------------------------------------------------------------------

struct TimingRow {
  std::string name;  // "fused fwd+bwd", …
  std::string pass;  // "fwd+bwd" | "fwd" (which floor it is compared with)
  int64_t n = 0, d = 0;
  std::string dtype;
  std::string status = "ok";  // ok | skipped | error
  std::string note;
  double ms = NAN, msMin = NAN, hostMs = NAN;
  int runs = 0;
  double flops = 0;
  double extraBytes = NAN;
  double loss = NAN;
  double floorMs = NAN;
};

struct TimingContext {
  int runs = 5, warmup = 1;
  double caseBudgetSeconds = 6, deadlineSeconds = 0;
  Clock::time_point start = Clock::now();
  std::string jsonPath;
  std::string header;  // the JSON fields describing the machine and the arguments
  std::vector<TimingRow> rows;
  cudaEvent_t begin = nullptr, end = nullptr;
};

// The floor's own cuBLAS handle (the process's library, as the backend uses), on the legacy
// stream where the timing events are recorded.
struct FloorCublas {
  const sc::CublasLibrary* lib = nullptr;
  sc::CublasHandle handle = nullptr;
  std::string note;  // the library and version, or why there is no floor
  FloorCublas() {
    std::string why;
    lib = sc::processCublas(&why);
    if (!lib) {
      note = why;
      return;
    }
    const sc::CublasStatus status = lib->create(&handle);
    if (status != 0) {
      handle = nullptr;
      note = lib->path + ": cublasCreate_v2 returned " + lib->statusText(status);
      return;
    }
    if (lib->setStream(handle, nullptr) != 0) std::printf("cublasSetStream_v2(NULL) failed; continuing with the handle's default\n");
    note = lib->path + " (version " + lib->version + ")";
  }
  ~FloorCublas() {
    if (handle) lib->destroy(handle);
  }
  FloorCublas(const FloorCublas&) = delete;
  FloorCublas& operator=(const FloorCublas&) = delete;
  bool ok() const { return handle != nullptr; }
};

// ---- cuda_check_common.cpp: utilities, precisions, GEMM paths, counters ----------------

void cudaCheck(cudaError_t status, const char* what);
bool contextHealthy(std::string* why);
const char* kindName(ErrorKind k);
std::vector<int64_t> parseList(const std::string& text);
std::vector<std::string> parseWords(const std::string& text);
bool matchesFilter(const std::string& label, const std::string& filter);
float roundTo(float v, Rounding r);
extern const Config kFp32, kTf32, kBf16, kFp16;
const Config* configByLabel(const std::string& label);
std::vector<unsigned char> encode(const std::vector<float>& v, sc::DType dtype);
sc::DeviceBuffer uploadBytes(const void* data, size_t bytes);
const char* pathName(Path p);
extern const GemmVariant kCublasGemm, kPipelinedGemm, kSimpleGemm, kCublasGemm1, kCublasGemm1Wide, kCublasGemm1Small,
    kDefaultGemm, kCublasOverlap, kPipelinedOverlap, kCublasGemm1Overlap, kCublasGemm1SmallOverlap, kDefaultOverlap,
    kCublasGemm1WideOverlap;
extern const GemmVariant* const kCheckedVariants[10];
bool cublasLoads();
extern int failures;
extern int checks;
extern bool contextLost;
extern std::vector<std::string> g_precisions;
void report(bool ok, const std::string& line);
std::string caseLabel(const Case& c, const char* path, const char* config);

// ---- cuda_check_correctness.cpp ----------------------------------------------------------

std::vector<Case> buildCases(uint64_t seed);
bool shapeCases(const std::string& list, uint64_t seed, std::vector<Case>* out);
Reference computeReference(const Case& c, const Data& data, Rounding rounding, int scaleThreads);
std::vector<Run> runsFor(LossKind kind);
std::vector<Rounding> roundingsFor(LossKind kind);
// The references of every rounding of roundingsFor(c.kind), computed concurrently.
std::vector<Reference> computeReferences(const Case& c, const Data& data, int hardwareThreads);
DeviceGrads makeDeviceGrads(size_t count);
bool readDeviceGrads(const DeviceGrads& g, std::vector<float>& out);
LossResult callPath(Path path, sc::CudaLossRequest req, siglip::GradientOutputs grads);
sc::CudaLossRequest makeCudaRequest(const Case& c, const Data& data, const DeviceInputs& in, const Config& cfg);
Output runOnDevice(Path path, const sc::CudaLossRequest& req, bool withGrads);
bool sameBits(const Output& a, const Output& b);
void checkCase(const Case& c, int hardwareThreads, const std::vector<std::string>& gemmPaths);
void checkWorkspaceReuse(const std::vector<std::string>& gemmPaths);

// ---- cuda_check_bad_requests.cpp, _host_loss.cpp, _cublas.cpp, _dry_run.cpp -----------------

void checkBadRequests();
void checkHostLoss();  // cuda_check_host_loss.cpp
void checkCublasLoader();
int referenceOnly(uint64_t seed, const std::string& filter, int hardwareThreads);

// ---- cuda_check_timing.cpp ---------------------------------------------------------------

std::string jsonEscape(const std::string& s);
std::string jsonNumber(double v);
void writeJson(const TimingContext& tc);
int timing(TimingContext& tc, const std::vector<int64_t>& ns, int64_t d, const std::vector<std::string>& dtypes,
           const FloorCublas& cublas, int64_t simpleMaxN);

}  // namespace siglip::cuda_check
