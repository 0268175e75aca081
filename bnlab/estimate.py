"""What a live run will cost before it starts: runs to do and already in the run store, FLOPs, minutes.

``python -m bnlab estimate [--scale S] [--tflops T] [--experiment E]`` prints it per chapter and in total; a
chapter run live prints the same preview for its experiment first (:func:`preview`, called by ``bnlab.run``).

Time model [ours]: each run takes the longer of its FLOPs at T TFLOP/s and a launch floor of ``block_ms`` per
block of the network per training step (kernel launches and the probes' host syncs, which FLOPs do not see and
which a GPU overlaps with compute): small networks such as the deep linear network are bound by the floor.
T defaults to a measurement on this device: a few timed training steps of the experiment's own network. Runs that
compile are faster by the speed-up the benchmark measured for their network (``bnlab.compiling``), and runs in a
CPU process pool (``jobs`` > 1, a live chapter's default there) by the per-run throughput it measured for that
(``bnlab.plan.PROCESS_SPEEDUP``).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache

import torch

from typing import NamedTuple

from .compiling import WARM_COMPILE_S, compile_speedup, decide
from .config import SCALES, config_hash, n_layers
from .scales import get_scale
from .device import dtype_of, pick, set_tf32, strict_fp32, sync
from . import chapters
from .experiments import get as get_experiment, registry as experiments
from .flops import run_flops, step_flops, times_due
from .models import build, loss_fn
from .plan import RunPlan, process_speedup
from .recipes import vgg_run

BLOCK_MS = 0.2         # [ours] launch floor per block of the network per training step (an assumption, not measured)
WARN_MINUTES = 30.0    # a live run longer than this gets a warning with the cheaper alternative
LONG_MINUTES = 180.0   # a live run longer than this starts only when asked for explicitly (bnlab.run's allow_long)
SCALE_NEEDS = {"cifar10": " (it needs CIFAR-10: a one-time 170 MB download)",
               "fashion_mnist": " (Fashion-MNIST: works offline)"}
TFLOPS_RANGE = (1e-3, 1e5)   # what --tflops may say: 1 GFLOP/s (a slow CPU) to 100 PFLOP/s
BLOCK_MS_RANGE = (0.0, 1e3)


def fitting_scale(name: str, plan: RunPlan, tflops: float) -> tuple[str, float]:
    """(scale, minutes): the largest scale below the plan's whose run of ``name`` fits :data:`WARN_MINUTES` at
    ``tflops`` on this device with this run store; if none but the smoke test does, the quickest of the others."""
    below = SCALES[SCALES.index(plan.scale.name) + 1:] or (plan.scale.name,)
    timed = [(s, experiment_cost(name, plan.with_(scale=s)).minutes(tflops)) for s in below]
    real = [t for t in timed if t[0] != "smoke"] or timed
    fits = [t for t in real if t[1] <= WARN_MINUTES]
    return fits[0] if fits else min(real, key=lambda t: t[1])

class Part(NamedTuple):
    """One run (or analysis) still to do: its FLOPs, its launch floor in block-steps (blocks x training steps),
    its network (what is timed), and the FLOPs of the steps torch.compile will take, with the speed-up that
    ``python -m bnlab.bench`` measured for that network (``bnlab.compiling.COMPILE_SPEEDUP``)."""

    flops: float
    block_steps: int
    network: tuple | None
    compiled_flops: float = 0.0
    speedup: float = 1.0
    recorded_s: float | None = None      # an analysis: what its shipped result took on this kind of device
    pooled: float = 1.0                  # per-run speed-up in a CPU process pool (bnlab.plan.PROCESS_SPEEDUP)

    def seconds(self, tflops: float, block_ms: float) -> float:
        if self.recorded_s is not None:
            return self.recorded_s
        eager = (self.flops - self.compiled_flops) / (tflops * 1e12)
        compiled = self.compiled_flops / (tflops * 1e12 * self.speedup)
        alone = max(eager + compiled, self.block_steps * block_ms / 1e3) + (WARM_COMPILE_S if self.compiled_flops else 0)
        return alone / self.pooled


@dataclass
class Cost:
    """The work of one experiment (or a chapter, or the suite) at one scale; ``parts`` holds a :class:`Part` per
    run still to do."""

    label: str
    runs: int = 0          # training runs, or 1 for an analysis
    stored: int = 0        # of those, already in the run store (reused, not recomputed)
    parts: list = field(default_factory=list)

    @property
    def flops(self) -> float:
        return sum(p.flops for p in self.parts)

    def minutes(self, tflops: float, block_ms: float = BLOCK_MS, rates: dict | None = None,
                fixed_s: float = 0.0) -> float:
        """At ``tflops`` (or, per run, the rate ``rates`` measured for its network, normalisation and precision),
        never under the launch floor, plus ``fixed_s`` per run (loading its data, building its network)."""
        rates = rates or {}
        return sum(p.seconds(rates.get(p.network, tflops), block_ms) + fixed_s for p in self.parts) / 60

    @property
    def networks(self) -> set:
        """The (network, batch size, precision) of every run still to do (what :func:`measured_rates` times)."""
        return {p.network for p in self.parts if p.network is not None}

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.label, self.runs + other.runs, self.stored + other.stored, self.parts + other.parts)


def _block_steps(run) -> int:
    return n_layers(run.model) * run.train.steps


def experiment_cost(name: str, plan: RunPlan, seen: set | None = None) -> Cost:
    """What computing ``name`` at the plan's scale still takes, given its run store; runs already counted in
    ``seen`` (hashes, updated) are shared with an earlier experiment and cost nothing again."""
    exp, seen, scale, store = get_experiment(name), (set() if seen is None else seen), plan.scale, plan.store
    cost = Cost(name)
    if exp.analysis is not None:
        cost.runs = 1
        if store.has_analysis(name, exp.config_hash(scale)):
            cost.stored = 1
        else:
            cost.parts.append(Part(exp.analysis.flops(scale), exp.analysis.block_steps(scale), None,
                                   recorded_s=recorded_seconds(name, scale.name, pick(plan.device).type)))
        return cost
    for run in exp.runs(scale):
        if run.hash in seen:
            continue
        seen.add(run.hash)
        cost.runs += 1
        if store.has_run(run.hash):
            cost.stored += 1
        else:
            cost.parts.append(_run_part(run, plan))
    if plan.pools(len(cost.parts)) and pick(plan.device).type == "cpu":     # the runner's process pool
        cost.parts = [p._replace(pooled=process_speedup(p.network[0].arch, p.network[0].norm)) for p in cost.parts]
    return cost


@lru_cache(maxsize=None)
def recorded_seconds(name: str, scale: str, device_type: str) -> float | None:
    """Wall seconds the shipped result of analysis ``name`` at ``scale`` recorded, if it was computed on this type
    of device. An analysis's own loops (many small passes, per-seed training, eigenvalue iterations) cost far more
    than its FLOPs say: on the 2-core CPU the FLOP model put them 5 to 100 times too low
    (``benchmarks/estimate_vs_recorded.py``), so where a measurement exists the estimate uses it."""
    from .results import CACHED_DIR
    js = CACHED_DIR / name / f"{scale}.json"
    if not js.exists():
        return None
    prov = json.loads(js.read_text()).get("provenance", {})
    return float(prov["wall_s"]) if prov.get("device") == device_type and prov.get("wall_s") else None


@lru_cache(maxsize=None)
def _layers_of(model_cfg):
    """The network's layers without its weights (what ``decide`` looks at: noisy BatchNorm stays eager)."""
    return build(model_cfg, 0, "meta")


def _run_part(run, plan: RunPlan) -> Part:
    """A training run's part: the steps without probes are compiled when the plan's engine compiles this run."""
    flops, t = run_flops(run), run.train
    network = (run.model, t.batch_size, t.precision)
    compiling, _ = decide(plan.engine.compile, pick(plan.device), t.steps, _layers_of(run.model))
    if not compiling:
        return Part(flops["total"], _block_steps(run), network)
    unprobed = t.steps - times_due(run.probe.every, t.steps)
    return Part(flops["total"], _block_steps(run), network, flops["train"] * unprobed / t.steps,
                compile_speedup(run.model.arch, run.model.norm))


# ---- the whole suite's FLOPs (the benchmark projects them onto a device) -------------------------------
def unique_runs(scale_name: str) -> list:
    """Every registered experiment's runs at ``scale_name``, each once (runs shared by figures have one hash)."""
    unique = {}
    for exp in experiments().values():
        for run in exp.runs(scale_name):
            unique.setdefault(config_hash(run), run)
    return list(unique.values())


def suite_flops(scale_name: str) -> dict:
    """FLOPs of every registered experiment's unique VGG and ResNet runs at ``scale_name`` (:func:`run_flops`),
    and how many of them a run of precision "tf32" may take in TF32. The deep linear network's are negligible."""
    out = {"train": 0.0, "eval": 0.0, "probes": 0.0, "tf32_eligible": 0.0}
    for run in unique_runs(scale_name):
        if run.model.arch == "dln":
            continue
        for k, v in run_flops(run).items():
            if k != "total":
                out[k] += v
    out["total"] = out["train"] + out["eval"] + out["probes"]
    return out


def chapter_costs(plan: RunPlan, experiment: str | None = None) -> list:
    """One :class:`Cost` per chapter (each as if run on its own, e.g. alone on a fresh Colab VM), or, with
    ``experiment``, one for that experiment."""
    if experiment is not None:
        return [experiment_cost(experiment, plan)]
    out = []
    for chapter, names in chapters.computes().items():
        seen, total = set(), Cost(chapter)
        for name in names:
            total = total + experiment_cost(name, plan, seen)
        total.label = chapter
        out.append(total)
    return out


def measure_tflops(device, run) -> float:
    """Effective TFLOP/s of this device on ``run``'s network: a few timed training steps at its batch size and
    precision (seconds; once per process and network)."""
    return _step_tflops(str(device), run.model, run.train.batch_size, run.train.precision)


def measured_rates(cost: "Cost", device) -> dict:
    """TFLOP/s of this device for each network a cost still has to train, with its own normalisation and in its
    own precision (a BN step costs more per FLOP than a plain one; noisy BN more still)."""
    return {k: _step_tflops(str(device), *k) for k in cost.networks}


@lru_cache(maxsize=None)
def fixed_seconds(device: str, data_cfg, data_dir) -> float:
    """Seconds a run spends before its first step and outside its FLOPs: loading its data onto the device (the
    tensor cache, the channel statistics) and building a network; measured once per process."""
    from .data import load
    t0 = time.perf_counter()
    load(data_cfg, 0, device=torch.device(device), root=data_dir, download=False)
    return time.perf_counter() - t0


@lru_cache(maxsize=None)
def _step_tflops(device: str, model_cfg, batch_size: int, precision: str, steps: int = 3) -> float:
    set_tf32(precision == "tf32")          # timed in the precision the runs train in (TF32 only where they may)
    try:
        return _timed_tflops(device, model_cfg, batch_size, precision, steps)
    finally:
        strict_fp32()


def _timed_tflops(device: str, model_cfg, batch_size: int, precision: str, steps: int) -> float:
    dev = torch.device(device)
    dtype = dtype_of(precision)
    model = build(model_cfg, 0, dev, dtype)
    opt = torch.optim.SGD(model.parameters(), lr=1e-9)
    gen = torch.Generator(device="cpu").manual_seed(0)
    if model.kind == "classifier":
        x = torch.randn(batch_size, model_cfg.in_channels, 32, 32, generator=gen, dtype=dtype).to(dev)
        y = torch.randint(0, model_cfg.num_classes, (batch_size,), generator=gen).to(dev)
    else:
        x = torch.randn(batch_size, model_cfg.dln_dim, generator=gen, dtype=dtype).to(dev)
        y = torch.randn(batch_size, model_cfg.dln_dim, generator=gen, dtype=dtype).to(dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model, model(x), y).backward()
        opt.step()
    step()                                                   # warm-up: allocation, cuDNN's algorithm choice
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(dev)
    seconds = (time.perf_counter() - t0) / steps
    return step_flops(model_cfg) * batch_size / seconds / 1e12     # the step as bnlab.flops counts it for the runs


def representative_run(name: str, scale):
    """The training run whose network times an experiment: its first run, or for an analysis the scale's VGG."""
    scale = get_scale(scale)
    runs = get_experiment(name).runs(scale)
    return runs[0] if runs else vgg_run(scale, "batch", 0.1, 0)


def suite_cost(plan: RunPlan) -> Cost:
    """Every chapter in order with one run store: each run shared by chapters is counted once."""
    seen, total = set(), Cost("total")
    for name in dict.fromkeys(n for names in chapters.computes().values() for n in names):
        total = total + experiment_cost(name, plan, seen)
    return total


def format_costs(costs: list, scale: str, tflops: float, block_ms: float = BLOCK_MS, total: Cost | None = None,
                 rates: dict | None = None) -> str:
    """A table, one row per cost; with ``total``, a last line ``total: X PFLOP, Y min at T TFLOP/s``; ``rates``:
    TFLOP/s measured per network (:func:`measured_rates`), ``tflops`` for any other."""
    width = max(len(c.label) for c in costs)
    lines = [f"{'':{width}s}  {'runs':>5s}  {'stored':>6s}  {'PFLOP':>8s}  {'minutes':>8s}"]
    for c in costs:
        lines.append(f"{c.label:{width}s}  {c.runs:5d}  {c.stored:6d}  {c.flops / 1e15:8.3f}  "
                     f"{c.minutes(tflops, block_ms, rates):8.1f}")
    if total is not None:
        at = "the rates measured per network" if rates else f"{tflops:g} TFLOP/s"
        lines.append(f"total: {total.flops / 1e15:.2f} PFLOP, {total.minutes(tflops, block_ms, rates):.1f} min at {at}"
                     f" ({total.runs} runs, {total.stored} stored; scale {scale}; each chapter above counted "
                     f"alone, the total with runs shared between chapters once)")
    return "\n".join(lines)


def preview(name: str, plan: RunPlan, tflops: float | None = None) -> tuple[str, float]:
    """(text, minutes): what a live run of ``name`` with ``plan`` will do and take on its device, with a warning
    and the cheaper alternative when it is longer than :data:`WARN_MINUTES`."""
    cost, scale = experiment_cost(name, plan), plan.scale.name
    rates, fixed = {}, 0.0
    if tflops is None:
        run = representative_run(name, plan.scale)
        tflops = measure_tflops(plan.device, run) if cost.parts else 1.0
        if cost.parts:
            rates = measured_rates(cost, plan.device)
            try:
                fixed = fixed_seconds(str(plan.device), run.data, plan.data_dir)
            except Exception:  # noqa: BLE001  (no data here yet: the run will say so; the ETA goes without it)
                fixed = 0.0
    minutes = cost.minutes(tflops, rates=rates, fixed_s=fixed)
    todo = cost.runs - cost.stored
    unit, label = (1e15, "PFLOP") if cost.flops >= 1e15 else (1e12, "TFLOP") if cost.flops >= 1e12 else (1e9, "GFLOP")
    size = f"{cost.flops / unit:.3g} {label}"
    took = f"{minutes:.1f} min" if minutes >= 1 else f"{minutes * 60:.0f} s"
    speed = (f"{min(rates.values()):.2g} to {max(rates.values()):.2g} TFLOP/s by network" if len(set(rates.values())) > 1
             else f"{tflops:.2g} TFLOP/s") + (f", {fixed:.1f} s per run to load its data" if fixed >= 0.05 else "")
    if plan.pools(len(cost.parts)):                         # the runner's process pool
        speed += f"; {min(plan.jobs, len(cost.parts))} runs at once in processes, BNLAB_JOBS=1 for one"
    text = (f"Plan: {name} at {scale} scale: {todo} of {cost.runs} run(s) to compute, {cost.stored} reused from "
            f"the run store ({plan.store.runs}); {size}, about {took} on this device ({speed}).")
    if minutes > WARN_MINUTES:
        alt, alt_minutes = fitting_scale(name, plan, tflops)
        needs = SCALE_NEEDS.get(get_scale(alt).dataset, "")
        text += (f"\nWARNING: this is longer than {WARN_MINUTES:.0f} minutes. On this device SCALE = {alt!r} takes "
                 f"about {alt_minutes:.0f} min{needs}; or set MODE = 'cached' to read the shipped result; an "
                 f"interrupted run resumes from its checkpoints in the run store.")
        if minutes > LONG_MINUTES:
            text += (f"\nA run of more than {LONG_MINUTES / 60:.0f} hours starts only when asked for explicitly: "
                     f"bnlab.run(..., allow_long=True) or BNLAB_ALLOW_LONG=1.")
    return text, minutes


def main(argv=None) -> int:
    """``python -m bnlab estimate``: an edge, like ``python -m bnlab`` (the run store and device from the
    environment, through ``bnlab.plan``)."""
    parser = argparse.ArgumentParser(prog="python -m bnlab estimate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="colab", choices=SCALES)
    parser.add_argument("--tflops", type=float, default=None,
                        help="effective fp32 TFLOP/s to assume for every step, eager (default: measured on this "
                             "device per network, with the measured torch.compile speed-ups where runs compile)")
    parser.add_argument("--experiment", choices=sorted(experiments()), default=None)
    parser.add_argument("--block-ms", type=float, default=BLOCK_MS,
                        help="launch floor per block of the network per training step, ms")
    parser.add_argument("--jobs", default="auto",
                        help="processes for an experiment's runs, as a live chapter takes them (default auto: one "
                             "per core on a CPU, bnlab.plan.auto_jobs; 1 on a GPU)")
    args = parser.parse_args(argv)
    lo, hi = TFLOPS_RANGE
    if args.tflops is not None and not lo <= args.tflops <= hi:      # NaN and inf fail too
        parser.error(f"--tflops must be a number in [{lo:g}, {hi:g}], e.g. 4.5 for a Colab T4 in fp32; got {args.tflops}")
    lo, hi = BLOCK_MS_RANGE
    if not lo <= args.block_ms <= hi:
        parser.error(f"--block-ms must be a number in [{lo:g}, {hi:g}] (milliseconds per block and step); got "
                     f"{args.block_ms}")
    try:
        plan = RunPlan.from_env(scale=args.scale, jobs=args.jobs)
    except ValueError as err:
        parser.error(str(err))
    if args.tflops is not None:       # a rate for another device: this CPU's compile and pool speed-ups do not apply
        plan = plan.with_(engine=replace(plan.engine, compile=False), jobs=1)
    costs = chapter_costs(plan, args.experiment)
    total = costs[0] if args.experiment else suite_cost(plan)
    rates = None
    if args.tflops is None:
        run = representative_run(args.experiment or "bn_vs_standard", plan.scale)
        args.tflops = measure_tflops(plan.device, run)
        rates = measured_rates(total, plan.device)
        spread = f"; {min(rates.values()):.2g} to {max(rates.values()):.2g} TFLOP/s over the {len(rates)} networks " \
                 "(each timed for a few steps)" if rates else ""
        print(f"measured on this device: {args.tflops:.3g} TFLOP/s in training steps of the {args.scale}-scale "
              f"{run.model.arch} (width {run.model.width:g}, batch {run.train.batch_size}){spread}; "
              f"compile: {plan.engine.compile}; runs in {plan.jobs} process(es)")
    print(format_costs(costs, args.scale, args.tflops, args.block_ms, total, rates))
    return 0
