"""Chapter: BatchNorm against the standard network (Santurkar et al. 2018, Fig. 1): training and test accuracy at three
learning rates, and how much the layers' input distributions move with and without BN."""
from __future__ import annotations

from functools import partial

import numpy as np

from .. import tables
from ..claims import ClaimSpec, bn_pair, classify, criterion
from ..criteria import RULES, better
from ..experiments import Experiment
from ..passages import by_seed, passage
from ..statistics import final, moment_stats
from . import Chapter, View

EXPERIMENTS = (
    Experiment("bn_vs_standard", "Fig. 1", "VGG with and without BatchNorm at three learning rates", "vgg",
               (("none", 0.1, True), ("batch", 0.1, True), ("none", 0.5, False), ("batch", 0.5, False),
                ("none", 0.01, False), ("batch", 0.01, False))),
)

CLAIMS = classify([
    *[ClaimSpec(f"bn_trains_faster_lr{lr:g}", "bn_vs_standard",
                f"BN trains faster than the standard VGG at lr {lr:g} (Fig. 1a)",
                "final training accuracy, BN minus standard", criterion("better", "BN"),
                better("batch", "none", lr), bn_pair(lr), needs_training=False)
      for lr in (0.1, 0.5)],
    ClaimSpec("bn_generalises_better_lr0.1", "bn_vs_standard",
              "BN reaches a higher test accuracy at lr 0.1 (Fig. 1b; 83% vs 80% at 15k steps, no augmentation)",
              "final test accuracy, BN minus standard", criterion("better", "BN"),
              better("batch", "none", 0.1, "test_acc"), bn_pair(0.1)),
])


@passage
def final_accuracies(res) -> dict:
    """Mean final training and test accuracy of each network at each learning rate."""
    return {f"{key}_{n}_lr{lr:g}": (np.mean([final(r, key) for r in res.select(norm=n, lr=lr)]), ".3f")
            for n in ("none", "batch") for lr in (0.1, 0.5, 0.01) for key in ("train_acc", "test_acc")}


@passage
def moment_ratios(res, layers=(3, 11), lr=0.1) -> dict:
    """How many times more the standard network's moments move than BN's, per layer (range over the four moment
    statistics), and layer 11's variance drift for both."""
    moments = {(layer, n): moment_stats(res, layer, n, lr=lr) for layer in layers for n in ("none", "batch")}
    out = {}
    for layer in layers:
        ratios = [moments[layer, "none"][k] / moments[layer, "batch"][k]
                  for k in ("d_mean", "d_var", "drift_mean", "drift_var")]
        out |= {f"moment_ratio_low_l{layer}": (min(ratios), ".0f"), f"moment_ratio_high_l{layer}": (max(ratios), ".0f")}
        rel = [moments[layer, "none"][k] / moments[layer, "batch"][k] for k in ("rel_d_mean", "rel_d_std")]
        out |= {f"rel_moment_ratio_low_l{layer}": (min(rel), ".3g"), f"rel_moment_ratio_high_l{layer}": (max(rel), ".3g")}
    last = layers[-1]
    return out | {f"var_drift_none_l{last}": (moments[last, "none"]["drift_var"], ".3g"),
                  f"var_drift_batch_l{last}": (moments[last, "batch"]["drift_var"], ".3g")}



@passage(per_seed=False)
def moment_ratio_seeds(res, layers=(3, 11), lr=0.1) -> dict:
    """:func:`moment_ratios` seed by seed: per layer, the lowest and highest ratio over the four absolute measures
    and over the seeds (``moment_ratio_seed_low_l{layer}`` / ``_high_``), the same for the two relative measures,
    and the number of seeds in which some absolute measure moves less than the "clearly" factor times BN's (the
    per-seed ranges of the pooled numbers themselves are glued by ``glue.glue_all``)."""
    pooled, seeds = moment_ratios(res, layers, lr), sorted({r.seed for r in res.select(lr=lr)})
    out = {"moment_seeds": (str(len(seeds)), "")}
    for layer in layers:
        for rel in ("", "rel_"):
            out |= {f"{rel}moment_ratio_seed_low_l{layer}": (min(by_seed(pooled, f"{rel}moment_ratio_low_l{layer}")),
                                                            ".3g"),
                    f"{rel}moment_ratio_seed_high_l{layer}": (max(by_seed(pooled, f"{rel}moment_ratio_high_l{layer}")),
                                                             ".3g")}
        close = sum(v < RULES["clearly"].threshold for v in by_seed(pooled, f"moment_ratio_low_l{layer}"))
        out[f"moment_ratio_n_close_l{layer}"] = (str(close), "")
    return out


CHAPTER = Chapter(
    "bn_vs_standard",
    experiments=EXPERIMENTS,
    computes=("bn_vs_standard",),
    claims=CLAIMS,
    views={"bn_vs_standard": View((tables.training_table,), (final_accuracies,)),
           "moments": View((partial(tables.moments_table, layers=(3, 11), norms=("none", "batch"), lr=0.1),),
                           (moment_ratios, moment_ratio_seeds), claims=False)},
    step=("premise", "BatchNorm helps training"),
)

show = CHAPTER.show
