#!/usr/bin/env python3
"""The CPU peer of bench/peers.ts: the SigLIP loss as eager PyTorch writes it (open_clip's
SigLipLoss, Hugging Face's SiglipModel and big_vision's formula are this one):

    logits = exp(s) * X @ Y.T + b          (N x N, materialised)
    labels = 2 * I - 1                     (N x N, made per call, as open_clip does)
    loss   = -logsigmoid(labels * logits).sum() / N
    loss.backward()                        (gradients to X, Y, s and b)

It reads the inputs bench/peers.ts wrote (raw float32, row-major, N x D each), so both sides
compute the same loss, and prints one JSON line: the times of the timed runs (ms, after one
untimed run), the loss, the scalar gradients and the sums of |dX| and |dY| (for the comparison),
and extra_mb: the untimed call's peak resident memory above the RSS before it, less the
gradients of X and Y (its working memory: the N x N tensors; Linux /proc).

    python3 bench/peers/torch_cpu.py --image X.f32 --text Y.f32 --n N --d D [--threads 2] [--runs 3]

Exit status 2 when PyTorch cannot be imported (bench/peers.ts says how to install it).
"""
import argparse
import json
import math
import sys
import time


def status_kib(field):
    """A field of /proc/self/status in KiB (VmRSS: resident now; VmHWM: its high-water mark)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--d", type=int, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - report whatever went wrong importing
        print(json.dumps({"error": f"cannot import torch: {e}"}))
        return 2
    torch.set_num_threads(args.threads)
    blas = "unknown"
    for line in torch.__config__.show().splitlines():
        if "BLAS_INFO" in line:
            blas = line.split("BLAS_INFO=")[1].split(",")[0]

    def read(path):
        data = np.fromfile(path, dtype=np.float32).reshape(args.n, args.d)
        return torch.from_numpy(data).requires_grad_(True)

    x, y = read(args.image), read(args.text)
    s = torch.tensor(math.log(10.0), requires_grad=True)
    b = torch.tensor(-10.0, requires_grad=True)

    def call():
        for t in (x, y, s, b):
            t.grad = None
        n = x.shape[0]
        logits = torch.exp(s) * (x @ y.t()) + b
        labels = 2 * torch.eye(n, dtype=logits.dtype) - 1
        loss = -F.logsigmoid(labels * logits).sum() / n
        loss.backward()
        return loss

    # A tiny call first (threads started, as the package's side does), then the memory of the
    # first real call, measured as bench/case.ts measures the package's: the peak resident
    # memory (reset to the current RSS through /proc/self/clear_refs) above the RSS before
    # it, less the gradients of X and Y (outputs, as the inputs are).
    tiny = torch.ones(1, 2, requires_grad=True)
    (-F.logsigmoid(tiny @ tiny.t())).sum().backward()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base_kib = status_kib("VmRSS")
    call()  # untimed: first-touch of the buffers
    extra_mb = (status_kib("VmHWM") - base_kib) / 1024 - 2 * args.n * args.d * 4 / 2**20
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        loss = call()
        times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({
        "torch": torch.__version__, "blas": blas, "threads": torch.get_num_threads(), "ms": times,
        "loss": float(loss), "dLogitScale": float(s.grad), "dLogitBias": float(b.grad),
        "sumAbsDImage": float(x.grad.abs().double().sum()), "sumAbsDText": float(y.grad.abs().double().sum()),
        "extra_mb": extra_mb,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
