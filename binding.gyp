{
  # The CPU addon, built by node-gyp on `npm install` (no CMake needed). The CMake build
  # (CMakeLists.txt, via cmake-js) builds the same addon and adds CUDA where nvcc exists.
  # The folder layout is the library layout, as in CMakeLists.txt: the addon takes the .cpp
  # files of csrc/core, csrc/cpu, csrc/ring and csrc/addon (each folder, not its subfolders);
  # the subfolders are built where they apply: csrc/cpu/x86 (each SIMD kernel its own static
  # library, so that only it gets -mavx2/-mavx512*: everything else stays baseline x86-64 and
  # the dispatcher picks a kernel set at run time), csrc/cpu/arm on arm64, csrc/ring/mpi where
  # MPI is found; csrc/ring/nccl only in the CMake CUDA build.
  "target_defaults": {
    # RTTI: the ring's transports identify their own pending transfers with dynamic_cast.
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc": ["-std=c++17", "-O3", "-fexceptions"],
    "cflags!": ["-fno-exceptions"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "GCC_ENABLE_CPP_RTTI": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "OTHER_CPLUSPLUSFLAGS": ["-O3"]
    },
    "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1, "RuntimeTypeInfo": "true", "AdditionalOptions": ["/std:c++17", "/O2"] } }
  },
  "targets": [
    {
      "target_name": "siglip_kernels",
      "sources": ["<!@(node -p \"['csrc/core','csrc/cpu','csrc/ring','csrc/addon'].flatMap(d=>require('fs').readdirSync(d).filter(f=>f.endsWith('.cpp')).map(f=>d+'/'+f)).join(' ')\")"],
      # MPI (the MPI ring transport, SIGLIP_WITH_MPI) when scripts/mpi_flags.js finds an MPI
      # compiler wrapper; SIGLIP_MPI=off skips it, SIGLIP_MPI=on makes its absence an error.
      "variables": { "siglip_mpi": "<!(node scripts/mpi_flags.js found)" },
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "csrc"],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: a native call made while its environment shuts
      # down (a Worker being terminated) cannot throw into JavaScript; without it node-addon-api
      # turns that into std::terminate, which aborts the whole process.
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "conditions": [
        # AArch64 has FMA in its base instruction set and GCC would fuse a*b + c everywhere,
        # which x86-64's baseline cannot; the naive softmax relies on products rounded as
        # written (its converged-batch checks fail with contraction). NEON kernels fuse explicitly.
        ["target_arch=='arm64'", { "cflags_cc": ["-ffp-contract=off"], "sources": ["csrc/cpu/arm/kernels_neon.cpp"] }],
        ["target_arch=='x64'", {
          "dependencies": ["siglip_kernels_avx2", "siglip_kernels_avx512", "siglip_kernels_avx512_bf16"],
          "defines": ["SIGLIP_HAVE_X86_KERNELS=1"]
        }],
        ["OS=='linux'", { "libraries": ["-lpthread"] }],
        ["siglip_mpi=='yes'", {
          "sources": ["csrc/ring/mpi/mpi_transport.cpp"],
          # The C API only: without the *_SKIP_MPICXX defines mpi.h pulls in the deprecated
          # C++ bindings, whose library (-lmpi_cxx) is not linked.
          "defines": ["SIGLIP_WITH_MPI=1", "OMPI_SKIP_MPICXX=1", "MPICH_SKIP_MPICXX=1"],
          "include_dirs": ["<!@(node scripts/mpi_flags.js includes)"],
          "cflags_cc": ["<!@(node scripts/mpi_flags.js cflags)"],
          "libraries": ["<!@(node scripts/mpi_flags.js libs)"]
        }]
      ]
    }
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "siglip_kernels_avx2",
          "type": "static_library",
          "sources": ["csrc/cpu/x86/kernels_avx2.cpp"],
          "include_dirs": ["csrc"],
          "cflags": ["-fPIC", "-mavx2", "-mfma"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-mavx2", "-mfma"] },
          "msvs_settings": { "VCCLCompilerTool": { "AdditionalOptions": ["/arch:AVX2"] } }
        },
        {
          "target_name": "siglip_kernels_avx512",
          "type": "static_library",
          "sources": ["csrc/cpu/x86/kernels_avx512.cpp"],
          "include_dirs": ["csrc"],
          "cflags": ["-fPIC", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mfma"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mfma"] },
          "msvs_settings": { "VCCLCompilerTool": { "AdditionalOptions": ["/arch:AVX512"] } }
        },
        {
          # The bf16 kernel (vdpbf16ps), used only where CPUID reports AVX512_BF16.
          "target_name": "siglip_kernels_avx512_bf16",
          "type": "static_library",
          "sources": ["csrc/cpu/x86/kernels_avx512_bf16.cpp"],
          "include_dirs": ["csrc"],
          "cflags": ["-fPIC", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx512bf16", "-mfma"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx512bf16", "-mfma"] },
          "msvs_settings": { "VCCLCompilerTool": { "AdditionalOptions": ["/arch:AVX512"] } }
        }
      ]
    }]
  ]
}
