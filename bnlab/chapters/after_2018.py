"""Chapter: what later work found about why BatchNorm helps, measured on our networks, in one arc: the forward pass at
initialisation (rank collapse, Daneshmand et al. 2020, 2021), the backward pass (gradient explosion, Yang et al.
2019), residual networks (the downscaled branch and SkipInit, De & Smith 2020), training (scale invariance: van
Laarhoven 2017, Hoffer et al. 2018, Arora, Li & Lyu 2019, Wan et al. 2021) and inference (population statistics, Wu &
Johnson 2021).

Every criterion here was registered (committed) before the runs that judge it; the thresholds are the book's one
per wording (``bnlab.criteria.RULES``).
"""
from __future__ import annotations

import numpy as np

from .. import explosion, scale_invariance, signal_propagation
from ..claims import ClaimSpec, Criterion, classify, criterion
from ..criteria import RULES
from ..experiments import Experiment
from ..statistics import final
from . import Chapter

DANESHMAND, YANG, DE_SMITH = "Daneshmand et al. 2020", "Yang et al. 2019", "De & Smith 2020"
ARORA, VAN_LAARHOVEN, WAN, WU = "Arora, Li & Lyu 2019", "van Laarhoven 2017", "Wan et al. 2021", "Wu & Johnson 2021"
THEORY_RATE = np.pi / (np.pi - 1)     # Yang et al.'s large-batch ReLU limit: the squared gradient grows by this per layer

EXPERIMENTS = (
    Experiment("rank_collapse", "Daneshmand et al.", "stable rank and alignment of a batch's representations at "
               "initialisation, per block, with and without normalisation", analysis=signal_propagation.RANK_COLLAPSE),
    Experiment("gradient_explosion", "Yang et al.", "BN's gradient explosion at initialisation in a deep MLP, and "
               "after a few steps", analysis=explosion.GRADIENT_EXPLOSION),
    Experiment("bn_mlp_trainability", "Yang et al., Fig. 3a", "plain BN MLPs of growing depth trained briefly",
               analysis=explosion.TRAINABILITY),
    Experiment("residual_scaling", "De & Smith", "the residual branch against the skip connection at initialisation, "
               "ResNet with and without BN", analysis=signal_propagation.RESIDUAL_SCALING),
    # SkipInit against BN at lr 0.1: ordinary ResNet runs (the BN arm is the run of Bjorck et al.'s sweep)
    Experiment("skipinit_resnet", "De & Smith", "the ResNet without normalisation, a zero-initialised scalar on each "
               "residual branch (SkipInit), beside BN", "resnet", (("skipinit", 0.1, True), ("batch", 0.1, True))),
    Experiment("scale_invariance", "Arora et al.; Wan et al.; Wu & Johnson", "BN's scale invariance in training "
               "(norms, angles, effective rates) and its population statistics at inference, VGG",
               analysis=scale_invariance.SCALE_INVARIANCE),
)


def _i(result, seed) -> int:
    return [int(s) for s in np.atleast_1d(result.arrays["seeds"])].index(seed)


def _within(value: float, target: float, rule: str) -> bool:
    t = RULES[rule].threshold
    return bool(target / t <= value <= target * t)


# ---- 1. rank collapse ------------------------------------------------------------------------------------------------
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


# ---- 2. gradient explosion -------------------------------------------------------------------------------------------
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


# ---- 3. residual branches and SkipInit -------------------------------------------------------------------------------
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
    return gap, bool(gap >= -RULES["comparable"].threshold)


# ---- 4. scale invariance ---------------------------------------------------------------------------------------------
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


# ---- 5. population statistics ----------------------------------------------------------------------------------------
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


# Every claim below was committed in fdf0816, before any run that judges it (git log shows the order)
REGISTERED = dict.fromkeys(("rank_kept_with_bn_vgg", "rank_kept_with_bn_resnet", "rank_kept_with_bn_dln",
                            "standard_collapses_vgg", "standard_collapses_resnet", "standard_collapses_dln",
                            "bn_gradient_explodes", "no_explosion_without_bn", "explosion_fades_after_one_step",
                            "deep_plain_bn_untrainable", "bn_downscales_residual_branch",
                            "standard_branch_not_downscaled", "skipinit_trains_without_bn", "skipinit_comparable_to_bn",
                            "weights_orthogonal_to_gradient", "norm_grows_by_pythagoras", "rate_tunes_itself",
                            "angle_settles_wd0.02", "angle_settles_wd0.08", "precise_bn_beats_ema",
                            "ema_gap_grows_with_lr", "batch_stats_match_population"), "fdf0816")
NETS = (("vgg", "VGG"), ("resnet", "ResNet-56"), ("dln", "deep linear network"))
_c = criterion

CLAIMS = classify([
    *[ClaimSpec(f"rank_kept_with_bn_{n}", "rank_collapse",
                f"{label}: BN keeps a batch's representations apart at initialisation: it avoids rank collapse",
                "stable rank of the centred last hidden block output, BN's over the standard network's",
                _c("clearly", "BN's larger by"), rank_kept_with_bn(n), min_seeds=5, needs_training=False,
                source=DANESHMAND) for n, label in NETS],
    *[ClaimSpec(f"standard_collapses_{n}", "rank_collapse",
                f"{label}: without normalisation the representations collapse towards one direction with depth",
                "mean |cos| between the examples' last hidden representations, standard network",
                _c("aligned"), standard_collapses(n), min_seeds=5, needs_training=False, source=DANESHMAND)
      for n, label in NETS],
    ClaimSpec("bn_gradient_explodes", "gradient_explosion",
              "at initialisation BN makes gradients explode with depth: the squared gradient grows by pi/(pi-1) = "
              "1.467 per layer towards the input", "fitted rate of ||dL/dh_l||^2 per layer, BN MLP (32 x 256)",
              _c("nearly", "measured over theory rate:"), rate_near("batch", THEORY_RATE), min_seeds=5,
              needs_training=False, source=YANG, effect_format=".3f"),
    ClaimSpec("no_explosion_without_bn", "gradient_explosion",
              "without BN (He initialisation) the same MLP's gradients neither explode nor vanish",
              "the same rate, standard MLP", _c("nearly", "rate over 1:"), rate_near("none", 1.0), min_seeds=5,
              needs_training=False, source=YANG, effect_format=".3f"),
    ClaimSpec("explosion_fades_after_one_step", "gradient_explosion",
              "after a single step of optimisation the gradients have a dramatically smaller dynamic range",
              "D_0 / D_1, D_t = log10 of the squared gradient at layer 2 over layer L-2 after t steps, BN MLP at lr 0.1",
              _c("clearly", "smaller after one step by"), explosion_fades(0.1), min_seeds=5, needs_training=False,
              source=YANG),
    ClaimSpec("deep_plain_bn_untrainable", "bn_mlp_trainability",
              "BN networks without skip connections are not trainable at large depth (deeper than about 50 layers)",
              "best final training accuracy over depths 64 and 128 and lrs 0.1 and 0.01",
              Criterion(RULES["fails"].text() + "; not meaningful unless depth 16 at lr 0.1 trains (" +
                        RULES["trained"].text() + ")", "fails"), deep_plain_bn_fails, needs_training=False,
              source=YANG),
    ClaimSpec("bn_downscales_residual_branch", "residual_scaling",
              "at initialisation BN downscales the residual branch relative to the skip connection, by a factor on "
              "the order of the square root of depth", "exponent p of rms(branch)/rms(skip) ~ k^-p over the first "
              "stage's blocks k, BN ResNet-56", _c("order", "p against 1/2:"), branch_downscaled, min_seeds=5,
              needs_training=False, source=DE_SMITH, effect_format=".2f"),
    ClaimSpec("standard_branch_not_downscaled", "residual_scaling",
              "without BN the residual branch is not downscaled", "median rms(branch)/rms(skip) over every block, "
              "standard ResNet-56", Criterion("at least 1/" + format(RULES["clearly"].threshold, "g") + ": not smaller "
                                              "by " + RULES["clearly"].text(), "clearly"),
              branch_not_downscaled, min_seeds=5, needs_training=False, source=DE_SMITH, effect_format=".2f"),
    ClaimSpec("skipinit_trains_without_bn", "skipinit_resnet",
              "SkipInit (a learnable scalar at 0 on each residual branch) trains the deep ResNet without normalisation",
              "final training accuracy of the SkipInit ResNet-56 at lr 0.1 (0 if diverged)", _c("trained"),
              skipinit_trains, (("skipinit", 0.1),), needs_training=False, source=DE_SMITH, effect_format=".2f"),
    ClaimSpec("skipinit_comparable_to_bn", "skipinit_resnet",
              "SkipInit is competitive with BN at a small batch size", "final test accuracy, SkipInit minus BN",
              Criterion("BN not ahead by more than " + format(RULES["comparable"].threshold, "g") + " (the comparable "
                        "tolerance)", "comparable"), skipinit_comparable, (("skipinit", 0.1), ("batch", 0.1)),
              needs_training=False, source=DE_SMITH),
    ClaimSpec("weights_orthogonal_to_gradient", "scale_invariance",
              "a conv filter followed by BN is scale invariant, so its gradient is orthogonal to it",
              "largest per-filter |cos(w, g)| over layers, steps and arms", _c("orthogonal"), orthogonal,
              needs_training=False, source=ARORA, effect_format=".1e"),
    ClaimSpec("norm_grows_by_pythagoras", "scale_invariance",
              "under plain SGD a scale-invariant weight's norm moves by Pythagoras: ||W'||^2 = (1 - eta lambda)^2 "
              "||W||^2 + eta^2 ||g||^2", "largest over arms of the median |measured / predicted - 1|",
              _c("fp32 identity"), pythagoras, needs_training=False, source=VAN_LAARHOVEN, effect_format=".1e"),
    ClaimSpec("rate_tunes_itself", "scale_invariance",
              "the learning rate of scale-invariant weights tunes itself: at 100 times the rate the network still "
              "trains, and its effective rate eta/||W||^2 ends near the small rate's",
              "final effective rate (median over conv layers), lr x100 over lr x1",
              Criterion(RULES["near"].text() + ", and the network trains (" + RULES["trained"].text() + ")", "near"),
              rate_tunes_itself, needs_training=False, source=ARORA, effect_format=".2f"),
    *[ClaimSpec(f"angle_settles_{arm}", "scale_invariance",
                f"with weight decay {arm[2:]} the angle a step turns the weights settles at the equilibrium Delta* = "
                "atan(sqrt(2 eta lambda - (eta lambda)^2) / (1 - eta lambda))",
                "mean angle per step over the last 40% of the steps (median over conv layers) over Delta*",
                _c("nearly"), angle_settles(arm), needs_training=False, source=WAN, effect_format=".2f")
      for arm in ("wd0.02", "wd0.08")],
    ClaimSpec("precise_bn_beats_ema", "scale_invariance",
              "running averages lag a fast-moving network: statistics recomputed with frozen weights (PreciseBN) "
              "test better, at lr 0.5", "mean over evaluations of test accuracy, PreciseBN minus running averages",
              _c("better", "PreciseBN"), precise_beats_ema, needs_training=False, source=WU),
    ClaimSpec("ema_gap_grows_with_lr", "scale_invariance",
              "the running averages' lag costs more when the weights move faster (ours)",
              "PreciseBN's mean gain at lr 0.5 minus at lr 0.1", _c("better", "larger at lr 0.5:"), ema_gap_grows,
              needs_training=False, source=WU),
    ClaimSpec("batch_stats_match_population", "scale_invariance",
              "with batches of 128, normalising each test batch by its own statistics matches population statistics",
              "larger over lr 0.1 and 0.5 of |mean test accuracy, batch statistics minus PreciseBN|",
              _c("comparable"), batch_stats_match, needs_training=False, source=WU),
], kinds={"extension": ("ema_gap_grows_with_lr",),
          "identity": ("weights_orthogonal_to_gradient", "norm_grows_by_pythagoras")},
   registered_in=REGISTERED)

CHAPTER = Chapter(
    "after_2018",
    experiments=EXPERIMENTS,
    computes=("rank_collapse", "gradient_explosion", "bn_mlp_trainability", "residual_scaling", "skipinit_resnet",
              "scale_invariance"),
    claims=CLAIMS,
    step=("after", "What later work found, on our networks"),
)

show = CHAPTER.show
