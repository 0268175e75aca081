"""The claims registry: criteria fixed in code, verdicts over seeds, and the rules for "not meaningful"."""
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bnlab import claims, glue, scorecard
from bnlab.chapters import computes
from bnlab.experiments import EXPERIMENTS, get

CHAPTERS = computes()
REGISTERED_BEFORE = {s.id: s.registered_in for s in claims.registry() if s.registered_in}
assert REGISTERED_BEFORE, "the registry names the commits that registered claims before their runs"
from bnlab.results import Result, Run


def test_every_claim_names_a_registered_experiment_of_its_chapter():
    assert len(claims.REGISTRY) >= 40
    for spec in claims.REGISTRY:
        assert spec.experiment in EXPERIMENTS and spec.chapter in CHAPTERS, spec.id
        assert spec.experiment in CHAPTERS[spec.chapter], (spec.id, spec.chapter)
        assert spec.paper and spec.statistic and spec.criterion, spec.id
        for norm, lr in spec.arms:      # every compared arm is a run of the experiment
            assert any(r.model.norm == norm and r.train.lr == lr for r in get(spec.experiment).runs("cpu")), spec.id


def _result(scale, train_acc: dict, seeds=(0, 1, 2)):
    """bn_vs_standard at lr 0.1 with the given final training accuracy per (norm, seed)."""
    runs = []
    for cfg in get("bn_vs_standard").runs("cpu"):
        n, lr, seed = cfg.model.norm, cfg.train.lr, cfg.train.seed
        if lr != 0.1 or seed not in seeds:
            continue
        acc = train_acc[n, seed]
        runs.append(Run(cfg.to_dict(), "ok", None, {"train_acc": np.full(10, acc), "test_acc": np.array([acc])}))
    return Result("bn_vs_standard", scale, {}, runs, {})


BETTER = {("batch", s): 0.9 for s in range(3)} | {("none", s): 0.8 for s in range(3)}


def test_a_verdict_needs_every_seed_and_says_so_when_they_disagree():
    spec = claims.get("bn_trains_faster_lr0.1")
    v = claims.judge(spec, _result("cpu", BETTER))
    assert v.verdict == "reproduced" and v.holds == [True] * 3 and v.effect == pytest.approx(0.1)
    assert "0.1 (seeds: 0.1 to 0.1)" in v.ours()
    mixed = BETTER | {("batch", 2): 0.7}
    v = claims.judge(spec, _result("cpu", mixed))
    assert v.verdict == "mixed" and v.seed_range == pytest.approx((-0.1, 0.1))
    worse = {k: (0.7 if k[0] == "batch" else 0.8) for k in BETTER}
    assert claims.judge(spec, _result("cpu", worse)).verdict == "not reproduced"
    tiny = BETTER | {("batch", s): 0.805 for s in range(3)}      # ahead, but within the 0.01 margin
    assert claims.judge(spec, _result("cpu", tiny)).verdict == "not reproduced"


def test_smoke_scale_and_too_few_seeds_are_not_meaningful():
    spec = claims.get("bn_trains_faster_lr0.1")
    v = claims.judge(spec, _result("smoke", BETTER))
    assert v.verdict == "not meaningful" and "smoke" in v.why and v.holds == [True] * 3
    v = claims.judge(spec, _result("cpu", BETTER, seeds=(0,)))
    assert v.verdict == "not meaningful" and "1 seed" in v.why


def test_verdicts_table_and_glue(monkeypatch):
    res = _result("cpu", BETTER)
    table = claims.verdicts(res, "02_bn_vs_standard", ids={"bn_trains_faster_lr0.1"})
    assert list(table.columns) == claims.COLUMNS and table.iloc[0]["verdict"] == "reproduced"
    shown = []
    monkeypatch.setattr(glue, "display", lambda data, raw, metadata: shown.append((data, metadata)))
    found = glue.glue_claims(res, "02_bn_vs_standard")
    names = {m["scrapbook"]["name"]: d for d, m in shown}
    assert names["bn_trains_faster_lr0.1_verdict"] == {glue.GLUE_PREFIX + "text/plain": "'reproduced'"}
    assert names["bn_trains_faster_lr0.1_effect"][glue.GLUE_PREFIX + "text/plain"] == "'0.1'"
    assert len(found) == len(claims.specs("bn_vs_standard", "02_bn_vs_standard"))


@pytest.mark.parametrize("value, spec, shown", [(0.2, ".2f", "0.20"), (150191.2, ",.0f", "150,191"),
                                                ("0.55, 0.48, 0.10", "", "0.55, 0.48, 0.10"),
                                                (float("nan"), ".3g", "n/a"), ("not reproduced", "", "not reproduced"),
                                                (-1027.0, ",.0f", "-1,027"), (1e-7, ".1e", "1.0e-07")])
def test_a_glued_value_reads_in_the_built_book_exactly_as_formatted(monkeypatch, value, spec, shown):
    """The book's build (myst-nb's {glue:text} role) reads the glued text/plain back with ast.literal_eval: the
    text must come out unchanged, trailing zeros and thousands separators included."""
    from myst_nb.core.variables import format_plain_text
    stored = []
    monkeypatch.setattr(glue, "display", lambda data, raw, metadata: stored.append(data))
    assert glue.glue("x", value, spec) == shown
    assert format_plain_text(stored[0][glue.GLUE_PREFIX + "text/plain"], "") == shown


def run_cli(capsys, *args) -> str:
    """``python -m bnlab claims ARGS`` (its ``main``, in this process) and what it printed."""
    from bnlab.__main__ import main
    assert main(["claims", *args]) == 0
    return capsys.readouterr().out


def test_cli_lists_every_claim_with_verdict_effect_and_scale_and_counts_by_source_and_kind(capsys):
    out = run_cli(capsys, "--scale", "cpu")
    table, counts = out.split("\n\nCounted by source and kind")
    lines = table.strip().splitlines()
    assert len(lines) == len(claims.REGISTRY) + 1          # header, one line per claim
    words = claims.VERDICTS + tuple(w for ws in scorecard.CHECK_VERDICTS.values() for w in ws)
    for spec, line in zip(claims.REGISTRY, lines[1:]):
        assert line.startswith(spec.id) and " cpu " in line and any(v in line for v in words)
    n_identity = sum(s.kind == "identity" for s in claims.REGISTRY)
    for label in ("Santurkar et al. 2018: the paper's claims", "Bjorck et al. 2018: the paper's claims",
                  "our extensions", "our registered predictions", f"identity checks ({n_identity}):",
                  "errata (1): 1 confirmed"):
        assert label in counts, label


# ---- kinds, sources and the verdict rules (one threshold per wording) ---------------------------------------------
def test_no_identity_or_erratum_is_counted_as_a_reproduction_and_our_claims_name_us():
    found = claims.judge_all(lambda e, s: (_ for _ in ()).throw(FileNotFoundError(e)), "cpu")
    for spec in claims.REGISTRY:
        assert spec.kind in claims.KINDS and spec.registered in ("before", "after"), spec.id
        if spec.kind in ("extension", "prediction", "erratum"):
            assert spec.source == "ours", spec.id
        if spec.prediction:
            assert spec.kind == "prediction" and spec.prediction in claims.VERDICTS, spec.id
    # the lr 0.01 landscape reading is ours, not Santurkar et al.'s
    assert claims.get("smaller_beta_vgg_lr0.01").source == "ours"
    for label, kind, chosen in scorecard.groups(found):
        assert ("reproduced" in scorecard.count_text(kind, chosen).replace("not reproduced", "")) <= (
            kind in ("paper", "extension", "prediction")), label


def _sweep_result(test_acc_at_small: dict, train_acc_at_small: dict):
    """bjorck_lr_sweep at cpu: every arm trained well except lr 1e-4, whose accuracies are given per norm."""
    runs = []
    for cfg in get("bjorck_lr_sweep").runs("cpu"):
        n, lr = cfg.model.norm, cfg.train.lr
        tr, te = (train_acc_at_small[n], test_acc_at_small[n]) if lr == 1e-4 else (0.8, 0.75)
        runs.append(Run(cfg.to_dict(), "ok", None, {"train_acc": np.full(5, tr), "test_acc": np.array([te])}))
    return Result("bjorck_lr_sweep", "cpu", {}, runs, {})


def test_a_claim_whose_compared_networks_did_not_train_is_not_meaningful():
    spec = claims.get("sweep_same_at_smallest")
    v = claims.judge(spec, _sweep_result({"none": 0.1, "batch": 0.11}, {"none": 0.1, "batch": 0.12}))
    assert v.verdict == "not meaningful" and "precondition" in v.why and "did not train" in v.why
    v = claims.judge(spec, _sweep_result({"none": 0.70, "batch": 0.71}, {"none": 0.75, "batch": 0.76}))
    assert v.verdict == "reproduced"


def _lp_dln_result(bn_over_l1: list):
    """lp_dln at cpu with BN's final loss over l1's given per seed (l1's loss 1.0)."""
    runs = []
    for cfg in get("lp_dln").runs("cpu"):
        n, seed = cfg.model.norm, cfg.train.seed
        loss = {"batch": bn_over_l1[seed], "l1": 1.0}.get(n, 3.0)
        runs.append(Run(cfg.to_dict(), "ok", None, {"train_loss": np.full(5, loss)}))
    return Result("lp_dln", "cpu", {}, runs, {})


def test_a_tie_within_tolerance_is_a_tie_not_mixed():
    spec = claims.get("l1_better_than_bn_dln")
    v = claims.judge(spec, _lp_dln_result([1.0001, 0.9999, 1.00002, 0.99995, 1.0]))   # equal to 4 digits
    assert v.verdict == "not reproduced" and not any(v.holds)
    assert claims.judge(spec, _lp_dln_result([1.5] * 5)).verdict == "reproduced"


def test_opposed_gradients_are_not_uncorrelated(monkeypatch):
    from bnlab import criteria
    cos = {"batch": np.array([-0.9, -0.85]), "none": np.array([0.99, 0.98])}
    monkeypatch.setattr(criteria, "ics_stats", lambda result, norm, lr, seed: {"cos": cos[norm]})
    effect, holds = claims.get("ics_dln_contrast_summed").measure(None, 0)
    assert not holds and effect == pytest.approx(0.9)
    cos["batch"] = np.array([0.1, -0.2])
    assert claims.get("ics_dln_contrast_summed").measure(None, 0)[1]


def test_claims_with_the_same_wording_share_one_threshold(monkeypatch):
    """"More than a rescaling" and "smaller beta" read the same measure with the same word: one factor decides both."""
    from bnlab import criteria
    stats = {"batch": {"beta": 10.0, "grad_change": 1.0, "loss_spread": 1.0},
             "none": {"beta": 15.0, "grad_change": 1.5, "loss_spread": 1.5},
             "rescaled": {"beta": 15.0, "grad_change": 1.5, "loss_spread": 1.5}}
    monkeypatch.setattr(criteria, "landscape_stats", lambda result, norm, lr=None, seed=None, steps=None: stats[norm])
    held = {i: bool(claims.get(i).measure(None, 0)[1]) for i in ("smaller_beta_vgg", "more_than_rescaling")}
    assert held == {"smaller_beta_vgg": False, "more_than_rescaling": False}
    by_rule = {}
    for spec in claims.REGISTRY:
        assert spec.rule in criteria.RULES, spec.id       # every criterion is tied to one rule of the table
        assert criteria.RULES[spec.rule].text() in spec.criterion, spec.id
        by_rule.setdefault(spec.rule, []).append(spec.id)
    assert len(by_rule["better"]) >= 10 and len(by_rule["clearly"]) >= 10


def test_at_smoke_scale_nothing_reads_reproduced(tmp_path, monkeypatch, capsys):
    from bnlab import runner
    from conftest import cpu_plan
    plan = cpu_plan(home=tmp_path)
    runner.reproduce("theory", plan)
    runner.reproduce("landscape_dln", plan)
    monkeypatch.setenv("BNLAB_HOME", str(tmp_path))
    out = run_cli(capsys, "--scale", "smoke")
    judged = [ln for ln in out.splitlines() if "smoke scale" in ln]
    assert len(judged) >= 7                                # theory's and landscape_dln's claims got a result
    verdicts = {re.split(r"\s{2,}", ln)[2] for ln in out.split("\n\n")[0].splitlines()[1:]}
    assert verdicts == {"not meaningful"}                  # nothing reproduced, held or confirmed at smoke scale


def _git(*args) -> str:
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_claims_registered_before_their_runs_were_committed_before_their_results():
    """A claim marked "before" is in the registry at its registering commit, and that commit precedes the commit that
    first shipped its experiment's result; every other claim says "after"."""
    try:
        _git("rev-parse", "HEAD")
    except Exception:                                       # noqa: BLE001  (not a git checkout: nothing to check)
        pytest.skip("not a git checkout")
    for claim_id, commit in REGISTERED_BEFORE.items():
        spec = claims.get(claim_id)
        assert spec.registered == "before"
        at_commit = subprocess.run(["git", "-C", str(Path(__file__).resolve().parents[1]), "grep", "-l", "-F", "-e",
                                    claim_id, "-e", claim_id.rsplit("_", 1)[0], commit, "--", "bnlab"],
                                   capture_output=True, text=True).stdout
        assert at_commit.strip(), f"{claim_id}: not in the package at its registering commit {commit}"
        added = _git("log", "--diff-filter=A", "--format=%H", "--", f"bnlab/cached/{spec.experiment}/cpu.json")
        if not added:
            continue                                        # its result has not shipped yet
        first = added.splitlines()[-1]
        assert first != _git("rev-parse", commit) and \
            _git("merge-base", "--is-ancestor", commit, first) == "", (claim_id, commit, first)
    assert all(s.registered == "after" for s in claims.REGISTRY if s.id not in REGISTERED_BEFORE)
