"""The benchmark's behaviour on a tiny CPU run: documented keys, finite positive numbers, agreements.

No timing assertions: the numbers depend on the machine; only their presence and sanity are checked.
"""
import json
import math
import subprocess
import sys

import pytest
import torch

from bnlab import bench
from bnlab.config import DataConfig, ModelConfig, config_hash
from bnlab.scales import get_scale
from bnlab.experiments import EXPERIMENTS, get

TINY = bench.BenchConfig(device="cpu", width=0.0625, steps=2, warmup=1, repeats=1, batch_size=128, ks=(2, 4),
                         vmap_k=3, matmul_n=256)


@pytest.fixture(scope="module")
def data():
    return bench.synthetic_images(512, 200, "cpu")


@pytest.fixture(scope="module")
def results(data):
    return bench.run_all(TINY, sections=(1, 2, 3, 4), data=data, log=lambda s: None)


def _positive_finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_engine_section_keys(results):
    e = results["engine"]
    for side in ("baseline", "engine"):
        assert _positive_finite(e[side]["steps_per_s"]) and _positive_finite(e[side]["ms_per_step"])
    for key in ("engine_over_baseline", "fwd_flops_per_image", "flops_per_step", "engine_tflops"):
        assert _positive_finite(e[key]), key
    assert e["mfu"] and all(_positive_finite(v) for v in e["mfu"].values())
    assert "fp32_matmul_measured" in results["peaks"]["tflops"]


def test_probe_section_keys(results):
    p = results["probes"]
    expected = {"plain", "ics", "ics_naive", "activations", "landscape_k2", "landscape_k4"}
    assert set(p["ms"]) == expected and set(p["ratio_to_plain"]) == expected
    assert all(_positive_finite(v) for v in list(p["ms"].values()) + list(p["ratio_to_plain"].values()))
    assert p["ratio_to_plain"]["plain"] == 1.0
    assert _positive_finite(p["ics_naive_over_fast"]) and _positive_finite(p["eval_ms_per_image"])
    assert all(v >= 1 for v in p["block_spread"].values())
    assert set(p["plain_ms_by_norm"]) == set(bench.registry_norms("vgg")) and "batch" in p["plain_ms_by_norm"]
    assert all(_positive_finite(v) for v in p["plain_ms_by_norm"].values())
    d = results["dln_probes"]
    assert set(d["ms"]) == {"plain", "ics", "activations", "landscape_k3"}
    assert all(_positive_finite(v) for v in d["ms"].values())
    assert set(d["plain_ms_by_norm"]) == set(bench.registry_norms("dln"))


def test_ics_fast_equals_naive(results, data):
    a = results["probes"]["ics_agreement"]
    assert a["max_rel_diff"] <= 1e-6 and a["params_untouched"]
    assert all(v > 0 for v in a["ics_rel"].values())          # G' differs from G: the check is not vacuous
    cfg = ModelConfig(arch="vgg16", norm="none", width=0.0625, in_channels=1)
    assert bench.ics_agreement(cfg, data, TINY, (5, 10), 0.1)["max_rel_diff"] <= 1e-6
    reg = bench.load_regression(DataConfig("dln_synthetic"), 0, "cpu")
    agree = bench.ics_agreement(ModelConfig(arch="dln", norm="batch"), reg, TINY, (9, 17), 1e-6)
    assert agree["max_rel_diff"] <= 1e-10


def test_loop_vmap_agree(results):
    lv = results["loop_vs_vmap"]
    assert lv["k"] == 3 and set(lv) == {"k", "vgg16_batch", "dln_none", "dln_batch"}
    # fp32 VGG: a ReLU or max-pool switch flipped by rounding can move one gradient change by ~1e-4
    for name, tol in (("vgg16_batch", 1e-3), ("dln_none", 1e-9), ("dln_batch", 1e-9)):
        v = lv[name]
        assert v["max_rel_diff_loss"] <= tol and v["max_rel_diff_grad_change"] <= tol, (name, v)
        assert _positive_finite(v["loop_ms"]) and _positive_finite(v["vmap_ms"]) and _positive_finite(v["vmap_speedup"])


def test_projection_counts_unique_runs(results):
    for scale in ("paper", "cpu"):
        pr = results["projection"][scale]
        unique = {config_hash(r) for e in EXPERIMENTS.values() for r in e.runs(scale)}
        assert pr["unique_runs"] == len(unique) == pr["vgg_runs"] + pr["dln_runs"] + pr["resnet_runs"]
        resnet = {config_hash(r) for e in EXPERIMENTS.values() for r in e.runs(scale) if r.model.arch == "resnet"}
        assert pr["resnet_runs"] == len(resnet) >= len(get("bjorck_lr_sweep").runs(scale))
        assert _positive_finite(pr["minutes"]["total"])
        assert all(math.isfinite(v) and v >= 0 for v in pr["minutes"].values())
        assert "PROJECTION" in pr["note"]
    assert results["projection"]["cpu"]["flop_scale_from_measured"] == pytest.approx(1.0)
    assert results["projection"]["paper"]["flop_scale_from_measured"] > 100


def test_report_and_files(results, tmp_path):
    text = bench.format_report(results)
    for marker in ("[1]", "[2]", "[3]", "[4] PROJECTION"):
        assert marker in text
    js, txt = bench.write(results, tmp_path / "cpu-test.json")
    assert json.loads(js.read_text())["engine"]["engine_over_baseline"] > 0
    assert txt.read_text().strip() == text.strip()


def test_vgg16_flops_match_published_count():
    # the published count for VGG-16 on 32x32, Linear 512->10 head: 313.2 M multiply-adds per image
    assert bench.vgg_flops("vgg16", 1.0, 3) / 2 == pytest.approx(313.2e6, rel=2e-3)


def test_flops_count_any_architecture_from_its_shapes():
    # CIFAR ResNet-20 (He et al. 2016; 0.27 M parameters): 40.55 M multiply-adds per 32x32 image, the count
    # FLOP counters publish for it (option-A shortcuts have no weights)
    assert bench.model_flops(ModelConfig(arch="resnet", depth=20)) / 2 == pytest.approx(40.55e6, rel=1e-3)
    # the deep linear network: 25 layers of 10x10
    assert bench.model_flops(ModelConfig(arch="dln")) == 2 * 25 * 100


def test_flop_ratios_follow_the_block_costs():
    cfg = ModelConfig(arch="vgg16", norm="batch", width=1.0, in_channels=3)
    blocks = bench.block_flops(cfg)
    assert len(blocks) == 14 and sum(blocks) == bench.model_flops(cfg)      # every weight layer is in a block
    # four equal blocks, layer 3 measured: prefix of 2 blocks forward + 2 x (blocks 3, 4) = 6 blocks of 12 a step
    assert bench.flop_ratios([1, 1, 1, 1], (3,), (8,)) == {"ics": 1.5, "landscape_k8": 9.0}
    # two layers share the prefix up to the later one: 3 + 2 x (4 + 1) = 13 of 12
    assert bench.flop_ratios([1, 1, 1, 1], (1, 4), ())["ics"] == pytest.approx(1 + 13 / 12)
    # the paper's VGG-16 with layers 5 and 10: the exact ICS has 1.87 plain steps' FLOPs
    assert bench.flop_ratios(blocks, (5, 10), ())["ics"] == pytest.approx(1.866, abs=1e-3)


def test_probe_costs_report_flop_and_amortised_ratios(results):
    p = results["probes"]
    assert set(p["flop_ratio"]) == {"ics", "landscape_k2", "landscape_k4"}
    assert p["flop_ratio"]["landscape_k4"] == 5.0 and p["flop_ratio"]["ics"] > 1
    for name, am in p["amortised"].items():
        # probes every n steps spread their cost: the ratio moves towards 1 by the fraction of steps probed
        frac = bench.times_due(am["probe_every"], am["steps"]) / am["steps"]
        assert am["ics"] == pytest.approx(1 + (p["ratio_to_plain"]["ics"] - 1) * frac)
    text = bench.format_report(results)
    assert "FLOP ratio" in text and "amortised over a paper-scale run (probes every 100 of 15000 steps)" in text


def test_suite_flops_count_the_registry_and_what_may_run_in_tf32():
    cpu, paper = bench.suite_flops("cpu"), bench.suite_flops("paper")
    assert cpu["tf32_eligible"] == 0                      # cpu-scale runs are strict fp32 throughout
    assert 0 < paper["tf32_eligible"] < paper["train"] + paper["eval"]
    assert paper["total"] == pytest.approx(paper["train"] + paper["eval"] + paper["probes"])
    # bn_vs_standard's VGG-16 runs alone: 3 x 626.8 MFLOP x 128 images x 15000 steps each
    runs = {config_hash(r): r for r in EXPERIMENTS["bn_vs_standard"].runs(get_scale("paper"))}
    assert paper["train"] > len(runs) * 3 * 626.8e6 * 128 * 15_000 * 0.999
    m = bench.minutes_at_peak({"total": 120e15, "tf32_eligible": 60e15}, 50.0, 500.0)
    assert m["strict_fp32"] == pytest.approx(40.0) and m["tf32_between_measurements"] == pytest.approx(22.0)


def test_report_gives_the_paper_suite_flops(results):
    assert results["paper_flops"]["pflop"]["total"] > 100
    assert "PFLOP" in bench.format_report(results) and "at 100% of an H100 SXM" in bench.format_report(results)


def test_cli_section_1(tmp_path):
    out = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-m", "bnlab.bench", "--device", "cpu", "--sections", "1", "--steps", "1",
                           "--warmup", "0", "--repeats", "1", "--data", "synthetic", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "[1] engine vs plain baseline" in done.stdout
    assert out.exists() and out.with_suffix(".txt").exists()


def test_levers_section_times_every_network_and_projects_every_chapter():
    """Section 5 at smoke sizes, without compiling (that takes minutes): every network the suite trains, with and
    without BatchNorm, eager and under each lever that applies, and a projection row per chapter."""
    from bnlab.bench.levers import BATCH_K, bench_levers
    from bnlab.bench.report import _lever_lines
    from bnlab.chapters import computes
    out = bench_levers("cpu", "smoke", steps=1, warmup=0, repeats=1, compile_=False, processes=False,
                       log=lambda s: None)
    nets = out["networks"]
    assert {"dln none", "dln batch"} <= set(nets) and any(k.startswith("resnet") for k in nets)
    assert any(k.startswith("vgg16") for k in nets)
    for label, r in nets.items():
        assert _positive_finite(r["ms"]["eager"]) and _positive_finite(r["probed_ms"]), label
        assert r["speedup"]["eager"] == 1.0 and r["top_ops"] and all(_positive_finite(p) for _, p in r["top_ops"])
        assert ("channels_last" in r["ms"]) == (not label.startswith("dln")), label
        assert f"batched_k{BATCH_K}" in r["ms"], label                 # none and batch both batch
    rows = out["projection"]["chapters"]
    assert set(rows) == set(computes())
    trained = [r for r in rows.values() if r["runs"]]
    assert trained and all(_positive_finite(r[k]) for r in trained for k in ("eager", "default", "best"))
    assert out["projection"]["suite"]["best"] <= out["projection"]["suite"]["eager"] * (1 + 1e-9)
    text = "\n".join(_lever_lines({"levers": out}, {}))
    assert "[5] levers per network" in text and "suite (shared once)" in text


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="a process pool splits a CPU of several cores")
def test_the_step_is_timed_in_as_many_processes_as_a_live_chapter_takes_and_projected_with_them():
    """Section 5's pool row: the plain step per run in ``auto_jobs`` processes at once (each on its share of the
    threads), its speed-up over one process, and a projection column that uses it."""
    from bnlab.bench.levers import bench_network, networks, project_chapters
    from bnlab.bench.report import _lever_lines
    from bnlab.plan import auto_jobs
    run = networks("smoke")["dln none"]
    r = bench_network(run, torch.device("cpu"), 2, 1, 1, compile_=False)
    p = r["processes"]
    assert p["jobs"] == auto_jobs("cpu") >= 2 and set(p["ms"]) == {"eager"}
    assert _positive_finite(p["ms"]["eager"]) and p["speedup"]["eager"] == pytest.approx(r["ms"]["eager"] / p["ms"]["eager"])
    proj = project_chapters({"dln none": r}, "smoke")
    dln = [row for row in proj["chapters"].values() if row["runs"]]
    assert dln and all(row["processes"] == pytest.approx(row["default"] / p["speedup"]["eager"]) for row in dln)
    text = "\n".join(_lever_lines({"levers": {"networks": {"dln none": r}, "projection": proj, "batch_k": 3,
                                               "scale": "smoke"}}, {}))
    header = next(ln for ln in text.splitlines() if ln.split()[:1] == ["chapter"])
    assert f"in {p['jobs']} processes at once" in text and header.split()[-1] == "processes"
