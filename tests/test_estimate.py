"""The cost estimate a reader sees before a live run: runs to do and reused, FLOPs, minutes per chapter."""
import re

import pytest

from bnlab import estimate
from conftest import cpu_plan
from bnlab.__main__ import main
from bnlab.chapters import computes
from bnlab.experiments import EXPERIMENTS, get
from bnlab.flops import run_flops

CHAPTERS = computes()


def test_every_analysis_has_a_cost():
    analyses = [n for n, e in EXPERIMENTS.items() if e.analysis is not None]
    assert len(analyses) >= 5
    for name in analyses:
        part, = estimate.experiment_cost(name, cpu_plan(scale="colab")).parts
        assert part.flops > 0 and part.block_steps > 0


def test_every_chapter_runs_live_in_15_minutes_on_a_t4_at_colab_scale():
    costs = estimate.chapter_costs(cpu_plan(scale="colab"))
    assert [c.label for c in costs] == list(CHAPTERS)
    for c in costs:
        assert c.minutes(4.5) <= 15.0, (c.label, c.minutes(4.5))
    # the scale still does real work: the VGG chapters take minutes, not seconds
    assert max(c.minutes(4.5) for c in costs) > 5.0
    # and the paper's sizes would not fit: the reason the scale exists
    assert max(c.minutes(4.5) for c in estimate.chapter_costs(cpu_plan(scale="paper"))) > 60


def test_a_chapter_counts_a_run_shared_by_two_experiments_once():
    shared = {r.hash for r in get("ics_dln").runs("cpu")} & {r.hash for r in get("landscape_dln").runs("cpu")}
    assert shared
    alone = estimate.experiment_cost("ics_dln", cpu_plan(scale="cpu")).runs + estimate.experiment_cost("landscape_dln", cpu_plan(scale="cpu")).runs
    seen = set()
    together = estimate.experiment_cost("ics_dln", cpu_plan(scale="cpu"), seen) + estimate.experiment_cost("landscape_dln", cpu_plan(scale="cpu"), seen)
    assert together.runs == alone - len(shared)


def test_runs_in_the_store_are_counted_as_stored_and_cost_nothing():
    runs = get("ics_vgg").runs("smoke")
    before = estimate.experiment_cost("ics_vgg", cpu_plan(scale="smoke"))
    assert before.stored == 0 and before.flops == pytest.approx(sum(run_flops(r)["total"] for r in runs))
    cpu_plan().store.save_run(runs[0].hash, {"config": runs[0].to_dict()}, {})
    after = estimate.experiment_cost("ics_vgg", cpu_plan(scale="smoke"))
    assert after.stored == 1 and after.runs == before.runs
    assert after.flops == pytest.approx(before.flops - run_flops(runs[0])["total"])


def test_cli_prints_a_row_per_chapter_and_the_total(capsys):
    assert main(["estimate", "--scale", "colab", "--tflops", "4.5"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in out[1:-1]] == list(CHAPTERS)
    m = re.match(r"total: ([\d.]+) PFLOP, ([\d.]+) min at 4.5 TFLOP/s", out[-1])
    rows = [float(ln.split()[-1]) for ln in out[1:-1]]
    # the total counts the runs that chapters share once: more than any chapter, less than their sum
    assert m and float(m.group(1)) > 1 and max(rows) < float(m.group(2)) < sum(rows)
    assert main(["estimate", "--scale", "cpu", "--tflops", "1", "--experiment", "theory"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[0] == "theory"


def test_cli_rejects_a_bad_tflops():
    with pytest.raises(SystemExit):
        main(["estimate", "--tflops", "0"])


def test_preview_warns_with_the_cheaper_alternative_over_30_minutes():
    text, minutes = estimate.preview("bn_vs_standard", cpu_plan(scale="paper"), tflops=4.5)
    assert minutes > 30 and "WARNING" in text and "SCALE = 'colab'" in text
    text, minutes = estimate.preview("bn_vs_standard", cpu_plan(scale="colab"), tflops=4.5)
    assert minutes < 30 and "WARNING" not in text and "10 of 10 run(s) to compute" in text


@pytest.mark.parametrize("doc", ["README.md", "book/reproducing.md"])
def test_cost_figures_in_the_docs_are_the_estimate_output(doc, capsys):
    """Each `$ python -m bnlab estimate ...` block in the docs shows exactly what that command prints (empty store)."""
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / doc).read_text()
    blocks = re.findall(r"```text\n\$ python -m bnlab (estimate[^\n]*)\n(.*?)```", text, re.S)
    assert blocks, f"{doc} shows no estimate output"
    for command, shown in blocks:
        assert main(command.split()) == 0
        assert capsys.readouterr().out == shown, f"{doc}: `{command}` prints something else now"
    for total in re.findall(r"`(total: [\d.]+ PFLOP, [\d.]+ min at [\d.]+ TFLOP/s)`", text):
        assert main(["estimate", "--scale", "paper", "--tflops", total.split(" at ")[1].split()[0]]) == 0
        assert capsys.readouterr().out.splitlines()[-1].startswith(total)


def test_without_tflops_the_plan_times_the_experiments_own_network_here(capsys):
    run = estimate.representative_run("ics_dln", "smoke")
    assert run.model.arch == "dln" and estimate.representative_run("theory", "smoke").model.arch == "vgg16"
    rate = estimate.measure_tflops("cpu", run)
    assert 0 < rate < 10                                        # a real rate of this CPU, far below a GPU's
    text, minutes = estimate.preview("ics_vgg", cpu_plan())
    assert "TFLOP/s" in text and minutes > 0
    assert main(["estimate", "--scale", "smoke", "--experiment", "ics_dln"]) == 0
    assert capsys.readouterr().out.startswith("measured on this device:")


def test_the_plan_times_each_network_with_its_normalisation_in_its_precision_and_counts_fixed_costs(monkeypatch):
    """The ETA used to time one plain network with TF32 allowed and to ignore the time a run spends loading its data:
    now each network of the plan is timed with its own normalisation and precision, and a measured fixed cost is
    added per run."""
    from bnlab import device as device_mod
    plan = cpu_plan()
    cost = estimate.experiment_cost("noisy_bn", plan)
    norms = {k[0].norm for k in cost.networks}
    assert {"none", "batch", "noisy_batch"} <= norms
    seen_tf32 = []
    monkeypatch.setattr(estimate, "_timed_tflops", lambda *a: (seen_tf32.append(
        device_mod.torch.backends.cuda.matmul.allow_tf32), {"none": 2.0, "batch": 1.0}.get(a[1].norm, 0.5))[1])
    estimate._step_tflops.cache_clear()
    try:
        rates = estimate.measured_rates(cost, "cpu")
    finally:
        estimate._step_tflops.cache_clear()
    assert not any(seen_tf32) and not device_mod.torch.backends.cuda.matmul.allow_tf32      # strict fp32 runs
    assert len(set(rates.values())) == 3
    one = cost.minutes(1.0, block_ms=0.0, rates={k: 1.0 for k in rates})
    assert cost.minutes(1.0, block_ms=0.0, rates=rates) > one                 # BN and noisy BN cost more here
    assert cost.minutes(1.0, block_ms=0.0, rates=rates, fixed_s=2.0) == pytest.approx(
        cost.minutes(1.0, block_ms=0.0, rates=rates) + 2.0 * len(cost.parts) / 60)
    text, minutes = estimate.preview("noisy_bn", plan)
    assert "TFLOP/s by network" in text and minutes > 0


def test_an_analysis_is_estimated_from_what_its_shipped_result_took_on_this_kind_of_device():
    """Analyses cost far more than their FLOPs say (many small passes); where the shipped result recorded its wall
    time on this type of device, the estimate is that time, and elsewhere the FLOP model."""
    import json
    from bnlab.results import CACHED_DIR
    wall = json.loads((CACHED_DIR / "sharpness" / "cpu.json").read_text())["provenance"]["wall_s"]
    part, = estimate.experiment_cost("sharpness", cpu_plan(scale="cpu")).parts
    assert part.recorded_s == wall and part.seconds(1.0, 0.0) == wall
    assert estimate.recorded_seconds("sharpness", "cpu", "cuda") is None
    flops_only, = estimate.experiment_cost("sharpness", cpu_plan(scale="colab")).parts     # nothing shipped at colab
    assert flops_only.recorded_s is None and flops_only.seconds(1.0, 0.0) > 0


def test_runs_in_a_cpu_process_pool_are_costed_at_the_throughput_the_bench_measured_there():
    """A live chapter on a CPU trains its runs in a process pool (``bnlab.plan.auto_jobs``): each run still to do
    costs its time alone over its network's measured pool speed-up; one run left alone is not pooled."""
    from bnlab.plan import process_speedup
    alone = estimate.experiment_cost("ics_dln", cpu_plan(scale="cpu"))
    pooled = estimate.experiment_cost("ics_dln", cpu_plan(scale="cpu", jobs=2))
    assert len(pooled.parts) > 1 and [p.flops for p in pooled.parts] == [p.flops for p in alone.parts]
    for a, p in zip(alone.parts, pooled.parts):
        want = process_speedup(a.network[0].arch, a.network[0].norm)
        assert want > 1 and p.seconds(1.0, 0.2) == pytest.approx(a.seconds(1.0, 0.2) / want)
    plan = cpu_plan(scale="cpu", jobs=2)
    runs = get("ics_dln").runs("cpu")
    for run in runs[1:]:
        plan.store.save_run(run.hash, {"config": run.to_dict()}, {})
    last, = estimate.experiment_cost("ics_dln", plan).parts
    assert last.pooled == 1.0
