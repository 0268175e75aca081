"""What the benchmark runs (:class:`BenchConfig`), how it times calls, and the peak FLOP/s it reports against."""
from __future__ import annotations

import math

import statistics
import time
from dataclasses import dataclass

import torch

from ..device import sync

# Dense peaks in TFLOP/s (fp32 on CUDA cores, TF32 tensor, bf16 tensor), from the vendors' data sheets.
# Matched in order on torch.cuda.get_device_name(); the first substring found wins.
CUDA_PEAKS_TFLOPS = (
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0}),
    ("H100", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4}),      # SXM5 / "H100 80GB HBM3"
    ("H200", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4}),      # same compute as H100 SXM
    ("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0}),
)


@dataclass
class BenchConfig:
    """What to benchmark. ``None`` widths/steps mean the device's default (see :func:`defaults_for`)."""

    device: str = "cpu"
    arch: str = "vgg16"
    norm: str = "batch"              # VGG normalisation in sections 1-2 (section 3 always uses BN and the DLN)
    width: float = 0.0625
    steps: int = 45                  # timed steps per measurement, split into `repeats` blocks
    warmup: int = 5
    repeats: int = 3
    batch_size: int = 128
    lr: float = 0.1
    seed: int = 0
    ks: tuple = (4, 8, 16)           # landscape points for section 2
    vmap_k: int = 8                  # landscape points for section 3
    ics_layers: tuple = (5, 10)      # the paper's VGG layers (Fig. 3a)
    data: str = "auto"               # auto | real | synthetic
    synthetic_n: int = 60_000        # images in the synthetic training set (Fashion-MNIST's size)
    matmul_n: int = 2048             # size of the fp32 matmul that measures the CPU's peak
    variants: tuple = ("channels_last",)  # engine options timed in section 1 ("tf32" on CUDA, "compile" with
    #                                       --compile)


def defaults_for(device: str) -> dict:
    """Sizes that finish in a few minutes: 1/16 width on a 2-core CPU, the paper's width on a GPU."""
    if torch.device(device).type == "cuda":
        return {"width": 1.0, "steps": 150, "warmup": 10, "matmul_n": 8192}
    return {"width": 0.0625, "steps": 45, "warmup": 5, "matmul_n": 2048}


# ---- timing -------------------------------------------------------------------------------------
def time_calls(fn, n: int, warmup: int, device, repeats: int = 1) -> dict:
    """Seconds per call of ``fn``: median over ``repeats`` blocks of ``n`` calls, after ``warmup`` calls."""
    dev = torch.device(device)
    for _ in range(warmup):
        fn()
    sync(dev)
    blocks = []
    for _ in range(repeats):
        if dev.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(n):
                fn()
            end.record()
            end.synchronize()
            blocks.append(start.elapsed_time(end) / 1e3 / n)
        else:
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            blocks.append((time.perf_counter() - t0) / n)
    return {"s": statistics.median(blocks), "blocks_s": blocks, "calls": n * repeats}


def blocks_of(cfg: BenchConfig) -> int:
    return max(1, cfg.steps // cfg.repeats)


# ---- peaks ---------------------------------------------------------------------------------------
def cuda_peaks(name: str):
    for key, peaks in CUDA_PEAKS_TFLOPS:
        if key.lower() in name.lower():
            return key, peaks
    return None, None


def measure_matmul_peak(device, n: int = 2048, reps: int = 3, dtype=torch.float32) -> float:
    """FLOP/s of the best of ``reps`` n x n x n matmuls (TF32 off: strict fp32)."""
    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen, dtype=dtype).to(dev)
    b = torch.randn(n, n, generator=gen, dtype=dtype).to(dev)
    a @ b
    sync(dev)
    best = math.inf
    for _ in range(reps):
        t = time_calls(lambda: a @ b, 1, 0, dev)["s"]
        best = min(best, t)
    return 2 * n ** 3 / best


def device_peaks(cfg: BenchConfig) -> dict:
    """Peak FLOP/s to report MFU against: a table on CUDA (plus a measured matmul), a measured matmul on CPU."""
    measured = measure_matmul_peak(cfg.device, cfg.matmul_n)
    if torch.device(cfg.device).type == "cuda":
        name = torch.cuda.get_device_name(torch.device(cfg.device))
        key, table = cuda_peaks(name)
        tflops = {"fp32_table": table["fp32"], "bf16_table": table["bf16"]} if table else {}
        tflops["fp32_matmul_measured"] = measured / 1e12
        return {"source": f"table entry {key!r}" if key else f"no table entry for {name!r}",
                "tflops": tflops, "matmul_n": cfg.matmul_n}
    return {"source": f"measured: best of 3 fp32 {cfg.matmul_n}^3 matmuls in this run",
            "tflops": {"fp32_matmul_measured": measured / 1e12}, "matmul_n": cfg.matmul_n}
