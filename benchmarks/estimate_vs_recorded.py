"""How well ``python -m bnlab estimate`` predicts the shipped caches' recorded wall times on this machine.

For every experiment with a shipped cache at ``--scale`` (default cpu): the estimate (per-network rates timed here
with the thread count the cache was computed with, torch.compile as its runs recorded it) against the wall time its
runs and analyses recorded (seconds of each run, summed: core-time when the runs went two processes at a time).
Prints the ratio recorded / estimate per experiment and per chapter (1 is exact). Run it on an idle machine.
An analysis is estimated from its own recorded time where there is one (``estimate.recorded_seconds``; ratio 1 by
construction, marked "as recorded"); ``--flops`` shows what the FLOP model alone would say for them.

    python benchmarks/estimate_vs_recorded.py [--scale cpu]
"""
import argparse
import re
import tempfile

import torch

from bnlab import chapters, estimate
from bnlab.engine import EngineOptions
from bnlab.plan import RunPlan
from bnlab.results import load


def recorded(name: str, scale: str):
    """(seconds, threads per process, compiled?) of a shipped cache, or None when there is none."""
    try:
        res = load(name, scale)
    except Exception:  # noqa: BLE001
        return None
    prov = res.provenance
    m = re.search(r"(\d+) threads", prov.get("device_name", ""))
    threads = int(m.group(1)) if m else 1
    compiled = any(r.meta.get("engine", {}).get("compile") for r in res.runs)
    return float(prov.get("wall_s") or 0.0), threads, compiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--flops", action="store_true", help="analyses by the FLOP model, not their recorded time")
    args = parser.parse_args()
    if args.flops:
        estimate.recorded_seconds = lambda *a: None
    ratios, chapter_rows = {}, []
    print(f"{'experiment':28s} {'threads':>7s} {'compiled':>8s} {'estimate min':>12s} {'recorded min':>12s} "
          f"{'ratio':>6s}")
    with tempfile.TemporaryDirectory() as home:
        for chapter, names in chapters.computes().items():
            est_sum = rec_sum = 0.0
            for name in names:
                rec = recorded(name, args.scale)
                if rec is None or name in ratios:
                    continue
                seconds, threads, compiled = rec
                torch.set_num_threads(threads)
                estimate._step_tflops.cache_clear()
                plan = RunPlan.from_env(scale=args.scale, home=home, progress=False,
                                        engine=EngineOptions(compile=compiled))
                cost = estimate.experiment_cost(name, plan)
                minutes = cost.minutes(1.0, rates=estimate.measured_rates(cost, plan.device)) if cost.parts else 0
                ratios[name] = seconds / 60 / max(minutes, 1e-9)
                est_sum, rec_sum = est_sum + minutes, rec_sum + seconds / 60
                print(f"{name:28s} {threads:7d} {str(compiled):>8s} {minutes:12.1f} {seconds / 60:12.1f} "
                      f"{ratios[name]:6.2f}", flush=True)
            if est_sum:
                chapter_rows.append((chapter, est_sum, rec_sum))
    print("\nper chapter (its experiments as shipped; shared experiments counted in the first chapter that uses them)")
    for chapter, e, r in chapter_rows:
        print(f"  {chapter:24s} estimate {e:7.1f} min, recorded {r:7.1f} min, ratio {r / e:5.2f}")


if __name__ == "__main__":
    main()
