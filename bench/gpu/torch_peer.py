#!/usr/bin/env python3
"""The PyTorch peer of siglip_cuda_check --timing: the SigLIP loss as eager PyTorch writes it.

    logits = exp(s) * X @ Y.T + b          (N x N, materialised, in the input dtype)
    labels = 2 * I - 1                     (N x N, made per call, as open_clip's SigLipLoss does)
    loss   = -logsigmoid(labels * logits).sum() / N
    loss.backward()                        (gradients to X, Y, s and b)

Same N, D and dtypes as the C++ timing: 'bf16' (bfloat16 tensors), 'fp16', 'tf32' (float32 with
torch.backends.cuda.matmul.allow_tf32 = True) and 'fp32' (allow_tf32 = False). s and b are
float32 scalar parameters. CUDA-event median over the timed runs after warm-up; peak extra
memory = torch.cuda.max_memory_allocated() during the calls minus what was allocated before
(the inputs); it includes the returned gradients of X and Y (2 * N * D elements, small).
Sizes that run out of memory are skipped and reported as such.

    python3 bench/gpu/torch_peer.py --n 4096,16384 --d 768 --dtypes bf16,tf32 --runs 5 --json out.json

Exit status: 0 when every size ran or was skipped for memory, 1 on another error, 2 without
PyTorch or a CUDA device.
"""
import argparse
import gc
import json
import math
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", default="4096,16384,65536", help="batch sizes N (= M), comma-separated")
    p.add_argument("--d", type=int, default=768, help="embedding width D")
    p.add_argument("--dtypes", default="bf16,tf32", help="bf16, fp16, tf32, fp32 (comma-separated)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per case (at most)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    p.add_argument("--case-budget-s", type=float, default=6.0, help="cut the runs of a case to about this many seconds")
    p.add_argument("--deadline-s", type=float, default=0.0, help="start no new case after this many seconds (0: none)")
    p.add_argument("--json", default="", help="write the results here")
    return p.parse_args()


def main():
    args = parse_args()
    started = time.monotonic()
    result = {"tool": "torch_peer", "cases": [], "d": args.d, "runs": args.runs, "warmup": args.warmup}

    def write_json():
        result["elapsed_s"] = round(time.monotonic() - started, 3)
        if args.json:
            tmp = args.json + ".tmp"
            with open(tmp, "w") as f:
                json.dump(result, f, indent=1)
            os.replace(tmp, args.json)

    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - report whatever went wrong importing
        print(f"torch_peer: cannot import torch: {e}")
        result["error"] = f"cannot import torch: {e}"
        write_json()
        return 2
    result["torch"] = torch.__version__
    result["torch_cuda"] = torch.version.cuda
    if not torch.cuda.is_available():
        print("torch_peer: torch.cuda.is_available() is False: no CUDA device")
        result["error"] = "no CUDA device"
        write_json()
        return 2
    device = torch.device("cuda", 0)
    result["device"] = torch.cuda.get_device_name(device)
    print(f"torch_peer: torch {torch.__version__} (CUDA {torch.version.cuda}) on {result['device']}")

    # A Triton SigLIP kernel would be a second peer; none is packaged with PyTorch and the GPU
    # machine has no network to fetch one, so only note what is there.
    try:
        import triton  # noqa: F401

        result["triton"] = triton.__version__
    except Exception as e:  # noqa: BLE001
        result["triton"] = f"not importable: {e}"
    result["triton_siglip"] = "not measured: no Triton SigLIP kernel is installed and there is no network to fetch one"
    print(f"torch_peer: triton {result['triton']}; {result['triton_siglip']}")

    oom_types = (torch.cuda.OutOfMemoryError,) if hasattr(torch.cuda, "OutOfMemoryError") else ()

    def is_oom(e):
        return isinstance(e, oom_types) or "out of memory" in str(e).lower()

    def siglip_loss(x, y, s, b):
        n = x.shape[0]
        logits = torch.exp(s) * (x @ y.t()) + b
        labels = 2 * torch.eye(n, device=x.device, dtype=logits.dtype) - 1
        return -F.logsigmoid(labels * logits).sum() / n

    dtypes = {"bf16": (torch.bfloat16, False), "fp16": (torch.float16, False), "tf32": (torch.float32, True),
              "fp32": (torch.float32, False)}
    start_evt = torch.cuda.Event(enable_timing=True)
    end_evt = torch.cuda.Event(enable_timing=True)
    failures = 0
    header = f"{'case':<24} {'N':>6} {'dtype':<5} {'time ms':>10} {'TFLOP/s':>8} {'extra MB':>10}"
    print(header)

    for label in [w for w in args.dtypes.split(",") if w]:
        if label not in dtypes:
            print(f"torch_peer: unknown dtype {label!r} (expected bf16, fp16, tf32 or fp32): skipped")
            failures += 1
            continue
        dtype, tf32 = dtypes[label]
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        for n in [int(v) for v in args.n.split(",") if v]:
            d = args.d
            gemm = 2.0 * n * n * d
            for name, pass_ in (("torch eager fwd+bwd", "fwd+bwd"), ("torch eager fwd", "fwd")):
                row = {"case": name, "pass": pass_, "n": n, "d": d, "dtype": label, "status": "ok", "ms": None,
                       "ms_min": None, "runs": 0, "flops": 3 * gemm if pass_ == "fwd+bwd" else gemm, "tflops": None,
                       "peak_extra_mb": None, "loss": None, "note": ""}
                result["cases"].append(row)
                if args.deadline_s > 0 and time.monotonic() - started > args.deadline_s:
                    row["status"] = "skipped"
                    row["note"] = "deadline (--deadline-s) reached before this case"
                    print(f"{name:<24} {n:>6} {label:<5}   skipped: {row['note']}")
                    write_json()
                    continue
                x = y = s = b = None
                try:
                    gen = torch.Generator(device=device)
                    gen.manual_seed(1)
                    x = torch.randn(n, d, device=device, generator=gen)
                    x = torch.nn.functional.normalize(x, dim=1).to(dtype).requires_grad_(pass_ == "fwd+bwd")
                    y = torch.randn(n, d, device=device, generator=gen)
                    y = torch.nn.functional.normalize(y, dim=1).to(dtype).requires_grad_(pass_ == "fwd+bwd")
                    s = torch.tensor(math.log(10.0), device=device, requires_grad=pass_ == "fwd+bwd")
                    b = torch.tensor(-10.0, device=device, requires_grad=pass_ == "fwd+bwd")
                    torch.cuda.synchronize()

                    def call():
                        if pass_ == "fwd+bwd":
                            for t in (x, y, s, b):
                                t.grad = None
                            loss = siglip_loss(x, y, s, b)
                            loss.backward()
                        else:
                            with torch.no_grad():
                                loss = siglip_loss(x, y, s, b)
                        return loss

                    torch.cuda.reset_peak_memory_stats(device)
                    base = torch.cuda.memory_allocated(device)

                    def timed():
                        start_evt.record()
                        loss = call()
                        end_evt.record()
                        end_evt.synchronize()
                        row["loss"] = float(loss.detach().float().item())
                        return start_evt.elapsed_time(end_evt)

                    warm_ms = 0.0
                    for _ in range(max(0, args.warmup)):
                        warm_ms = timed()
                    runs = args.runs
                    if warm_ms > 0:
                        runs = int(max(1, min(args.runs, args.case_budget_s * 1e3 / warm_ms)))
                    times = sorted(timed() for _ in range(runs))
                    mid = len(times) // 2
                    median = times[mid] if len(times) % 2 else 0.5 * (times[mid - 1] + times[mid])
                    row.update(ms=median, ms_min=times[0], runs=runs, tflops=row["flops"] / (median * 1e-3) * 1e-12,
                               peak_extra_mb=(torch.cuda.max_memory_allocated(device) - base) / 2**20)
                    if runs < args.runs:
                        row["note"] = "runs cut to fit --case-budget-s"
                    print(f"{name:<24} {n:>6} {label:<5} {median:>10.3f} {row['tflops']:>8.1f} "
                          f"{row['peak_extra_mb']:>10.1f}   runs={runs} min={times[0]:.3f} loss={row['loss']:.6g}")
                except Exception as e:  # noqa: BLE001 - OOM is expected at large N; anything else is reported
                    if is_oom(e):
                        row["status"] = "skipped"
                        row["note"] = "out of device memory (PyTorch materialises several N x N tensors)"
                    else:
                        row["status"] = "error"
                        row["note"] = f"{type(e).__name__}: {e}"[:500]
                        failures += 1
                    print(f"{name:<24} {n:>6} {label:<5}   {row['status']}: {row['note']}")
                finally:
                    del x, y, s, b
                    gc.collect()
                    torch.cuda.empty_cache()
                sys.stdout.flush()
                write_json()
    print(f"torch_peer: {len(result['cases'])} cases, {failures} errors, {time.monotonic() - started:.1f} s")
    write_json()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
