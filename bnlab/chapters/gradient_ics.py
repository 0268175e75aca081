"""Chapter: internal covariate shift measured by gradients (Santurkar et al. 2018, Fig. 3): how much a layer's gradient
changes when the layers before it are updated, in the VGG and in the deep linear network (read with a summed and an
averaged loss)."""
from __future__ import annotations

import numpy as np

from .. import tables
from ..claims import ClaimSpec, bn_pair, classify, common_seeds, criterion, ics_contrast
from ..criteria import RULES, dln_ics_contrast, ics_similar_or_larger
from ..experiments import Experiment
from ..passages import mean_final, passage, span
from ..statistics import ics_stats
from ..triage import Triage
from . import Chapter, View

EXPERIMENTS = (
    Experiment("ics_vgg", "Fig. 3a", "gradient-based ICS of the VGG", "vgg",
               (("none", 0.1, True), ("batch", 0.1, True), ("none", 0.01, False), ("batch", 0.01, False))),
    # [ours] The paper does not say whether the DLN's loss is summed or averaged over its 1000 samples. A sum
    # scales the gradient by 1000, so lr 1e-6 on the sum is lr 1e-3 on our mean loss. The summed reading is the main
    # one (it gives the paper's Fig. 10 magnitudes): lrs 1e-3 and 1e-4 on the mean are the paper's 1e-6 and 1e-7.
    Experiment("dln_summed_loss", "Fig. 3b, 9, 10, 11b",
               "the DLN at the step sizes a summed loss implies: ICS, layer inputs and landscape", "dln",
               (("none", 1e-3, True), ("batch", 1e-3, True), ("none", 1e-4, False), ("batch", 1e-4, False))),
    # the averaged-loss reading (lr 1e-6 on the mean), a side note: the network barely moves in 10,000 steps
    Experiment("ics_dln", "Fig. 3b (averaged-loss reading)", "gradient-based ICS of the DLN, averaged loss", "dln",
               (("none", 1e-6, True), ("batch", 1e-6, True))),
)

CLAIMS = classify([
    *[ClaimSpec(f"ics_not_reduced_vgg_lr{lr:g}", "ics_vgg",
                f"BN does not reduce gradient-based ICS of the VGG at lr {lr:g}: similar or larger (Fig. 3a)",
                "smallest over layers #5, #10 of BN's median ||G-G'|| over the standard network's",
                criterion("clearly", "BN's at least 1/2 of the standard network's at every measured layer: not smaller by"),
                ics_similar_or_larger(lr), bn_pair(lr))
      for lr in (0.1, 0.01)],
    ClaimSpec("ics_dln_contrast_summed", "dln_summed_loss",
              "DLN (summed loss, the main reading): the standard network has almost no ICS, with BN G and G' "
              "look almost uncorrelated (Fig. 3b)", "largest over layers #9, #17 of BN's median cos(G, G')",
              ics_contrast(),
              dln_ics_contrast(1e-3), bn_pair(1e-3), min_seeds=5),
    ClaimSpec("ics_dln_contrast_averaged", "ics_dln",
              "the same, read with an averaged loss at the paper's lr 1e-6 (side reading)",
              "largest over layers #9, #17 of BN's median cos(G, G')",
              ics_contrast(),
              dln_ics_contrast(1e-6), bn_pair(1e-6), min_seeds=5),
], kinds={"extension": ("ics_dln_contrast_averaged",)})

TRIAGE = {
    "ics_dln_contrast_summed": Triage("paper size", "", "the DLN runs at the paper's size; with BN, G and G' are "
                                      "aligned at one layer and opposed at the other, and the standard network's "
                                      "steps overshoot too"),
    "ics_dln_contrast_averaged": Triage("paper size", "loss reading", "with steps this small BN's G' hardly turns in "
                                        "most seeds; where it does, it points against G: opposed, not uncorrelated"),
}


@passage
def vgg_ics(res, lrs=(0.1, 0.01)) -> dict:
    """Median ||G - G'||, its ratio to ||G|| and cos(G, G') per network, lr and layer."""
    out = {}
    for n in ("none", "batch"):
        for lr in lrs:
            s = ics_stats(res, n, lr)
            for i, layer in enumerate(s["layers"]):
                for key, spec in (("l2", ".3g"), ("rel", ".2f"), ("cos", ".3f")):
                    out[f"vgg_{key}_{n}_lr{lr:g}_l{layer}"] = (s[key][i], spec)
    return out


# ---- chapter 4: gradient ICS of the deep linear network ----------------------------------------------------------
@passage
def dln_averaged_ics(dln) -> dict:
    """The averaged-loss reading (lr 1e-6): BN's ICS over the standard network's, pooled and per seed; the smallest
    median cosines; the final losses."""
    lrs = (1e-6,)
    avg = {(n, lr): ics_stats(dln, n, lr) for n in ("none", "batch") for lr in lrs}
    pooled = np.concatenate([avg["batch", lr]["l2"] / avg["none", lr]["l2"] for lr in lrs])
    per_seed = [(ics_stats(dln, "batch", 1e-6, s), ics_stats(dln, "none", 1e-6, s))
                for s in common_seeds(dln, (("none", 1e-6), ("batch", 1e-6)))]
    ratios = np.concatenate([bn["l2"] / std["l2"] for bn, std in per_seed])
    out = {"avg_ratio_low": (pooled.min(), ".2g"), "avg_ratio_high": (pooled.max(), ".2g"),
           "avg_seed_ratio_low": (ratios.min(), ".2g"), "avg_seed_ratio_high": (ratios.max(), ".3g"),
           "avg_cos_none_min": (min(avg["none", lr]["cos"].min() for lr in lrs), ".3f"),
           "avg_cos_batch_min": (min(avg["batch", lr]["cos"].min() for lr in lrs), ".3f"),
           "avg_seed_cos_batch_min": (min(bn["cos"].min() for bn, _ in per_seed), ".2f")}
    for n, lr in avg:
        out[f"avg_loss_{n}_lr{lr:g}"] = (mean_final(dln, n, lr, "train_loss"), ".3g")
    return out


@passage
def dln_summed_ics(summed) -> dict:
    """The summed-loss reading (lrs 1e-3, 1e-4 on the mean): ICS ratios per seed and per layer, cosines, relative
    ICS, final losses and their ratio."""
    ics = {(n, lr): ics_stats(summed, n, lr) for n in ("none", "batch") for lr in (1e-3, 1e-4)}
    seeds = common_seeds(summed, (("none", 1e-3), ("batch", 1e-3)))
    ratios = np.concatenate([ics_stats(summed, "batch", 1e-3, s)["l2"] / ics_stats(summed, "none", 1e-3, s)["l2"]
                             for s in seeds])
    loss_ratios = [mean_final(summed, "none", 1e-3, "train_loss", s) / mean_final(summed, "batch", 1e-3, "train_loss", s)
                   for s in seeds]
    out = {"sum_ratio_low": (ratios.min(), ".2f"), "sum_ratio_high": (ratios.max(), ".3g"),
           "sum_loss_ratio": (mean_final(summed, "none", 1e-3, "train_loss") /
                              mean_final(summed, "batch", 1e-3, "train_loss"), ".2f"),
           "sum_loss_ratio_low": (min(loss_ratios), ".2f"), "sum_loss_ratio_high": (max(loss_ratios), ".2f")}
    for (n, lr), s in ics.items():
        out[f"sum_loss_{n}_lr{lr:g}"] = (mean_final(summed, n, lr, "train_loss"), ".3g")
        for i, layer in enumerate(s["layers"]):
            out[f"sum_cos_{n}_lr{lr:g}_l{layer}"] = (s["cos"][i], ".2f")
            out[f"sum_rel_{n}_lr{lr:g}_l{layer}"] = (s["rel"][i], ".2f")
            if n == "batch":
                out[f"sum_ratio_lr{lr:g}_l{layer}"] = (s["l2"][i] / ics["none", lr]["l2"][i], ".0f")
    return out


def _ics_per_seed(result, lr) -> list:
    """(standard, BN) ``ics_stats`` of each seed both networks have at ``lr``."""
    return [(ics_stats(result, "none", lr, s), ics_stats(result, "batch", lr, s))
            for s in common_seeds(result, (("none", lr), ("batch", lr)))]


def _final_loss_ratios(result, lr) -> list:
    """Per seed, the standard network's final training loss over BN's."""
    return [mean_final(result, "none", lr, "train_loss", s) / mean_final(result, "batch", lr, "train_loss", s)
            for s in common_seeds(result, (("none", lr), ("batch", lr)))]


@passage(per_seed=False)
def dln_summed_ics_seeds(summed, lrs=(1e-3, 1e-4)) -> dict:
    """The summed-loss reading seed by seed, per lr: the range over seeds and layers of BN's median ||G - G'|| over
    the standard network's and in how many seeds BN's is the larger at every layer; the range of the standard
    network's final loss over BN's; at the last layer, in how many seeds the standard network's median cosine is
    negative and its ||G - G'|| exceeds ||G||, and BN's is "uncorrelated"; the standard network's largest median
    ||G - G'|| / ||G||."""
    out = {}
    for lr in lrs:
        stats, tag = _ics_per_seed(summed, lr), f"lr{lr:g}"
        ratios = [bn["l2"] / std["l2"] for std, bn in stats]
        out |= {"sum_seeds": (str(len(stats)), ""), **span(f"sum_ratio_{tag}", np.concatenate(ratios), ".3g"),
                f"sum_n_bn_larger_{tag}": (str(sum(bool(np.all(r > 1)) for r in ratios)), ""),
                **span(f"sum_loss_ratio_{tag}", _final_loss_ratios(summed, lr), ".2f"),
                f"sum_n_none_cos_negative_{tag}": (str(sum(bool(std["cos"][-1] < 0) for std, _ in stats)), ""),
                f"sum_n_none_ics_above_g_{tag}": (str(sum(bool(std["rel"][-1] > 1) for std, _ in stats)), ""),
                f"sum_n_batch_uncorrelated_{tag}": (str(sum(bool(abs(bn["cos"][-1]) < RULES["uncorrelated"].threshold)
                                                            for _, bn in stats)), ""),
                f"sum_rel_none_{tag}_max": (max(float(std["rel"].max()) for std, _ in stats), ".2f")}
    return out


@passage(per_seed=False)
def dln_averaged_ics_seeds(dln, lr=1e-6) -> dict:
    """The averaged-loss reading seed by seed: in how many seeds BN's median ||G - G'|| is the larger at every layer,
    BN's median cosine is "aligned" at every layer, or opposed (below minus the "uncorrelated" bound) at some layer;
    the range of the standard network's final loss over BN's, and in how many seeds it is "lower" with BN."""
    stats, loss = _ics_per_seed(dln, lr), _final_loss_ratios(dln, lr)
    return {"avg_seeds": (str(len(stats)), ""),
            "avg_n_bn_larger": (str(sum(bool(np.all(bn["l2"] > std["l2"])) for std, bn in stats)), ""),
            "avg_n_bn_aligned": (str(sum(bool(np.all(bn["cos"] > RULES["aligned"].threshold)) for _, bn in stats)), ""),
            "avg_n_bn_opposed": (str(sum(bool(np.any(bn["cos"] < -RULES["uncorrelated"].threshold))
                                         for _, bn in stats)), ""),
            **span("avg_loss_ratio", loss, ".2f"),
            "avg_n_lower": (str(sum(r > RULES["lower"].threshold for r in loss)), "")}



CHAPTER = Chapter(
    "gradient_ics",
    experiments=EXPERIMENTS,
    computes=("ics_vgg", "dln_summed_loss", "ics_dln"),
    claims=CLAIMS,
    views={"ics_vgg": View((tables.ics_table,), (vgg_ics,)),
           "dln_summed_loss": View((tables.training_table, tables.ics_table), (dln_summed_ics, dln_summed_ics_seeds)),
           "ics_dln": View((tables.training_table, tables.ics_table), (dln_averaged_ics, dln_averaged_ics_seeds))},
    triage=TRIAGE,
    step=("ics", "It does not reduce internal covariate shift, measured by gradients"),
)

show = CHAPTER.show
