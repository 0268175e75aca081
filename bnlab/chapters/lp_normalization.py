"""Chapter: l_p normalisations (Santurkar et al. 2018, Fig. 5, 6, 12, 13): dividing by an l1, l2 or l-infinity norm
instead of the standard deviation, in the VGG and the deep linear network: do they train like BN, and smooth too?"""
from __future__ import annotations

from functools import partial

import numpy as np

from .. import tables
from ..claims import ClaimSpec, classify, common_seeds, criterion, judge
from ..criteria import RULES, better, close_loss, lower_loss, within
from ..experiments import Experiment
from ..norms import NORM_LABELS
from ..passages import mean_final, passage
from ..statistics import final, landscape_stats, moment_stats
from ..triage import Triage
from . import Chapter, View

EXPERIMENTS = (
    Experiment("lp_vgg", "Fig. 5a, 6, 12", "l_p normalisations beside BatchNorm, VGG", "vgg",
               tuple((n, 0.1, n in ("none", "batch")) for n in ("none", "batch", "l1", "l2", "linf"))),
    Experiment("lp_dln", "Fig. 5b, 13", "l_p normalisations beside BatchNorm, deep linear network", "dln",
               tuple((n, 1e-3, n in ("none", "batch")) for n in ("none", "batch", "l1", "l2", "linf"))),   # the summed reading
)

CLAIMS = classify([
    *[ClaimSpec(f"{n}_like_bn_vgg", "lp_vgg",
                f"the VGG with {NORM_LABELS[n].split(' + ')[1]} normalisation trains comparably to BN (Fig. 5a)",
                f"final training accuracy, {n} minus BN", criterion("comparable"), within(n, "batch", 0.1),
                ((n, 0.1), ("batch", 0.1))) for n in ("l1", "l2", "linf")],
    *[ClaimSpec(f"{n}_beats_standard_vgg", "lp_vgg",
                f"the VGG with {NORM_LABELS[n].split(' + ')[1]} normalisation trains better than the standard "
                "network (Fig. 5a)", f"final training accuracy, {n} minus standard", criterion("better"),
                better(n, "none", 0.1), ((n, 0.1), ("none", 0.1)), needs_training=False)
      for n in ("l1", "l2", "linf")],
    ClaimSpec("l1_better_than_bn_dln", "lp_dln",
              "for the DLN, l1 normalisation is even better than BN (Fig. 5b)",
              "final training loss of BN over l1's", criterion("lower", "l1 lower:"), lower_loss("l1", "batch", 1e-3),
              (("l1", 1e-3), ("batch", 1e-3)), min_seeds=5),
    *[ClaimSpec(f"{n}_beats_standard_dln", "lp_dln",
                f"for the DLN, {NORM_LABELS[n].split(' + ')[1]} normalisation reaches a lower loss than the "
                "standard network (Fig. 5b)", f"final training loss of the standard network over {n}'s",
                criterion("lower", "lower with the normalisation:"), lower_loss(n, "none", 1e-3), ((n, 1e-3), ("none", 1e-3)),
                min_seeds=5) for n in ("l1", "l2", "linf")],
    ClaimSpec("l2_matches_bn_dln", "lp_dln",
              "in this DLN (zero-mean data, no biases) l2 normalisation is nearly BatchNorm: it divides by the "
              "root mean square, which is the standard deviation while the means stay near zero (ours)",
              "final training loss of l2 over BN's", criterion("nearly"), close_loss("l2", "batch", 1e-3),
              (("l2", 1e-3), ("batch", 1e-3)), min_seeds=5, source="ours"),
], kinds={"identity": ("l2_matches_bn_dln",)})

TRIAGE = {
    "l1_better_than_bn_dln": Triage("paper size", "", "after 10,000 steps l1 and BN end at the same loss, a tie; l1 "
                                    "is ahead earlier in training in every seed"),
    "linf_beats_standard_dln": Triage("paper size", "", "l-inf lowers the loss in most seeds but not in all; the "
                                      "standard network's seeds differ most"),
}


LP_NETS = ("none", "batch", "l1", "l2", "linf")


@passage
def lp_vgg_training(res, lr=0.1) -> dict:
    """Final training accuracy and seed count per network, and the largest gap of an l_p network to BN (the
    median effects of chapter 6's claims)."""
    found = [judge(spec, res) for spec in CLAIMS if spec.id.endswith("_like_bn_vgg")]
    out = {"lp_vgg_largest_gap": (max(abs(v.effect) for v in found), ".2g")}
    for n in LP_NETS:
        out |= {f"vgg_{n}_train_acc": (mean_final(res, n, lr, "train_acc"), ".3f"),
                f"vgg_{n}_seeds": (str(len(res.select(norm=n, lr=lr))), "")}
    return out


@passage
def lp_vgg_moments(res, layer=11, lr=0.1) -> dict:
    """Per network, the mean drift of the layer's input variance from step 0 (the moments table's mean |var
    drift|), and its ratio to BN's."""
    drift = {n: moment_stats(res, layer, n, lr=lr)["drift_var"] for n in LP_NETS}
    return {**{f"var_drift_{n}": (d, ".3g") for n, d in drift.items()},
            **{f"var_drift_{n}_over_bn": (d / drift["batch"], ".2g") for n, d in drift.items()}}


@passage
def lp_vgg_landscape(res, lr=0.1) -> dict:
    """Per network, the landscape medians over the probed steps of all seeds."""
    return {f"vgg_{n}_{key}": (landscape_stats(res, n, lr)[key], ".3g") for n in LP_NETS
            for key in ("loss_spread", "grad_change", "beta")}


@passage
def lp_dln(dln, lr=1e-3, early_step=1000) -> dict:
    """Per network: final loss (mean over its seeds) and landscape medians; BN's seed count; BN's and l2's final
    loss on seed 0, which both have (on a result of one seed: that seed's)."""
    out = {"dln_batch_seeds": (str(len(dln.select(norm="batch"))), "")}
    for n in LP_NETS:
        out[f"dln_{n}_loss"] = (mean_final(dln, n, None, "train_loss"), ".4g")
        s = landscape_stats(dln, n, lr)
        out |= {f"dln_{n}_{key}": (s[key], ".3g") for key in ("loss_spread", "grad_change", "beta")}
    first = min(r.seed for r in dln.select(norm="batch"))
    for n in ("batch", "l2"):
        out[f"dln_{n}_loss_seed0"] = (final(dln.select(norm=n, seed=first)[0], "train_loss"), ".4g")
    # [ours] where the networks stand after 1000 steps, before they meet at the end, and the worst-case beta
    early = {n: {r.seed: r.arrays["train_loss"][early_step] for r in dln.select(norm=n, lr=lr)} for n in LP_NETS}
    for n in LP_NETS:
        out[f"dln_{n}_loss_step{early_step}"] = (np.mean(list(early[n].values())), ".4g")
        out[f"dln_{n}_beta_max"] = (landscape_stats(dln, n, lr)["beta_max"], ".3g")
    ratio = [early["batch"][s] / early["l1"][s] for s in early["l1"]]
    out |= {f"dln_bn_over_l1_step{early_step}_low": (min(ratio), ".3g"),
            f"dln_bn_over_l1_step{early_step}_high": (max(ratio), ".3g"),
            f"dln_n_l1_lower_step{early_step}": (str(sum(r > RULES["lower"].threshold for r in ratio)), "")}
    gaps = [abs(final(a, "train_loss") / final(b, "train_loss") - 1)
            for a, b in zip(dln.select(norm="l2", lr=lr), dln.select(norm="batch", lr=lr))]
    out |= {"dln_l2_bn_gap_low": (min(gaps), ".2%"), "dln_l2_bn_gap_high": (max(gaps), ".2%")}
    # [ours] seed by seed: in how many seeds each normalisation's median loss range and gradient change are both below
    # the standard network's, and its largest beta; in how many l1's median loss range is below BN's
    seeds = common_seeds(dln, tuple((n, lr) for n in LP_NETS))
    land = {(n, s): landscape_stats(dln, n, lr, s) for n in LP_NETS for s in seeds}
    for n in LP_NETS[1:]:
        smoother = sum(all(land[n, s][k] < land["none", s][k] for k in ("loss_spread", "grad_change")) for s in seeds)
        out |= {f"dln_n_{n}_smoother": (str(smoother), ""),
                f"dln_n_{n}_lower_beta_max": (str(sum(land[n, s]["beta_max"] < land["none", s]["beta_max"]
                                                      for s in seeds)), "")}
    out["dln_n_l1_smoother_than_bn"] = (str(sum(land["l1", s]["loss_spread"] < land["batch", s]["loss_spread"]
                                               for s in seeds)), "")
    return out | {"dln_lp_seeds": (str(len(seeds)), "")}



CHAPTER = Chapter(
    "lp_normalization",
    experiments=EXPERIMENTS,
    computes=("lp_vgg", "lp_dln"),
    claims=CLAIMS,
    views={"lp_vgg": View((tables.training_table,), (lp_vgg_training,)),
           "moments": View((partial(tables.moments_table, layers=(11,), norms=LP_NETS, lr=0.1),), (lp_vgg_moments,),
                           claims=False),
           "landscape": View((tables.landscape_table,), (lp_vgg_landscape,), claims=False),
           "lp_dln": View((tables.training_table, tables.landscape_table), (lp_dln,))},
    triage=TRIAGE,
    step=("lp", "Other normalisations do so too (l_p)"),
)

show = CHAPTER.show
