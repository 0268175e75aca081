"""Chapter: the smoothness story tested further (ours): the top Hessian eigenvalue during training (and the edge of
stability, Cohen et al. 2021), Li et al.'s 2-D loss surfaces, and LayerNorm, GroupNorm and a fixed rescaling as
controls for what in BN smooths."""
from __future__ import annotations

import numpy as np

from .. import analyses, tables
from ..claims import ClaimSpec, classify, common_seeds, criterion, get as get_claim, judge
from ..criteria import better, edge_of_stability, more_than_rescaling, sharpness_smaller, wider_basin
from ..experiments import Experiment
from ..norms import NORM_LABELS
from ..passages import mean_final, over_seeds, passage, span
from ..statistics import analysis_seeds, final, landscape_stats, net_prefix, sharpness_stats, surface_stats
from ..triage import Triage
from . import Chapter, View

EXPERIMENTS = (
    Experiment("sharpness", "beyond", "top Hessian eigenvalue during training, next to effective beta and 2/lr",
               analysis=analyses.SHARPNESS),
    Experiment("loss_surface", "Li et al. 2-D", "2-D loss surface around a trained VGG, filter-normalised "
               "directions (Li et al.)", analysis=analyses.SURFACE),
    Experiment("confounders", "beyond", "LayerNorm, GroupNorm and a fixed rescaling beside BatchNorm, VGG", "vgg",
               tuple((n, 0.1, n in ("none", "batch")) for n in ("none", "batch", "layer", "group", "rescaled"))),
)

CLAIMS = classify([
    ClaimSpec("sharpness_smaller_with_bn", "sharpness",
              "the smoothness story predicts a smaller top Hessian eigenvalue with BN (ours, from Sec. 3)",
              "standard network's median lambda_max over BN's", criterion("lower"), sharpness_smaller,
              needs_training=False, source="ours"),
    *[ClaimSpec(f"edge_of_stability_{net}", "sharpness",
                f"{NORM_LABELS[net]}: lambda_max settles near 2/lr (edge of stability, Cohen et al. 2021)",
                "median lambda_max over the second half, over 2/lr", criterion("near"), edge_of_stability(net),
                needs_training=False, effect_format=".2f", source="Cohen et al. 2021")
      for net in ("none", "batch")],
    ClaimSpec("wider_basin_with_bn", "loss_surface",
              "with BN the basin around the trained weights is wider (Li et al.'s 2-D picture; ours)",
              "share of the square with loss < 2x centre, BN minus standard", criterion("better"), wider_basin,
              needs_training=False, effect_format=".2f", source="ours"),
    *[ClaimSpec(f"{n}_beats_standard", "confounders",
                f"{NORM_LABELS[n]} trains better than the standard network (ours)",
                f"final training accuracy, {n} minus standard", criterion("better"),
                better(n, "none", 0.1), ((n, 0.1), ("none", 0.1)), needs_training=False, source="ours")
      for n in ("layer", "group", "rescaled")],
    ClaimSpec("more_than_rescaling", "confounders",
              "BN's smoothing is more than the rescaling it sets at initialisation (ours)",
              "fixed-rescaling network's median max beta over BN's",
              criterion("clearly", "beta and gradient change both larger than BN's by"), more_than_rescaling(0.1),
              (("rescaled", 0.1), ("batch", 0.1)), source="ours"),
], kinds={"extension": ("sharpness_smaller_with_bn", "wider_basin_with_bn", "layer_beats_standard", "group_beats_standard",
                        "rescaled_beats_standard", "more_than_rescaling")})

TRIAGE = {
    "sharpness_smaller_with_bn": Triage("design", "our extension", "both networks train at the edge of stability, "
                                        "where the learning rate sets the top eigenvalue, not the network"),
    "wider_basin_with_bn": Triage("design", "our extension", "Li et al.'s filter-normalised directions after 500 "
                                  "steps on 512 images; BN's basin is the narrower one in every seed"),
    "more_than_rescaling": Triage("design", "the factor of two", "the rescaled network's beta and gradient change are "
                                  "larger than BN's in every seed, but by less than the factor the smoothness claims ask"),
}


@passage
def sharpness_passage(res) -> dict:
    """lambda_max of the standard network on and off its initial plateau (the first measurement with lambda_max
    >= 1 ends it), BN's, how effective beta compares with |Hg|/|g| before and after, and in how many seeds BN's
    lambda_max is the lower one by the claim's criterion."""
    a = res.arrays
    lower = judge(get_claim("sharpness_smaller_with_bn"), res).holds
    std, bn = sharpness_stats(res, "none"), sharpness_stats(res, "batch")
    lam, lam_bn, at = a["none/sharp_max"], a["batch/sharp_max"], a["none/sharp_step"]
    left = int(np.argmax(lam >= 1))
    ratio = {net: np.nanmax(a[f"{net}/land_beta"], axis=1) / a[f"{net}/sharp_hg_ratio"] for net in ("none", "batch")}
    return {"sh_std_plateau_end": (at[left - 1], ".0f"), "sh_std_plateau_max": (lam[:left].max(), ".2f"),
            "sh_std_jump": (at[left] - at[left - 1], ".0f"), "sh_std_after_low": (lam[left:].min(), ".0f"),
            "sh_std_after_high": (lam[left:].max(), ".0f"), "sh_bn_first": (bn["first"], ".0f"),
            "sh_bn_later_low": (lam_bn[1:].min(), ".0f"), "sh_bn_later_high": (lam_bn[1:].max(), ".0f"),
            "sh_bn_above_pct": (100 * bn["above"], ".0f"), "sh_std_late": (std["late"], ".3g"),
            "sh_bn_late": (bn["late"], ".3g"), "sh_bn_beta": (bn["beta"], ".3g"), "sh_bn_hg": (bn["hg"], ".3g"),
            "sh_bn_ratio_low": (ratio["batch"][1:].min(), ".2f"), "sh_bn_ratio_high": (ratio["batch"][1:].max(), ".2f"),
            "sh_std_ratio_low": (ratio["none"][:left].min(), ".2g"), "sh_std_ratio_high": (ratio["none"][:left].max(), ".2g"),
            "sh_std_agree_from": (at[left + 1], ".0f"), "sh_std_agree_low": (ratio["none"][left + 1:].min(), ".2f"),
            "sh_std_agree_high": (ratio["none"][left + 1:].max(), ".2f"),
            "sh_n_bn_lower": (sum(bool(h) for h in lower), ".0f"),
            "sh_bn_min_first": (bn["min_first"], ",.0f"), "sh_bn_curv_first": (bn["curv_first"], ".3g"),
            **over_seeds(res, sharpness_stats, "sh", (("late", ".3g"), ("median", ".3g"), ("test_acc", ".2f")))}


@passage
def surface_passage(res) -> dict:
    std, bn = surface_stats(res, "none"), surface_stats(res, "batch")
    return {"sf_bn_centre": (bn["centre"], ".2f"), "sf_std_centre": (std["centre"], ".2f"),
            "sf_bn_within_pct": (100 * bn["within2x"], ".0f"), "sf_std_within_pct": (100 * std["within2x"], ".0f"),
            "sf_bn_edge": (bn["edge"], ".2g"), "sf_std_edge": (std["edge"], ".2g"), "sf_bn_curv": (bn["curv"], ".2g"),
            "sf_std_curv": (std["curv"], ".2g"), "sf_bn_test": (bn["test_acc"], ".2f"),
            "sf_std_test": (std["test_acc"], ".2f"), "sf_bn_eval_max": (bn["slice_eval_max"], ".3g"),
            "sf_bn_train_max": (bn["slice_train_max"], ".2g"), "sf_std_train_max": (std["slice_train_max"], ".2g"),
            **over_seeds(res, surface_stats, "sf", (("within2x", ".2f"), ("centre", ".2f"), ("test_acc", ".2f"),
                                                    ("slice_eval_max", ".3g"), ("slice_train_max", ".2g")))}


CONTROLS = ("layer", "group", "rescaled")


@passage
def confounders_training(res, lr=0.1) -> dict:
    """The controls' final accuracies (range over the three) against BN's and the standard network's, and the
    inverse of the smallest layer-input variance at initialisation (the rescaling's largest factor)."""
    acc = {n: {key: mean_final(res, n, lr, key) for key in ("train_acc", "test_acc")}
           for n in ("none", "batch", *CONTROLS)}
    out = {}
    for key in ("train_acc", "test_acc"):
        out |= {f"cf_ctl_{key}_low": (min(acc[n][key] for n in CONTROLS), ".2f"),
                f"cf_ctl_{key}_high": (max(acc[n][key] for n in CONTROLS), ".2f"),
                f"cf_std_{key}": (acc["none"][key], ".2f"), f"cf_bn_{key}": (acc["batch"][key], ".2f")}
    first = min(res.select(norm="none", lr=lr), key=lambda r: r.seed)          # seed 0 (one seed's runs: that seed)
    var0 = first.arrays["act_var"][0].mean(-1)
    return out | {"cf_inv_var0": (1 / var0.min(), ".0e")}


@passage
def confounders_seeds(res, lr=0.1) -> dict:
    """LayerNorm's, GroupNorm's and the fixed rescaling's mean final accuracies, how many of the rescaling's seeds
    stalled (a final training accuracy below 0.2: chance is 0.1)."""
    out = {f"cf_{n}_{key}": (mean_final(res, n, lr, key), ".2f")
           for n in ("layer", "group", "rescaled") for key in ("train_acc", "test_acc")}
    rescaled = res.select(norm="rescaled", lr=lr)
    stalled = [r for r in rescaled if not final(r, "train_acc") >= 0.2]       # NaN (diverged) counts as stalled
    return out | {"cf_rs_stalled": (len(stalled), ".0f"), "cf_rs_seeds": (len(rescaled), ".0f")}


@passage
def confounders_landscape(res, lr=0.1) -> dict:
    """The landscape medians of the controls (range over the three) against BN's and the standard network's, each
    network's largest beta, and per seed the fixed rescaling's loss range and gradient change over BN's."""
    land = {n: landscape_stats(res, n, lr) for n in ("none", "batch", *CONTROLS)}
    out = {}
    for key, spec in (("loss_spread", ".3g"), ("grad_change", ".3g"), ("beta", ".3g")):
        out |= {f"cf_ctl_{key}_low": (min(land[n][key] for n in CONTROLS), spec),
                f"cf_ctl_{key}_high": (max(land[n][key] for n in CONTROLS), spec),
                f"cf_std_{key}": (land["none"][key], spec), f"cf_bn_{key}": (land["batch"][key], spec)}
    seeds = common_seeds(res, (("rescaled", lr), ("batch", lr)))
    per_seed = {(n, s): landscape_stats(res, n, lr, s) for n in ("rescaled", "batch") for s in seeds}
    for key in ("loss_spread", "grad_change"):
        out |= span(f"cf_rescaled_over_bn_{key}", [per_seed["rescaled", s][key] / per_seed["batch", s][key]
                                                    for s in seeds], ".3g")
    return out | {f"cf_{n}_beta_max": (land[n]["beta_max"], ".2g") for n in land}


CHAPTER = Chapter(
    "smoothness",
    experiments=EXPERIMENTS,
    computes=("sharpness", "loss_surface", "confounders"),
    claims=CLAIMS,
    views={"sharpness": View((tables.sharpness_table,), (sharpness_passage,)),
           "loss_surface": View((tables.surface_table,), (surface_passage,)),
           "training": View((tables.training_table,), (confounders_training,), claims=False),
           "seeds": View((), (confounders_seeds,), claims=False),
           "confounders": View((tables.landscape_table,), (confounders_landscape,))},
    triage=TRIAGE,
    step=("beyond", "The smoothness story, tested further (ours)"),
)

show = CHAPTER.show


# ---- exercises ------------------------------------------------------------------------------------------------------
def _per_seed(res, net: str, key: str) -> list:
    """``net``'s array ``key`` for each seed the analysis trained (seed 0's first)."""
    seeds = analysis_seeds(res)
    return [np.asarray(res.arrays[f"{net_prefix(net, s, seeds)}/{key}"]) for s in seeds]


def basin_share(res, net: str, factor: float) -> list:
    """Per seed: the share of the 2-D surface's square where the loss stays below ``factor`` times the loss at the
    centre (the chapter's basin width is ``factor`` 2)."""
    out = []
    for loss in _per_seed(res, net, "loss"):
        mid = len(loss) // 2
        out.append(float(np.mean(loss < factor * loss[mid, mid])))
    return out


def above_edge(res, net: str) -> dict:
    """Per seed: the share of the lambda_max measurements above 2/lr in the first half of the run ("early") and in
    the second half ("late", the half the edge-of-stability claims read); NaN for an empty half."""
    edge, out = 2 / float(res.arrays["lr"]), {"early": [], "late": []}
    for lam in _per_seed(res, net, "sharp_max"):
        half = len(lam) // 2
        for part, vals in (("early", lam[:half]), ("late", lam[half:])):
            out[part].append(float(np.mean(vals > edge)) if len(vals) else float("nan"))
    return out
