"""Running the chosen sections, the printed report and the written JSON / text copies."""
from __future__ import annotations

import datetime as _dt
import json
import re
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..device import describe, pick, strict_fp32
from ..estimate import suite_flops
from ..flops import vgg_flops
from .baselines import bench_data
from .levers import bench_levers
from .sections import (VGG_ACT_LAYERS, bench_dln_costs, bench_engine_vs_baseline, bench_loop_vs_vmap,
                       bench_probe_costs, minutes_at_peak, project_suite)
from .timing import CUDA_PEAKS_TFLOPS, BenchConfig, blocks_of, device_peaks

def run_all(cfg: BenchConfig, sections=(1, 2, 3, 4, 5), data=None, log=print) -> dict:
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
                    "timing": f"median of {cfg.repeats} blocks of {blocks_of(cfg)} calls after {cfg.warmup} warm-up "
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
    if 5 in sections:
        timed("levers", lambda: bench_levers(cfg.device, "cpu", log=log))
    out["meta"]["bench_wall_s"] = time.perf_counter() - t0
    return out


def _engine_lines(r: dict, c: dict) -> list:
    """Section 1: the engine against the plain baseline."""
    lines = []
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
              f"{e['flops_per_step'] / 1e9:.2f} GFLOP/step (fwd + bwd, batch {c['batch_size']}); engine achieves "
              f"{e['engine_tflops'] * 1e3:.1f} GFLOP/s",
              "  MFU: " + ", ".join(f"{100 * v:.2f}% of {k}" for k, v in e["mfu"].items()), ""]
    return lines


def _probe_lines(r: dict, c: dict) -> list:
    """Section 2: the cost of a step with measurements."""
    lines = []
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
    if "compile_speedup" in d:
        lines.append(f"  DLN plain step under torch.compile: {d['compiled_plain_ms']:.2f} ms, "
                     f"{d['compile_speedup']:.2f}x the eager step (probed steps stay eager)")
    for label, src in (("VGG", p), ("DLN", d)):
        if "plain_ms_by_norm" in src:
            base = src["ms"]["plain"]
            lines.append(f"  plain {label} step by normalisation, ratio to {c['norm']}: " + ", ".join(
                f"{n} {v / base:.2f}" for n, v in src["plain_ms_by_norm"].items()))
    worst = max(list(p["block_spread"].items()) + list(d["block_spread"].items()), key=lambda kv: kv[1])
    lines += [f"  largest max/min spread between timed blocks: {worst[1]:.2f} ({worst[0]})", ""]
    return lines


def _backend_lines(r: dict, c: dict) -> list:
    """Section 3: the landscape probe's back-ends."""
    lines = []
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
    return lines


def _projection_lines(r: dict, c: dict) -> list:
    """Section 4: the projection of the whole suite."""
    lines = []
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
    return lines


def _lever_lines(r: dict, c: dict) -> list:
    """Section 5: each network's step under each lever, and the chapters projected with the best one."""
    lv = r["levers"]
    names = sorted({k for v in lv["networks"].values() for k in v["ms"]}, key=lambda k: (k != "eager", k))
    lines = [f"[5] levers per network ({lv['scale']}-scale runs; random inputs of their shapes): ms per plain step "
             f"(speed-up over eager); batched = {lv['batch_k']} runs as one model, per run",
             f"  {'network':22s}" + "".join(f" {k:>19s}" for k in names)
             + f" {'compile s':>10s} {'probed ms':>10s} {'compiled':>9s}"]
    for label, v in lv["networks"].items():
        cells = "".join(f" {v['ms'][k]:10.1f} ({v['speedup'][k]:4.2f}x)" if k in v["ms"] else f" {'-':>19s}"
                        for k in names)
        lines.append(f"  {label:22s}{cells} {v.get('compile_s', float('nan')):10.1f} {v['probed_ms']:10.1f} "
                     f"{v.get('probed_compile_ms', float('nan')):9.1f}")
    lines.append("  where the eager step's time goes (profiler, self time, top operators):")
    for label, v in lv["networks"].items():
        lines.append(f"    {label:22s} " + ", ".join(f"{op} {pct:.0f}%" for op, pct in v["top_ops"]))
    split = {label: v["processes"] for label, v in lv["networks"].items() if "processes" in v}
    if split:
        jobs = next(iter(split.values()))["jobs"]
        lines.append(f"  in {jobs} processes at once (each with its share of the threads; ms per step per run, speed-up "
                     "over one process with every thread, same lever):")
        for label, p in split.items():
            lines.append(f"    {label:22s} " + ", ".join(f"{k} {p['ms'][k]:.1f} ({p['speedup'][k]:.2f}x)" for k in p["ms"]))
    pr = lv["projection"]
    cols = [k for k in ("eager", "default", "best", "processes") if k in pr["suite"]]
    lines.append(f"  PROJECTION of each chapter's training runs at {pr['scale']} scale (minutes):")
    lines.append(f"    {'chapter':22s} {'runs':>9s}" + "".join(f" {k:>9s}" for k in cols))
    for ch, row in pr["chapters"].items():
        if row["runs"]:
            lines.append(f"    {ch:22s} {row['runs']:4d} runs" + "".join(f" {row[k]:9.1f}" for k in cols))
    s = pr["suite"]
    lines += [f"    {'suite (shared once)':22s} {'':9s}" + "".join(f" {s[k]:9.1f}" for k in cols),
              "  " + pr["note"], ""]
    return lines


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
    for key, section in (("engine", _engine_lines), ("probes", _probe_lines), ("loop_vs_vmap", _backend_lines),
                         ("projection", _projection_lines), ("levers", _lever_lines)):
        if key in r:
            lines += section(r, c)
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
