// siglip_cuda_check --correctness: the bad requests (each must throw siglip::Error, no crash).
#include "cuda_check.h"

namespace siglip::cuda_check {

// ---- correctness: bad requests ----------------------------------------------------------

// Puts the default GEMM paths back when a bad request that changed them is done.
struct RestoreDefaultGemm {
  ~RestoreDefaultGemm() { sc::setGemmSelection(kDefaultGemm.selection); }
};

struct BadCase {
  std::string name;
  std::vector<ErrorKind> kinds;  // acceptable kinds (first = the preferred one)
  std::string argument;          // expected argument name, or empty for any
  std::function<void()> body;
};

void checkBadRequests() {
  sc::setGemmSelection(kDefaultGemm.selection);
  // A valid 4×3 request to spoil, on device 0.
  std::vector<float> x(12, 0.25f), y(12, -0.5f);
  const auto bx = encode(x, sc::DType::Float32), by = encode(y, sc::DType::Float32);
  sc::DeviceBuffer dx = uploadBytes(bx.data(), bx.size()), dy = uploadBytes(by.data(), by.size());
  std::vector<float> xn = x;
  xn[7] = std::numeric_limits<float>::quiet_NaN();
  const auto bxn = encode(xn, sc::DType::Float32);
  sc::DeviceBuffer dxn = uploadBytes(bxn.data(), bxn.size());
  std::vector<float> yi = y;
  yi[11] = std::numeric_limits<float>::infinity();
  const auto byi = encode(yi, sc::DType::BFloat16);
  const auto bxb = encode(x, sc::DType::BFloat16);
  sc::DeviceBuffer dyi = uploadBytes(byi.data(), byi.size()), dxb = uploadBytes(bxb.data(), bxb.size());
  sc::DeviceBuffer gradX(0, 12 * sizeof(float)), gradY(0, 12 * sizeof(float));
  // Finite entries whose dot products overflow float32 (3 · 1e40).
  const std::vector<float> huge(12, 1e20f);
  const auto bhuge = encode(huge, sc::DType::Float32);
  sc::DeviceBuffer dhuge = uploadBytes(bhuge.data(), bhuge.size());

  auto request = [&](const sc::DeviceBuffer& a, const sc::DeviceBuffer& b, sc::DType dtype) {
    sc::CudaLossRequest r;
    r.image = {a.data(), 4, 3, dtype, 0};
    r.text = {b.data(), 4, 3, dtype, 0};
    r.logitScale = std::log(10.0);
    r.logitBias = -10;
    return r;
  };

  std::vector<BadCase> cases = {
      {"DeviceBuffer on device 99", {ErrorKind::Range}, "options.device", [] { sc::DeviceBuffer b(99, 16); }},
      {"deviceInfo(99)", {ErrorKind::Range}, "options.device", [] { sc::deviceInfo(99); }},
      {"request on device 99", {ErrorKind::Range, ErrorKind::Internal}, "",
       [&] {
         auto r = request(dx, dy, sc::DType::Float32);
         r.image.device = r.text.device = 99;
         sc::sigmoidLoss(r, {});
       }},
      {"DeviceBuffer of 2^50 bytes", {ErrorKind::OutOfMemory}, "", [] { sc::DeviceBuffer b(0, size_t(1) << 50); }},
      {"NaN in image (float32)", {ErrorKind::Range}, "image.data",
       [&] { sc::sigmoidLoss(request(dxn, dy, sc::DType::Float32), {}); }},
      {"Inf in text (bfloat16)", {ErrorKind::Range}, "text.data",
       [&] { sc::sigmoidLoss(request(dxb, dyi, sc::DType::BFloat16), {}); }},
      {"NaN in image, softmax", {ErrorKind::Range}, "image.data",
       [&] {
         auto r = request(dxn, dy, sc::DType::Float32);
         r.method = Method::Naive;
         sc::softmaxLoss(r, {});
       }},
      {"NaN in image, simple", {ErrorKind::Range}, "image.data",
       [&] { sc::sigmoidLossSimple(request(dxn, dy, sc::DType::Float32), {}); }},
      {"precision fp32 with bfloat16", {ErrorKind::Range}, "options.precision",
       [&] {
         auto r = request(dxb, dxb, sc::DType::BFloat16);
         r.precision = sc::Precision::FP32;
         sc::sigmoidLoss(r, {});
       }},
      {"dtype mismatch", {ErrorKind::Type}, "text",
       [&] {
         auto r = request(dx, dxb, sc::DType::Float32);
         r.text.dtype = sc::DType::BFloat16;
         sc::sigmoidLoss(r, {});
       }},
      {"NaN in image, softmax chunked", {ErrorKind::Range}, "image.data",
       [&] {
         auto r = request(dxn, dy, sc::DType::Float32);
         r.method = Method::Chunked;
         sc::softmaxLoss(r, {});
       }},
      {"softmax chunked, similarities overflow float32", {ErrorKind::Range}, "image.data",
       [&] {
         auto r = request(dhuge, dhuge, sc::DType::Float32);
         r.method = Method::Chunked;
         sc::softmaxLoss(r, {static_cast<float*>(gradX.data()), static_cast<float*>(gradY.data())});
       }},
      {"only one gradient output", {ErrorKind::Internal}, "grads",
       [&] {
         siglip::GradientOutputs g;
         g.image = static_cast<float*>(gradX.data());
         sc::sigmoidLoss(request(dx, dy, sc::DType::Float32), g);
       }},
      {"N != M without ids", {ErrorKind::Range}, "text",
       [&] {
         auto r = request(dx, dy, sc::DType::Float32);
         r.text.rows = 3;
         sc::sigmoidLoss(r, {});
       }},
      {"NaN logitScale", {ErrorKind::Range}, "options.logitScale",
       [&] {
         auto r = request(dx, dy, sc::DType::Float32);
         r.logitScale = std::nan("");
         sc::sigmoidLoss(r, {});
       }},
      {"upload past the end", {ErrorKind::Range}, "", [&] { gradX.upload(x.data(), 13 * sizeof(float)); }},
      {"GEMM1 piece side below its minimum", {ErrorKind::Range}, "cublasGemm1Piece",
       [&] {
         RestoreDefaultGemm restore;
         sc::GemmSelection selection = kCublasGemm1.selection;
         selection.cublasGemm1Piece = sc::kMinCublasGemm1Piece - 1;
         sc::setGemmSelection(selection);
       }},
  };
  if (!cublasLoads()) {
    // Without a cuBLAS to load, SIGLIP_CUBLAS=on must make a fused call fail and say why, and
    // so must SIGLIP_GEMM1=cublas, even for a forward-only call (no backward GEMMs to run).
    cases.push_back({"cuBLAS required (SIGLIP_CUBLAS=on) but not loadable", {ErrorKind::Internal}, "SIGLIP_CUBLAS", [&] {
                       RestoreDefaultGemm restore;
                       sc::setGemmSelection(kCublasGemm.selection);
                       sc::sigmoidLoss(request(dx, dy, sc::DType::Float32),
                                       {static_cast<float*>(gradX.data()), static_cast<float*>(gradY.data())});
                     }});
    cases.push_back({"cuBLAS required for GEMM1 (SIGLIP_GEMM1=cublas) but not loadable, forward only",
                     {ErrorKind::Internal}, "SIGLIP_GEMM1", [&] {
                       RestoreDefaultGemm restore;
                       sc::setGemmSelection(kCublasGemm1.selection);
                       sc::sigmoidLoss(request(dx, dy, sc::DType::Float32), {});
                     }});
  }

  for (const BadCase& bad : cases) {
    std::string verdict;
    bool ok = false;
    try {
      bad.body();
      verdict = "did not throw";
    } catch (const Error& e) {
      const bool kindOk = std::find(bad.kinds.begin(), bad.kinds.end(), e.kind()) != bad.kinds.end();
      const bool argOk = bad.argument.empty() || e.argument() == bad.argument;
      ok = kindOk && argOk;
      verdict = std::string(kindName(e.kind())) + " (" + e.argument() + "): " + e.what();
      if (!ok) verdict = "expected " + std::string(kindName(bad.kinds.front())) +
                         (bad.argument.empty() ? "" : " naming " + bad.argument) + ", got " + verdict;
      else if (e.kind() != bad.kinds.front())
        verdict += "  [accepted; " + std::string(kindName(bad.kinds.front())) + " would be more precise]";
    } catch (const std::exception& e) {
      verdict = std::string("threw a non-siglip exception: ") + e.what();
    }
    report(ok, "bad-request " + bad.name + ": " + verdict);
    std::string why;
    if (!contextHealthy(&why)) {
      contextLost = true;
      report(false, "CUDA context lost after the bad request above (" + why + ")");
      return;
    }
  }

  // After all that, an ordinary call still works and agrees with the reference.
  try {
    LossRequest host;
    host.image = {x.data(), 4, 3};
    host.text = {y.data(), 4, 3};
    host.logitScale = std::log(10.0);
    host.logitBias = -10;
    const LossResult ref = referenceSigmoidLoss(host, {});
    sc::CudaLossRequest r = request(dx, dy, sc::DType::Float32);
    r.precision = sc::Precision::FP32;
    const LossResult got = sc::sigmoidLoss(r, {static_cast<float*>(gradX.data()), static_cast<float*>(gradY.data())});
    const double e = std::fabs(got.loss - ref.loss) / std::fabs(ref.loss);
    char buffer[160];
    std::snprintf(buffer, sizeof buffer, "after the bad requests, a valid call: loss %.8g (ref %.8g, error %.1e)", got.loss,
                  ref.loss, e);
    report(e <= 1e-5, buffer);
  } catch (const std::exception& e) {
    report(false, std::string("after the bad requests, a valid call threw: ") + e.what());
  }
}

}  // namespace siglip::cuda_check
