"""The claims registry: criteria fixed in code, verdicts over seeds, and the rules for "not meaningful"."""
import numpy as np
import pytest

from bnlab import claims, glue
from bnlab.experiments import CHAPTERS, EXPERIMENTS, get
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


def test_cli_lists_every_claim_with_verdict_effect_and_scale(capsys):
    lines = run_cli(capsys, "--scale", "cpu").strip().splitlines()
    assert len(lines) == len(claims.REGISTRY) + 2          # header, one line per claim, the counts
    for spec, line in zip(claims.REGISTRY, lines[1:-1]):
        assert line.startswith(spec.id) and " cpu " in line and any(v in line for v in claims.VERDICTS)


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
    assert " reproduced " not in out and "0 reproduced" in out
