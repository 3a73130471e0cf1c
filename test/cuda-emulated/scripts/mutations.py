#!/usr/bin/env python3
"""Deliberate bugs for the CUDA emulation (docs/CUDA_EMULATION.md, "What it catches").

Copies csrc/, CMakeLists.txt, test/cuda-emulated/ and test/native/ to a scratch tree (build-emu-mutants/,
never the working tree), then for each mutation: patches one file there, rebuilds the emulated
siglip_cuda_check, runs it on a small case, and records whether the run failed and the first
line that says why (an emulator report or a FAIL line). Prints a Markdown table; exits 1 if a
mutation went uncaught.

  python3 test/cuda-emulated/scripts/mutations.py [--only NAME[,NAME…]] [--jobs 2]
"""
import argparse, os, re, shutil, subprocess, sys, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
WORK = os.path.join(ROOT, "build-emu-mutants")
SRC = os.path.join(WORK, "src")
BUILD = os.path.join(WORK, "build")

# name, file, old text, new text, what the mutation is, check arguments[, options]: by default
# the check is siglip_cuda_check_emu --correctness ARGS; options may name another target
# ("target": the executable, run as TARGET ARGS) and environment ("env", {build} = the build
# folder: the doubles are in {build}/doubles).
CUBLAS = {"env": {"SIGLIP_CUBLAS_LIBRARY": "{build}/doubles"}}
# The GPU ring with the in-process transport, which matches messages by tag (the NCCL
# transport pairs a send with this rank's receive of the same tag, and NCCL matches by order).
RING = {"target": "siglip_ring_check_emu", "env": {"SIGLIP_EMU_HANG_S": "30"}}
NCCL = {"target": "siglip_ring_check_emu",
        "env": {"SIGLIP_NCCL_LIBRARY": "{build}/doubles", "SIGLIP_EMU_DEVICES": "3"}}
MUTATIONS = [
    ("syncthreads-removed", "csrc/cuda/tile_gemm_simple.cuh",
     "    warpSliceMma<T, A_COL, B_COL, kSimpleBK>(as, bs, warpRow, warpCol, acc);\n    __syncthreads();\n",
     "    warpSliceMma<T, A_COL, B_COL, kSimpleBK>(as, bs, warpRow, warpCol, acc);\n",
     "simple tensor-core GEMM: the `__syncthreads` after the MMAs of a slice removed (the next load overwrites the slice)",
     ["--filter", "ids, N > M", "--gemm", "simple"]),
    ("wait-group-off-by-one", "csrc/cuda/tile_gemm_pipelined.cuh",
     "    cpAsyncWait<S - 2>();\n    // Every thread's",
     "    cpAsyncWait<S - 1>();\n    // Every thread's",
     "pipelined GEMM: `cp.async.wait_group S-1` instead of `S-2` (slice s not yet landed when read)",
     ["--filter", "ids, N != M", "--gemm", "pipelined"]),
    ("edge-predicate-off-by-one", "csrc/cuda/tile_gemm_simple.cuh",
     "dst[v] = (outer < outerLimit && inner + v < innerLimit) ? src[v] : T(0.0f);",
     "dst[v] = (outer < outerLimit && inner + v <= innerLimit) ? src[v] : T(0.0f);",
     "simple GEMM's edge loads: `inner + v <= innerLimit` (one element past the edge)",
     ["--filter", "odd", "--gemm", "simple"]),
    ("wrong-leading-dimension", "csrc/cuda/backward_gemms.cuh",
     "launchGemm<T, false, false>(GemmOperands<T>{b.g, b.ldg, b.y,",
     "launchGemm<T, false, false>(GemmOperands<T>{b.g, b.cols, b.y,",
     "backward GEMM ∂X = G·Y on the tile GEMM: G's leading dimension `cols` instead of its padded stride `ldg`",
     ["--filter", "odd", "--gemm", "pipelined"]),
    ("fragment-layout-assumed", "csrc/cuda/tile_gemm_epilogue.cuh",
     "        wmma::store_matrix_sync(scratch, acc[i][j], 16, wmma::mem_row_major);\n        __syncwarp();\n        for (int e = lane; e < 256; e += 32) {\n          const int64_t row = m0 + warpRow * kTcWarpM + i * 16 + e / 16;\n          const int64_t col = n0 + warpCol * kTcWarpN + j * 16 + e % 16;\n          if (row < m && col < n) ep.apply(row, col, scratch[e], sums);\n        }",
     "        __syncwarp();\n        for (int q = 0; q < acc[i][j].num_elements; ++q) {\n          const int e = lane * acc[i][j].num_elements + q;  // assumes lane-major, row-major elements\n          const int64_t row = m0 + warpRow * kTcWarpM + i * 16 + e / 16;\n          const int64_t col = n0 + warpCol * kTcWarpN + j * 16 + e % 16;\n          if (row < m && col < n) ep.apply(row, col, acc[i][j].x[q], sums);\n        }",
     "tensor-core epilogue reads `fragment.x[q]` as if element q of lane l were (l·8+q)/16, (l·8+q)%16, instead of staging through store_matrix_sync",
     ["--filter", "odd", "--gemm", "pipelined"]),
    ("event-wait-missing", "csrc/cuda/overlap_stream.cu",
     "  SIGLIP_CUDA_CHECK(cudaStreamWaitEvent(stream_, written_[piece % 2], 0));\n",
     "",
     "overlapped schedule: the second stream no longer waits for the event after G is written (backward GEMMs may read G early)",
     ["--filter", "ids, N > M", "--gemm", "pipelined,pipelined-overlap"]),
    ("shared-buffer-one-line-short", "csrc/cuda/tile_gemm_pipelined.cuh",
     "  constexpr int stages = PipelineShape<T>::kStages * SliceLayout<T, A_COL, B_COL, PipelineShape<T>::kBK>::kBytes;",
     "  constexpr int stages = PipelineShape<T>::kStages * SliceLayout<T, A_COL, B_COL, PipelineShape<T>::kBK>::kBytes -\n                         SliceLayout<T, A_COL, B_COL, PipelineShape<T>::kBK>::kBLd * int(sizeof(T));",
     "pipelined GEMM: dynamic shared memory one B line (kBLd elements) smaller than the four stages",
     ["--filter", "ids, N != M", "--gemm", "pipelined"]),
    ("gradient-into-wrong-block", "csrc/cuda/backward_gemms.cuh",
     "StoreEpilogue{b.dY, b.d, b.alpha, b.accumulate}, exact_, stream_);",
     "StoreEpilogue{b.dX, b.d, b.alpha, b.accumulate}, exact_, stream_);",
     "backward GEMM ∂Y = Gᵀ·X on the tile GEMM accumulates into the ∂X block",
     ["--filter", "ids, N != M", "--gemm", "pipelined"]),
    ("partial-sum-race", "csrc/cuda/sigmoid_epilogue.cuh",
     "  if (lane == 0) warpSums[warp][0] = s0, warpSums[warp][1] = s1, warpSums[warp][2] = s2;\n  __syncthreads();\n",
     "  if (lane == 0) warpSums[warp][0] = s0, warpSums[warp][1] = s1, warpSums[warp][2] = s2;\n",
     "block partial sums: the barrier between the warps' writes of warpSums and thread 0's sum removed",
     ["--filter", "odd", "--gemm", "pipelined"]),
    ("syncwarp-removed", "csrc/cuda/tile_gemm_epilogue.cuh",
     "          if (row < m && col < n) ep.apply(row, col, scratch[e], sums);\n        }\n        __syncwarp();\n",
     "          if (row < m && col < n) ep.apply(row, col, scratch[e], sums);\n        }\n",
     "tensor-core epilogue: the `__syncwarp` before the warp's scratch is overwritten by the next fragment removed",
     ["--filter", "odd", "--gemm", "pipelined"]),
    ("barrier-in-branch", "csrc/cuda/tile_gemm_epilogue.cuh",
     "      ep.template tilePart<kTcThreads, kTcWarpM>(part, kTcPartLd, row0, n0, rows, cols, state);\n      __syncthreads();\n",
     "      ep.template tilePart<kTcThreads, kTcWarpM>(part, kTcPartLd, row0, n0, rows, cols, state);\n      if (warpRow == p) __syncthreads();\n",
     "whole-tile epilogue: the barrier after a part taken only by the warps that staged it (a barrier reached by part of the block)",
     ["--filter", "odd", "--gemm", "pipelined"]),
    ("shuffle-mask-half", "csrc/cuda/sigmoid_epilogue.cuh",
     "v += __shfl_down_sync(0xffffffffu, v, offset);",
     "v += __shfl_down_sync(0x0000ffffu, v, offset);",
     "warp sum: `__shfl_down_sync` with mask 0x0000ffff while all 32 lanes call it",
     ["--filter", "odd", "--gemm", "pipelined"]),
    ("cublas-transpose-swapped", "csrc/cuda/cublas_loader.cu",
     "  return gemmEx(h, kOpN, kOpT, cols, rows, k, &alpha, b, int(in), ldb, a, int(in), lda, &beta, c,",
     "  return gemmEx(h, kOpT, kOpN, cols, rows, k, &alpha, b, int(in), ldb, a, int(in), lda, &beta, c,",
     "cuBLAS row-major wrapper Aᵀ·B (∂Y = Gᵀ·X on cuBLAS): the two transposes swapped in its cublasGemmEx call",
     ["--filter", "ids, N != M", "--gemm", "cublas"], CUBLAS),
    ("cublas-leading-dimension", "csrc/cuda/backward_gemms.cuh",
     "lib.gemmAB(cublas_.handle(), rows, d, cols, b.g, ldg, b.y,",
     "lib.gemmAB(cublas_.handle(), rows, d, cols, b.g, cols, b.y,",
     "backward GEMM ∂X = G·Y on cuBLAS: G's leading dimension `cols` instead of its padded stride `ldg`",
     ["--filter", "ids, N != M", "--gemm", "cublas"], CUBLAS),
    ("ring-tag-mismatched", "csrc/ring/ring_sigmoid.cpp",
     "tp.send(lane.toward, accumulator, gradBytes(rows), ringTag(s + 1, lane.index, RingPayload::Gradients));",
     "tp.send(lane.toward, accumulator, gradBytes(rows), ringTag(s, lane.index, RingPayload::Gradients));",
     "the ring: an accumulator sent with the tag of the step it was computed in, not the next (its receiver's)",
     ["--cuda-local", "3"], RING),
    ("nccl-receive-wrong-peer", "csrc/ring/nccl/nccl_transport.cpp",
     ": lib.recv(o->data, o->bytes, ncclInt8, peerRank, comm_, stream_);",
     ": lib.recv(o->data, o->bytes, ncclInt8, neighbour(opposite(o->peer)), comm_, stream_);",
     "NCCL transport: a receive posted from the neighbour on the other side (its sender's message is never taken)",
     ["--nccl", "3"], NCCL),
]


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def copy_tree():
    if os.path.exists(SRC):
        shutil.rmtree(SRC)
    os.makedirs(os.path.join(SRC, "test"))
    shutil.copytree(os.path.join(ROOT, "csrc"), os.path.join(SRC, "csrc"))
    shutil.copy(os.path.join(ROOT, "CMakeLists.txt"), SRC)
    shutil.copytree(os.path.join(ROOT, "test", "cuda-emulated"), os.path.join(SRC, "test", "cuda-emulated"))
    # The checks the emulated executables are built from (siglip_cuda_check, siglip_ring_check).
    shutil.copytree(os.path.join(ROOT, "test", "native"), os.path.join(SRC, "test", "native"))


def why(output):
    for line in output.splitlines():
        if line.startswith("siglip-emu:") and "problem(s) reported" not in line:
            return line
    for line in output.splitlines():
        if line.startswith("FAIL"):
            return re.sub(r"\s+", " ", line)[:300]
    for line in output.splitlines():
        if "threw" in line or "error" in line.lower():
            return line[:300]
    return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--jobs", default="2")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    copy_tree()
    r = run(["cmake", "-S", os.path.join(SRC, "test", "cuda-emulated"), "-B", BUILD, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
             "-DSIGLIP_EMU_KERNEL_OPT=-O1", "-DSIGLIP_EMU_UBSAN=OFF"])
    if r.returncode:
        print(r.stdout)
        return 2
    rows, uncaught = [], 0
    for name, path, old, new, what, check, *options in MUTATIONS:
        options = options[0] if options else {}
        target_name = options.get("target", "siglip_cuda_check_emu")
        exe = os.path.join(BUILD, target_name)
        command = [exe] + (["--correctness"] if target_name == "siglip_cuda_check_emu" else []) + check
        extra_env = {k: v.replace("{build}", BUILD) for k, v in options.get("env", {}).items()}
        if only and name not in only:
            continue
        target = os.path.join(SRC, path)
        pristine = open(os.path.join(ROOT, path)).read()
        if pristine.count(old) != 1:
            print(f"{name}: the text to mutate is not found exactly once in {path}", file=sys.stderr)
            return 2
        open(target, "w").write(pristine.replace(old, new))
        t0 = time.time()
        b = run(["cmake", "--build", BUILD, "-j", args.jobs, "--target", target_name])
        if b.returncode:
            caught, reason = True, "does not compile: " + next((l for l in b.stdout.splitlines() if "error" in l), "")[:200]
        else:
            env = dict(os.environ, SIGLIP_EMU_MAX_REPORTS="3", **extra_env)
            r = run(command, env=env, timeout=900)
            caught, reason = r.returncode != 0, why(r.stdout)
        open(target, "w").write(pristine)
        uncaught += 0 if caught else 1
        shown = " ".join(f"{k}=…" if "LIBRARY" in k else f"{k}={v}" for k, v in options.get("env", {}).items())
        shown = (shown + " " if shown else "") + " ".join([target_name] + command[1:])
        rows.append((name, what, shown, "caught" if caught else "NOT CAUGHT", reason, time.time() - t0))
        print(f"{name}: {'caught' if caught else 'NOT CAUGHT'} ({time.time() - t0:.0f} s): {reason}", file=sys.stderr, flush=True)
    # Leave the scratch build matching the pristine sources.
    print("| mutation | what it breaks | run | result | first message |")
    print("|---|---|---|---|---|")
    for name, what, check, result, reason, _ in rows:
        reason = reason.replace("|", "\\|")
        print(f"| `{name}` | {what} | `{check}` | {result} | `{reason}` |")
    return 1 if uncaught else 0


if __name__ == "__main__":
    sys.exit(main())
