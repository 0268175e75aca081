"""Chapter: Bjorck et al. 2018, "Understanding Batch Normalization": the relative loss after one step as a function of
the step size (VGG and ResNet), and their learning-rate sweep on a ResNet-56 and (ours) a ResNet-20."""
from __future__ import annotations

import numpy as np

from .. import analyses, tables
from ..claims import ClaimSpec, Criterion, classify, criterion
from ..criteria import RULES, fails, step_size_onset, step_size_range, sweep_bn_best_at_larger, sweep_same_at_smallest
from ..exercises import exercise_configs, exercise_runs  # noqa: F401  (the exercises train through them)
from ..experiments import Experiment
from ..passages import losses, passage, span, sweep_seeds
from ..statistics import divergence_onset, final, step_size_stats
from ..triage import Triage
from . import Chapter, View

BJORCK = "Bjorck et al. 2018"

EXPERIMENTS = (
    # Bjorck et al. 2018: each network at its "normal" lr (BN 0.1, standard 1e-4)
    Experiment("bjorck_step_size", "Bjorck, rel. loss", "relative loss after one step vs step size, first "
               "mini-batches (Bjorck et al.), VGG", analysis=analyses.STEP_SIZE),
    # Bjorck et al. 2018, Fig. 1: a ResNet at lrs 0.0001, 0.003, 0.1 with and without BN
    Experiment("bjorck_lr_sweep", "Bjorck, Fig. 1", "ResNet with and without BatchNorm at three learning rates "
               "(Bjorck et al.)", "resnet", tuple((n, lr, False) for n in ("none", "batch") for lr in (1e-4, 3e-3, 0.1))),
    # [ours] the same sweep on a ResNet-20: is the failure without BN one of depth (exploding output) or of lr?
    Experiment("bjorck_lr_sweep_resnet20", "Bjorck, Fig. 1 (depth 20)", "the learning-rate sweep on a ResNet-20, "
               "whose output does not explode at initialisation", "resnet20",
               tuple((n, lr, lr == 0.1) for n in ("none", "batch") for lr in (1e-4, 3e-3, 0.1))),
    Experiment("bjorck_step_size_resnet", "Bjorck, rel. loss", "relative loss after one step vs step size, first "
               "mini-batches (Bjorck et al.), ResNet", analysis=analyses.STEP_SIZE_RESNET),
)


def _claims() -> list:
    """The step-size test's two claims at initialisation and over the mini-batches, on both networks; the sweep's three
    claims on both depths."""
    out = []
    for first, when, tag in ((1, "at initialisation", "init"), (None, "over the measured mini-batches", "median")):
        for exp, net in (("bjorck_step_size", "VGG"), ("bjorck_step_size_resnet", "ResNet")):
            suffix = "" if exp == "bjorck_step_size" else "_resnet"
            out += [
                ClaimSpec(f"step_size_onset_{tag}{suffix}", exp,
                          f"{net} without BN: the relative loss exceeds 10^3 once the step size passes about 1e-3 "
                          f"({when})", "smallest step size with relative loss > 10^3 (median over mini-batches)",
                          criterion("about", "about 1e-3:"), step_size_onset(first), needs_training=False, min_seeds=1,
                          source=BJORCK),
                ClaimSpec(f"step_size_range_{tag}{suffix}", exp,
                          f"{net} with BN: a step lowers the loss over a much wider range of step sizes ({when})",
                          "BN's largest loss-lowering step size over the standard network's",
                          criterion("much", "the loss-lowering range and the divergence onset both:"), step_size_range(first), needs_training=False,
                          min_seeds=1, source=BJORCK),
            ]
    sweep_arms = tuple((n, lr) for n in ("none", "batch") for lr in (1e-4, 3e-3, 0.1))
    for exp, net, suffix in (("bjorck_lr_sweep", "ResNet", ""), ("bjorck_lr_sweep_resnet20", "ResNet-20", "_resnet20")):
        out += [
            ClaimSpec(f"sweep_standard_fails_at_0.1{suffix}", exp,
                      f"{net} without BN: the largest rate (0.1) fails (Bjorck et al., Fig. 1)",
                      "final training accuracy without BN at lr 0.1 (0 if diverged)", criterion("fails"),
                      fails("none", 0.1), (("none", 0.1),), needs_training=False, source=BJORCK),
            ClaimSpec(f"sweep_same_at_smallest{suffix}", exp,
                      f"{net}: at the smallest rate (1e-4) both networks reach about the same test accuracy",
                      "test accuracy at lr 1e-4, BN minus standard", Criterion(RULES["comparable"].text() + "; not meaningful unless both "
                                "networks trained (" + RULES["trained"].text() + ")", "comparable"), sweep_same_at_smallest, sweep_arms, needs_training=False,
                      source=BJORCK),
            ClaimSpec(f"sweep_bn_best_at_larger{suffix}", exp,
                      f"{net}: with BN a larger rate gives the best test accuracy, better than any rate without BN",
                      "BN's best test accuracy minus the best without BN",
                      Criterion("BN's best at a rate above 1e-4, and " + RULES["better"].text(), "better"),
                      sweep_bn_best_at_larger, sweep_arms, needs_training=False, source=BJORCK),
        ]
    return out


CLAIMS = classify(_claims(), kinds={"extension": ("sweep_standard_fails_at_0.1_resnet20", "sweep_same_at_smallest_resnet20",
                                                  "sweep_bn_best_at_larger_resnet20")})

TRIAGE = {
    "step_size_onset_init": Triage("architecture", "", "without BN our VGG starts on a flat plateau (vanishing signal), "
                                   "not at the edge of an explosion as Bjorck et al.'s deep ResNet does"),
    "step_size_range_init": Triage("architecture", "", "without BN our VGG starts on a flat plateau (vanishing "
                                   "signal), not at the edge of an explosion"),
    "step_size_onset_median": Triage("architecture", "", "the same plateau: over the mini-batches the VGG without BN "
                                     "has no explosive regime to find"),
    "step_size_range_median": Triage("architecture", "", "the same plateau: over the mini-batches the VGG without BN "
                                     "has no explosive regime to find"),
    "step_size_onset_median_resnet": Triage("architecture", "", "the ResNet without BN explodes only until its first "
                                            "step, which knocks it onto a chance-level plateau"),
    "step_size_range_median_resnet": Triage("architecture", "", "the ResNet without BN explodes only until its first "
                                            "step, which knocks it onto a chance-level plateau"),
    "sweep_standard_fails_at_0.1_resnet20": Triage("architecture", "", "a ResNet-20's output does not explode at "
                                                   "initialisation, so without BN lr 0.1 can train, and does in some seeds"),
}


@passage
def vgg_step_size(res) -> dict:
    """The VGG's step-size test: the standard network's first loss, gradient norm, relative loss at its own lr and
    best gain; BN's range and onset; the relative distance at which the loss doubles (medians over mini-batches)."""
    std, bn = step_size_stats(res, "none"), step_size_stats(res, "batch")
    a = res.arrays
    doubling = {net: np.median(divergence_onset(a["eta"], a[f"{net}/rel_loss"], 2) * a[f"{net}/gnorm"]
                               / a[f"{net}/wnorm"]) for net in ("none", "batch")}
    return {"vgg_std_loss0": (a["none/loss"][0], ".4g"), "vgg_std_gnorm": (std["gnorm"], ".2g"),
            "vgg_gnorm_ratio": (bn["gnorm"] / std["gnorm"], ".2g"), "vgg_std_at_lr": (std["at_lr"], ".4f"),
            "vgg_std_at_lr_change": (1 - std["at_lr"], ".0e"), "vgg_std_best": (std["best"], ".2g"),
            "vgg_std_gain_pct": (100 * (1 - std["min_rel"]), ".2g"), "vgg_batches": (std["batches"], ".0f"),
            "vgg_std_not_diverging": (std["batches"] - std["diverging"], ".0f"),
            "vgg_bn_decreasing": (bn["decreasing"], ".2g"), "vgg_bn_best": (bn["best"], ".2g"),
            "vgg_bn_onset": (bn["onset"], ".3g"), "vgg_bn_onset_dist": (bn["onset_dist"], ".2g"),
            "vgg_bn_doubling": (doubling["batch"], ".2f"), "vgg_std_doubling": (doubling["none"], ".2f")}



@passage(per_seed=False)
def initial_signal(signal) -> dict:
    """How much the variance of the standard VGG's layer inputs falls from the first to the last probed layer at
    initialisation (seed 0), and the fall per layer."""
    start = signal.select(norm="none", lr=0.1, seed=0)[0].arrays
    var0, layers = start["act_var"][0].mean(-1), list(start["act_layers"])
    return {"vgg_var_drop": (var0[0] / var0[-1], ".2g"),
            "vgg_var_per_layer": ((var0[-1] / var0[0]) ** (1 / (layers[-1] - layers[0])), ".2f")}


@passage(per_seed=False)
def resnet56_sweep(res) -> dict:
    """The ResNet-56 learning-rate sweep over its seeds (:func:`sweep_seeds`), and the losses that tell its story:
    the first loss without BN, how late the diverged runs stop, the loss after one step and at the end at the
    smallest rate (both networks), the surviving standard run at lr 0.003, and the variance reaching the last
    recorded layer at step 0 (seed 0). Its numbers are per seed already (counts, ranges over the seeds, seed 0)."""
    diverged = [r.diverged_step for r in res.select(norm="none") if r.status == "diverged"]
    survivors = losses(res, "none", 0.003)
    run0 = res.select(norm="none", lr=0.1, seed=0)[0]
    return {**sweep_seeds(res, "r56"), **span("r56_loss0", losses(res, "none", 0.1, 0), ",.0f"),
            "r56_diverged_by": (max(diverged), ".0f"),
            **span("r56_std_loss1_small", losses(res, "none", 0.0001, 1), ".3g"),
            **span("r56_std_loss_small", losses(res, "none", 0.0001), ".3g"),
            **span("r56_bn_loss0_small", losses(res, "batch", 0.0001, 0), ".2g"),
            **span("r56_bn_loss_small", losses(res, "batch", 0.0001), ".2g"),
            **({"r56_std_mid_survivor_loss": (max(survivors), ".4g")} if survivors else {}),
            "r56_var_last": (run0.arrays["act_var"][0, -1].mean(), ",.0f")}


@passage
def resnet56_step_size(res) -> dict:
    """The ResNet-56's step-size test at initialisation and over the measured mini-batches."""
    init, std, bn = step_size_stats(res, "none", 1), step_size_stats(res, "none"), step_size_stats(res, "batch", 1)
    a = res.arrays
    return {"r56_onset_init": (init["onset"], ".2g"),
            "r56_rel_step001": (a["none/rel_loss"][0][np.isclose(a["eta"], 1e-2)].item(), ".1e"),
            "r56_bn_onset_init": (bn["onset"], ".3g"), "r56_gain_init": (1 / init["min_rel"], ".3g"),
            "r56_move_pct": (100 * init["lr"] * init["gnorm"] / a["none/wnorm"][0], ".2g"),
            "r56_std_gnorm": (std["gnorm"], ".2g"), "r56_batches": (std["batches"], ".0f"),
            "r56_std_change_pct": (100 * (1 - std["min_rel"]), ".2g"),
            "r56_std_decreasing": (std["decreasing"], ".2g"), "r56_std_onset": (std["onset"], ".2g")}


@passage(per_seed=False)
def resnet20_sweep(res) -> dict:
    """The ResNet-20 sweep over its seeds (:func:`sweep_seeds`): the initial signal (seed 0), the final test
    accuracy of each standard seed at lr 0.1, and the test accuracies at the first evaluation at lr 0.1. Its numbers
    are per seed already (counts, ranges over the seeds, seed 0)."""
    var0 = res.select(norm="none", lr=0.1, seed=0)[0].arrays["act_var"][0].mean(-1)
    high = {n: res.select(norm=n, lr=0.1) for n in ("none", "batch")}
    first = {n: [r.arrays["test_acc"][0] for r in runs] for n, runs in high.items()}
    return {**sweep_seeds(res, "r20"), "r20_var_low": (var0.min(), ".2f"), "r20_var_high": (var0.max(), ".2f"),
            "r20_std_test": (", ".join(f"{final(r, 'test_acc'):.2f}" for r in high["none"]), ""),
            "r20_first_eval": (high["batch"][0].arrays["eval_step"][0], ".0f"),
            **span("r20_bn_first", first["batch"], ".2f"), **span("r20_std_first", first["none"], ".2f")}


@passage
def resnet56_depth_profile(res) -> dict:
    """The scale of the ResNet-56's block outputs at initialisation (first conv, 3n blocks, logits) with and
    without BN, the first loss and gradient norm."""
    rms, rms_bn = res.arrays["none/block_rms"], res.arrays["batch/block_rms"]
    n = (len(rms) - 2) // 3
    return {"rms_first": (rms[0], ".2f"), "rms_last_block": (rms[-2], ".3g"), "rms_logits": (rms[-1], ".3g"),
            "rms_stage1_blocks": (n, ".0f"), "rms_stage1_low": (rms[1:n + 1].min(), ".2f"),
            "rms_stage1_high": (rms[1:n + 1].max(), ".2f"), "rms_growth": (rms[-2] / rms[n], ",.0f"),
            "rms_growth_blocks": (2 * n, ".0f"), "rms_bn_low": (rms_bn[:-1].min(), ".2g"),
            "rms_bn_high": (rms_bn[:-1].max(), ".2g"), "r56_loss0_init": (res.arrays["none/loss"][0], ".3g"),
            "r56_gnorm_init": (step_size_stats(res, "none", 1)["gnorm"], ",.0f")}



CHAPTER = Chapter(
    "bjorck",
    experiments=EXPERIMENTS,
    computes=("bjorck_step_size", "bn_vs_standard", "bjorck_lr_sweep", "bjorck_step_size_resnet",
              "bjorck_lr_sweep_resnet20"),
    claims=CLAIMS,
    views={"bjorck_step_size": View((tables.step_size_table,), (vgg_step_size,)),
           "signal": View((tables.initial_signal_table,), (initial_signal,), claims=False),
           "bjorck_lr_sweep": View((tables.training_table,), (resnet56_sweep,)),
           "depth_profile": View((tables.depth_profile_table,), (resnet56_depth_profile,), claims=False),
           "bjorck_step_size_resnet": View((tables.step_size_table,), (resnet56_step_size,)),
           "bjorck_lr_sweep_resnet20": View((tables.initial_signal_table, tables.training_table), (resnet20_sweep,))},
    triage=TRIAGE,
    step=("bjorck", "It allows larger steps (Bjorck et al.)"),
)

show = CHAPTER.show
