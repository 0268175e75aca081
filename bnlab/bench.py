"""Benchmark of the experiment engine: ratios against baselines measured in the same run, on one device.

``python -m bnlab.bench [--device cpu|cuda] [--arch vgg16] [--width W] [--steps N] [--compile] [--out FILE]``

Four sections (performance-notes.md, section 7; every ratio is taken within this one run):

1. engine vs a plain baseline on the same VGG steps: torchvision-style ``Dataset`` of PIL images +
   ``ToTensor`` + ``Normalize`` + ``DataLoader`` (num_workers=0, shuffle) + ``loss.item()`` every step, against
   the engine's path (uint8 data on the device, normalised per batch, no per-step host sync); steps/s, ratio,
   and model FLOP utilisation (analytic FLOPs; peak from a table on CUDA, a measured fp32 matmul on CPU); the
   engine's options (``bnlab.engine``: channels_last, and torch.compile with ``--compile``) as further rows;
2. cost of a training step with the measurements, as a ratio to a plain step: gradient ICS (shared prefix +
   restricted backward, ``bnlab.measure.gradient_ics``) against the naive one-full-pass-per-layer ICS (and a check
   that both give the same G'), the activation probe, and landscape probes with K = 4, 8, 16 (loop back-end);
3. landscape probe back-ends, K = 8: in-place loop vs ``torch.func.vmap``, agreement and speed, for the VGG
   with BatchNorm and the 25-layer deep linear network (float64);
4. a *projection* of the paper-scale suite's time on this device from the measured per-step costs.

Timing: warm-up calls excluded, then the median over ``repeats`` blocks of calls; ``time.perf_counter`` on the
CPU, CUDA events + synchronize on a GPU. ``benchmarks/README.md`` says how to run it and where results go.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import DataConfig, ModelConfig, config_hash, get_scale
from .data import DatasetNotFound, ImageData, load_images, load_regression
from .device import describe, pick, set_tf32, strict_fp32
from .engine import EngineOptions, Stepper
from .flops import (block_flops, evaluated_images, flop_ratios, model_flops,  # noqa: F401
                    suite_flops, times_due, unique_runs, vgg_flops)
from .measure import ActivationProbe, ICSProbe, LandscapeProbe, gradient_ics, probe_along_gradient
from .measure.landscape import etas_for
from .models import build, loss_fn
from .norms import frozen_state

# Dense peaks in TFLOP/s (fp32 on CUDA cores, TF32 tensor, bf16 tensor), performance-notes.md section 4.2.
# Matched in order on torch.cuda.get_device_name(); the first substring found wins.
CUDA_PEAKS_TFLOPS = (
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0}),
    ("H100", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4}),      # SXM5 / "H100 80GB HBM3"
    ("H200", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4}),      # same compute as H100 SXM
    ("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0}),
)
VGG_ACT_LAYERS = (2, 3, 9, 11, 13)
DLN_ACT_LAYERS = (1, 11, 24)
DLN_ICS_LAYERS = (9, 17)
DLN_LR = 1e-6


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
def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, n: int, warmup: int, device, repeats: int = 1) -> dict:
    """Seconds per call of ``fn``: median over ``repeats`` blocks of ``n`` calls, after ``warmup`` calls."""
    dev = torch.device(device)
    for _ in range(warmup):
        fn()
    _sync(dev)
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


def _blocks(cfg: BenchConfig) -> int:
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
    _sync(dev)
    best = math.inf
    for _ in range(reps):
        t = time_calls(lambda: a @ b, 1, 0, dev)["s"]
        best = min(best, t)
    return 2 * n ** 3 / best


# ---- data ---------------------------------------------------------------------------------------
def synthetic_images(n_train: int, n_test: int, device, in_channels: int = 1, seed: int = 0) -> ImageData:
    """Random uint8 images of Fashion-MNIST's (padded) shape and random labels, as an ImageData."""
    gen = torch.Generator().manual_seed(seed)
    x_tr = torch.randint(0, 256, (n_train, in_channels, 32, 32), generator=gen, dtype=torch.uint8)
    x_te = torch.randint(0, 256, (n_test, in_channels, 32, 32), generator=gen, dtype=torch.uint8)
    y_tr = torch.randint(0, 10, (n_train,), generator=gen)
    y_te = torch.randint(0, 10, (n_test,), generator=gen)
    xf = x_tr.double() / 255.0
    mean = xf.mean(dim=(0, 2, 3), keepdim=True).float()
    std = xf.std(dim=(0, 2, 3), keepdim=True).float()
    dev = torch.device(device)
    return ImageData("synthetic", x_tr.to(dev), y_tr.to(dev), x_te.to(dev), y_te.to(dev), mean.to(dev),
                     std.to(dev), tuple(str(i) for i in range(10)))


def bench_data(cfg: BenchConfig) -> tuple:
    """(ImageData on the device, a line saying which data it is): real Fashion-MNIST if found, else synthetic."""
    if cfg.data in ("auto", "real"):
        try:
            data = load_images(DataConfig("fashion_mnist"), cfg.device, download=False)
            return data, f"Fashion-MNIST (real, {data.x_train.shape[0]} training images, padded to 32x32)"
        except (DatasetNotFound, OSError) as err:
            if cfg.data == "real":
                raise
            reason = f"{type(err).__name__}"
    else:
        reason = "asked for"
    data = synthetic_images(cfg.synthetic_n, 10_000, cfg.device, seed=cfg.seed)
    return data, f"synthetic uint8 images of Fashion-MNIST's shape ({cfg.synthetic_n} x 1x32x32; {reason})"


class PILImages(torch.utils.data.Dataset):
    """The plain baseline's data set, torchvision style: uint8 numpy images -> PIL -> transform, int label."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def _baseline_transform(mean, std):
    """``transforms.Compose([ToTensor(), Normalize(mean, std)])``, or the same by hand without torchvision."""
    try:
        from torchvision import transforms
        return transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)]), \
            "torchvision ToTensor+Normalize"
    except ImportError:
        m = torch.tensor(mean).view(-1, 1, 1)
        s = torch.tensor(std).view(-1, 1, 1)

        def transform(img):
            a = torch.from_numpy(np.array(img, dtype=np.uint8))
            a = a[None] if a.dim() == 2 else a.permute(2, 0, 1)
            return (a.float() / 255.0 - m) / s
        return transform, "hand-written ToTensor/Normalize (torchvision not installed)"


def baseline_loader(data: ImageData, batch_size: int, seed: int):
    """The plain pipeline: PIL images + ToTensor + Normalize + DataLoader(num_workers=0, shuffle=True)."""
    x = data.x_train.cpu().permute(0, 2, 3, 1).numpy()          # NHWC uint8, as PIL wants it
    if x.shape[-1] == 1:
        x = x[..., 0]
    transform, kind = _baseline_transform(data.mean.flatten().tolist(), data.std.flatten().tolist())
    ds = PILImages(np.ascontiguousarray(x), data.y_train.cpu().numpy(), transform)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=0, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    return loader, kind


def _endless(loader):
    while True:
        yield from loader


# ---- steps --------------------------------------------------------------------------------------
def _model_and_opt(model_cfg: ModelConfig, cfg: BenchConfig, lr: float, dtype=torch.float32):
    model = build(model_cfg, cfg.seed, cfg.device, dtype)
    model.train()
    return model, torch.optim.SGD(model.parameters(), lr=lr)


def engine_stepper(model, opt, batches, probes=(), ring: int = 64, options: EngineOptions | None = None):
    """One training step as ``bnlab.train.train`` takes it (the same :class:`bnlab.engine.Stepper`; probes due
    every step), without the loop's bookkeeping: no host sync."""
    stepper = Stepper(model, opt, options)
    dev = next(model.parameters()).device
    losses = torch.zeros(ring, device=dev, dtype=torch.float64)
    accs = torch.zeros(ring, device=dev, dtype=torch.float64)
    classifier = model.kind == "classifier"
    count = [0]

    def step():
        i = count[0]
        x, y = next(batches)
        out, loss = stepper.step(i, x, y, probes)
        for p in probes:
            p.after_step(i, model, x, y)
        losses[i % ring] = loss.detach()
        if classifier:
            accs[i % ring] = (out.argmax(1) == y).double().mean()
        count[0] += 1
    return step


def baseline_stepper(model, opt, loader, device):
    """The plain loop: batches from the DataLoader, copied to the device, ``loss.item()`` every step."""
    it = _endless(loader)
    log = []

    def step():
        x, y = next(it)
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss = nn.functional.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.append(loss.item())
    return step


# ---- ICS, naive reference -----------------------------------------------------------------------
@torch.no_grad()
def _load_blocks(model, blocks, source):
    for i in blocks:
        for p, s in zip(model.blocks[i].parameters(), source[i]):
            p.copy_(s)


def naive_gradient_ics(model, x, y, old_params, grads, layers) -> dict:
    """Reference G': per measured layer, one full forward and backward of the whole network (all gradients).

    Same contract as :func:`bnlab.measure.gradient_ics`: ``model`` holds W^(t+1), ``old_params[i]`` block i's
    W^(t); returns {layer: (G, G')} and leaves parameters and running statistics as they were.
    """
    new_params = [[p.detach().clone() for p in b.parameters()] for b in model.blocks]
    params = list(model.parameters())
    index = {id(p): k for k, p in enumerate(params)}
    out = {}
    with frozen_state(model):
        try:
            for layer in sorted(layers):
                _load_blocks(model, range(layer - 1), new_params)                 # layers < i at W^(t+1)
                _load_blocks(model, range(layer - 1, len(model)), old_params)     # layers >= i at W^(t)
                loss = loss_fn(model, model(x), y)
                all_grads = torch.autograd.grad(loss, params)
                out[layer] = (grads[layer], all_grads[index[id(model.blocks[layer - 1].weight)]])
        finally:
            _load_blocks(model, range(len(model)), new_params)
    return out


class NaiveICSProbe(ICSProbe):
    """:class:`ICSProbe` with the naive G' (for timing against the shared-prefix one)."""

    def after_step(self, step, model, x, y):
        pairs = naive_gradient_ics(model, x, y, self._old, self._grads, self.layers)
        r = self.records
        r["step"].append(step)
        g = [(a.flatten().double(), b.flatten().double()) for a, b in (pairs[k] for k in self.layers)]
        r["l2"].append(torch.stack([(a - b).norm() for a, b in g]))
        r["cos"].append(torch.stack([torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-300) for a, b in g]))
        r["gnorm"].append(torch.stack([a.norm() for a, _ in g]))
        del self._old, self._grads


def ics_agreement(model_cfg: ModelConfig, data, cfg: BenchConfig, layers, lr: float, warm_steps: int = 3) -> dict:
    """Max relative difference ||G'_fast - G'_naive|| / ||G'_naive|| over ``layers`` at one step."""
    dtype = torch.float64 if model_cfg.arch == "dln" else torch.float32
    model, opt = _model_and_opt(model_cfg, cfg, lr, dtype)
    batches = data.batches(cfg.batch_size, cfg.seed, dtype)
    step = engine_stepper(model, opt, batches)
    for _ in range(warm_steps):
        step()
    x, y = next(batches)
    loss = loss_fn(model, model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    old = [[p.detach().clone() for p in b.parameters()] for b in model.blocks]
    grads = {k: model.blocks[k - 1].weight.grad.detach().clone() for k in layers}
    opt.step()
    before = [p.detach().clone() for p in model.parameters()]
    fast = gradient_ics(model, x, y, old, grads, layers)
    naive = naive_gradient_ics(model, x, y, old, grads, layers)
    untouched = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    rel = {k: float((fast[k][1] - naive[k][1]).double().norm() / naive[k][1].double().norm().clamp_min(1e-300))
           for k in layers}
    shift = {k: float((fast[k][0] - fast[k][1]).double().norm() / fast[k][0].double().norm().clamp_min(1e-300))
             for k in layers}
    return {"max_rel_diff": max(rel.values()), "rel_diff": {str(k): v for k, v in rel.items()},
            "bitwise_equal": all(torch.equal(fast[k][1], naive[k][1]) for k in layers),
            "ics_rel": {str(k): v for k, v in shift.items()}, "params_untouched": untouched}


# ---- section 1 ----------------------------------------------------------------------------------
def bench_engine_vs_baseline(cfg: BenchConfig, data: ImageData, peaks: dict) -> dict:
    """Steps/s of the plain DataLoader loop and of the engine on the same VGG steps, their ratio, and MFU."""
    model_cfg = ModelConfig(arch=cfg.arch, norm=cfg.norm, width=cfg.width, in_channels=data.x_train.shape[1])
    n = _blocks(cfg)

    model, opt = _model_and_opt(model_cfg, cfg, cfg.lr)
    loader, kind = baseline_loader(data, cfg.batch_size, cfg.seed)
    t_base = time_calls(baseline_stepper(model, opt, loader, cfg.device), n, cfg.warmup, cfg.device, cfg.repeats)

    model, opt = _model_and_opt(model_cfg, cfg, cfg.lr)
    step = engine_stepper(model, opt, data.batches(cfg.batch_size, cfg.seed))
    t_eng = time_calls(step, n, cfg.warmup, cfg.device, cfg.repeats)

    variants = {}
    for name in cfg.variants:         # the engine's options (bnlab.engine.EngineOptions), one at a time
        model, opt = _model_and_opt(model_cfg, cfg, cfg.lr)
        # "tf32": the steps a run of precision "tf32" takes between measurements (tensor cores on a GPU)
        options = EngineOptions() if name == "tf32" else EngineOptions(**{name: True})
        step = engine_stepper(model, opt, data.batches(cfg.batch_size, cfg.seed), options=options)
        set_tf32(name == "tf32")
        try:
            t = time_calls(step, n, cfg.warmup + (3 if name == "compile" else 0), cfg.device, cfg.repeats)
        finally:
            strict_fp32()
        variants[name] = {"steps_per_s": 1 / t["s"], "ms_per_step": 1e3 * t["s"], "over_engine": t_eng["s"] / t["s"],
                          "over_baseline": t_base["s"] / t["s"]}

    fwd = model_flops(model_cfg)
    step_flops = 3 * fwd * cfg.batch_size
    achieved = step_flops / t_eng["s"]
    mfu = {name: achieved / (tflops * 1e12) for name, tflops in peaks["tflops"].items()}
    return {"variants": variants, "baseline": {"steps_per_s": 1 / t_base["s"], "ms_per_step": 1e3 * t_base["s"],
                         "pipeline": f"PIL + {kind} + DataLoader(workers=0, shuffle) + .item()"},
            "engine": {"steps_per_s": 1 / t_eng["s"], "ms_per_step": 1e3 * t_eng["s"],
                       "pipeline": "uint8 on device, normalised per batch, no per-step sync"},
            "engine_over_baseline": t_base["s"] / t_eng["s"],
            "fwd_flops_per_image": fwd, "flops_per_step": step_flops, "engine_tflops": achieved / 1e12,
            "mfu": mfu}


# ---- section 2 ----------------------------------------------------------------------------------
def _probe_cost(model_cfg, cfg, batches_of, make_probes, lr, dtype=torch.float32, weight: int = 1) -> dict:
    """Timing of a step with ``make_probes(model)`` due every step; ``weight`` ~ its cost in plain steps
    (a measurement that costs k plain steps is timed over ~1/k as many calls, at least 3 per block)."""
    model, opt = _model_and_opt(model_cfg, cfg, lr, dtype)
    step = engine_stepper(model, opt, batches_of(dtype), make_probes(model))
    n = max(3, round(_blocks(cfg) * 4 / max(weight, 4))) if weight > 4 else _blocks(cfg)
    warm = max(1, cfg.warmup * 4 // weight) if weight > 4 else cfg.warmup
    return time_calls(step, n, warm, cfg.device, cfg.repeats)


def registry_norms(network: str, scale: str = "paper") -> list:
    """The normalisations the registered experiments use for ``network`` ("vgg" or "dln") at ``scale``."""
    from .experiments import EXPERIMENTS
    return sorted({r.model.norm for e in EXPERIMENTS.values() if e.network == network for r in e.runs(scale)})


def _summarise(t: dict) -> dict:
    plain = t["plain"]["s"]
    return {"ms": {name: 1e3 * v["s"] for name, v in t.items()},
            "ratio_to_plain": {name: v["s"] / plain for name, v in t.items()},
            "block_spread": {name: max(v["blocks_s"]) / min(v["blocks_s"]) for name, v in t.items()}}


def _plain_by_norm(model_cfg, cfg, batches_of, lr, network, measured_ms, dtype=torch.float32) -> dict:
    """Plain-step ms of every normalisation the registry uses (the measured one reused)."""
    out = {}
    for norm in registry_norms(network):
        out[norm] = measured_ms if norm == model_cfg.norm else 1e3 * _probe_cost(
            replace(model_cfg, norm=norm), cfg, batches_of, lambda m: [], lr, dtype)["s"]
    return out


def bench_probe_costs(cfg: BenchConfig, data: ImageData) -> dict:
    """Seconds per VGG training step with each measurement taken every step, and ratios to a plain step."""
    model_cfg = ModelConfig(arch=cfg.arch, norm=cfg.norm, width=cfg.width, in_channels=data.x_train.shape[1])
    batches_of = lambda dtype: data.batches(cfg.batch_size, cfg.seed, dtype)  # noqa: E731
    cost = lambda make: _probe_cost(model_cfg, cfg, batches_of, make, cfg.lr)  # noqa: E731
    rng = (0.5, 4.0)
    t = {"plain": cost(lambda m: []),
         "ics": cost(lambda m: [ICSProbe(cfg.ics_layers, 1)]),
         "ics_naive": cost(lambda m: [NaiveICSProbe(cfg.ics_layers, 1)]),
         "activations": cost(lambda m: [ActivationProbe(m, VGG_ACT_LAYERS, 4, 1, cfg.seed, 10 ** 6)])}
    for k in cfg.ks:
        t[f"landscape_k{k}"] = _probe_cost(model_cfg, cfg, batches_of,
                                           lambda m, k=k: [LandscapeProbe(cfg.lr, rng, k, True, 1, "loop")],
                                           cfg.lr, weight=k + 1)
    out = _summarise(t)
    ms = out["ms"]
    out.update({"ics_naive_over_fast": ms["ics_naive"] / ms["ics"],
                "ics_extra_naive_over_fast": (ms["ics_naive"] - ms["plain"]) / max(ms["ics"] - ms["plain"], 1e-12),
                "ics_layers": list(cfg.ics_layers), "ks": list(cfg.ks),
                "plain_ms_by_norm": _plain_by_norm(model_cfg, cfg, batches_of, cfg.lr, "vgg", ms["plain"])})
    out["flop_ratio"] = flop_ratios(block_flops(model_cfg), cfg.ics_layers, cfg.ks)
    out["amortised"] = {s.name: {"probe_every": s.probe_every, "steps": s.vgg_steps,
                                 **{k: 1 + (r - 1) * times_due(s.probe_every, s.vgg_steps) / s.vgg_steps
                                    for k, r in out["ratio_to_plain"].items() if k != "plain"}}
                        for s in (get_scale("paper"), get_scale("cpu"))}
    out["ics_agreement"] = ics_agreement(model_cfg, data, cfg, cfg.ics_layers, cfg.lr)

    # forward-only cost of evaluation (for the projection): one batch of up to 1000 test images
    model, _ = _model_and_opt(model_cfg, cfg, cfg.lr)
    model.eval()
    xb = data.normalise(data.x_test[:1000])

    def fwd():
        with torch.no_grad():
            model(xb)
    out["eval_ms_per_image"] = 1e3 * time_calls(fwd, max(2, _blocks(cfg) // 5), 1, cfg.device)["s"] / xb.shape[0]
    return out


def bench_dln_costs(cfg: BenchConfig) -> dict:
    """Per-step costs of the deep linear network (float64, full batch) with its probes, for the projection."""
    dcfg = DataConfig("dln_synthetic")
    data = load_regression(dcfg, cfg.seed, cfg.device)
    model_cfg = ModelConfig(arch="dln", norm=cfg.norm)
    batches_of = lambda dtype: data.batches(dcfg.dln_samples, cfg.seed, dtype)  # noqa: E731
    cost = lambda make, w=1: _probe_cost(model_cfg, cfg, batches_of, make, DLN_LR, torch.float64, w)  # noqa: E731
    t = {"plain": cost(lambda m: []),
         "ics": cost(lambda m: [ICSProbe(DLN_ICS_LAYERS, 1)]),
         "activations": cost(lambda m: [ActivationProbe(m, DLN_ACT_LAYERS, 4, 1, cfg.seed, 10 ** 6)]),
         f"landscape_k{cfg.vmap_k}": cost(lambda m: [LandscapeProbe(DLN_LR, (0.01, 30.0), cfg.vmap_k, True, 1,
                                                                    EngineOptions().landscape_for("dln"))],
                                          cfg.vmap_k + 1)}
    out = _summarise(t)
    out["plain_ms_by_norm"] = _plain_by_norm(model_cfg, cfg, batches_of, DLN_LR, "dln", out["ms"]["plain"],
                                             torch.float64)
    return out


# ---- section 3 ----------------------------------------------------------------------------------
def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(((a - b).abs() / b.abs().clamp_min(1e-300)).max())


def compare_backends(model, x, y, etas, cfg: BenchConfig) -> dict:
    """Loop vs vmap on one batch (``model.grad`` set here): agreement, seconds per probe call, speed ratio."""
    model.zero_grad(set_to_none=True)
    loss_fn(model, model(x), y).backward()
    res = {b: probe_along_gradient(model, x, y, etas, backend=b) for b in ("loop", "vmap")}
    out = {"max_rel_diff_loss": _rel(res["vmap"]["loss"], res["loop"]["loss"]),
           "max_rel_diff_grad_change": _rel(res["vmap"]["grad_change"], res["loop"]["grad_change"]),
           "max_rel_diff_beta": _rel(res["vmap"]["beta"], res["loop"]["beta"])}
    reps = max(2, _blocks(cfg) // 5)
    cuda = torch.device(cfg.device).type == "cuda"
    for b in ("loop", "vmap"):
        if cuda:
            torch.cuda.reset_peak_memory_stats(cfg.device)
            base = torch.cuda.memory_allocated(cfg.device)
        t = time_calls(lambda b=b: probe_along_gradient(model, x, y, etas, backend=b), reps, 1, cfg.device,
                       cfg.repeats)
        out[f"{b}_ms"] = 1e3 * t["s"]
        if cuda:
            out[f"{b}_peak_mem_mb"] = (torch.cuda.max_memory_allocated(cfg.device) - base) / 2 ** 20
    out["vmap_speedup"] = out["loop_ms"] / out["vmap_ms"]
    return out


def bench_loop_vs_vmap(cfg: BenchConfig, data: ImageData) -> dict:
    """Section 3: the VGG with BatchNorm (fp32) and the DLN, plain and with BN (float64), K = ``vmap_k``."""
    out = {"k": cfg.vmap_k}
    model_cfg = ModelConfig(arch=cfg.arch, norm="batch", width=cfg.width, in_channels=data.x_train.shape[1])
    model, _ = _model_and_opt(model_cfg, cfg, cfg.lr)
    x, y = next(data.batches(cfg.batch_size, cfg.seed))
    out[f"{cfg.arch}_batch"] = compare_backends(model, x, y, etas_for(cfg.lr, (0.5, 4.0), cfg.vmap_k), cfg)
    dcfg = DataConfig("dln_synthetic")
    reg = load_regression(dcfg, cfg.seed, cfg.device)
    for norm in ("none", "batch"):
        model, _ = _model_and_opt(ModelConfig(arch="dln", norm=norm), cfg, DLN_LR, torch.float64)
        out[f"dln_{norm}"] = compare_backends(model, reg.x, reg.y, etas_for(DLN_LR, (0.01, 30.0), cfg.vmap_k), cfg)
    return out


# ---- section 4 ----------------------------------------------------------------------------------
def _landscape_ms(ms: dict, k: int) -> float:
    """Extra ms of K landscape points: measured, else linear in K through the nearest two measured points."""
    known = sorted((int(name[len("landscape_k"):]), v - ms["plain"]) for name, v in ms.items()
                   if name.startswith("landscape_k"))
    exact = dict(known)
    if k in exact:
        return exact[k]
    if len(known) == 1:
        return known[0][1] * k / known[0][0]
    (k0, v0), (k1, v1) = sorted(known, key=lambda kv: abs(kv[0] - k))[:2]
    return v0 + (v1 - v0) * (k - k0) / (k1 - k0)


def _extra_ms(ms: dict, p) -> float:
    """Extra ms of one probed step with a run's probes (each clamped at 0: timing noise can make it negative)."""
    extra = max(ms["ics"] - ms["plain"], 0.0) * bool(p.ics_layers) + \
        max(ms["activations"] - ms["plain"], 0.0) * bool(p.activation_layers)
    return extra + max(_landscape_ms(ms, p.landscape_points), 0.0) * p.landscape


def minutes_at_peak(flops: dict, fp32_tflops: float, tf32_tflops: float) -> dict:
    """Minutes the suite's FLOPs take at 100% of a device's peaks: all in strict fp32, and with the TF32-eligible
    part at the TF32 peak (a bound no real run reaches: small CNNs at batch 128 use a fraction of it)."""
    fp32 = flops["total"] / (fp32_tflops * 1e12) / 60
    mixed = ((flops["total"] - flops["tf32_eligible"]) / (fp32_tflops * 1e12)
             + flops["tf32_eligible"] / (tf32_tflops * 1e12)) / 60
    return {"strict_fp32": fp32, "tf32_between_measurements": mixed}


def project_suite(scale_name: str, vgg: dict, dln: dict, measured: dict, tf32_speedup: float = 1.0) -> dict:
    """Minutes for every registered experiment's unique runs at ``scale_name``, from measured per-step costs.

    VGG costs are scaled from the measured width to the scale's width by the ratio of forward FLOPs (a
    projection: small widths are overhead-bound, so this is crude when the two widths differ a lot).
    Plain steps are timed for every normalisation; probe costs, measured with ``--norm``, are scaled by the
    ratio of plain steps; DLN costs are used as measured. ``tf32_speedup``: plain-step speed-up of TF32 measured
    in section 1 (1 where not measured), applied to the unprobed steps of runs of precision "tf32".
    """
    scale, unique = get_scale(scale_name), unique_runs(scale_name)
    factors = {}
    minutes = {"vgg_train": 0.0, "vgg_probes": 0.0, "vgg_eval": 0.0, "dln_train": 0.0, "dln_probes": 0.0}
    counts = {"vgg": 0, "dln": 0, "resnet": 0}
    for run in unique:
        p, t = run.probe, run.train
        n_probe = times_due(p.every, t.steps)
        if run.model.arch == "dln":
            ms = dln["ms"]
            plain = dln.get("plain_ms_by_norm", {}).get(run.model.norm, ms["plain"])
            extra = _extra_ms(ms, p)
            minutes["dln_train"] += t.steps * plain / 6e4
            minutes["dln_probes"] += n_probe * extra * plain / ms["plain"] / 6e4
            counts["dln"] += 1
        else:
            ms = vgg["ms"]
            plain = vgg.get("plain_ms_by_norm", {}).get(run.model.norm, ms["plain"])
            m = run.model
            if m not in factors:
                factors[m] = model_flops(m) / measured["fwd_flops_per_image"]
            factor = factors[m]
            extra = _extra_ms(ms, p)
            fast = t.steps - n_probe if t.precision == "tf32" else 0
            minutes["vgg_train"] += factor * (t.steps - fast + fast / tf32_speedup) * plain / 6e4
            minutes["vgg_probes"] += factor * n_probe * extra * plain / ms["plain"] / 6e4
            minutes["vgg_eval"] += factor * evaluated_images(run) * vgg["eval_ms_per_image"] / 6e4
            counts["resnet" if m.arch == "resnet" else "vgg"] += 1
    minutes["total"] = sum(minutes.values())
    return {"scale": scale_name, "unique_runs": len(unique), "vgg_runs": counts["vgg"], "dln_runs": counts["dln"],
            "resnet_runs": counts["resnet"],
            "vgg_width": scale.vgg_width,
            "flop_scale_from_measured": max((f for m, f in factors.items() if m.arch != "resnet"), default=1.0),
            "measured": measured, "minutes": minutes, "tf32_speedup": tf32_speedup,
            "note": "PROJECTION from measured per-step costs, one run after another on this device; VGG costs "
                    "scaled by forward FLOPs from the measured width; plain steps timed per normalisation, probe "
                    "costs measured with one and scaled by the plain-step ratio; landscape costs are those of the "
                    "back-end `auto` picks (loop for the VGG, vmap for the DLN); unprobed steps of TF32 runs at "
                    "the TF32 speed-up of section 1 (1 where it was not measured); ResNet runs (Bjorck's sweep) "
                    "are costed as VGG steps scaled by forward FLOPs, which undercounts their many small kernels"}


# ---- everything ---------------------------------------------------------------------------------
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


def run_all(cfg: BenchConfig, sections=(1, 2, 3, 4), data=None, log=print) -> dict:
    """Run the chosen sections and return one JSON-able dict (see ``benchmarks/README.md`` for the keys)."""
    strict_fp32()
    dev = pick(cfg.device)
    cfg = replace(cfg, device=str(dev))
    t0 = time.perf_counter()
    info = describe(dev)
    data_line = "given by the caller"
    if data is None:
        data, data_line = bench_data(cfg)
    out = {"meta": {**info, "date": _dt.datetime.now().isoformat(timespec="seconds"),
                    "threads": torch.get_num_threads(), "config": {**asdict(cfg), "ks": list(cfg.ks),
                                                                   "ics_layers": list(cfg.ics_layers),
                                                                   "variants": list(cfg.variants)},
                    "data": data_line, "precision": "fp32 strict (TF32 off); DLN float64",
                    "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
                    "timing": f"median of {cfg.repeats} blocks of {_blocks(cfg)} calls after {cfg.warmup} warm-up "
                              f"calls; {'CUDA events' if dev.type == 'cuda' else 'time.perf_counter'}"}}
    log(f"[bench] device {info['device_name']}, data: {data_line}")
    out["peaks"] = device_peaks(cfg)
    wall = out["meta"]["section_wall_s"] = {}

    def timed(key, fn, *args):
        t = time.perf_counter()
        out[key] = fn(*args)
        wall[key] = time.perf_counter() - t

    if 1 in sections:
        log("[bench] 1/4 engine vs DataLoader baseline")
        timed("engine", bench_engine_vs_baseline, cfg, data, out["peaks"])
    if 2 in sections or 4 in sections:
        log("[bench] 2/4 probe costs (VGG)")
        timed("probes", bench_probe_costs, cfg, data)
        log("[bench] 2/4 probe costs (DLN)")
        timed("dln_probes", bench_dln_costs, cfg)
    if 3 in sections:
        log("[bench] 3/4 loop vs vmap")
        timed("loop_vs_vmap", bench_loop_vs_vmap, cfg, data)
    if 4 in sections:
        measured = {"arch": cfg.arch, "fwd_flops_per_image": vgg_flops(cfg.arch, cfg.width, data.x_train.shape[1])}
        tf32 = out.get("engine", {}).get("variants", {}).get("tf32", {}).get("over_engine", 1.0)
        out["projection"] = {s: project_suite(s, out["probes"], out["dln_probes"], measured, tf32)
                             for s in ("paper", "cpu")}
        flops = suite_flops("paper")
        peaks = dict(CUDA_PEAKS_TFLOPS)["H100"]
        out["paper_flops"] = {"pflop": {k: v / 1e15 for k, v in flops.items()}, "peaks_device": "H100 SXM",
                              "peaks_tflops": peaks,
                              "minutes_at_peak": minutes_at_peak(flops, peaks["fp32"], peaks["tf32"])}
    out["meta"]["bench_wall_s"] = time.perf_counter() - t0
    return out


def format_report(r: dict) -> str:
    """The printed table (also written as the plain-text copy)."""
    m, c = r["meta"], r["meta"]["config"]
    lines = [f"bnlab benchmark -- {m['device_name']} ({m['device']}), torch {m['torch']}, {m['date']}",
             f"model {c['arch']} width {c['width']:g} norm {c['norm']}, batch {c['batch_size']}, lr {c['lr']:g}, "
             f"{m['precision']}",
             f"data: {m['data']}",
             f"timing: {m['timing']}",
             "peaks: " + ", ".join(f"{k} {v:.3g} TFLOP/s" for k, v in r["peaks"]["tflops"].items())
             + f" ({r['peaks']['source']})", ""]
    if "engine" in r:
        e = r["engine"]
        lines += ["[1] engine vs plain baseline, same VGG steps",
                  f"  {'pipeline':76s} {'steps/s':>9s} {'ms/step':>9s} {'ratio':>7s}",
                  f"  {'baseline: ' + e['baseline']['pipeline']:76s} {e['baseline']['steps_per_s']:9.2f} "
                  f"{e['baseline']['ms_per_step']:9.2f} {1.0:7.2f}",
                  f"  {'engine: ' + e['engine']['pipeline']:76s} {e['engine']['steps_per_s']:9.2f} "
                  f"{e['engine']['ms_per_step']:9.2f} {e['engine_over_baseline']:7.2f}",
                  *[f"  {'engine + ' + name:76s} {v['steps_per_s']:9.2f} {v['ms_per_step']:9.2f} "
                    f"{v['over_baseline']:7.2f}   ({v['over_engine']:.2f}x the engine)"
                    for name, v in e.get("variants", {}).items()],
                  f"  model FLOPs: {e['fwd_flops_per_image'] / 1e6:.2f} MFLOP fwd/image, "
                  f"{e['flops_per_step'] / 1e9:.2f} GFLOP/step (3x fwd, batch {c['batch_size']}); engine achieves "
                  f"{e['engine_tflops'] * 1e3:.1f} GFLOP/s",
                  "  MFU: " + ", ".join(f"{100 * v:.2f}% of {k}" for k, v in e["mfu"].items()), ""]
    if "probes" in r:
        p, d = r["probes"], r["dln_probes"]
        names = {"plain": "plain step (fwd+bwd+SGD)",
                 "ics": f"+ gradient ICS {tuple(p['ics_layers'])}, shared prefix + restricted bwd",
                 "ics_naive": f"+ naive ICS {tuple(p['ics_layers'])}, full fwd+bwd per layer",
                 "activations": f"+ activation probe {VGG_ACT_LAYERS}"}
        flop = p.get("flop_ratio", {})
        lines += ["[2] cost of a VGG step with measurements every step, ratio to a plain step",
                  f"  {'step':62s} {'ms':>9s} {'ratio':>7s} {'FLOP ratio':>11s}"]
        for k, v in p["ms"].items():
            label = names.get(k, f"+ landscape K={k[len('landscape_k'):]} (loop)")
            fl = f"{flop[k]:11.2f}" if k in flop else ""
            lines.append(f"  {label:62s} {v:9.2f} {p['ratio_to_plain'][k]:7.2f} {fl}".rstrip())
        if flop:
            lines.append("  FLOP ratio: the measurement's FLOPs over a plain step's (bench.flop_ratios); where time "
                         "follows FLOPs, the ratio lands near it")
        for s_name, am in p.get("amortised", {}).items():
            lines.append(f"  amortised over a {s_name}-scale run (probes every {am['probe_every']} of {am['steps']} "
                         "steps): " + ", ".join(f"{k} {v:.3f}" for k, v in am.items()
                                                if k not in ("probe_every", "steps", "ics_naive")))
        a = p["ics_agreement"]
        lines += [f"  naive / shared-prefix ICS: whole step {p['ics_naive_over_fast']:.2f}x, "
                  f"ICS part alone {p['ics_extra_naive_over_fast']:.2f}x",
                  f"  ICS agreement: max ||G'_fast - G'_naive|| / ||G'_naive|| = {a['max_rel_diff']:.2e} "
                  f"(bitwise equal: {a['bitwise_equal']}; {'OK' if a['max_rel_diff'] <= 1e-5 else 'MISMATCH'})",
                  f"  DLN (float64, 25x10x10, 1000 samples; landscape by the auto back-end, vmap): plain "
                  f"{d['ms']['plain']:.2f} ms; ratios "
                  + ", ".join(f"{k} {v:.2f}" for k, v in d["ratio_to_plain"].items() if k != "plain")]
        for label, src in (("VGG", p), ("DLN", d)):
            if "plain_ms_by_norm" in src:
                base = src["ms"]["plain"]
                lines.append(f"  plain {label} step by normalisation, ratio to {c['norm']}: " + ", ".join(
                    f"{n} {v / base:.2f}" for n, v in src["plain_ms_by_norm"].items()))
        worst = max(list(p["block_spread"].items()) + list(d["block_spread"].items()), key=lambda kv: kv[1])
        lines += [f"  largest max/min spread between timed blocks: {worst[1]:.2f} ({worst[0]})", ""]
    if "loop_vs_vmap" in r:
        lv = r["loop_vs_vmap"]
        lines += [f"[3] landscape probe back-ends, K = {lv['k']}: loop vs vmap",
                  f"  {'network':14s} {'loop ms':>9s} {'vmap ms':>9s} {'vmap speed-up':>14s} "
                  f"{'max rel diff loss':>18s} {'grad change':>12s}"
                  + (f" {'mem loop/vmap MB':>18s}" if "loop_peak_mem_mb" in lv[f"{c['arch']}_batch"] else "")]
        for name, v in lv.items():
            if not isinstance(v, dict):
                continue
            mem = f" {v['loop_peak_mem_mb']:8.0f}/{v['vmap_peak_mem_mb']:<9.0f}" if "loop_peak_mem_mb" in v else ""
            lines.append(f"  {name:14s} {v['loop_ms']:9.2f} {v['vmap_ms']:9.2f} {v['vmap_speedup']:14.2f} "
                         f"{v['max_rel_diff_loss']:18.1e} {v['max_rel_diff_grad_change']:12.1e}{mem}")
        lines.append("")
    if "projection" in r:
        lines.append("[4] PROJECTION (not a measurement) of the whole registered suite, runs one after another:")
        for s, pr in r["projection"].items():
            mm = pr["minutes"]
            lines.append(f"  scale {s:5s}: {pr['unique_runs']} unique runs ({pr['vgg_runs']} VGG at width "
                         f"{pr['vgg_width']:g}, {pr['dln_runs']} DLN, {pr.get('resnet_runs', 0)} ResNet); "
                         f"VGG costs x{pr['flop_scale_from_measured']:.3g}"
                         f" by FLOPs -> total {mm['total']:.1f} min ({mm['total'] / 60:.2f} h)")
            lines.append("    " + ", ".join(f"{k} {v:.1f}" for k, v in mm.items() if k != "total") + " min")
        lines.append("  " + r["projection"]["paper"]["note"])
        if "paper_flops" in r:
            f = r["paper_flops"]
            pf, mins, pk = f["pflop"], f["minutes_at_peak"], f["peaks_tflops"]
            lines += [f"  paper-scale work by FLOPs (arithmetic, VGG and ResNet runs): {pf['total']:.1f} PFLOP "
                      f"(train {pf['train']:.1f}, evaluation {pf['eval']:.1f}, probes {pf['probes']:.1f}); "
                      f"{pf['tf32_eligible']:.1f} PFLOP may run in TF32",
                      f"  at 100% of an {f['peaks_device']}'s dense peaks: all strict fp32 ({pk['fp32']:g} TFLOP/s) "
                      f"{mins['strict_fp32']:.1f} min; TF32 ({pk['tf32']:g}) between measurements "
                      f"{mins['tf32_between_measurements']:.1f} min"]
        lines.append("")
    lines.append(f"benchmark wall time {m['bench_wall_s']:.0f} s ("
                 + ", ".join(f"{k} {v:.0f} s" for k, v in m.get("section_wall_s", {}).items()) + ")")
    return "\n".join(lines)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def default_out(results: dict) -> Path:
    m = results["meta"]
    name = "cpu" if m["device"] == "cpu" else _slug(m["device_name"].replace("NVIDIA", ""))
    return Path("benchmarks") / "results" / f"{name}-{m['date'][:10]}.json"


def write(results: dict, out) -> tuple:
    """Write the JSON and its plain-text twin (same stem, .txt); returns both paths."""
    out = default_out(results) if str(out) == "auto" else Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    out.with_suffix(".txt").write_text(format_report(results) + "\n")
    return out.with_suffix(".json"), out.with_suffix(".txt")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bnlab.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--arch", default="vgg16", choices=("vgg16", "vgg11"))
    ap.add_argument("--norm", default="batch", help="VGG normalisation for sections 1-2 (default batch)")
    ap.add_argument("--width", type=float, default=None, help="VGG width (default 0.0625 on CPU, 1.0 on CUDA)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 45 CPU, 150 CUDA)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5 CPU, 10 CUDA)")
    ap.add_argument("--repeats", type=int, default=3, help="timed blocks per measurement; the median is kept")
    ap.add_argument("--data", default="auto", choices=("auto", "real", "synthetic"),
                    help="real Fashion-MNIST, synthetic uint8 images of its shape, or real if found (default)")
    ap.add_argument("--sections", default="1,2,3,4", help="which sections to run, e.g. 1,3 (4 needs 2)")
    ap.add_argument("--compile", action="store_true", help="also time the engine with torch.compile "
                                                            "(mode reduce-overhead; compiling takes minutes on a CPU)")
    ap.add_argument("--out", default=None, help="write FILE.json and FILE.txt; 'auto' = "
                                                "benchmarks/results/<device>-<date>.json")
    args = ap.parse_args(argv)
    dev = str(pick(args.device))
    d = defaults_for(dev)
    cfg = BenchConfig(device=dev, arch=args.arch, norm=args.norm,
                      width=args.width if args.width is not None else d["width"],
                      steps=args.steps if args.steps is not None else d["steps"],
                      warmup=args.warmup if args.warmup is not None else d["warmup"], repeats=args.repeats,
                      data=args.data, matmul_n=d["matmul_n"],
                      variants=("channels_last",) + (("tf32",) if dev.startswith("cuda") else ())
                      + (("compile",) if args.compile else ()))
    sections = tuple(int(s) for s in args.sections.split(","))
    results = run_all(cfg, sections, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(format_report(results))
    if args.out:
        paths = write(results, args.out)
        print("written: " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
