"""One prepared GPU check, run once by a session that is lent a GPU (``scripts/gpu_check.sh`` wraps it).

Sections, each in its own try/except, timed, with a JSON file and one line in ``$OUT/summary.txt``
(PASS / FAIL / SKIP and its numbers):

1. ``agreement``: a few training steps of the same config on the same batches, with every probe kind due at every
   step (activations, gradient ICS, landscape, sharpness; the deep linear network's with its vmap landscape), on the
   CPU and on the device, in fp64 and in strict fp32: the largest normwise relative difference of any recorded
   array against a stated tolerance.
2. ``resume``: a noisy-BatchNorm run interrupted by SIGINT half-way (checkpoint written), resumed from its checkpoint,
   against the same run uninterrupted, on the device.
3. ``memory``: peak memory of training steps + every probe + the test-set evaluation of the VGG and the ResNet at
   ``colab`` and ``paper`` sizes (data of CIFAR-10's size on the device), against a 15 GB T4.
4. ``estimate``: a few steps of ``colab``-sized runs timed on random stand-in images, against what ``bnlab.estimate``
   predicts for the same runs (FLOPs at the TFLOP/s it measures here, or the launch floor).
5. ``bench``: ``python -m bnlab.bench`` on the device.

``--dry-run``: the CPU plays both devices, every size is ``smoke``, and the whole check takes seconds (CI).
Everything uses random stand-in images (no CIFAR-10 download, no data set on disk needed).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bnlab import engine as engine_mod
from bnlab.bench.baselines import synthetic_images
from bnlab.config import ProbeConfig
from bnlab.scales import COLAB, PAPER, SMOKE
from bnlab.device import describe, sync
from bnlab.estimate import BLOCK_MS, _block_steps, measure_tflops
from bnlab.flops import run_flops
from bnlab.measure import SharpnessProbe
from bnlab.plan import RunPlan
from bnlab.recipes import dln_run, resnet_run, vgg_run
from bnlab.train import train

T4_BYTES = 15e9                       # "15 GB": a free Colab T4 (torch reports 14.7 GiB total)
# normwise relative difference, CPU vs device, over a few steps. fp64 is the correctness check (an H200 agreed with
# the CPU to 1e-12 on the VGG and 1e-10 on the DLN); fp32 a check for gross errors: CPU and cuDNN kernels round
# differently, and the probes' differences of nearby gradients amplify it to a few 1e-2 within three steps
TOL = {"fp64": 1e-6, "fp32": 5e-2}
ESTIMATE_RANGE = (0.5, 2.0)           # timed / predicted seconds that count as agreeing
# reported, but not judged in fp32: an argmax that flips under rounding moves an accuracy by 1/batch, and the smallest
# Ritz value and the residual after a few Lanczos products are not stable under fp32 rounding, and cos(G, G') of two
# nearly equal gradients cancels (on an H200 it moved by half its largest value between the CPU and cuDNN)
FP32_UNJUDGED = ("train_acc", "test_acc", "sharp_min", "sharp_residual", "ics_cos")
PROBE_GROUPS = {"act", "ics", "land", "sharp"}   # array prefixes: activations, gradient ICS, landscape, sharpness


class Section:
    """Runs one check; its result is a dict with ``status`` (PASS/FAIL/SKIP), ``line`` and numbers."""

    def __init__(self, out: Path, deadline: float):
        self.out, self.deadline, self.results = out, deadline, {}

    def run(self, name: str, fn, *args):
        t0 = time.perf_counter()
        if time.monotonic() > self.deadline:
            res = {"status": "SKIP", "line": "time budget spent"}
        else:
            try:
                res = fn(*args)
            except Exception as err:  # noqa: BLE001  (one section's failure must not stop the others)
                res = {"status": "FAIL", "line": f"{type(err).__name__}: {str(err)[:300]}",
                       "traceback": traceback.format_exc()}
        res["seconds"] = round(time.perf_counter() - t0, 2)
        self.results[name] = res
        (self.out / f"{name}.json").write_text(json.dumps(res, indent=1, default=str))
        with open(self.out / "summary.txt", "a") as f:
            f.write(f"{res['status']:4s}  {name:9s}  {res['line']}  ({res['seconds']:.1f} s)\n")
        print(f"[gpu_check] {res['status']} {name}: {res['line']} ({res['seconds']:.1f} s)", file=sys.stderr, flush=True)
        return res


def plan_for(device: str, home: Path, scale=SMOKE) -> RunPlan:
    return RunPlan(scale=scale, device=device, home=home, progress=False)


def stand_in(cfg, device: str, n_train: int, n_test: int):
    return synthetic_images(n_train, n_test, device, in_channels=cfg.model.in_channels, seed=0)


def with_(cfg, steps=None, every=None, eval_every=None, precision=None, batch=None):
    t, p = cfg.train, cfg.probe
    t = replace(t, steps=steps or t.steps, eval_every=eval_every or t.eval_every, precision=precision or t.precision,
                batch_size=(batch or t.batch_size) if cfg.model.arch != "dln" else t.batch_size)
    if every is not None:
        p = replace(p, every=every) if every else ProbeConfig()
    return replace(cfg, train=t, probe=p)


def rel_diff(a: np.ndarray, b: np.ndarray, floor: float = 1e-6) -> float:
    """Normwise relative difference: max |a - b| / max(max |b|, floor) over the finite entries (inf when NaNs or
    shapes differ). The floor keeps quantities that are zero by construction (the layer means of the deep linear
    network's zero-mean data) from turning rounding into a large relative error."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return math.inf
    ok = np.isfinite(b)
    if not ok.any():
        return 0.0
    scale = max(float(np.abs(b[ok]).max()), floor)
    return float(np.abs(a[ok] - b[ok]).max()) / scale


def compare_runs(a, b) -> dict:
    keys = sorted(set(a.arrays) | set(b.arrays))
    return {k: (rel_diff(a.arrays[k], b.arrays[k]) if k in a.arrays and k in b.arrays else math.inf) for k in keys}


# ---- 1. agreement ---------------------------------------------------------------------------------------------
def agreement(ref_dev: str, dev: str, home: Path, steps: int, batch: int, iters: int) -> dict:
    cases = {}
    vgg = vgg_run(SMOKE, "batch", 0.1, 0)
    for precision in ("fp64", "fp32"):
        cfg = with_(vgg, steps=steps, every=1, eval_every=steps, precision=precision, batch=batch)
        cases[f"vgg_batch_{precision}"] = (cfg, precision, True)
    dln = with_(dln_run(SMOKE, "batch", 1e-6, 0), steps=steps, every=1, eval_every=steps)
    cases["dln_batch_fp64"] = (dln, "fp64", False)
    worst, detail = {}, {}
    for name, (cfg, precision, images) in cases.items():
        runs = []
        for d in (ref_dev, dev):
            data = stand_in(cfg, d, 512, 256) if images else None
            # tol 0: exactly ``iters`` Lanczos products on both devices
            extra = [lambda model: SharpnessProbe(1, iters=iters, tol=0.0, seed=0)]
            runs.append(train(cfg, plan_for(d, home), data=data, extra_probes=extra))
        diffs = compare_runs(runs[1], runs[0])
        probes = sorted({k.split("_")[0] for k in diffs if k not in ("step", "train_loss", "train_acc")})
        judged = {k: v for k, v in diffs.items() if precision != "fp32" or k not in FP32_UNJUDGED}
        key = max(judged, key=judged.get)
        worst[name] = {"max_rel": judged[key], "worst_array": key, "tol": TOL[precision], "arrays": len(judged)}
        detail[name] = {"diffs": diffs, "judged": sorted(judged), "array_groups": probes}
    bad = [n for n, w in worst.items() if not w["max_rel"] <= w["tol"]]
    missing = {n: sorted(PROBE_GROUPS - set(d["array_groups"])) for n, d in detail.items()
               if not PROBE_GROUPS <= set(d["array_groups"])}
    if missing:
        return {"status": "FAIL", "line": f"probes recorded nothing: {missing}", "worst": worst, "detail": detail}
    line = "; ".join(f"{n} {w['max_rel']:.1e} (tol {w['tol']:g}, {w['worst_array']})" for n, w in worst.items())
    return {"status": "FAIL" if bad else "PASS", "line": f"{ref_dev} vs {dev}, {steps} steps of batch {batch}, every probe each step: "
            + line, "worst": worst, "detail": detail}


# ---- 2. resume --------------------------------------------------------------------------------------------------
def resume(dev: str, home: Path, steps: int, batch: int) -> dict:
    cfg = with_(vgg_run(SMOKE, "noisy_batch", 0.1, 0), steps=steps, every=max(1, steps // 6),
                eval_every=max(1, steps // 3), batch=batch)
    plan = plan_for(dev, home)
    reference = train(cfg, plan, data=stand_in(cfg, dev, 512, 256))
    ckpt = home / "gpu_check_resume.ckpt"
    ckpt.unlink(missing_ok=True)
    calls, real_loss, stop_at = {"n": 0}, engine_mod.loss_fn, steps // 2 + 1

    def interrupting(model, out, y):
        calls["n"] += 1
        if calls["n"] == stop_at:
            os.kill(os.getpid(), signal.SIGINT)          # Ctrl-C in the middle of a step
        return real_loss(model, out, y)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    engine_mod.loss_fn = interrupting
    interrupted = False
    try:
        train(cfg, plan, data=stand_in(cfg, dev, 512, 256), checkpoint=ckpt)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        engine_mod.loss_fn = real_loss
        signal.signal(signal.SIGINT, previous)
    if not interrupted or not ckpt.exists():
        return {"status": "FAIL", "line": f"the run was not interrupted (interrupted={interrupted}, "
                                          f"checkpoint={ckpt.exists()})"}
    resumed = train(cfg, plan, data=stand_in(cfg, dev, 512, 256), checkpoint=ckpt)
    again = train(cfg, plan, data=stand_in(cfg, dev, 512, 256))       # a second uninterrupted run: the device's own
    noise = compare_runs(again, reference)                            # run-to-run difference
    diffs = compare_runs(resumed, reference)
    key, nkey = max(diffs, key=diffs.get), max(noise, key=noise.get)
    at = resumed.meta["resumed_at_step"]
    deterministic = torch.are_deterministic_algorithms_enabled()
    ok = diffs[key] <= 1e-6 and 0 < at < steps and not ckpt.exists()
    return {"status": "PASS" if ok else "FAIL",
            "line": f"{dev}{' (deterministic algorithms)' if deterministic else ''}: {steps}-step noisy-BN run "
                    f"interrupted, resumed at step {at}; max rel diff vs uninterrupted {diffs[key]:.1e} ({key}; tol "
                    f"1e-6); a second uninterrupted run differs by {noise[nkey]:.1e} ({nkey})",
            "resumed_at_step": at, "diffs": diffs, "run_to_run": noise, "deterministic": deterministic}


def resume_deterministic(dev: str, home: Path, steps: int, batch: int) -> dict:
    """The resume check with torch's deterministic algorithms (cuDNN and cuBLAS without atomics; needs
    CUBLAS_WORKSPACE_CONFIG=:4096:8 set before CUDA starts): separates a resume bug from the device's
    run-to-run nondeterminism."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return resume(dev, home / "deterministic", steps, batch)
    finally:
        torch.use_deterministic_algorithms(False)


# ---- 3. peak memory -----------------------------------------------------------------------------------------------
def memory(dev: str, home: Path, scales, batch: int) -> dict:
    cuda = torch.device(dev).type == "cuda"
    rows = {}
    for scale in scales:
        for net, build in (("vgg", vgg_run), ("resnet", resnet_run)):
            cfg = with_(build(scale, "batch", 0.1, 0), steps=2, every=1, eval_every=2, batch=batch)
            n_train, n_test = (512, 256) if scale is SMOKE else (50_000, 10_000)
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(dev)
            data = stand_in(cfg, dev, n_train, n_test)
            extra = [lambda model: SharpnessProbe(1, iters=3, seed=0)]
            train(cfg, plan_for(dev, home, scale), data=data, extra_probes=extra)
            del data
            if cuda:
                sync(dev)
                rows[f"{scale.name}_{net}"] = {"allocated": torch.cuda.max_memory_allocated(dev),
                                               "reserved": torch.cuda.max_memory_reserved(dev)}
            else:
                rows[f"{scale.name}_{net}"] = {"maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if not cuda:
        return {"status": "SKIP", "line": "no CUDA allocator on cpu; process max RSS "
                + ", ".join(f"{k} {v['maxrss'] / 1e9:.2f} GB" for k, v in rows.items()), "rows": rows}
    over = [k for k, v in rows.items() if v["reserved"] >= T4_BYTES]
    line = ", ".join(f"{k} {v['allocated'] / 1e9:.2f}/{v['reserved'] / 1e9:.2f} GB" for k, v in rows.items())
    return {"status": "FAIL" if over else "PASS", "line": f"peak allocated/reserved (limit {T4_BYTES / 1e9:g} GB, "
            f"a T4): {line}" + (f"; over: {over}" if over else ""), "rows": rows, "limit_bytes": T4_BYTES}


# ---- 4. estimate vs timed ------------------------------------------------------------------------------------------
def estimate(dev: str, home: Path, scale, steps: int, batch: int, judge: bool = True) -> dict:
    cases = {"vgg_plain": with_(vgg_run(scale, "batch", 0.1, 0), steps=steps, every=0, eval_every=steps),
             "vgg_probed": with_(vgg_run(scale, "batch", 0.1, 0), steps=steps, every=max(1, steps // 2),
                                 eval_every=steps),
             "resnet_probed": with_(resnet_run(scale, "batch", 0.1, 0), steps=steps, every=max(1, steps // 2),
                                    eval_every=steps)}
    n_train, n_test = (512, 256) if scale is SMOKE else (50_000, 10_000)
    rows = {}
    for name, cfg in cases.items():
        cfg = replace(with_(cfg, batch=batch), data=replace(cfg.data, test_subset=n_test))
        data = stand_in(cfg, dev, n_train, n_test)
        plan = plan_for(dev, home, scale)
        train(with_(cfg, steps=2, eval_every=2), plan, data=data)          # warm-up: allocator, cuDNN's choices
        tflops = measure_tflops(dev, cfg)
        flops = run_flops(cfg)["total"]
        predicted = max(flops / (tflops * 1e12), _block_steps(cfg) * BLOCK_MS / 1e3)
        sync(dev)
        t0 = time.perf_counter()
        train(cfg, plan, data=data)
        sync(dev)
        timed = time.perf_counter() - t0
        rows[name] = {"steps": steps, "flops": flops, "tflops_measured": tflops, "predicted_s": predicted,
                      "timed_s": timed, "ratio": timed / predicted}
    lo, hi = ESTIMATE_RANGE
    bad = [k for k, r in rows.items() if not lo <= r["ratio"] <= hi] if judge else []
    line = ", ".join(f"{k} {r['timed_s']:.2f}/{r['predicted_s']:.2f} s = {r['ratio']:.2f}x" for k, r in rows.items())
    verdict = f"ok in {lo}-{hi}x" if judge else "not judged in a dry-run: a shared CPU's timings"
    return {"status": "FAIL" if bad else "PASS",
            "line": f"{scale.name} sizes, {steps} steps of batch {batch} on stand-in data, timed/predicted ({verdict}): "
                    f"{line}",
            "rows": rows}


# ---- 5. bench -----------------------------------------------------------------------------------------------------
def bench(dev: str, out: Path, args: list, timeout: float) -> dict:
    if timeout < 20:
        return {"status": "SKIP", "line": f"only {timeout:.0f} s left in the time budget"}
    cmd = [sys.executable, "-m", "bnlab.bench", "--device", dev, "--out", str(out / "bench"), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        (out / "bench.log").write_text(f"{err.stdout or ''}\n{err.stderr or ''}")
        return {"status": "FAIL", "line": f"timed out after {timeout:.0f} s: {' '.join(cmd[2:])}"}
    (out / "bench.log").write_text(proc.stdout + "\n" + proc.stderr)
    if proc.returncode != 0:
        return {"status": "FAIL", "line": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
    res = json.loads((out / "bench.json").read_text())
    walls = res.get("meta", {}).get("section_wall_s", {})
    return {"status": "PASS", "line": f"{' '.join(cmd[2:])}: sections " + ", ".join(f"{k} {v:.1f} s" for k, v in
                                                                                   walls.items())
            + "; report in bench.txt", "section_wall_s": walls}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="cpu for both devices, smoke sizes (CI)")
    ap.add_argument("--out", default=os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu_check_"))
    ap.add_argument("--budget", type=float, default=None, help="seconds for all sections (default 50 dry, 480)")
    ap.add_argument("--bench-args", default=None, help="extra arguments of python -m bnlab.bench")
    ap.add_argument("--sections", default="agreement,resume,resume_deterministic,memory,estimate,bench",
                    help="the sections to run, comma-separated (default: all)")
    args = ap.parse_args(argv)
    dry = args.dry_run
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = args.budget or (50.0 if dry else 480.0)
    start = time.monotonic()
    home = out / "bnlab_home"
    if not dry and not torch.cuda.is_available():
        print("[gpu_check] no GPU visible; run with --dry-run on a CPU", file=sys.stderr)
        return 2
    dev = "cpu" if dry else "cuda"
    info = describe(dev)
    (out / "summary.txt").write_text(f"gpu_check {'dry-run (cpu vs cpu, smoke sizes)' if dry else 'cuda'}: "
                                     f"{info['device_name']}, torch {info['torch']}, budget {budget:.0f} s\n")
    s = Section(out, start + budget)
    # dry-run: smaller batches so that CI on two shared cores finishes in seconds; on the GPU the scales' batch 128
    batch = 16 if dry else 128
    chosen = set(args.sections.split(","))
    if "agreement" in chosen:
        s.run("agreement", agreement, "cpu", dev, home, 2 if dry else 3, batch, 3 if dry else 10)
    if "resume" in chosen:
        s.run("resume", resume, dev, home, 6 if dry else 24, batch)
    if "resume_deterministic" in chosen:
        s.run("resume_deterministic", resume_deterministic, dev, home, 6 if dry else 24, batch)
    if "memory" in chosen:
        s.run("memory", memory, dev, home, (SMOKE,) if dry else (COLAB, PAPER), batch)
    if "estimate" in chosen:
        s.run("estimate", estimate, dev, home, SMOKE if dry else COLAB, 4 if dry else 200, batch, not dry)
    bench_args = (args.bench_args or ("--sections 1 --steps 3 --warmup 1 --repeats 1 --data synthetic" if dry
                                      else "--steps 60 --warmup 5 --repeats 3 --data synthetic")).split()
    if "bench" in chosen:
        s.run("bench", bench, dev, out, bench_args, start + budget - time.monotonic())
    counts = {k: sum(r["status"] == k for r in s.results.values()) for k in ("PASS", "FAIL", "SKIP")}
    total = time.monotonic() - start
    with open(out / "summary.txt", "a") as f:
        f.write(f"total: {counts['PASS']} pass, {counts['FAIL']} fail, {counts['SKIP']} skip in {total:.1f} s\n")
    (out / "summary.json").write_text(json.dumps({"dry_run": dry, "device": info, "seconds": total,
                                                  "sections": s.results}, indent=1, default=str))
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
