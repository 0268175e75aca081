"""Why a claim did not reproduce: every not reproduced or mixed verdict at the shipped scale has a reason from the
fixed set, none is stale, and each claim's scale caveat describes its own network."""
import pytest

from bnlab import chapters, claims, results, scorecard, triage
from bnlab.chapters.landscape import LONG_READING_PREDICTIONS


@pytest.fixture(scope="module")
def shipped():
    return claims.judge_all(results.load, "cpu")


def test_every_not_reproduced_or_mixed_verdict_has_a_reason_and_none_is_stale(shipped):
    failing = {v.spec.id for v in shipped if v.verdict in ("not reproduced", "mixed")}
    assert failing, "the shipped verdicts include some that did not reproduce"
    assert failing <= set(chapters.triage()), sorted(failing - set(chapters.triage()))
    stale = set(chapters.triage()) - failing
    assert not stale, f"triaged claims that now reproduce (or are not judged): {sorted(stale)}"
    for v in shipped:
        text = scorecard.why_not(v)
        if v.spec.id in failing:
            assert text.startswith(tuple(triage.REASONS.values())) and len(text) > 60, v.spec.id


def test_a_reason_outside_the_fixed_set_or_a_scale_reason_without_its_limit_is_refused():
    with pytest.raises(ValueError, match="unknown reason"):
        triage.Triage("bad luck", "", "seeds")
    with pytest.raises(ValueError, match="names one of"):
        triage.Triage("scale", "", "too small")


def test_the_scale_caveat_is_right_for_each_network():
    dln = triage.scale_caveat("dln_summed_loss", "cpu")
    assert "the paper's size" in dln and "10,000" in dln
    vgg = triage.scale_caveat("landscape_vgg", "cpu")
    assert "1/16 of the width" in vgg and "1,000 steps" in vgg and "Fashion-MNIST" in vgg and "paper's size" not in vgg
    assert "6,000 steps" in triage.scale_caveat("landscape_vgg_long", "cpu")
    assert "ResNet-56 at 1/4" in triage.scale_caveat("bjorck_lr_sweep", "cpu")
    for spec in claims.REGISTRY:           # every claim's caveat names its own network
        text = triage.scale_caveat(spec.experiment, "cpu")
        assert ("DLN" in text) == ("dln" in spec.experiment or spec.experiment == "lp_dln"), spec.id


def test_the_scorecard_shows_kind_registration_and_why(shipped):
    card = scorecard.scorecard(shipped, link=lambda c: c)
    assert len(card) == len(claims.REGISTRY)
    row = card[card["statement [kind; source]"].str.startswith("VGG: with BN the effective beta")].iloc[0]
    assert "[paper; Santurkar et al. 2018]" in row["statement [kind; source]"]
    assert "registered after its first numbers" in row["criterion per seed (registered)"]
    assert row["why"].startswith("limited by our scale (width): not the length of training")
    pred = card[card["verdict"].str.contains("predicted:")]
    assert len(pred) == len(LONG_READING_PREDICTIONS)
    assert all("registered before its runs" in c for c in pred["criterion per seed (registered)"])
