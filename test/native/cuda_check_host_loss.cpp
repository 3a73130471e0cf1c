// siglip_cuda_check --correctness: the backend's entry for host memory (csrc/cuda/host_loss.h),
// what the addon calls: cuda::lossFromHost (host inputs uploaded, device inputs as they are,
// gradients downloaded or left on the device) against the float64 reference, and its bad
// inputs (the addon's messages, now the backend's); cuda::makeShardResident (a ring rank's
// host shard on its GPU) and its scan. Labels start with "host-loss".
#include "cuda/host_loss.h"
#include "cuda_check.h"

namespace siglip::cuda_check {
namespace {

// A small problem with ids in float32, its request on device 0 with both inputs on the host.
struct HostProblem {
  Data data;
  int64_t n, m, d;
  sc::HostLossRequest request(LossKind kind) const {
    sc::HostLossRequest r;
    r.kind = kind;
    r.image = sc::HostOrDeviceInput::fromHost(data.x.data(), n, d, 0);
    r.text = sc::HostOrDeviceInput::fromHost(data.y.data(), m, d, 0);
    r.imageIds = data.imageIds.data();
    r.textIds = data.textIds.data();
    r.logitScale = std::log(10.0);
    r.logitBias = kind == LossKind::Sigmoid ? -10 : 0;
    r.method = kind == LossKind::Sigmoid ? Method::Fused : Method::Chunked;
    r.precision = sc::Precision::FP32;
    return r;
  }
};

HostProblem makeProblem() {
  HostProblem p;
  p.n = 37;
  p.m = 29;
  p.d = 24;
  p.data = check::makeData(check::DataShape{p.n, p.m, p.d, true, 0, 1.0, 0.3, 77});
  return p;
}

sc::SharedMatrix onDevice(const std::vector<float>& values, int64_t rows, int64_t cols) {
  auto buffer = std::make_shared<sc::DeviceBuffer>(0, values.size() * sizeof(float));
  buffer->upload(values.data(), values.size() * sizeof(float));
  return sc::SharedMatrix{buffer, rows, cols, sc::DType::Float32, 0};
}

std::vector<float> download(const sc::SharedMatrix& m) {
  std::vector<float> out(size_t(m.rows * m.cols));
  m.buffer->download(out.data(), out.size() * sizeof(float));
  return out;
}

// The call against the reference: loss, ∂s, ∂b and both gradients (fp32 tolerances).
void checkAgainstReference(const HostProblem& p, LossKind kind, const std::string& label, const sc::HostLossRequest& r,
                           const LossResult& got, const std::vector<float>& dx, const std::vector<float>& dy) {
  LossRequest host;
  host.image = {p.data.x.data(), p.n, p.d};
  host.text = {p.data.y.data(), p.m, p.d};
  host.imageIds = r.imageIds;
  host.textIds = r.textIds;
  host.logitScale = r.logitScale;
  host.logitBias = r.logitBias;
  std::vector<double> rx(p.data.x.size()), ry(p.data.y.size());
  const LossResult ref = kind == LossKind::Sigmoid ? referenceSigmoidLoss(host, {rx.data(), ry.data()})
                                                   : referenceSoftmaxLoss(host, {rx.data(), ry.data()});
  const double lossError = std::fabs(got.loss - ref.loss) / std::max(1e-12, std::fabs(ref.loss));
  const double scaleError = scalarError(got.dLogitScale, ref.dLogitScale, std::fabs(ref.dLogitScale));
  const double gradError = std::max(relativeError(dx, rx), relativeError(dy, ry));
  char line[256];
  std::snprintf(line, sizeof line, "host-loss %s: loss error %.1e, ds error %.1e, gradient error %.1e", label.c_str(),
                lossError, scaleError, gradError);
  report(lossError <= 1e-5 && scaleError <= 1e-4 && gradError <= 1e-4, line);
}

// `body` must throw siglip::Error of `kind` naming `argument` with exactly `message` (any when empty).
void expectError(const std::string& label, ErrorKind kind, const std::string& argument, const std::string& message,
                 const std::function<void()>& body) {
  try {
    body();
    report(false, "host-loss bad input " + label + ": did not throw");
  } catch (const Error& e) {
    const bool ok = e.kind() == kind && e.argument() == argument && (message.empty() || message == e.what());
    report(ok, "host-loss bad input " + label + ": " + kindName(e.kind()) + " (" + e.argument() + "): " + e.what() +
                   (ok ? "" : "  [expected " + std::string(kindName(kind)) + " (" + argument + "): " + message + "]"));
  } catch (const std::exception& e) {
    report(false, "host-loss bad input " + label + ": threw a non-siglip exception: " + e.what());
  }
}

}  // namespace

void checkHostLoss() {
  sc::setGemmSelection(kDefaultGemm.selection);
  const HostProblem p = makeProblem();

  for (LossKind kind : {LossKind::Sigmoid, LossKind::Softmax}) {
    const std::string name = kind == LossKind::Sigmoid ? "sigmoid" : "softmax";
    // Host inputs, host gradients.
    sc::HostLossRequest r = p.request(kind);
    std::vector<float> dx(p.data.x.size(), -1.f), dy(p.data.y.size(), -1.f);
    r.wantGrad = true;
    r.hostGradImage = dx.data();
    r.hostGradText = dy.data();
    const sc::HostLossResult host = sc::lossFromHost(r);
    checkAgainstReference(p, kind, name + " host inputs, host gradients", r, host.result, dx, dy);
    report(!host.gradImage.buffer && !host.gradText.buffer,
           "host-loss " + name + " host gradients: no device gradients left behind");

    // Image on the device, text on the host; gradients left on the device: the same bits.
    sc::HostLossRequest mixed = p.request(kind);
    mixed.image.matrix = onDevice(p.data.x, p.n, p.d);
    mixed.image.host = nullptr;
    mixed.wantGrad = true;
    mixed.gradientsOnDevice = true;
    const sc::HostLossResult device = sc::lossFromHost(mixed);
    const bool shaped = device.gradImage.buffer && device.gradImage.rows == p.n && device.gradImage.cols == p.d &&
                        device.gradText.buffer && device.gradText.rows == p.m && device.gradText.cols == p.d;
    report(shaped && device.result.loss == host.result.loss && device.result.dLogitScale == host.result.dLogitScale &&
               download(device.gradImage) == dx && download(device.gradText) == dy,
           "host-loss " + name + " device image, gradients on the device: the bits of the host call");

    // Forward only: the same loss.
    const sc::HostLossResult forward = sc::lossFromHost(p.request(kind));
    report(forward.result.loss == host.result.loss && forward.result.dLogitScale == 0 && !forward.gradImage.buffer,
           "host-loss " + name + " forward only: the same loss, no gradients");
  }

  // Bad inputs: the messages the addon gave before it left the checks to the backend.
  std::vector<float> nan = p.data.x;
  nan[size_t(2 * p.d + 5)] = std::numeric_limits<float>::quiet_NaN();
  expectError("NaN in host image", ErrorKind::Range, "image.data",
              invalidArgument(ErrorKind::Range, "image.data", "only finite values",
                              "a NaN or Infinity at index " + std::to_string(2 * p.d + 5) + " (row 2, column 5)")
                  .what(),
              [&] {
                sc::HostLossRequest r = p.request(LossKind::Sigmoid);
                r.image.host = nan.data();
                sc::lossFromHost(r);
              });
  std::vector<float> inf = p.data.y;
  inf.back() = std::numeric_limits<float>::infinity();
  expectError("Infinity in host text, softmax", ErrorKind::Range, "text.data",
              invalidArgument(ErrorKind::Range, "text.data", "only finite values",
                              "a NaN or Infinity at index " + std::to_string(p.m * p.d - 1) + " (row " +
                                  std::to_string(p.m - 1) + ", column " + std::to_string(p.d - 1) + ")")
                  .what(),
              [&] {
                sc::HostLossRequest r = p.request(LossKind::Softmax);
                r.text.host = inf.data();
                sc::lossFromHost(r);
              });
  const std::vector<unsigned char> bits = encode(p.data.x, sc::DType::BFloat16);
  auto bf16 = std::make_shared<sc::DeviceBuffer>(uploadBytes(bits.data(), bits.size()));
  expectError("bfloat16 image, float32 host text", ErrorKind::Type, "text",
              invalidArgument(ErrorKind::Type, "text", "a matrix of the dtype of image (bfloat16)", "one of dtype float32")
                  .what(),
              [&] {
                sc::HostLossRequest r = p.request(LossKind::Sigmoid);
                r.image.matrix = sc::SharedMatrix{bf16, p.n, p.d, sc::DType::BFloat16, 0};
                r.image.host = nullptr;
                sc::lossFromHost(r);
              });
  expectError("precision fp32 with bfloat16", ErrorKind::Range, "options.precision",
              invalidArgument(ErrorKind::Range, "options.precision",
                              "'tf32' for 16-bit matrices ('fp32' needs float32 matrices)",
                              "the string 'fp32' with bfloat16 matrices")
                  .what(),
              [&] { sc::checkPrecision(sc::Precision::FP32, sc::DType::BFloat16); });
  expectError("N != M without ids", ErrorKind::Range, "text", "", [&] {
    sc::HostLossRequest r = p.request(LossKind::Sigmoid);
    r.imageIds = r.textIds = nullptr;
    sc::checkHostLoss(r);
  });

  // A ring rank's shard: host inputs uploaded (the same bits), ids after one another,
  // gradient buffers of the shard's shapes; NaN in a host shard named as the caller names it.
  const sc::HostOrDeviceInput image = sc::HostOrDeviceInput::fromHost(p.data.x.data(), p.n, p.d, 0);
  const sc::HostOrDeviceInput text = sc::HostOrDeviceInput::fromHost(p.data.y.data(), p.m, p.d, 0);
  const sc::ResidentShard shard = sc::makeShardResident(image, text, p.data.imageIds.data(), p.data.textIds.data(), true,
                                                        "imageShards[1].data", "textShards[1].data");
  std::vector<int32_t> ids(size_t(p.n + p.m));
  shard.ids->download(ids.data(), ids.size() * sizeof(int32_t));
  std::vector<int32_t> expectedIds = p.data.imageIds;
  expectedIds.insert(expectedIds.end(), p.data.textIds.begin(), p.data.textIds.end());
  report(download(shard.image) == p.data.x && download(shard.text) == p.data.y && ids == expectedIds &&
             shard.imageIds() + p.n == shard.textIds() && shard.gradImage.rows == p.n && shard.gradText.rows == p.m &&
             shard.gradImage.buffer->bytes() == size_t(p.n * p.d) * sizeof(float),
         "host-loss makeShardResident: inputs, ids and gradient buffers on the device");
  expectError("NaN in a ring rank's host shard", ErrorKind::Range, "imageShards[1].data",
              invalidArgument(ErrorKind::Range, "imageShards[1].data", "only finite values",
                              "NaN at index " + std::to_string(2 * p.d + 5) + " (row 2, column 5)")
                  .what(),
              [&] {
                sc::makeShardResident(sc::HostOrDeviceInput::fromHost(nan.data(), p.n, p.d, 0), text, nullptr, nullptr,
                                      false, "imageShards[1].data", "textShards[1].data");
              });
}

}  // namespace siglip::cuda_check
