"""Computing results: one run (reused from the run store when it is there), an experiment's runs in one process,
in a process pool spread over the visible GPUs, and :func:`run`, the one place that decides cached or live.

Many processes may share one run store (``--jobs``, several ``reproduce`` commands, cluster jobs through
``bnlab.launch``): a run is trained under its store claim (``bnlab.store.claim``), so no two processes train the
same config, and the second one reuses the first one's result.
"""
from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import time
from pathlib import Path

import torch

from . import device as devices, store
from .config import config_hash, from_dict, get_scale
from .device import describe, pick, strict_fp32
from .engine import EngineOptions
from .estimate import plan
from .experiments import get as get_experiment
from .results import CACHED_DIR, PRECISION_NAMES, Result, Run, load, provenance, save, write_manifest
from .train import progress_bar, train


def run_one(cfg_dict: dict, device=None, progress=None) -> tuple[Run, bool]:
    """Train one run, or reuse a finished run with the same config hash from the run store: (the run, whether it
    was reused). While it trains, the run's store claim keeps every other process from training it too."""
    cfg = from_dict(cfg_dict)
    h = config_hash(cfg)
    stored = store.load_run(h)
    if stored is None:
        with store.claim(h):                    # waits while another live process trains this config
            stored = store.load_run(h)
            if stored is None:
                dev = pick(device)
                res = train(cfg, device=dev, progress=progress, checkpoint=store.checkpoint_path(h))
                meta = {"config": cfg.to_dict(), "status": res.status, "diverged_step": res.diverged_step,
                        "meta": {"wall_s": round(res.wall_s, 2), "steps_per_s": round(res.meta["steps_per_s"], 2),
                                 "engine": res.meta["engine"], "resumed_at_step": res.meta["resumed_at_step"],
                                 "device": str(dev),
                                 "device_name": describe(dev)["device_name"]}}
                store.save_run(h, meta, res.arrays)
                return Run(meta["config"], res.status, res.diverged_step, res.arrays, meta["meta"]), False
    meta, arrays = stored
    return Run(meta["config"], meta["status"], meta["diverged_step"], arrays, meta["meta"]), True


# ---- a process pool over the visible devices ---------------------------------------------------------
def worker_devices(device: torch.device, jobs: int, visible: int | None = None) -> list:
    """The device of each of ``jobs`` workers: the GPUs in turn (round robin, several workers per GPU when
    ``jobs`` is larger), or the CPU for all. ``visible``: how many GPUs (default: ``torch.cuda.device_count()``)."""
    if device.type != "cuda":
        return [str(device)] * jobs
    n = torch.cuda.device_count() if visible is None else visible
    if device.index is not None or n <= 1:
        return [str(device)] * jobs                     # one GPU asked for by index, or only one there
    return [f"cuda:{i % n}" for i in range(jobs)]


_WORKER = {}


def _init_worker(devices, counter, threads):
    """Pool initializer: take the next device of the round robin, split the CPU threads."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    _WORKER["device"] = devices[index % len(devices)]
    torch.set_num_threads(threads)
    os.environ["BNLAB_PROGRESS"] = "0"


def _worker(cfg_dict):
    return run_one(cfg_dict, device=_WORKER["device"], progress=False)


def _device_summary(runs: list, fallback: str) -> str:
    """What ran the runs, from their own records (reused runs name the device that made them)."""
    names = sorted({r.meta.get("device_name", fallback) for r in runs}) or [fallback]
    return names[0] if len(names) == 1 else "several devices: " + "; ".join(names) + " (each run's meta names its own)"


# ---- experiments ----------------------------------------------------------------------------------
def _compute_analysis(experiment: str, scale: str, dev, progress) -> Result:
    """An analysis experiment, or its result from the run store if these sources computed it before."""
    stored = store.load_analysis(experiment, scale)
    if stored is not None:
        prov, arrays = stored
        return Result(experiment, scale, prov, [], arrays, "live", reused=1)
    exp = get_experiment(experiment)
    module, function = exp.compute.split(":")
    t0 = time.perf_counter()
    arrays = getattr(importlib.import_module(module), function)(scale, device=dev, progress=progress)
    precision = str(arrays.pop("precision", "fp64")) if "precision" in arrays else "fp64"
    prov = provenance(experiment, scale, exp.dataset, describe(dev), time.perf_counter() - t0, precision)
    store.save_analysis(experiment, scale, prov, arrays)
    return Result(experiment, scale, prov, [], arrays, "live")


def compute(experiment: str, scale: str, device=None, jobs: int = 1, progress=None) -> Result:
    """Run every run of ``experiment`` at ``scale`` (in ``jobs`` processes if > 1, spread over the visible GPUs)
    and collect them; runs the run store holds are reused. One progress bar counts the runs (done of N, ETA)
    above each run's own bar."""
    exp, sc = get_experiment(experiment), get_scale(scale)
    dev = pick(device)
    strict_fp32()       # what every run sets; done here too so the provenance reports it
    store.ensure_writable()
    store.remove_stale_temps()
    if exp.network == "none":
        return _compute_analysis(experiment, scale, dev, progress)
    configs = [c.to_dict() for c in exp.runs(sc)]
    stored = sum(store.has_run(config_hash(c)) for c in configs)
    bar = progress_bar(len(configs), f"{experiment}: runs", progress, leave=True, initial=stored)
    runs = []

    def collect(item):
        runs.append(item)
        if bar is not None and not item[1]:
            bar.update(1)
    info = describe(dev)
    if jobs > 1 and len(configs) - stored > 1:
        # independent runs in separate processes: on a CPU they split the cores; on GPUs each worker takes the
        # next GPU in turn, and workers that share a GPU interleave their kernels (a small network leaves most of
        # the GPU idle between its own launches)
        workers = min(jobs, len(configs))
        threads = max(1, torch.get_num_threads() // workers)
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, _init_worker, (worker_devices(dev, workers), ctx.Value("i", 0), threads)) as pool:
            for item in pool.imap(_worker, configs, chunksize=1):
                collect(item)
        done = [r for r, _ in runs]
        what = "CPU" if dev.type == "cpu" else _device_summary(done, info["device_name"])
        info["device_name"] = f"{what} ({workers} processes x {threads} {'' if dev.type == 'cpu' else 'CPU '}threads)"
    else:
        for c in configs:
            collect(run_one(c, dev, progress))
        done = [r for r, _ in runs]
        info["device_name"] = _device_summary(done, info["device_name"])
    if bar is not None:
        bar.close()
    info["engine"] = EngineOptions.from_env().describe()
    wall = sum(r.meta.get("wall_s", 0.0) for r in done)
    precision = "; ".join(PRECISION_NAMES[p] for p in sorted({c["train"]["precision"] for c in configs}))
    return Result(experiment, scale, provenance(experiment, scale, configs[0]["data"]["dataset"], info, wall,
                                                precision), done, {}, "live", reused=sum(r for _, r in runs))


def reproduce(experiment: str, scale: str = "cpu", out: Path | None = None, device=None, jobs: int = 1,
              progress=None) -> Result:
    """Compute ``experiment`` and save it: to ``out`` (e.g. ``bnlab/cached``) or the reader's run store."""
    result = compute(experiment, scale, device, jobs, progress)
    folder = Path(out) if out is not None else store.runs_dir() / "experiments"
    save(result, folder)
    if Path(folder).resolve() == CACHED_DIR.resolve():
        write_manifest(CACHED_DIR)
    return result


# ---- the one place that decides cached or live -------------------------------------------------
def resolve_mode(mode: str | None = None) -> tuple[str, str]:
    """(mode, why): the argument, else ``$BNLAB_MODE``, else auto (live with a GPU, cached without)."""
    chosen = mode or os.environ.get("BNLAB_MODE") or "auto"
    if chosen not in ("auto", "cached", "live"):
        raise ValueError(f"mode must be 'cached', 'live' or 'auto', got {chosen!r}")
    if chosen == "auto":
        return ("live", "a GPU is present") if devices.has_gpu() else ("cached", "no GPU is present")
    return chosen, "asked for"


def run(experiment: str, mode: str | None = None, scale: str | None = None, device=None, quiet=False) -> Result:
    """The result of ``experiment``: shipped (cached) or recomputed (live), and a banner saying which. A live run
    first prints its plan (runs to do and reused, estimated minutes on this device)."""
    mode, _ = resolve_mode(mode)
    scale = scale or os.environ.get("BNLAB_SCALE") or None      # an empty variable means unset, as for BNLAB_MODE
    if mode == "cached":
        result = load(experiment, scale)
    else:
        scale = get_scale(scale or ("colab" if devices.has_gpu() else "cpu")).name
        if not quiet:
            print(plan(experiment, scale, device=device)[0], flush=True)
        result = reproduce(experiment, scale, device=device)
    if not quiet:
        print(result.banner())
    return result
