"""Chapter: the loss landscape along the gradient (Santurkar et al. 2018, Fig. 4 and 10): how much the loss and the
gradient change along a step, and the effective beta-smoothness, in the VGG (at two learning rates, and trained
longer to test our own explanation of the short reading) and in the deep linear network."""
from __future__ import annotations

from functools import partial

import numpy as np

from .. import glue, tables
from ..claims import MIN_SEEDS, ClaimSpec, bn_pair, classify, criterion, get, judge
from ..criteria import smoother
from ..exercises import exercise_runs  # noqa: F401  (the exercises train through it)
from ..experiments import Experiment
from ..passages import mean_final, passage
from ..statistics import PLATEAU, landscape_stats
from ..tables import Table
from ..triage import Triage
from . import Chapter, View
from .gradient_ics import dln_averaged_ics, dln_summed_ics

EARLY = (PLATEAU[1] + 1, 500)   # [ours] "early in training": after the standard VGG's initial plateau, to step 500

EXPERIMENTS = (
    # [ours] lr 0.01 (the runs of Fig. 3a): the same probes at a second rate, where 2/lr is ten times larger
    Experiment("landscape_vgg", "Fig. 4, 11a", "loss landscape along the gradient, VGG", "vgg",
               (("none", 0.1, True), ("batch", 0.1, True), ("none", 0.01, False), ("batch", 0.01, False))),
    # [ours] the same probes on BN and the standard VGG at lr 0.1, trained longer (Scale.vgg_long_steps): at cpu scale
    # the standard VGG's initial plateau is a fifth of the probes at 1,000 steps; its claims were registered with
    # the verdicts our explanation predicts before the runs were made
    Experiment("landscape_vgg_long", "Fig. 4 (longer reading)", "loss landscape along the gradient, VGG trained "
               "longer", "vgg_long", (("none", 0.1, True), ("batch", 0.1, True))),
    Experiment("landscape_dln", "Fig. 10 (averaged-loss reading)", "loss landscape of the DLN, averaged loss", "dln",
               (("none", 1e-6, True), ("batch", 1e-6, True))),
)


def _landscape_claims() -> list:
    """The three landscape claims (Fig. 4/10 a-c) on each reading, and beta x ||w||^2 on three of them."""
    out = []
    for exp, lr, what, seeds, tag in (("landscape_vgg", 0.1, "VGG", MIN_SEEDS, "vgg"),
                                      ("landscape_vgg_long", 0.1, "VGG trained longer (ours)", MIN_SEEDS, "vgg_long"),
                                      ("landscape_vgg", 0.01, "VGG at lr 0.01 (a second rate; ours)", MIN_SEEDS,
                                       "vgg_lr0.01"),
                                      ("dln_summed_loss", 1e-3, "DLN, summed loss", 5, "dln_summed"),
                                      ("landscape_dln", 1e-6, "DLN, averaged loss (side reading)", 5, "dln_averaged")):
        fig = "Fig. 4" if exp.startswith("landscape_vgg") else "Fig. 10"
        out += [
            ClaimSpec(f"smoother_loss_{tag}", exp,
                      f"{what}: with BN the loss varies less along the gradient ({fig}a)",
                      "standard network's median loss range over BN's", criterion("clearly"), smoother("loss_spread", lr),
                      bn_pair(lr), min_seeds=seeds),
            ClaimSpec(f"predictive_gradients_{tag}", exp,
                      f"{what}: with BN the gradient changes less along it: more predictive ({fig}b)",
                      "standard network's median max gradient change over BN's", criterion("clearly"),
                      smoother("grad_change", lr), bn_pair(lr), min_seeds=seeds),
            ClaimSpec(f"smaller_beta_{tag}", exp,
                      f"{what}: with BN the effective beta-smoothness is smaller ({fig}c)",
                      "standard network's median max effective beta over BN's", criterion("clearly"), smoother("beta", lr),
                      bn_pair(lr), min_seeds=seeds),
        ]
    for exp, lr, what, tag, seeds in (("landscape_vgg", 0.1, "VGG", "vgg", MIN_SEEDS),
                                      ("landscape_vgg_long", 0.1, "VGG trained longer", "vgg_long", MIN_SEEDS),
                                      ("dln_summed_loss", 1e-3, "DLN, summed loss", "dln_summed", 5)):
        out += [
            ClaimSpec(f"smaller_scaled_beta_{tag}", exp,
                      f"{what}: BN's smaller beta is not an artefact of larger weights: beta x ||w||^2, which a "
                      "rescaling of the weights leaves unchanged in a BN network, is smaller too (ours)",
                      "standard network's median of max beta x sum of squared block weight norms over BN's", criterion("clearly"),
                      smoother("beta_scaled", lr), bn_pair(lr), min_seeds=seeds, source="ours"),
        ]
    return out


# Registered before the longer VGG runs were made (git log shows the order). Our explanation of the short reading:
# at cpu scale the standard VGG spends its first ~200 steps on a flat plateau, a fifth of the 1,000 steps' probes,
# where its landscape is flat because its gradients vanish; the medians over the probes then understate how rough
# its landscape is once it trains. If that is why the short reading's gradient change and beta fall short of a
# factor of two, then at vgg_long_steps (a plateau share of 1/30) every landscape claim is reproduced. The early
# window (steps 200-500) is the same in both readings, so its verdict must not move: a control. A competing reading
# (both networks train at the edge of stability, beta ~ 2/lr: the chapter on sharpness) predicts beta stays within a factor of two.
LONG_READING_PREDICTIONS = {
    "smoother_loss_vgg_long": "reproduced",
    "predictive_gradients_vgg_long": "reproduced",
    "smaller_beta_vgg_long": "reproduced",
    "smaller_scaled_beta_vgg_long": "reproduced",
    "predictive_gradients_early_vgg_long": "not reproduced",
}

CLAIMS = classify([
    *_landscape_claims(),
    ClaimSpec("smaller_worst_beta_dln_summed", "dln_summed_loss",
              "DLN, summed loss: BN's worst-case effective beta over training is smaller too (Fig. 10c's peaks)",
              "standard network's largest effective beta over BN's", criterion("clearly"), smoother("beta_max", 1e-3),
              bn_pair(1e-3), min_seeds=5),
    ClaimSpec("predictive_gradients_early_vgg", "landscape_vgg",
              "VGG: early in training the gradient change differs by close to two orders of magnitude (Sec. 3.2)",
              f"standard network's median max gradient change over BN's, probes at steps {EARLY[0]}-{EARLY[1]}",
              criterion("two orders"), smoother("grad_change", 0.1, rule="two orders", steps=EARLY), bn_pair(0.1)),
    ClaimSpec("predictive_gradients_early_vgg_long", "landscape_vgg_long",
              "VGG trained longer: the same early window, a control (its first steps are those of the short runs)",
              f"standard network's median max gradient change over BN's, probes at steps {EARLY[0]}-{EARLY[1]}",
              criterion("two orders"), smoother("grad_change", 0.1, rule="two orders", steps=EARLY), bn_pair(0.1)),
], kinds={"extension": ("smoother_loss_vgg_lr0.01", "predictive_gradients_vgg_lr0.01", "smaller_beta_vgg_lr0.01",
                        "smoother_loss_dln_averaged", "predictive_gradients_dln_averaged", "smaller_beta_dln_averaged",
                        "smaller_scaled_beta_vgg", "smaller_scaled_beta_dln_summed"),
          "prediction": tuple(LONG_READING_PREDICTIONS)},
   registered_in={i: "9ff51c4" for i in LONG_READING_PREDICTIONS}, predictions=LONG_READING_PREDICTIONS)

_WIDTH = ("not the length of training: trained six times longer (the longer reading, where the standard VGG's initial "
          "plateau is a thirtieth of the probes instead of a fifth) the ratio is no closer to the factor of two, so our "
          "plateau explanation failed; the width and the data set remain untested, and the edge of stability, where "
          "both networks' beta sits near 2/lr, predicts no factor of two at any size")
_EOS = ("between its episodes each network trains at the edge of stability, where the learning rate, not the network, "
        "sets the curvature along the gradient; in some seeds the standard network stalls on a flat plateau")
_STALLED = ("at lr 0.01 the standard VGG stays on its plateau for most of the 1,000 steps: there is no trained standard "
            "network to compare")
_AVERAGED = "the averaged-loss reading takes steps 1,000 times shorter, and BN reaches the edge of stability in some seeds only"

TRIAGE = {
    "predictive_gradients_vgg": Triage("scale", "width", _WIDTH),
    "smaller_beta_vgg": Triage("scale", "width", _WIDTH),
    "smaller_scaled_beta_vgg": Triage("scale", "width", "the same gap as beta's: both networks' weights have about the "
                                      "same norm, so the rescaled measure tells beta's story; " + _WIDTH),
    "predictive_gradients_vgg_long": Triage("scale", "width", _WIDTH),
    "smaller_beta_vgg_long": Triage("scale", "width", _WIDTH),
    "smaller_scaled_beta_vgg_long": Triage("scale", "width", "the same gap as beta's; " + _WIDTH),
    "predictive_gradients_early_vgg_long": Triage("design", "the early window, steps 200-500", "as in the short "
                                                  "reading, a window where the standard network leaves its plateau; "
                                                  "the verdict held as registered, though the values moved: the runs "
                                                  "differ from the short ones by rounding from their first steps, "
                                                  "which training amplifies"),
    "smoother_loss_vgg_lr0.01": Triage("scale", "steps", _STALLED),
    "predictive_gradients_vgg_lr0.01": Triage("scale", "steps", _STALLED),
    "smaller_beta_vgg_lr0.01": Triage("scale", "steps", _STALLED),
    "predictive_gradients_early_vgg": Triage("design", "the early window, steps 200-500", "at our length this window "
                                             "is where the standard network leaves its plateau; the paper's 'early' "
                                             "is in a run 15 times longer"),
    "smoother_loss_dln_summed": Triage("paper size", "", _EOS),
    "predictive_gradients_dln_summed": Triage("paper size", "", _EOS),
    "smaller_beta_dln_summed": Triage("paper size", "", _EOS),
    "smaller_scaled_beta_dln_summed": Triage("paper size", "", "the weight norms hardly change, so the rescaled "
                                             "measure tells beta's story: " + _EOS),
    "smoother_loss_dln_averaged": Triage("paper size", "loss reading", _AVERAGED),
    "predictive_gradients_dln_averaged": Triage("paper size", "loss reading", _AVERAGED),
    "smaller_beta_dln_averaged": Triage("paper size", "loss reading", _AVERAGED),
}


@passage
def dln_summed_landscape(summed) -> dict:
    """Per claim, in how many seeds BN is the smoother network (ratio > 1); the extremes of the loss along the
    gradient and of the effective beta per network over seeds; the median beta per network."""
    out = {}
    for spec in (s for s in CLAIMS if s.experiment == "dln_summed_loss"):
        out[f"{spec.id}_n_bn_smoother"] = (str(sum(e > 1 for e in judge(spec, summed).effects)), "")
    for n in ("none", "batch"):
        runs = summed.select(norm=n, lr=1e-3)
        peak_loss = [np.nanmax(r.arrays["land_loss"]) for r in runs]
        peak_beta = [landscape_stats(summed, n, 1e-3, r.seed)["beta_max"] for r in runs]
        sigma = [np.median(r.arrays["act_pre_std"][-1], axis=-1) for r in runs]     # [layer] at the last probe
        for i, layer in enumerate(runs[0].arrays["act_layers"]):
            vals = [s_[i] for s_ in sigma]
            out |= {f"summed_{n}_sigma_l{layer}_low": (min(vals), ".3g"),
                    f"summed_{n}_sigma_l{layer}_high": (max(vals), ".3g")}
        stats = landscape_stats(summed, n, 1e-3)
        out |= {f"summed_{n}_{k}": (stats[k], ".3g") for k in ("beta_scaled", "loss_spread", "grad_change", "wnorm",
                                                                 "rel_step")}
        out |= {f"summed_{n}_loss_max_low": (min(peak_loss), ".3g"), f"summed_{n}_loss_max_high": (max(peak_loss), ".3g"),
                f"summed_{n}_beta_max_low": (min(peak_beta), ".3g"), f"summed_{n}_beta_max_high": (max(peak_beta), ".3g"),
                f"summed_{n}_beta": (stats["beta"], ".4g")}
    return out



@passage
def vgg_landscape(res, lr=0.1) -> dict:
    """The landscape medians per network, the loss range on the standard network's initial plateau, and the
    largest gradient change seen."""
    out = {}
    for n in ("none", "batch"):
        s, plateau = landscape_stats(res, n, lr), landscape_stats(res, n, lr, steps=PLATEAU)
        out |= {f"vgg_{n}_{key}": (s[key], ".4g") for key in ("loss_spread", "grad_change", "beta", "beta_max")}
        out |= {f"vgg_{n}_{key}": (s[key], ".3g") for key in ("beta_scaled", "wnorm", "rel_step")}
        second = landscape_stats(res, n, 0.01)
        out |= {f"vgg_{n}_lr0.01_{key}": (second[key], ".3g") for key in ("loss_spread", "grad_change", "beta")}
        out[f"vgg_{n}_plateau_loss_spread"] = (plateau["loss_spread"], ".2g")
        out[f"vgg_{n}_largest_grad_change"] = (max(np.nanmax(r.arrays["land_grad_change"])
                                                   for r in res.select(norm=n, lr=lr)), ".3g")
    return out


@passage
def vgg_long_landscape(long, lr=0.1, short_steps=1000) -> dict:
    """The longer reading of the VGG landscape: each network's medians over all probes and over the probes after
    the short reading's last step, and the share of the probes on the standard network's initial plateau at both
    lengths."""
    steps = max(r.config["train"]["steps"] for r in long.runs)
    out = {"long_steps": (steps, ",.0f"), "short_plateau_share": ((PLATEAU[1] + 1) / short_steps, ".0%"),
           "long_plateau_share": ((PLATEAU[1] + 1) / steps, ".1%")}
    for n in ("none", "batch"):
        s, late = landscape_stats(long, n, lr), landscape_stats(long, n, lr, steps=(short_steps, steps))
        out |= {f"long_{n}_{key}": (s[key], ".3g") for key in ("loss_spread", "grad_change", "beta")}
        out |= {f"long_{n}_late_{key}": (late[key], ".3g") for key in ("loss_spread", "grad_change", "beta")}
    return out


@passage
def dln_averaged_landscape(dln, lr=1e-6) -> dict:
    """The averaged-loss DLN: median gradient change per network, the standard network's first and final loss."""
    stats = {n: landscape_stats(dln, n, lr) for n in ("none", "batch")}
    out = {f"averaged_{n}_grad_change": (s["grad_change"], ".2g") for n, s in stats.items()}
    out |= {f"averaged_{n}_beta": (s["beta"], ".3g") for n, s in stats.items()}
    return out | {"averaged_none_loss_first": (np.mean([r.arrays["train_loss"][0] for r in dln.select(norm="none")]),
                                               ".0f"),
                  "averaged_none_loss_final": (mean_final(dln, "none", None, "train_loss"), ".0f")}



def explanation_test(short, long) -> tuple:
    """Each registered prediction beside the same claim on the short reading: verdicts, effects with their seed
    ranges, the prediction and whether it held. Returns the table and the glue values (``expl_*``)."""
    rows, held = [], 0
    out = {}
    for long_id, predicted in LONG_READING_PREDICTIONS.items():
        short_id = long_id.replace("_vgg_long", "_vgg")
        a, b = judge(get(short_id), short), judge(get(long_id), long)
        ok = b.verdict == predicted
        held += ok
        rows.append([short_id, f"{a.verdict}: {a.ours()}", f"{b.verdict}: {b.ours()}", predicted,
                     "yes" if ok else "no"])
        out[f"expl_{short_id}_held"] = ("yes" if ok else "no", "")
        for reading, v in (("short", a), ("long", b)):     # seeds where the criterion holds, by each reading
            out[f"expl_{short_id}_{reading}_holds"] = (sum(h is True for h in v.holds), ".0f")
    out["expl_held"] = (held, ".0f")
    out["expl_n"] = (len(LONG_READING_PREDICTIONS), ".0f")
    table = Table(rows, columns=["claim", f"short reading ({_length(short)} steps)",
                                 f"longer reading ({_length(long)} steps)", "predicted (registered before)", "held"])
    return table, out


def _length(result) -> str:
    lengths = {r.config["train"]["steps"] for r in result.runs}
    return ", ".join(f"{n:,}" for n in sorted(lengths))


def explanation(short, long) -> Table:
    """The explanation test's table, with its numbers glued."""
    table, values = explanation_test(short, long)
    glue.glue_all(values)
    return table


CHAPTER = Chapter(
    "landscape",
    experiments=EXPERIMENTS,
    computes=("landscape_vgg", "landscape_vgg_long", "dln_summed_loss", "landscape_dln"),
    claims=CLAIMS,
    views={"landscape_vgg": View((tables.landscape_table,), (vgg_landscape,)),
           "landscape_vgg_long": View((), (vgg_long_landscape,), verdicts=False),
           "dln_summed_loss": View((partial(tables.landscape_table, lr=1e-3),), (dln_summed_landscape,)),
           "summed_losses": View((), (dln_summed_ics,), claims=False),
           "landscape_dln": View((tables.training_table, tables.landscape_table), (dln_averaged_landscape,)),
           "averaged_losses": View((), (dln_averaged_ics,), claims=False)},
    triage=TRIAGE,
    step=("smoothness", "It smooths the loss landscape"),
)

show = CHAPTER.show


# ---- exercises ------------------------------------------------------------------------------------------------------
def probe_configs(norms, lr, scale: str = "smoke", seed: int = 0, steps: int | None = None) -> list:
    """The VGG runs of ``norms`` x ``lr`` (``bnlab.exercises.exercise_configs``) with the landscape probe alone, at the
    scale's probe interval and the chapter's step sizes: what an exercise that probes another rate trains."""
    from dataclasses import replace
    from ..config import ProbeConfig
    from ..exercises import exercise_configs
    out = []
    for cfg in exercise_configs(norms, lr, scale=scale, seed=seed, probes=True, steps=steps):
        p = cfg.probe
        out.append(replace(cfg, probe=ProbeConfig(every=p.every, landscape=True, landscape_range=p.landscape_range,
                                                  landscape_points=p.landscape_points)))
    return out


def beta_at_start(runs: dict) -> dict:
    """Glue values ``ex_beta0_*``: per learning rate, the effective beta of the probe at step 0 (where runs of one
    seed share their weights, whatever the rate) and that beta over the edge of stability 2/lr; and the smallest
    and largest of those ratios. ``runs``: {(norm, lr): Run} with the landscape probe."""
    out, ratios = {}, []
    for (_, lr), r in sorted(runs.items(), key=lambda kv: kv[0][1]):
        first = float(np.nanmax(r.arrays["land_beta"][list(r.arrays["land_step"]).index(0)]))
        ratios.append(first * lr / 2)
        out |= {f"ex_beta0_lr{lr:g}": (first, ".3g"), f"ex_beta0_edge_lr{lr:g}": (first * lr / 2, ".2f")}
    return out | {"ex_beta0_edge_low": (min(ratios), ".2f"), "ex_beta0_edge_high": (max(ratios), ".2f")}


_MEASURE_OF = {"smoother_loss": "loss_spread", "predictive_gradients": "grad_change", "smaller_beta": "beta",
               "smaller_scaled_beta": "beta_scaled", "smaller_worst_beta": "beta_max"}


def judge_window(claim_id: str, result, steps: tuple):
    """The landscape claim ``claim_id`` judged on ``result`` by its own criterion and threshold, but over the probes
    at training steps ``steps`` = (first, last) only: a different reading of the same runs, not a registered claim."""
    from dataclasses import replace
    spec = get(claim_id)
    key = next(v for k, v in _MEASURE_OF.items() if claim_id.startswith(k + "_"))
    lr = spec.arms[0][1]
    window = replace(spec, statistic=f"{spec.statistic}, probes at steps {steps[0]}-{steps[1]}",
                     measure=smoother(key, lr, rule=spec.rule or "clearly", steps=steps))
    return judge(window, result)


def edge_share(result, norm: str, lr: float, factor: float = 1.0) -> list:
    """Per seed, the share of the probes at which the effective beta (the largest over the step sizes) exceeds
    ``factor`` x 2/lr, the edge of stability."""
    return [float(np.mean(np.nanmax(r.arrays["land_beta"], axis=1) > factor * 2 / lr))
            for r in result.select(norm=norm, lr=lr)]
