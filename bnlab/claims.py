"""The claims a chapter tests, each with its criterion fixed in code, and the verdict on a result."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .norms import NORM_LABELS
from .statistics import (SWEEP_FAILED_ACC, SWEEP_MARGIN, _sweep, final, ics_stats, landscape_stats, nan_safe,
                         sharpness_stats, step_size_stats, surface_stats)
from .tables import _eta_txt, mean_std


@dataclass
class Claim:
    """A claim of the paper, the number we measured, and whether our run reproduces it."""

    text: str
    evidence: str
    holds: bool

    def __str__(self):
        return f"[{self.verdict}] {self.text}\n    {self.evidence}"

    @property
    def verdict(self) -> str:
        return "reproduced" if self.holds else "NOT reproduced"

    def _repr_html_(self) -> str:
        return verdict_table(self)._repr_html_()


def verdict_table(*claims):
    """The verdicts as a table (one row per claim: verdict, claim, evidence) that a notebook shows as HTML, with
    lines that wrap. Takes claims and lists of claims, as the ``claim_*`` functions return them."""
    from .tables import Table
    flat = [c for item in claims for c in (item if isinstance(item, (list, tuple)) else [item])]
    return Table([[c.verdict, c.text, c.evidence] for c in flat], columns=["verdict", "claim", "evidence"])


def _final_by(result, norm, lr, key):
    return [final(r, key) for r in result.select(norm=norm, lr=lr)]


def claim_faster(result, norm_a="batch", norm_b="none", lr=None, key="train_acc") -> Claim:
    """Network a reaches a higher final training accuracy than b (mean over seeds)."""
    a, b = _final_by(result, norm_a, lr, key), _final_by(result, norm_b, lr, key)
    ma, mb = nan_safe(np.nanmean, a), nan_safe(np.nanmean, b)
    holds = bool(np.isfinite(ma) and (not np.isfinite(mb) or ma > mb))
    return Claim(f"{NORM_LABELS[norm_a]} trains better than {NORM_LABELS[norm_b]} at lr {lr:g}",
                 f"final {key.replace('_', ' ')}: {mean_std(a)} vs {mean_std(b)}", holds)


def claim_smoother(result, lr=None, smooth="batch", rough="none") -> list:
    """BN's landscape: narrower loss range, smaller gradient change, smaller beta (medians over steps)."""
    a, b = landscape_stats(result, smooth, lr), landscape_stats(result, rough, lr)
    out = []
    for key, what in (("loss_spread", "loss varies less along the gradient"),
                      ("grad_change", "gradients are more predictive (smaller change)"),
                      ("beta", "effective beta-smoothness is smaller")):
        ratio = b[key] / a[key] if a[key] > 0 else float("inf")
        out.append(Claim(f"with {NORM_LABELS[smooth]}, {what}",
                         f"median {key}: {a[key]:.4g} vs {b[key]:.4g} for {NORM_LABELS[rough]} "
                         f"(ratio {ratio:.3g})", bool(a[key] < b[key])))
    out.append(Claim(f"with {NORM_LABELS[smooth]}, the worst effective beta-smoothness over training is smaller",
                     f"largest beta: {a['beta_max']:.4g} vs {b['beta_max']:.4g} for {NORM_LABELS[rough]}",
                     bool(a["beta_max"] < b["beta_max"])))
    return out


def claim_ics_not_reduced(result, lr) -> Claim:
    """[S Fig. 3]: BN does not reduce gradient-based ICS. Criterion (ours): at every measured layer the BN
    network's median ||G - G'|| is at least half the standard network's and its median cosine is at most
    0.05 above it."""
    bn, std = ics_stats(result, "batch", lr), ics_stats(result, "none", lr)
    holds = bool(np.all(bn["l2"] >= 0.5 * std["l2"]) and np.all(bn["cos"] <= std["cos"] + 0.05))
    parts = [f"layer #{k}: ||G-G'|| {b:.3g} vs {s:.3g}, cos {cb:.3f} vs {cs:.3f}" for k, b, s, cb, cs in
             zip(bn["layers"], bn["l2"], std["l2"], bn["cos"], std["cos"])]
    return Claim(f"BatchNorm does not reduce gradient-based ICS at lr {lr:g} (BN vs standard, medians)",
                 "; ".join(parts), holds)


def claim_bjorck_step_size(result) -> list:
    """Bjorck et al. (paper-spec.md 11.3), read twice: at initialisation (the first mini-batch) and as medians over
    all measured mini-batches. Criteria (ours): (1) the standard network's divergence onset lies within a decade
    of 10^-3; (2) BN's range of loss-lowering step sizes and its divergence onset are both at least 100 times the
    standard network's (no divergence in the grid counts as beyond the grid)."""
    thr = float(result.arrays["threshold"])
    out = []
    n_all = len(result.arrays["none/rel_loss"])
    for first, when in ((1, "at initialisation (first mini-batch)"), (None, f"median over {n_all} mini-batches")):
        std, bn = step_size_stats(result, "none", first), step_size_stats(result, "batch", first)
        out.append(Claim(f"without BatchNorm the relative loss exceeds {thr:g} once the step size passes about 1e-3 "
                         f"-- {when}", f"smallest step size with relative loss > {thr:g}: "
                         f"{_eta_txt(std['onset'], std['eta_max'])}", bool(1e-4 <= std["onset"] <= 1e-2)))
        out.append(Claim(f"with BatchNorm a step lowers the loss over a much wider range of step sizes -- {when}",
                         f"largest step size with every step lowering the loss: {bn['decreasing']:.3g} vs "
                         f"{std['decreasing']:.3g}; divergence onset: {_eta_txt(bn['onset'], bn['eta_max'])} vs "
                         f"{_eta_txt(std['onset'], std['eta_max'])}",
                         bool(bn["decreasing"] >= 100 * std["decreasing"] and bn["onset"] >= 100 * std["onset"])))
    return out


def claim_sharpness(result) -> list:
    """(1) The smoothness story predicts a smaller top Hessian eigenvalue with BN: median over all measurements.
    (2) Cohen et al.'s edge of stability (shown for full-batch GD): lambda_max settles near 2/lr. Criterion
    (ours): the median over the second half of the measurements lies within a factor 2 of 2/lr."""
    std, bn = sharpness_stats(result, "none"), sharpness_stats(result, "batch")
    edge = 2 / float(result.arrays["lr"])
    out = [Claim("with BatchNorm the top Hessian eigenvalue is smaller",
                 f"median lambda_max: {bn['median']:.3g} vs {std['median']:.3g} for {NORM_LABELS['none']}",
                 bool(bn["median"] < std["median"]))]
    for net, s in (("none", std), ("batch", bn)):
        out.append(Claim(f"{NORM_LABELS[net]}: lambda_max settles near 2/lr = {edge:g} (edge of stability)",
                         f"median lambda_max over the second half: {s['late']:.3g} "
                         f"(ratio to 2/lr {s['late'] / edge:.2f})", bool(0.5 <= s["late"] / edge <= 2.0)))
    return out


def claim_surface(result) -> Claim:
    """The smoothness story, read on Li et al.'s picture: with BN, a larger share of the plotted square keeps the
    loss below twice its value at the trained weights."""
    std, bn = surface_stats(result, "none"), surface_stats(result, "batch")
    return Claim("with BatchNorm the basin around the trained weights is wider (share of the square with loss "
                 "< 2x centre)", f"{bn['within2x']:.2f} vs {std['within2x']:.2f}; curvature at the centre "
                 f"{bn['curv']:.3g} vs {std['curv']:.3g}", bool(bn["within2x"] > std["within2x"]))


def claim_more_than_rescaling(result, lr=None) -> Claim:
    """BN's smoothing is more than its rescaling at initialisation. Criterion (ours): the fixed-rescaling
    network's median effective beta and median gradient change are both larger than BN's."""
    bn, rs = landscape_stats(result, "batch", lr), landscape_stats(result, "rescaled", lr)
    return Claim("BatchNorm's smoothing is more than a fixed rescaling set at initialisation",
                 f"median max beta {bn['beta']:.4g} (BN) vs {rs['beta']:.4g} (fixed rescaling); median max gradient "
                 f"change {bn['grad_change']:.4g} vs {rs['grad_change']:.4g}",
                 bool(rs["beta"] > bn["beta"] and rs["grad_change"] > bn["grad_change"]))


def claim_bjorck_lr_sweep(result) -> list:
    """Bjorck et al.'s Fig. 1 (paper-spec.md 11.2), on means over seeds. Criteria (ours): (1) without BN the largest
    rate fails (every seed diverges, or the final training accuracy stays < 0.2); (2) at the smallest rate both
    networks learn (training accuracy >= 0.2) and their test accuracies lie within 0.05; (3) BN's best test
    accuracy comes at a rate above the smallest and beats the best of the network without BN by more than 0.01."""
    std, bn = _sweep(result, "none"), _sweep(result, "batch")
    lrs = sorted(std)
    lo, hi = lrs[0], lrs[-1]
    txt = lambda t: "diverged" if t[2] else f"train {t[0]:.3f}, test {t[1]:.3f}"  # noqa: E731
    fails = std[hi][2] or not std[hi][0] >= SWEEP_FAILED_ACC
    c1 = Claim(f"without BatchNorm the largest learning rate ({hi:g}) fails", f"standard at lr {hi:g}: "
               f"{txt(std[hi])}; with BN: {txt(bn[hi])}", bool(fails))
    gap = abs(bn[lo][1] - std[lo][1])
    learned = min(bn[lo][0], std[lo][0]) >= SWEEP_FAILED_ACC
    c2 = Claim(f"at the smallest rate ({lo:g}) both networks reach about the same test accuracy",
               f"test accuracy {bn[lo][1]:.3f} with BN vs {std[lo][1]:.3f} without (gap {gap:.3f}; criterion 0.05, "
               f"and both must have learned: final training accuracy >= {SWEEP_FAILED_ACC:g})"
               + ("" if learned else "; at least one network has not learned at this rate yet"),
               bool(np.isfinite(gap) and gap <= 0.05 and learned))
    best = lambda d: max(d, key=lambda lr: -1.0 if not np.isfinite(d[lr][1]) else d[lr][1])  # noqa: E731
    b_bn, b_std = best(bn), best(std)
    c3 = Claim("with BatchNorm a larger learning rate gives the best test accuracy, better than any rate without BN",
               f"best with BN: {bn[b_bn][1]:.3f} at lr {b_bn:g}; best without: {std[b_std][1]:.3f} at lr {b_std:g} "
               f"(criterion: a margin of {SWEEP_MARGIN:g})",
               bool(b_bn > lo and bn[b_bn][1] > std[b_std][1] + SWEEP_MARGIN))
    return [c1, c2, c3]
