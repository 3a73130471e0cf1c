// An empty stand-in for libcublasLt (test only): the package's cuBLAS loader opens the
// libcublasLt.so* of a libcublas folder first (cublas_loader.cu, tryLoad), and with this file
// next to the cuBLAS double that path runs in the emulated tests too.
extern "C" __attribute__((visibility("default"))) int siglip_cublaslt_double() { return 0; }
