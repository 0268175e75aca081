"""The helpers behind the exercises of the landscape chapter (a probe at other rates, a claim judged over a window
of steps, the share of probes past the edge of stability) and of the findings chapter (the triage reasons of the
shortfalls, a wording rule re-judged at other thresholds)."""
import numpy as np
import pytest

from bnlab import claims, results
from bnlab.chapters import findings, landscape
from bnlab.criteria import RULES
from bnlab.records import Run
from bnlab.results import Result
from bnlab.recipes import vgg_run
from bnlab.scales import get_scale


def _run(norm, lr, seed, **arrays):
    return Run({"name": "x", "model": {"norm": norm}, "train": {"lr": lr, "seed": seed, "steps": 10}}, "ok", None,
               {k: np.asarray(v, float) for k, v in arrays.items()})


def test_probe_configs_keep_only_the_landscape_probe_at_the_chapters_step_sizes():
    cfgs = landscape.probe_configs("batch", [0.02, 0.5], steps=4)
    ref = vgg_run(get_scale("smoke"), "batch", 0.02, 0).probe
    assert [(c.model.norm, c.train.lr, c.train.steps) for c in cfgs] == [("batch", 0.02, 4), ("batch", 0.5, 4)]
    for c in cfgs:
        p = c.probe
        assert p.landscape and p.every == ref.every and p.landscape_range == ref.landscape_range
        assert p.landscape_points == ref.landscape_points and not p.activation_layers and not p.ics_layers


def test_beta_at_start_reads_the_probe_at_step_0_against_the_edge():
    runs = {("batch", 0.1): _run("batch", 0.1, 0, land_step=[0, 4], land_beta=[[5, 30, 1], [99, 99, 99]]),
            ("batch", 0.5): _run("batch", 0.5, 0, land_step=[0, 4], land_beta=[[2, 4, np.nan], [0, 0, 0]])}
    out = landscape.beta_at_start(runs)
    assert out["ex_beta0_lr0.1"][0] == 30 and out["ex_beta0_edge_lr0.1"][0] == pytest.approx(1.5)
    assert out["ex_beta0_lr0.5"][0] == 4 and out["ex_beta0_edge_lr0.5"][0] == pytest.approx(1.0)
    assert out["ex_beta0_edge_low"][0] == pytest.approx(1.0) and out["ex_beta0_edge_high"][0] == pytest.approx(1.5)


def test_edge_share_counts_the_probes_past_a_multiple_of_two_over_lr():
    res = Result("x", "cpu", {}, [_run("none", 0.1, 0, land_beta=[[10, 50], [1, 2], [np.nan, 41], [30, 39]])])
    assert landscape.edge_share(res, "none", 0.1) == [0.75]                 # 2/lr = 20
    assert landscape.edge_share(res, "none", 0.1, factor=2) == [0.5]        # above 40


def test_judge_window_over_every_step_is_the_registered_claim_and_a_window_moves_it():
    res = results.load("landscape_vgg")
    for cid, steps in (("smoother_loss_vgg", (0, 10**9)), ("predictive_gradients_vgg", (0, 10**9)),
                       ("smaller_beta_vgg", (0, 10**9)), ("predictive_gradients_early_vgg", landscape.EARLY)):
        again, registered = landscape.judge_window(cid, res, steps), claims.judge(claims.get(cid), res)
        assert again.effects == registered.effects and again.verdict == registered.verdict    # same rule, same number
    late = landscape.judge_window("predictive_gradients_vgg", res, (500, 1000))
    assert "steps 500-1000" in late.spec.statistic and late.effects != claims.judge(claims.get("predictive_gradients_vgg"),
                                                                                     res).effects


def test_rule_at_sets_a_threshold_and_restores_the_registered_one_after_an_error():
    registered = RULES["clearly"]
    with pytest.raises(RuntimeError):
        with findings.rule_at("clearly", 7.0):
            assert RULES["clearly"].threshold == 7.0
            raise RuntimeError
    assert RULES["clearly"] is registered


def test_threshold_sensitivity_changes_nothing_at_the_registered_threshold_and_counts_every_claim():
    found = claims.judge_all(results.load)
    t = RULES["clearly"].threshold
    table, values = findings.threshold_sensitivity(found, "clearly", (t, 1e9), results.load)
    n = sum(v.spec.rule == "clearly" and v.spec.kind == "paper" and bool(v.seeds) for v in found)
    assert values["ex_clearly_n"][0] == n and values[f"ex_clearly_{t:g}_changed"][0] == 0
    assert values["ex_clearly_1e+09_reproduced"][0] < values[f"ex_clearly_{t:g}_reproduced"][0] and len(table) == 2
    assert RULES["clearly"].threshold == t


def test_reasons_count_every_shortfall_of_the_papers_claims():
    found = claims.judge_all(results.load)
    why = findings.reasons(found)
    assert sum(why.values()) == sum(v.spec.kind == "paper" and v.verdict in findings.SHORT for v in found)
    assert set(why) <= {"scale", "design", "paper size", "architecture", "none"}
