"""Section 5: every network the suite trains, under each engine lever, as ratios to its plain eager step.

Per network (the registry's runs at one scale, each architecture with and without BatchNorm): the plain step in
eager mode; the same step with each lever (``channels_last`` for convolutions, ``torch.compile`` with its compile
time, K runs batched into one model by ``bnlab.batched``, per run); the step with every measurement of the run due;
the top operators of the eager step by the profiler's self time; and a projection of every chapter's runs with the
lever that paid most, next to eager. On a CPU with several cores, also the step in ``jobs`` processes at once, each
with its share of the threads (how a live chapter trains its runs there, ``bnlab.plan.auto_jobs``): its per-run
throughput against one process using every thread. Inputs are random tensors of the runs' shapes (timing does not
depend on values); every ratio is taken within this one run.
"""
from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import replace

import torch

from .. import chapters
from ..batched import SeedBatch, batchable
from ..compiling import decide
from ..config import config_hash, from_dict
from ..device import dtype_of, sync
from ..engine import EngineOptions, Stepper
from ..experiments import get as get_experiment
from ..flops import times_due
from ..measure import make_probes
from ..models import build
from ..plan import auto_jobs
from ..scales import get_scale

BATCH_K = 3          # runs per batch: the seeds of one setting in the registered experiments


def networks(scale: str = "cpu", norms=("batch", "none")) -> dict:
    """{label: a registered run} for every network (architecture, depth, width) the suite trains at ``scale``,
    each with the normalisations ``norms`` where the registry has them."""
    out = {}
    for name in dict.fromkeys(n for names in chapters.computes().values() for n in names):
        for run in get_experiment(name).runs(scale):
            m = run.model
            if m.norm not in norms:
                continue
            label = f"{m.arch}{m.depth or ''} x{m.width:g} {m.norm}" if m.arch != "dln" else f"dln {m.norm}"
            out.setdefault(label, run)
    return out


def _inputs(run, dev, k: int | None = None):
    """A batch of random inputs and targets of the run's shape (stacked ``k`` deep for a seed batch)."""
    dtype, m, n = dtype_of(run.train.precision), run.model, run.train.batch_size
    lead = (k,) if k else ()
    gen = torch.Generator().manual_seed(0)
    if m.arch == "dln":
        return (torch.randn(*lead, n, m.dln_dim, generator=gen, dtype=dtype).to(dev),
                torch.randn(*lead, n, m.dln_dim, generator=gen, dtype=dtype).to(dev))
    return (torch.randn(*lead, n, m.in_channels, 32, 32, generator=gen, dtype=dtype).to(dev),
            torch.randint(0, m.num_classes, (*lead, n), generator=gen).to(dev))


def _stepper(run, dev, options: EngineOptions, probes: bool = False):
    model = build(run.model, run.train.seed, dev, dtype_of(run.train.precision))
    model.train()
    stepper = Stepper(model, torch.optim.SGD(model.parameters(), lr=run.train.lr), options, run.train.steps)
    cfg = replace(run, probe=replace(run.probe, every=1))          # every measurement due at every step
    due = make_probes(cfg, model, options.landscape_for(run.model.arch)) if probes else []
    x, y = _inputs(run, dev)
    count = [0]

    def step():
        out, loss = stepper.step(count[0], x, y, due)
        for p in due:
            p.after_step(count[0], model, x, y)
        count[0] += 1
    return step, model


def _top_ops(step, n: int = 5) -> list:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows) or 1
    return [(e.key, round(100 * e.self_cpu_time_total / total, 1)) for e in rows[:n]]


def _interleaved(calls: dict, n: int, warmup: int, dev, repeats: int) -> dict:
    """ms per call of each of ``calls``, timed in turns (a block of each, ``repeats`` rounds; the median block):
    a machine whose speed drifts (another job starting) shifts every variant alike, not the one timed then."""
    blocks = {k: [] for k in calls}
    for k, fn in calls.items():
        for _ in range(warmup):
            fn()
    for _ in range(repeats):
        for k, fn in calls.items():
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            sync(dev)
            blocks[k].append((time.perf_counter() - t0) / n)
    return {k: 1e3 * sorted(v)[len(v) // 2] for k, v in blocks.items()}


def _timed_worker(run_dict, options, threads, n, warmup, repeats, barrier, queue):
    """One of the processes of :func:`in_processes`: ``repeats`` blocks of ``n`` plain steps, each block started
    with the others' (a barrier), on ``threads`` threads."""
    torch.set_num_threads(threads)
    try:
        step, _ = _stepper(from_dict(run_dict), torch.device("cpu"), options)
        for _ in range(warmup + 1):                    # + 1: a compiled step compiles (or loads its kernels) first
            step()
        blocks = []
        for _ in range(repeats):
            barrier.wait(timeout=600)
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            blocks.append(time.perf_counter() - t0)
        queue.put(blocks)
    except BaseException as err:                     # noqa: BLE001  (the parent says what failed, not a hang)
        barrier.abort()
        queue.put(f"{type(err).__name__}: {err}")


def in_processes(run, options: EngineOptions, jobs: int, n: int, warmup: int, repeats: int) -> float:
    """ms per step *per run* when ``jobs`` processes, each on its share of this CPU's threads, train ``run``'s
    network at the same time: the slowest process's block over ``jobs`` (the median block). What one run costs in a
    live chapter's process pool, where every core is busy with a run."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(jobs), ctx.Queue()
    threads = max(1, torch.get_num_threads() // jobs)
    procs = [ctx.Process(target=_timed_worker, daemon=True,
                         args=(run.to_dict(), options, threads, n, warmup, repeats, barrier, queue))
             for _ in range(jobs)]
    for p in procs:
        p.start()
    try:
        got = [queue.get(timeout=900) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    failed = [g for g in got if isinstance(g, str)]
    if failed:
        raise RuntimeError(f"timing {jobs} processes failed: {failed[0]}")
    per_block = sorted(max(blocks[i] for blocks in got) for i in range(repeats))
    return 1e3 * per_block[repeats // 2] / n / jobs


def bench_network(run, dev, n: int, warmup: int, repeats: int, compile_: bool = True,
                  processes: bool = True) -> dict:
    """ms per step of ``run``'s network: eager, each lever, probed; compile seconds; the profiler's top ops; and on
    a CPU that :func:`bnlab.plan.auto_jobs` splits, the eager (and compiled) step per run in that many processes."""
    eager, model = _stepper(run, dev, EngineOptions(compile=False))
    calls, out = {"eager": eager}, {"top_ops": _top_ops(eager)}
    if run.model.arch != "dln":
        calls["channels_last"] = _stepper(run, dev, EngineOptions(channels_last=True, compile=False))[0]
    if compile_:
        compiled, _ = _stepper(run, dev, EngineOptions(compile=True))
        t0 = time.perf_counter()
        compiled()                                     # compiles (or loads the cached kernels)
        sync(dev)
        out["compile_s"] = round(time.perf_counter() - t0, 1)
        calls["compile"] = compiled
    if batchable(model):
        models = [build(run.model, s, dev, dtype_of(run.train.precision)) for s in range(BATCH_K)]
        batch = SeedBatch(models, [run.train.lr] * BATCH_K)
        xs, ys = _inputs(run, dev, BATCH_K)
        calls[f"batched_k{BATCH_K}"] = lambda: batch.step(xs, ys)
    ms = _interleaved(calls, n, warmup, dev, repeats)
    if f"batched_k{BATCH_K}" in ms:
        ms[f"batched_k{BATCH_K}"] /= BATCH_K                # per run
    probed = {"probed_ms": _stepper(run, dev, EngineOptions(compile=False), probes=True)[0]}
    if compile_:          # the probed step eager, its landscape points through the compiled forward
        probed["probed_compile_ms"] = _stepper(run, dev, EngineOptions(compile=True), probes=True)[0]
    out.update(_interleaved(probed, max(2, n // 5), 1, dev, repeats))
    out["ms"] = ms
    out["speedup"] = {k: ms["eager"] / v for k, v in ms.items()}
    jobs = auto_jobs(str(dev))
    if processes and jobs > 1:
        levers = {"eager": EngineOptions(compile=False)} | ({"compile": EngineOptions(compile=True)} if compile_ else {})
        pms = {k: in_processes(run, o, jobs, n, warmup, repeats) for k, o in levers.items()}
        out["processes"] = {"jobs": jobs, "ms": pms, "speedup": {k: ms[k] / v for k, v in pms.items()}}
    return out


def best_lever(result: dict) -> str:
    """The lever with the fastest plain step (``eager`` when none beats it)."""
    return min(result["ms"], key=result["ms"].get)


def default_lever(run, result: dict) -> str:
    """The lever the engine's defaults use for ``run`` here: torch.compile where ``compile="auto"`` compiles it
    (``bnlab.compiling.decide``, on this machine), else eager."""
    model = build(run.model, 0, "meta") if "compile" in result["ms"] else None
    on, _ = decide("auto", torch.device("cpu"), run.train.steps, model) if model is not None else (False, None)
    return "compile" if on else "eager"


def _run_minutes(run, r: dict, lever: str) -> float:
    """Minutes of one run from its network's measured costs: unprobed steps at ``lever``, probed steps eager (their
    landscape points through the compiled forward when the lever is ``compile``), and the compile time once."""
    t = run.train
    n_probed = times_due(run.probe.every, t.steps) if run.probe.every else 0
    compiled = lever == "compile"
    probed = r.get("probed_compile_ms", r["probed_ms"]) if compiled else r["probed_ms"]
    ms = (t.steps - n_probed) * r["ms"][lever] + n_probed * probed
    return ms / 6e4 + (r.get("compile_s", 0.0) / 60 if compiled else 0.0)


def _measured_for(run, results: dict) -> dict | None:
    """The measurement of ``run``'s network: its own normalisation's, else the same network with BatchNorm."""
    m = run.model
    base = f"{m.arch}{m.depth or ''} x{m.width:g}" if m.arch != "dln" else "dln"
    return results.get(f"{base} {m.norm}") or results.get(f"{base} batch")


def project_chapters(results: dict, scale: str = "cpu") -> dict:
    """Minutes of every chapter's training runs at ``scale``, one after another: eager, with the engine's defaults
    (:func:`default_lever`), and with each network's best lever (each chapter alone; the suite with shared runs
    once). Analyses are not included."""
    split = any("processes" in r for r in results.values())
    cols = ("eager", "default", "best") + (("processes",) if split else ())
    rows, seen_suite, suite = {}, set(), dict.fromkeys(cols, 0.0)
    for chapter, names in chapters.computes().items():
        seen, row = set(), dict.fromkeys(cols, 0.0) | {"runs": 0}
        for name in names:
            for run in get_experiment(name).runs(scale):
                h, r = config_hash(run), _measured_for(run, results)
                if h in seen or r is None:
                    continue
                seen.add(h)
                lever = default_lever(run, r)
                minutes = {"eager": _run_minutes(run, r, "eager"),
                           "default": _run_minutes(run, r, lever),
                           "best": _run_minutes(run, r, best_lever(r))}
                if split:      # the default lever's minutes at its per-run throughput in the process pool
                    minutes["processes"] = minutes["default"] / r.get("processes", {}).get("speedup", {}).get(lever, 1.0)
                row["runs"] += 1
                for k, v in minutes.items():
                    row[k] += v
                    suite[k] += v if h not in seen_suite else 0.0
                seen_suite.add(h)
        rows[chapter] = row
    return {"scale": scale, "chapters": rows, "suite": suite,
            "note": "PROJECTION of the training runs only (analyses excluded), one run after another on this "
                    "device: unprobed steps eager, at the engine's default (compile='auto'), or at the network's "
                    "best lever (compile time once per run); probed steps eager (landscape points compiled where "
                    "the run compiles); a normalisation not measured here is costed as the same network with "
                    "BatchNorm" + ("; 'processes': the default in the live chapters' process pool (bnlab.plan."
                                   "auto_jobs), at the per-run throughput measured for the default lever there, "
                                   "probed steps assumed to gain alike" if split else "")}


def bench_levers(device: str, scale: str = "cpu", steps: int = 10, warmup: int = 2, repeats: int = 5,
                 compile_: bool = True, processes: bool = True, log=print) -> dict:
    """Section 5 for every network of :func:`networks` at ``scale``."""
    dev = torch.device(device)
    results = {}
    for label, run in networks(scale).items():
        log(f"[bench] 5/5 levers: {label}")
        results[label] = bench_network(run, dev, steps, warmup, repeats, compile_, processes)
    return {"networks": results, "projection": project_chapters(results, scale),
            "batch_k": BATCH_K, "scale": scale, "scale_steps": get_scale(scale).vgg_steps}


__all__ = ["BATCH_K", "bench_levers", "bench_network", "best_lever", "in_processes", "networks", "project_chapters"]
