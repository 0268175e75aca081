"""The benchmark's four sections (see ``bnlab.bench``); every ratio is taken within one run."""
from __future__ import annotations

from dataclasses import replace

import torch

from ..config import DataConfig, ModelConfig
from ..scales import get_scale
from ..data import ImageData, load_regression
from ..device import set_tf32, strict_fp32
from ..engine import EngineOptions
from ..experiments import registry as experiments
from ..recipes import dln_run, vgg_run
from ..estimate import unique_runs
from ..flops import block_flops, evaluated_images, flop_ratios, model_flops, step_flops, times_due
from ..measure import ActivationProbe, ICSProbe, LandscapeProbe, probe_along_gradient
from ..measure.landscape import etas_for
from ..models import loss_fn
from .baselines import (NaiveICSProbe, _model_and_opt, baseline_loader, baseline_stepper, engine_stepper,
                        ics_agreement)
from .timing import BenchConfig, blocks_of, time_calls

# the probe layers and DLN learning rate the registered experiments use (``bnlab.experiments``)
_VGG_PROBES, _DLN = vgg_run(get_scale("paper"), "batch", 0.1, 0).probe, dln_run(get_scale("paper"), "batch", 1e-6, 0)
VGG_ACT_LAYERS = _VGG_PROBES.activation_layers
DLN_ACT_LAYERS, DLN_ICS_LAYERS, DLN_LR = _DLN.probe.activation_layers, _DLN.probe.ics_layers, _DLN.train.lr

# ---- section 1 ----------------------------------------------------------------------------------
def bench_engine_vs_baseline(cfg: BenchConfig, data: ImageData, peaks: dict) -> dict:
    """Steps/s of the plain DataLoader loop and of the engine on the same VGG steps, their ratio, and MFU."""
    model_cfg = ModelConfig(arch=cfg.arch, norm=cfg.norm, width=cfg.width, in_channels=data.x_train.shape[1])
    n = blocks_of(cfg)

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
    per_step = step_flops(model_cfg) * cfg.batch_size           # forward + backward, as FlopCounterMode counts it
    achieved = per_step / t_eng["s"]
    mfu = {name: achieved / (tflops * 1e12) for name, tflops in peaks["tflops"].items()}
    return {"variants": variants, "baseline": {"steps_per_s": 1 / t_base["s"], "ms_per_step": 1e3 * t_base["s"],
                         "pipeline": f"PIL + {kind} + DataLoader(workers=0, shuffle) + .item()"},
            "engine": {"steps_per_s": 1 / t_eng["s"], "ms_per_step": 1e3 * t_eng["s"],
                       "pipeline": "uint8 on device, normalised per batch, no per-step sync"},
            "engine_over_baseline": t_base["s"] / t_eng["s"],
            "fwd_flops_per_image": fwd, "flops_per_step": per_step, "engine_tflops": achieved / 1e12,
            "mfu": mfu}


# ---- section 2 ----------------------------------------------------------------------------------
def _probe_cost(model_cfg, cfg, batches_of, make_probes, lr, dtype=torch.float32, weight: int = 1) -> dict:
    """Timing of a step with ``make_probes(model)`` due every step; ``weight`` ~ its cost in plain steps
    (a measurement that costs k plain steps is timed over ~1/k as many calls, at least 3 per block)."""
    model, opt = _model_and_opt(model_cfg, cfg, lr, dtype)
    step = engine_stepper(model, opt, batches_of(dtype), make_probes(model))
    n = max(3, round(blocks_of(cfg) * 4 / max(weight, 4))) if weight > 4 else blocks_of(cfg)
    warm = max(1, cfg.warmup * 4 // weight) if weight > 4 else cfg.warmup
    return time_calls(step, n, warm, cfg.device, cfg.repeats)


def registry_norms(network: str, scale: str = "paper") -> list:
    """The normalisations the registered experiments use for ``network`` ("vgg" or "dln") at ``scale``."""
    return sorted({r.model.norm for e in experiments().values() if e.network == network for r in e.runs(scale)})


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
    out["eval_ms_per_image"] = 1e3 * time_calls(fwd, max(2, blocks_of(cfg) // 5), 1, cfg.device)["s"] / xb.shape[0]
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
    if "compile" in cfg.variants:
        # the unprobed steps under torch.compile (what ``--compile`` does to the DLN's runs): its per-step overhead
        # is most of a DLN step on a CPU
        model, opt = _model_and_opt(model_cfg, cfg, DLN_LR, torch.float64)
        step = engine_stepper(model, opt, batches_of(torch.float64), options=EngineOptions(compile=True))
        compiled = time_calls(step, blocks_of(cfg), cfg.warmup + 3, cfg.device, cfg.repeats)
        out["compiled_plain_ms"] = 1e3 * compiled["s"]
        out["compile_speedup"] = t["plain"]["s"] / compiled["s"]
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
    reps = max(2, blocks_of(cfg) // 5)
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
