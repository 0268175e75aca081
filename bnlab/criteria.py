"""The per-seed measures behind the registered claims (``bnlab.claims``): each returns ``(effect, holds)`` for one
seed (``seed`` None for an analysis that is one computation), or ``(effect, None, why)`` when a precondition of the
claim fails in that seed (then the verdict is "not meaningful", with the reason).

Every threshold lives in :data:`RULES`, one per wording: two claims worded alike are judged by the same number,
and a gap within a tolerance is a tie, never a win for either side.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .statistics import (SWEEP_FAILED_ACC, final, ics_stats, landscape_stats, moment_changes, sharpness_stats,
                         step_size_stats, surface_stats, sweep, thm44_vs_vanilla)


@dataclass(frozen=True)
class Rule:
    """One wording of the claims and the one threshold that decides it, for every claim worded so."""

    words: str                   # the words of the claims this rule decides
    threshold: float
    criterion: str               # per seed, in words; ``{t}`` is the threshold

    def text(self, **kw) -> str:
        return self.criterion.format(t=self.threshold, **kw)


# [ours] The thresholds are our choices; the papers give none. A share or an accuracy is a fraction, so one
# tolerance serves both: within it two networks are comparable, and "better" must clear it.
RULES = {
    "comparable": Rule('"comparably", "like", "about the same" (accuracies, shares)', 0.02,
                       "within {t:g} of each other"),
    "better": Rule('"better", "beats", "ahead", "wider" (accuracies, shares)', 0.02,
                   "ahead by more than {t:g} (a gap within the comparable tolerance is a tie)"),
    "far better": Rule('"far better" (accuracies)', 0.05, "ahead by more than {t:g}"),
    "lower": Rule('"lower", "less", "smaller", "more" as a direction (ratios)', 1.1,
                  "a ratio above {t:g} in the claimed direction (within 10% is a tie)"),
    "nearly": Rule('"nearly", "matches", "settles at" (ratios; a measured value against a theory value)', 1.1,
                   "a ratio between 1/{t:g} and {t:g}"),
    "clearly": Rule('"a clear improvement", "clearly smaller", "more than" (landscape measures), and its converse '
                    '"similar or larger"', 2.0, "a factor of {t:g} or more"),
    "near": Rule('"near", "settles near" (a ratio to a reference value)', 2.0, "a ratio between 1/{t:g} and {t:g}"),
    "two orders": Rule('"close to two orders of magnitude"', 30.0, "a factor of {t:g} or more"),
    "much": Rule('"a much wider range"', 100.0, "a factor of {t:g} or more"),
    "about": Rule('"about" a value (a step size)', 10.0, "within a factor of {t:g} (a decade) of it"),
    "uncorrelated": Rule('"almost uncorrelated" (gradients)', 0.5, "|cos| below {t:g}, opposed gradients are not "
                         "uncorrelated"),
    "aligned": Rule('"almost no ICS" (gradients aligned), "collapse to one direction" (representations)', 0.9,
                    "cos above {t:g}"),
    "fails": Rule('"fails", "stops training"', SWEEP_FAILED_ACC, "final training accuracy below {t:g} (chance is "
                  "0.1; 0 if diverged)"),
    "trained": Rule('a network "trains" (the precondition of a comparison between trained networks)', SWEEP_FAILED_ACC,
                    "final training accuracy of at least {t:g}"),
    "identity": Rule('"holds as an equality"', 1e-8, "largest relative error below {t:g}"),
    "somewhere": Rule('"is violated somewhere"', 0, "more than {t:g} cases"),
    "orthogonal": Rule('"orthogonal" (a weight and its gradient, in fp32 training)', 1e-3, "largest |cos| at most {t:g}"),
    "fp32 identity": Rule('"holds as an equality" in fp32 training (a norm identity)', 1e-2,
                          "median relative error at most {t:g}"),
    "order": Rule('"on the order of" a power of depth (a fitted exponent)', 2.0,
                  "an exponent within a factor of {t:g} of the theory's"),
}


def _t(rule: str) -> float:
    return RULES[rule].threshold


def _finals(result, norm, lr, seed, key):
    runs = result.select(norm=norm, lr=lr, seed=seed)
    return final(runs[0], key) if runs else float("nan")


def better(a, b, lr, key="train_acc", rule="better"):
    """Effect: final ``key`` of network a minus b; holds when a is ahead by more than the rule's margin ("better" or
    "far better"; NaN: diverged, counts as behind)."""
    def measure(result, seed):
        va, vb = _finals(result, a, lr, seed, key), _finals(result, b, lr, seed, key)
        effect = va - vb
        return effect, bool(np.isfinite(va) and (not np.isfinite(vb) or effect > _t(rule)))
    return measure


def within(a, b, lr, key="train_acc"):
    """Effect: final ``key`` of a minus b; holds when |a - b| is within the "comparable" tolerance."""
    def measure(result, seed):
        effect = _finals(result, a, lr, seed, key) - _finals(result, b, lr, seed, key)
        return effect, bool(np.isfinite(effect) and abs(effect) <= _t("comparable"))
    return measure


def lower_loss(a, b, lr):
    """Effect: final training loss of b over a's; holds when a's is lower by more than the tie tolerance."""
    def measure(result, seed):
        la, lb = _finals(result, a, lr, seed, "train_loss"), _finals(result, b, lr, seed, "train_loss")
        ratio = lb / la if la > 0 else float("nan")
        return ratio, bool(np.isfinite(ratio) and ratio > _t("lower"))
    return measure


def fails(norm, lr):
    """Effect: final training accuracy (0 when the run diverged); holds when it stays below the "fails" bar."""
    def measure(result, seed):
        runs = result.select(norm=norm, lr=lr, seed=seed)
        acc = 0.0 if runs[0].status == "diverged" else final(runs[0], "train_acc")
        return acc, bool(acc < _t("fails"))
    return measure


def smoother(key, lr, smooth="batch", rough="none", rule="clearly", steps=None):
    """Effect: the rough network's median ``key`` (landscape_stats) over the smooth one's; holds when it reaches the
    rule's factor ("clearly": 2, "two orders": 30)."""
    def measure(result, seed):
        a = landscape_stats(result, smooth, lr, seed, steps)[key]
        b = landscape_stats(result, rough, lr, seed, steps)[key]
        ratio = b / a if a > 0 else float("inf")
        return ratio, bool(ratio >= _t(rule))
    return measure


def ics_similar_or_larger(lr):
    """Effect: the smallest, over the measured layers, of BN's median ||G - G'|| over the standard network's; holds
    when BN's is nowhere clearly smaller (>= 1 / the "clearly" factor at every layer)."""
    def measure(result, seed):
        bn, std = ics_stats(result, "batch", lr, seed), ics_stats(result, "none", lr, seed)
        ratio = float(np.min(bn["l2"] / std["l2"]))
        return ratio, bool(ratio >= 1 / _t("clearly"))
    return measure


def dln_ics_contrast(lr):
    """Effect: BN's largest median |cos(G, G')| over the layers; holds when it is "uncorrelated" (|cos| small: an
    opposed gradient is not uncorrelated) at every layer while the standard network's is "aligned" at every layer."""
    def measure(result, seed):
        bn, std = ics_stats(result, "batch", lr, seed), ics_stats(result, "none", lr, seed)
        worst = float(np.max(np.abs(bn["cos"])))
        return worst, bool(worst < _t("uncorrelated") and np.all(std["cos"] > _t("aligned")))
    return measure


def less_stable(a, b, lr, layers):
    """Effect: the smallest, over ``layers``, of network a's mean relative shift of its layer inputs' means per probe
    interval (|change of mean| / std, the same step gap for both) over network b's; holds when a's inputs move more
    at every layer, by more than the tie tolerance."""
    def measure(result, seed):
        ra, rb = result.select(norm=a, lr=lr, seed=seed), result.select(norm=b, lr=lr, seed=seed)
        ratios = [float(np.nanmean(moment_changes(ra, k)["rel_d_mean"]) / np.nanmean(moment_changes(rb, k)["rel_d_mean"]))
                  for k in layers]
        return min(ratios), bool(min(ratios) > _t("lower"))
    return measure


def close_loss(a, b, lr):
    """Effect: final training loss of a over b's; holds when the two are "nearly" equal."""
    def measure(result, seed):
        la, lb = _finals(result, a, lr, seed, "train_loss"), _finals(result, b, lr, seed, "train_loss")
        ratio = la / lb if lb > 0 else float("nan")
        return ratio, bool(np.isfinite(ratio) and 1 / _t("nearly") <= ratio <= _t("nearly"))
    return measure


def more_than_rescaling(lr):
    """Effect: the fixed-rescaling network's median max beta over BN's; holds when both its beta and its gradient
    change are larger than BN's by the same factor the smoothness claims ask for ("clearly")."""
    def measure(result, seed):
        bn, rs = landscape_stats(result, "batch", lr, seed), landscape_stats(result, "rescaled", lr, seed)
        f = _t("clearly")
        return rs["beta"] / bn["beta"], bool(rs["beta"] >= f * bn["beta"] and rs["grad_change"] >= f * bn["grad_change"])
    return measure


def theory_error(key):
    def measure(result, seed):
        err = float(np.max(result.arrays[key]))
        return err, bool(err < _t("identity"))
    return measure


def thm44_bn_below_vanilla(result, seed):
    """Effect: the median over unit-batches of BN's worst-case weight gradient over the vanilla network's; holds
    when the median is lower, beyond the tie tolerance, in every (phase, batch size) cell."""
    t = thm44_vs_vanilla(result)
    return t["median"], bool(np.all(t["cells"] < 1 / _t("lower")))


def printed_thm41_fails(result, seed):
    n = int(result.arrays["thm41_printed_violations"])
    return n, bool(n > _t("somewhere"))


def step_size_onset(first, at=1e-3):
    """Effect: the standard network's smallest step size with relative loss > 10^3 (median over mini-batches);
    holds when it is "about" ``at``."""
    def measure(result, seed):
        onset = step_size_stats(result, "none", first)["onset"]
        return onset, bool(at / _t("about") <= onset <= at * _t("about"))
    return measure


def step_size_range(first):
    """Effect: BN's largest loss-lowering step size over the standard network's; holds when that ratio and the
    ratio of the divergence onsets are both "much" larger (no divergence in the grid counts as beyond it)."""
    def measure(result, seed):
        std, bn = step_size_stats(result, "none", first), step_size_stats(result, "batch", first)
        ratio = bn["decreasing"] / std["decreasing"] if std["decreasing"] > 0 else float("inf")
        f = _t("much")
        return ratio, bool(bn["decreasing"] >= f * std["decreasing"] and bn["onset"] >= f * std["onset"])
    return measure


def sweep_same_at_smallest(result, seed):
    """Effect: test accuracy at the smallest rate, BN minus standard; holds when "comparable". Precondition: both
    networks trained there (otherwise two untrained networks would count as "the same")."""
    std, bn = sweep(result, "none", seed), sweep(result, "batch", seed)
    lo = min(std)
    gap = bn[lo][1] - std[lo][1]
    if not min(bn[lo][0], std[lo][0]) >= _t("trained"):
        return gap, None, f"at lr {lo:g} a network did not train (final training accuracy below {_t('trained'):g})"
    return gap, bool(np.isfinite(gap) and abs(gap) <= _t("comparable"))


def sweep_bn_best_at_larger(result, seed):
    std, bn = sweep(result, "none", seed), sweep(result, "batch", seed)
    best = lambda d: max(d, key=lambda lr: -1.0 if not np.isfinite(d[lr][1]) else d[lr][1])  # noqa: E731
    b_bn, b_std = best(bn), best(std)
    margin = bn[b_bn][1] - std[b_std][1]
    return margin, bool(b_bn > min(bn) and margin > _t("better"))


def sharpness_smaller(result, seed):
    std, bn = sharpness_stats(result, "none", seed), sharpness_stats(result, "batch", seed)
    ratio = std["median"] / bn["median"]
    return ratio, bool(ratio > _t("lower"))


def edge_of_stability(net):
    def measure(result, seed):
        s = sharpness_stats(result, net, seed)
        ratio = s["late"] / (2 / float(result.arrays["lr"]))
        return ratio, bool(1 / _t("near") <= ratio <= _t("near"))
    return measure


def wider_basin(result, seed):
    std, bn = surface_stats(result, "none", seed), surface_stats(result, "batch", seed)
    return bn["within2x"] - std["within2x"], bool(bn["within2x"] - std["within2x"] > _t("better"))


# ---- the claims of the chapter on later work, registered before their runs ----------------------------------------
def _i(result, seed) -> int:
    return [int(s) for s in np.atleast_1d(result.arrays["seeds"])].index(seed)


def _within(value: float, target: float, rule: str) -> bool:
    t = RULES[rule].threshold
    return bool(target / t <= value <= target * t)


def rank_kept_with_bn(net):
    def measure(result, seed):
        a, i = result.arrays, _i(result, seed)
        bn, std = float(a[f"{net}/batch/srank"][i, -1]), float(a[f"{net}/none/srank"][i, -1])
        ratio = bn / std if std > 0 else float("inf")
        return ratio, bool(ratio >= RULES["clearly"].threshold)
    return measure


def standard_collapses(net):
    def measure(result, seed):
        c = float(result.arrays[f"{net}/none/cos"][_i(result, seed), -1])
        return c, bool(c > RULES["aligned"].threshold)
    return measure


def rate_near(norm, target):
    def measure(result, seed):
        r = float(result.arrays[f"{norm}/rate"][_i(result, seed)])
        return r, _within(r, target, "nearly")
    return measure


def explosion_fades(lr=0.1):
    """D_0 / D_1, D_t the log10 ratio of the squared gradient at the second layer to the second-last, step t."""
    def measure(result, seed):
        a = result.arrays
        D = a["dyn/D"][_i(result, seed), [float(x) for x in a["dyn_lrs"]].index(lr)]
        if not (np.isfinite(D[0]) and np.isfinite(D[1])):
            return float("nan"), None, f"the BN MLP at lr {lr:g} diverged in its first step"
        if D[0] <= 0:
            return float("nan"), None, "no explosion at initialisation to fade (D_0 <= 0)"
        ratio = float(D[0] / D[1]) if D[1] > 0 else float("inf")
        return ratio, bool(ratio >= RULES["clearly"].threshold)
    return measure


def deep_plain_bn_fails(result, seed, deep=(64, 128), control=16):
    a, i = result.arrays, _i(result, seed)
    depths, lrs = [int(d) for d in a["depths"]], [float(x) for x in a["lrs"]]
    if not set(deep) | {control} <= set(depths):
        return float("nan"), None, f"depths {sorted(set(deep) | {control})} were not all trained at this scale"
    ctrl = float(a["acc"][i, depths.index(control), lrs.index(0.1)])
    best = float(np.nanmax(a["acc"][i, [depths.index(d) for d in deep]]))
    if not ctrl >= RULES["trained"].threshold:
        return best, None, f"the depth-{control} control did not train ({ctrl:.2f})"
    return best, bool(best < RULES["fails"].threshold)


def branch_downscaled(result, seed):
    p = float(result.arrays["batch/exponent"][_i(result, seed)])
    return p, _within(p, 0.5, "order")


def branch_not_downscaled(result, seed):
    m = float(np.median(result.arrays["none/ratio"][_i(result, seed)]))
    return m, bool(m >= 1 / RULES["clearly"].threshold)


def skipinit_trains(result, seed):
    run = result.select(norm="skipinit", lr=0.1, seed=seed)[0]
    acc = 0.0 if run.status == "diverged" else float(final(run, "train_acc"))
    return acc, bool(acc >= RULES["trained"].threshold)


def skipinit_comparable(result, seed):
    """SkipInit's final test accuracy minus BN's: holds unless BN is ahead by more than the comparable tolerance."""
    runs = {n: result.select(norm=n, lr=0.1, seed=seed)[0] for n in ("skipinit", "batch")}
    if runs["batch"].status == "diverged":
        return float("nan"), None, "the BN comparator diverged"
    s = 0.0 if runs["skipinit"].status == "diverged" else float(final(runs["skipinit"], "test_acc"))
    gap = s - float(final(runs["batch"], "test_acc"))
    return gap, bool(gap >= -RULES["better"].threshold)


def _arms(a) -> list:
    return [str(x) for x in np.atleast_1d(a["arms"])]


def orthogonal(result, seed):
    a, i = result.arrays, _i(result, seed)
    worst = max(float(np.nanmax(a[f"{arm}/max_cos"][i])) for arm in _arms(a))
    return worst, bool(worst <= RULES["orthogonal"].threshold)


def pythagoras(result, seed):
    a, i = result.arrays, _i(result, seed)
    worst = max(float(np.nanmedian(np.abs(a[f"{arm}/pythagoras"][i] - 1))) for arm in _arms(a))
    return worst, bool(worst <= RULES["fp32 identity"].threshold)


def rate_tunes_itself(result, seed, hi="k100", lo="k1"):
    """k=100's final effective rate eta / ||W||^2 (median over conv layers) over k=1's; k=100 must train."""
    a, i = result.arrays, _i(result, seed)
    acc = float(np.nanmean(a[f"{hi}/train_acc"][i, -50:]))
    if a[f"{hi}/diverged_step"][i] >= 0 or not acc >= RULES["trained"].threshold:
        return float("nan"), False
    eff = {arm: float(np.median(float(a[f"{arm}/conv_lr"]) / a[f"{arm}/w_sq"][i, -1])) for arm in (hi, lo)}
    ratio = eff[hi] / eff[lo]
    return ratio, _within(ratio, 1.0, "near")


def angle_settles(arm, last=0.4):
    """The mean angle per step over the last ``last`` of training (median over conv layers) over Delta*."""
    def measure(result, seed):
        a, i = result.arrays, _i(result, seed)
        if a[f"{arm}/diverged_step"][i] >= 0:
            return float("nan"), None, f"the arm {arm} diverged"
        angle = a[f"{arm}/angle"][i]
        start = int(round(angle.shape[0] * (1 - last)))
        ratio = float(np.median(np.nanmean(angle[start:], axis=0))) / float(a[f"{arm}/delta_star"])
        return ratio, _within(ratio, 1.0, "nearly")
    return measure


def _precise_gain(a, i, arm) -> float:
    return float(np.nanmean(a[f"{arm}/acc_precise"][i] - a[f"{arm}/acc_ema"][i]))


def precise_beats_ema(result, seed, arm="lr0.5"):
    a, i = result.arrays, _i(result, seed)
    if a[f"{arm}/diverged_step"][i] >= 0:
        return float("nan"), None, f"the arm {arm} diverged"
    gain = _precise_gain(a, i, arm)
    return gain, bool(gain > RULES["better"].threshold)


def ema_gap_grows(result, seed, hi="lr0.5", lo="k1"):
    a, i = result.arrays, _i(result, seed)
    d = _precise_gain(a, i, hi) - _precise_gain(a, i, lo)
    return d, bool(d > RULES["better"].threshold)


def batch_stats_match(result, seed):
    a, i = result.arrays, _i(result, seed)
    gaps = [abs(float(np.nanmean(a[f"{arm}/acc_batch"][i] - a[f"{arm}/acc_precise"][i]))) for arm in ("k1", "lr0.5")]
    return max(gaps), bool(max(gaps) <= RULES["comparable"].threshold)


