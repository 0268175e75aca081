"""Computing results: one run (reused from the run store when it is there), an experiment's runs in one process,
in a process pool spread over the visible GPUs, and :func:`run`, the one place that decides cached or live.

Many processes may share one run store (``--jobs``, several ``reproduce`` commands, cluster jobs through
``bnlab.launch``): a run is trained under its store claim (``bnlab.store.claim``), so no two processes train the
same config, and the second one reuses the first one's result.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from .config import config_hash, from_dict
from .device import describe, has_gpu, strict_fp32
from .estimate import LONG_MINUTES, preview
from .experiments import get as get_experiment
from .plan import RunPlan
from .scales import resolve as resolve_scale
from .results import CACHED_DIR, PRECISION_NAMES, Result, Run, load, provenance, save, write_manifest
from .store import StoreNotWritable
from .train import progress_bar, train


def run_one(cfg_dict: dict, plan: RunPlan) -> tuple[Run, bool]:
    """Train one run, or reuse a finished run with the same config hash from the plan's run store: (the run,
    whether it was reused). While it trains, the run's store claim keeps every other process from training it too.

    The order of the final writes loses no work to a kill at any instant: the finished state stays in the run's
    checkpoint until the run's arrays and then its record are stored, and only then is the checkpoint removed (a
    rerun in between resumes at the last step, or reuses the stored run and removes the leftover checkpoint)."""
    cfg, store = from_dict(cfg_dict), plan.store
    h = config_hash(cfg)
    ckpt = store.checkpoint_path(h)
    stored = store.load_run(h)
    if stored is None or ckpt.exists():
        with store.claim(h):                    # waits while another live process trains this config
            stored = store.load_run(h)
            if stored is None:
                run = train(cfg, plan, checkpoint=ckpt, keep_checkpoint=True)
                record = {"config": run.config, "status": run.status, "diverged_step": run.diverged_step,
                          "meta": run.meta}
                store.save_run(h, record, run.arrays)
                ckpt.unlink(missing_ok=True)    # only now: the result is durable
                return _as_read(json.loads(json.dumps(record)), run.arrays), False   # lists, not tuples
            ckpt.unlink(missing_ok=True)        # left by a process killed after storing the run
    return _as_read(*stored), True


def _as_read(meta: dict, arrays: dict) -> Run:
    """A run as the store gives it back, whether it was read or has just been trained and written."""
    return Run(meta["config"], meta["status"], meta["diverged_step"], arrays, meta["meta"])


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


def _init_worker(plan, devices, counter, threads):
    """Pool initializer: this worker's plan takes the next device of the round robin, without progress bars (the
    parent's bar counts the runs); the CPU threads are split."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    _WORKER["plan"], _WORKER["device"] = plan, devices[index % len(devices)]
    if torch.device(_WORKER["device"]).type == "cuda":
        torch.cuda.set_device(_WORKER["device"])         # its default GPU too (kernels, handles, stray allocations)
    torch.set_num_threads(threads)


def _worker(cfg_dict):
    return run_one(cfg_dict, _WORKER["plan"].with_(device=_WORKER["device"], progress=False))


def _device_summary(runs: list, fallback: str) -> str:
    """What ran the runs, from their own records (reused runs name the device that made them)."""
    names = sorted({r.meta.get("device_name", fallback) for r in runs}) or [fallback]
    return names[0] if len(names) == 1 else "several devices: " + "; ".join(names) + " (each run's meta names its own)"


# ---- experiments ----------------------------------------------------------------------------------
def _compute_analysis(exp, plan: RunPlan) -> Result:
    """An analysis experiment, or its result from the run store if these sources computed it, sized alike, before.
    Its provenance records the sized config it ran (``config``, ``config_hash``)."""
    scale, config = plan.scale, exp.analysis.config(plan.scale)
    key = config_hash(config)
    stored = plan.store.load_analysis(exp.name, key)
    if stored is not None:
        prov, arrays = stored
        return Result(exp.name, scale.name, prov, [], arrays, "live", reused=1, store_dir=str(plan.store.runs))
    t0 = time.perf_counter()
    arrays = exp.analysis.compute(scale, plan)
    precision = str(arrays.pop("precision", "fp64"))
    prov = provenance(exp.name, scale.name, exp.dataset_at(scale), describe(plan.device), time.perf_counter() - t0, precision)
    prov.update(config=config, config_hash=key, engine=plan.engine.describe())
    plan.store.save_analysis(exp.name, key, prov, arrays)
    return Result(exp.name, scale.name, prov, [], arrays, "live", store_dir=str(plan.store.runs))


def compute(experiment: str, plan: RunPlan) -> Result:
    """Run every run of ``experiment`` at the plan's scale (in ``plan.jobs`` processes if > 1, spread over the
    visible GPUs) and collect them; runs the run store holds are reused. One progress bar counts the runs (done of
    N, ETA) above each run's own bar."""
    exp, store, jobs, dev = get_experiment(experiment), plan.store, plan.jobs, torch.device(plan.device)
    strict_fp32()       # what every run sets; done here too so the provenance reports it
    store.ensure_writable()
    store.remove_stale_temps(plan.data_dir)
    if exp.analysis is not None:
        return _compute_analysis(exp, plan)
    scale = plan.scale.name
    configs = [c.to_dict() for c in exp.runs(plan.scale)]
    stored = sum(store.has_run(config_hash(c)) for c in configs)
    bar = progress_bar(len(configs), f"{experiment}: runs", plan.progress, leave=True, initial=stored)
    runs = []

    def collect(item):
        runs.append(item)
        if bar is not None and not item[1]:
            bar.update(1)
    info = describe(dev)
    if plan.pools(len(configs) - stored):
        # independent runs in separate processes: on a CPU they split the cores; on GPUs each worker takes the
        # next GPU in turn, and workers that share a GPU interleave their kernels (a small network leaves most of
        # the GPU idle between its own launches)
        workers = min(jobs, len(configs))
        threads = max(1, torch.get_num_threads() // workers)
        ctx = mp.get_context("spawn")
        with _main_hidden(), ctx.Pool(workers, _init_worker, (plan, worker_devices(dev, workers), ctx.Value("i", 0),
                                                                threads)) as pool:
            for item in pool.imap(_worker, configs, chunksize=1):
                collect(item)
        done = [r for r, _ in runs]
        what = "CPU" if dev.type == "cpu" else _device_summary(done, info["device_name"])
        info["device_name"] = f"{what} ({workers} processes x {threads} {'' if dev.type == 'cpu' else 'CPU '}threads)"
    else:
        for c in configs:
            collect(run_one(c, plan))
        done = [r for r, _ in runs]
        info["device_name"] = _device_summary(done, info["device_name"])
    if bar is not None:
        bar.close()
    info["engine"] = plan.engine.describe()
    info["engine_runs"] = engine_summary(done)
    wall = sum(r.meta.get("wall_s", 0.0) for r in done)
    precision = "; ".join(PRECISION_NAMES[p] for p in sorted({c["train"]["precision"] for c in configs}))
    return Result(experiment, scale, provenance(experiment, scale, configs[0]["data"]["dataset"], info, wall,
                                                precision), done, {}, "live", reused=sum(r for _, r in runs),
                  store_dir=str(store.runs))


@contextmanager
def _main_hidden():
    """While the pool's workers start, hide the parent's ``__main__`` from them. A spawned process re-runs the
    parent's main script first, so a reader's script that calls ``bnlab.run`` without an ``if __name__ ==
    "__main__":`` guard would start the experiment again in every worker; the workers need only bnlab's own
    functions, which they import by name."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        if "__file__" in saved:
            del main.__file__
        if "__spec__" in saved:
            main.__spec__ = None
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)


def engine_summary(runs) -> dict:
    """How the runs of a result actually ran: how many compiled, how many eager, and why any fell back."""
    engines = [r.meta.get("engine", {}) for r in runs]
    return {"compiled": sum(bool(e.get("compile")) for e in engines),
            "eager": sum(not e.get("compile") for e in engines),
            "fallbacks": sorted({e["compile_fallback"] for e in engines if e.get("compile_fallback")})}


def reproduce(experiment: str, plan: RunPlan, out: Path | None = None) -> Result:
    """Compute ``experiment`` and save it: to ``out`` (e.g. ``bnlab/cached``) or the plan's run store. The folder it
    is saved to is checked before anything is computed."""
    folder = Path(out) if out is not None else plan.store.runs / "experiments"
    check_output_folder(folder)
    result = compute(experiment, plan)
    save(result, folder)
    if Path(folder).resolve() == CACHED_DIR.resolve():
        write_manifest(CACHED_DIR)
    return result


def check_output_folder(folder: Path) -> Path:
    """``folder``, created if need be, once a file could be written in it; else a clear error naming it (raised
    before any work, not after hours of it)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test.{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise StoreNotWritable(f"cannot save results in {folder} ({type(err).__name__}: {err.strerror or err}); "
                                 f"pass --out (or out=) a folder you can write") from None
    return folder


# ---- the one place that decides cached or live -------------------------------------------------
def resolve_mode(mode: str | None = None) -> tuple[str, str]:
    """(mode, why): ``mode`` (the argument, else ``$BNLAB_MODE``, read by :func:`run`), else auto (live with a
    GPU, cached without)."""
    chosen = mode or "auto"
    if chosen not in ("auto", "cached", "live"):
        raise ValueError(f"mode must be 'cached', 'live' or 'auto', got {chosen!r}")
    if chosen == "auto":
        return ("live", "a GPU is present") if has_gpu() else ("cached", "no GPU is present")
    return chosen, "asked for"


POOL_MIN_MINUTES = 2.0   # [ours] below this a live run stays in one process: starting a worker costs seconds
POOL_MIN_GAIN = 1.1      # [ours] and unless the pool is estimated this much faster: the bench's noise on 2 cores


def live_plan(experiment: str, plan: RunPlan) -> tuple[RunPlan, str, float]:
    """(plan, preview text, minutes) of a live run: in ``plan.jobs`` processes (on a CPU by default one per core,
    ``bnlab.plan.auto_jobs``) when the estimate says that is at least :data:`POOL_MIN_GAIN` times faster than one
    process and one process would take :data:`POOL_MIN_MINUTES` or more; else in this one."""
    single = plan.with_(jobs=1)
    text, minutes = preview(experiment, single)
    if plan.jobs > 1 and minutes >= POOL_MIN_MINUTES:
        pooled_text, pooled = preview(experiment, plan)
        if pooled * POOL_MIN_GAIN <= minutes:
            return plan, pooled_text, pooled
    return single, text, minutes


class LongRunNotConfirmed(RuntimeError):
    """A live run projected to take hours was not asked for explicitly."""


def run(experiment: str, mode: str | None = None, scale: str | None = None, device=None, quiet=False,
        allow_long: bool | None = None) -> Result:
    """The result of ``experiment``: shipped (cached) or recomputed (live), and a banner saying which. A live run
    first prints its plan (runs to do and reused, estimated minutes on this device); one projected to take longer
    than ``bnlab.estimate.LONG_MINUTES`` starts only with ``allow_long=True`` (or ``BNLAB_ALLOW_LONG=1``), else
    :class:`LongRunNotConfirmed` says so, with the plan and a scale that fits this device.

    This is the notebooks' edge: the arguments, else ``$BNLAB_MODE``, ``$BNLAB_SCALE`` and the rest of the
    environment (``bnlab.plan``), are read here, once."""
    mode, _ = resolve_mode(mode or os.environ.get("BNLAB_MODE") or None)
    scale = resolve_scale(scale, mode)
    if mode == "cached":
        result = load(experiment, scale)
    else:
        plan, text, minutes = live_plan(experiment, RunPlan.from_env(scale=scale, device=device, default_jobs="auto"))
        if allow_long is None:
            allow_long = os.environ.get("BNLAB_ALLOW_LONG", "0").lower() in ("1", "true", "yes", "on")
        if minutes > LONG_MINUTES and not allow_long:
            raise LongRunNotConfirmed(f"{text}\nNot started: pass allow_long=True (or set BNLAB_ALLOW_LONG=1) to "
                                      f"run it anyway.")
        if not quiet:
            print(text, flush=True)
        result = reproduce(experiment, plan)
    if not quiet:
        print(result.banner())
    return result
