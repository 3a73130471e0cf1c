// siglip_cuda_check: small utilities, the precisions and GEMM paths checked, the counters.
#include "cuda_check.h"

namespace siglip::cuda_check {

// ---- small utilities --------------------------------------------------------------------

// The tool's own CUDA runtime calls (events, memory info): failures become exceptions.
void cudaCheck(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}

// After every case: a sticky error (illegal address, launch failure) poisons the context and
// every later call would fail too, so the caller stops instead of printing hundreds of FAILs.
bool contextHealthy(std::string* why) {
  const cudaError_t status = cudaDeviceSynchronize();
  if (status == cudaSuccess) return true;
  if (why) *why = std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + ")";
  return false;
}

const char* kindName(ErrorKind k) {
  switch (k) {
    case ErrorKind::Type: return "Type";
    case ErrorKind::Range: return "Range";
    case ErrorKind::OutOfMemory: return "OutOfMemory";
    default: return "Internal";
  }
}

std::vector<int64_t> parseList(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(std::atoll(item.c_str()));
  }
  return out;
}

std::vector<std::string> parseWords(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// --filter: '|'-separated alternatives; a label matches when it contains one of them.
bool matchesFilter(const std::string& label, const std::string& filter) {
  if (filter.empty()) return true;
  std::stringstream ss(filter);
  std::string alternative;
  while (std::getline(ss, alternative, '|'))
    if (!alternative.empty() && label.find(alternative) != std::string::npos) return true;
  return false;
}

// ---- precisions -------------------------------------------------------------------------

float roundTo(float v, Rounding r) {
  switch (r) {
    case Rounding::Tf32: return tf32Value(v);
    case Rounding::BFloat16: return __bfloat162float(__float2bfloat16(v));
    case Rounding::Float16: return __half2float(__float2half(v));
    default: return v;
  }
}

// 16-bit inputs take Precision::TF32 (the default: "16-bit inputs always use tensor cores").
const Config kFp32{"fp32", sc::DType::Float32, sc::Precision::FP32, Rounding::None, 1e-5, 1e-4};
const Config kTf32{"tf32", sc::DType::Float32, sc::Precision::TF32, Rounding::Tf32, 5e-3, 5e-3};
const Config kBf16{"bf16", sc::DType::BFloat16, sc::Precision::TF32, Rounding::BFloat16, 2e-2, 2e-2};
const Config kFp16{"fp16", sc::DType::Float16, sc::Precision::TF32, Rounding::Float16, 2e-2, 2e-2};

const Config* configByLabel(const std::string& label) {
  for (const Config* c : {&kFp32, &kTf32, &kBf16, &kFp16})
    if (label == c->label) return c;
  return nullptr;
}

// Host float32 → the dtype's bytes, for upload.
std::vector<unsigned char> encode(const std::vector<float>& v, sc::DType dtype) {
  std::vector<unsigned char> out(v.size() * sc::dtypeSize(dtype));
  if (dtype == sc::DType::Float32) {
    std::memcpy(out.data(), v.data(), out.size());
  } else if (dtype == sc::DType::BFloat16) {
    auto* p = reinterpret_cast<__nv_bfloat16*>(out.data());
    for (size_t k = 0; k < v.size(); ++k) p[k] = __float2bfloat16(v[k]);
  } else {
    auto* p = reinterpret_cast<__half*>(out.data());
    for (size_t k = 0; k < v.size(); ++k) p[k] = __float2half(v[k]);
  }
  return out;
}

// DeviceBuffer::upload is a synchronous cudaMemcpy from pageable memory, which may return
// before the DMA lands; the backend then works on non-blocking streams that do not wait for
// the legacy stream. Synchronising the device after every upload rules that race out here.
sc::DeviceBuffer uploadBytes(const void* data, size_t bytes) {
  sc::DeviceBuffer buffer(0, bytes);
  if (bytes) buffer.upload(data, bytes);
  cudaCheck(cudaDeviceSynchronize(), "cudaDeviceSynchronize after upload");
  return buffer;
}


// ---- correctness: cases and data ---------------------------------------------------------

const char* pathName(Path p) {
  switch (p) {
    case Path::Fused: return "fused";
    case Path::Naive: return "naive";
    case Path::Simple: return "simple";
    case Path::SoftmaxChunked: return "chunked";
    default: return "naive";
  }
}

const GemmVariant kCublasGemm{"cublas", {sc::BackwardGemm::Cublas, sc::TileGemm::Pipelined}};
const GemmVariant kPipelinedGemm{"pipelined", {sc::BackwardGemm::Tile, sc::TileGemm::Pipelined}};
// The simple main loop issues the same MMAs, in the same k order, on the same values (zeros
// past the edges) as the pipelined one, and the same epilogue follows: the same bits, which
// checks the pipelined copies far more sharply than a tolerance.
const GemmVariant kSimpleGemm{"simple", {sc::BackwardGemm::Tile, sc::TileGemm::Simple}, &kPipelinedGemm};
// GEMM1 on cuBLAS and the epilogue as a pass over S (SIGLIP_GEMM1=cublas), backward GEMMs on
// cuBLAS: in the default pieces, and (timing) in 4096² pieces like the tile path's.
const GemmVariant kCublasGemm1{
    "cublas-gemm1", {sc::BackwardGemm::Auto, sc::TileGemm::Pipelined, sc::ForwardGemm::Cublas}};
const GemmVariant kCublasGemm1Wide{
    "cublas-gemm1 p4096", {sc::BackwardGemm::Auto, sc::TileGemm::Pipelined, sc::ForwardGemm::Cublas, 4096}};
// The smallest pieces, so that every correctness case with over 128 rows or columns crosses
// pieces (ids, offsets and partial edges per piece), and the backward GEMMs on the tile GEMM:
// a lease that serves GEMM1 alone.
const GemmVariant kCublasGemm1Small{
    "cublas-gemm1-p128",
    {sc::BackwardGemm::Tile, sc::TileGemm::Pipelined, sc::ForwardGemm::Cublas, sc::kMinCublasGemm1Piece}};
// What a loss call uses when nobody chooses (whatever SIGLIP_CUBLAS / SIGLIP_TILE_GEMM /
// SIGLIP_GEMM1 / SIGLIP_GEMM_OVERLAP say here): cuBLAS for the backward GEMMs when it loads,
// the pipelined tile GEMM for GEMM1, one stream.
const GemmVariant kDefaultGemm{"default", {sc::BackwardGemm::Auto, sc::TileGemm::Pipelined}};

// The fused sigmoid's overlapped schedule (SIGLIP_GEMM_OVERLAP=on: the backward GEMMs on a
// second stream, G in two slots): every launch's inputs and each stream's order are those of
// the one-stream schedule, so each must repeat its one-stream twin's bits. On cuBLAS the
// second stream has a handle of its own; with the tile GEMM's backward ('pipelined',
// 'cublas-gemm1-p128') it launches the tile kernels there. The 128-pair pieces cross pieces in
// most cases, so they check the slots' hand-over far more than 4096-pair pieces do.
sc::GemmSelection overlapped(sc::GemmSelection selection) {
  selection.overlap = true;
  return selection;
}
const GemmVariant kCublasOverlap{"cublas-overlap", overlapped(kCublasGemm.selection), &kCublasGemm};
const GemmVariant kPipelinedOverlap{"pipelined-overlap", overlapped(kPipelinedGemm.selection), &kPipelinedGemm};
const GemmVariant kCublasGemm1Overlap{"cublas-gemm1-overlap", overlapped(kCublasGemm1.selection), &kCublasGemm1};
const GemmVariant kCublasGemm1SmallOverlap{"cublas-gemm1-p128-overlap", overlapped(kCublasGemm1Small.selection),
                                           &kCublasGemm1Small};
// Timing only: the rows the overlapped schedule is judged by.
const GemmVariant kDefaultOverlap{"default overlap", overlapped(kDefaultGemm.selection)};
const GemmVariant kCublasGemm1WideOverlap{"cublas-gemm1 p4096 overlap", overlapped(kCublasGemm1Wide.selection)};

// Every path --gemm can name.
const GemmVariant* const kCheckedVariants[] = {&kCublasGemm,        &kPipelinedGemm,    &kSimpleGemm,
                                               &kCublasGemm1,       &kCublasGemm1Small, &kDefaultGemm,
                                               &kCublasOverlap,     &kPipelinedOverlap, &kCublasGemm1Overlap,
                                               &kCublasGemm1SmallOverlap};

// Whether the process's cuBLAS loaded: the 'cublas' variants run only then.
bool cublasLoads() { return sc::processCublas() != nullptr; }


// ---- the counters ----------------------------------------------------------------------

int failures = 0;
int checks = 0;
bool contextLost = false;

void report(bool ok, const std::string& line) {
  ++checks;
  if (!ok) ++failures;
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", line.c_str());
  std::fflush(stdout);
}

std::string caseLabel(const Case& c, const char* path, const char* config) {
  char buffer[256];
  std::snprintf(buffer, sizeof buffer, "%-7s %-31s %-4s %-24s N=%-5lld M=%-5lld D=%-4lld ids=%-3s",
                c.kind == LossKind::Sigmoid ? "sigmoid" : "softmax", path, config, c.name.c_str(), (long long)c.n,
                (long long)c.m, (long long)c.d, c.ids ? "yes" : "no");
  return buffer;
}

}  // namespace siglip::cuda_check
