// siglip_cuda_check: the cuBLAS loader's failure paths and this process's GEMM paths (host code).
#include "cuda_check.h"

namespace siglip::cuda_check {

// ---- --reference-only: the CPU half, no GPU ----------------------------------------------

// The lines of a multi-line message joined by " | ", their indentation dropped.
std::string oneLine(const std::string& text) {
  std::string out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    const size_t start = line.find_first_not_of(' ');
    if (start != std::string::npos) out += (out.empty() ? "" : " | ") + line.substr(start);
  }
  return out;
}

// The cuBLAS loader's failure paths (host code, no GPU): a missing file, a folder without the
// library, a file that is not one; then what this process's cuBLAS and GEMM paths are.
void checkCublasLoader() {
  std::string error;
  const std::string missing = "/nonexistent/siglip/libcublas.so.99";
  bool loaded = sc::loadCublas(missing, &error) != nullptr;
  report(!loaded && error.find(missing) != std::string::npos, "cuBLAS loader, missing file: " + oneLine(error));
  char dir[] = "/tmp/siglip_cublas_check_XXXXXX";
  if (!mkdtemp(dir)) {
    report(false, "cuBLAS loader: mkdtemp failed");
    return;
  }
  error.clear();
  loaded = sc::loadCublas(dir, &error) != nullptr;
  report(!loaded && error.find("no libcublas.so* there") != std::string::npos,
         "cuBLAS loader, folder without it: " + oneLine(error));
  const std::string junk = std::string(dir) + "/libcublas.so.99";
  if (FILE* f = std::fopen(junk.c_str(), "w")) {
    std::fputs("not a shared library\n", f);
    std::fclose(f);
  }
  error.clear();
  loaded = sc::loadCublas(dir, &error) != nullptr;
  report(!loaded && error.find(junk) != std::string::npos,
         "cuBLAS loader, a file that is not a library: " + oneLine(error));
  unlink(junk.c_str());
  rmdir(dir);

  // This process: either outcome is right here; the backend's report must agree with it.
  std::string why;
  const sc::CublasLibrary* lib = sc::processCublas(&why);
  const sc::GemmPathInfo info = sc::gemmPathInfo();
  bool consistent = true;
  try {
    const sc::GemmSelection selection = sc::gemmSelection();
    const bool gemm1OnCublas = selection.forward == sc::ForwardGemm::Cublas;
    consistent = info.forward == (gemm1OnCublas ? "cublas" : "tile") && info.overlap == selection.overlap;
    // Without cuBLAS, SIGLIP_GEMM1=cublas must say that calls will throw.
    if (gemm1OnCublas && !lib) consistent = consistent && info.reason.find("SIGLIP_GEMM1=cublas, but") != std::string::npos;
    if (selection.backward == sc::BackwardGemm::Auto)
      consistent = consistent && (lib ? info.backward == "cublas" && info.cublasLibrary == lib->path && info.reason.empty()
                                      : info.backward == "tile" && !info.reason.empty());
  } catch (const Error& e) {
    // A bad SIGLIP_CUBLAS / SIGLIP_TILE_GEMM / SIGLIP_GEMM1 / SIGLIP_GEMM_OVERLAP.
    consistent = info.forward == "tile" && info.backward == "tile" && !info.overlap && info.reason == e.what();
  }
  report(consistent, "GEMM paths here: forward " + info.forward + ", backward " + info.backward + ", tile " + info.tile +
                         ", overlap " + (info.overlap ? "on" : "off") +
                         (lib ? ", cuBLAS " + lib->path + " (" + lib->version + ")" : "") +
                         (info.reason.empty() ? "" : "; reason: " + oneLine(info.reason)));
}

}  // namespace siglip::cuda_check
