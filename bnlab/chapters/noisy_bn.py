"""Chapter: noisy BatchNorm (Santurkar et al. 2018, Fig. 2 and 8): BN with distributional noise injected after it
trains like BN, although its layers' inputs move more than the standard network's; and the paper's control, the
same noise in the standard network."""
from __future__ import annotations

from functools import partial

import numpy as np

from .. import tables
from ..claims import ClaimSpec, classify, criterion
from ..criteria import better, fails, less_stable, within
from ..experiments import Experiment
from ..passages import passage
from ..statistics import final, moment_changes, moment_stats
from ..triage import Triage
from . import Chapter, View

NOISY_LAYERS = (2, 9, 13)       # layers whose input shifts the noisy-BN claim compares (Fig. 2 and 8 show these)

EXPERIMENTS = (
    Experiment("noisy_bn", "Fig. 2, 8", "BatchNorm with injected distributional noise", "vgg",
               (("none", 0.1, True), ("batch", 0.1, True), ("noisy_batch", 0.1, False), ("noise", 0.1, False))),
    # the paper's control (Sec. 2.1): the same noise, in absolute units, in the standard network; noisy_bn's "noise"
    # arm is ours, with the noise relative to each channel's batch std
    Experiment("noisy_bn_control", "Sec. 2.1", "the standard VGG with noisy BN's noise in absolute units", "vgg",
               (("noise_abs", 0.1, True),)),
)

CLAIMS = classify([
    ClaimSpec("noisy_bn_trains_like_bn", "noisy_bn",
              "BN with injected distributional noise trains almost exactly like BN (Fig. 2)",
              "final training accuracy, noisy BN minus BN", criterion("comparable"),
              within("noisy_batch", "batch", 0.1), (("noisy_batch", 0.1), ("batch", 0.1))),
    ClaimSpec("noisy_bn_beats_standard", "noisy_bn",
              "noisy BN still trains far better than the standard network (Fig. 2)",
              "final training accuracy, noisy BN minus standard", criterion("far better", "noisy BN"),
              better("noisy_batch", "none", 0.1, rule="far better"), (("noisy_batch", 0.1), ("none", 0.1)), needs_training=False),
    ClaimSpec("noisy_bn_less_stable", "noisy_bn",
              "noisy BN's layer inputs are less stable than the standard network's, yet it trains like BN "
              "(Fig. 2, 8)", "smallest over layers #2, #9, #13 of noisy BN's mean shift of the input means "
              "(relative to their std, per probe interval) over the standard network's", criterion("lower", "at every layer, noisy BN's inputs moving more:"),
              less_stable("noisy_batch", "none", 0.1, NOISY_LAYERS), (("noisy_batch", 0.1), ("none", 0.1)),
              needs_training=False),
    ClaimSpec("noise_stops_standard", "noisy_bn_control",
              "the same noise added to the standard network stops it from training at all (Sec. 2.1)",
              "final training accuracy of standard + the noise in absolute units (0 if diverged)",
              criterion("fails"), fails("noise_abs", 0.1), (("noise_abs", 0.1),),
              needs_training=False),
    ClaimSpec("relative_noise_stops_standard", "noisy_bn",
              "noise of the same size relative to each channel's spread stops the standard network from "
              "training (ours: the paper's control with the noise scaled to the activations)",
              "final training accuracy of standard + the noise relative to each channel's std (0 if diverged)",
              criterion("fails"), fails("noise", 0.1), (("noise", 0.1),),
              needs_training=False, source="ours"),
], kinds={"extension": ("relative_noise_stops_standard",)}, registered_in={"noise_stops_standard": "5c527bd"})

TRIAGE = {
    "noisy_bn_trains_like_bn": Triage("scale", "width", "noisy BN ends a few points below BN in every seed; our guess "
                                      "is that at 1/16 width each layer's noise averages over 16 times fewer channels"),
    "noisy_bn_beats_standard": Triage("scale", "steps", "noisy BN is ahead of the standard network in every seed, but "
                                      "after 1,000 steps not by the margin 'far better' asks in all of them; BN itself "
                                      "leads by only a few points at this length"),
    "noisy_bn_less_stable": Triage("scale", "plateau share", "the standard network's deep inputs grow from almost "
                                   "zero while it leaves its plateau; over the second half of training noisy BN's "
                                   "means do move more at every layer"),
    "relative_noise_stops_standard": Triage("design", "noise relative to each channel's spread", "noise scaled to "
                                            "the activations slows the standard network and leaves it near the edge "
                                            "of stability: some seeds train slowly, a seed can diverge late (a "
                                            "rounding difference tips it); the paper's absolute control is a claim "
                                            "of its own"),
}


@passage
def noisy_bn_training(res, lr=0.1) -> dict:
    """Final training and test accuracy (means over seeds) of the three networks, and the standard network's
    seed range."""
    finals = {(n, key): [final(r, key) for r in res.select(norm=n, lr=lr)]
              for n in ("none", "batch", "noisy_batch") for key in ("train_acc", "test_acc")}
    out = {f"{key}_{n}": (np.mean(values), ".3f") for (n, key), values in finals.items()}
    for n in ("noisy_batch", "noise"):          # evaluated with the noise left on (off is the paper's reading)
        on = [final(r, "test_acc_noise_on") for r in res.select(norm=n, lr=lr)]
        off = [final(r, "test_acc") for r in res.select(norm=n, lr=lr)]     # a diverged seed has none: NaN
        out |= {f"test_acc_noise_on_{n}": (np.nanmean(on), ".3f"), f"test_acc_noise_off_{n}": (np.nanmean(off), ".3f"),
                f"noise_on_cost_{n}": (np.nanmean(off) - np.nanmean(on), ".3f")}
    relative = res.select(norm="noise", lr=lr)  # the standard network with noise relative to each channel's spread
    diverged = [r.diverged_step for r in relative if r.status == "diverged"]
    return out | {"train_acc_none_low": (min(finals["none", "train_acc"]), ".3f"),
                  "train_acc_none_high": (max(finals["none", "train_acc"]), ".3f"),
                  "relative_noise_runs": (len(relative), ".0f"), "relative_noise_diverged": (len(diverged), ".0f"),
                  "relative_noise_diverged_step": (min(diverged) if diverged else float("nan"), ".0f")}


@passage
def noisy_bn_moments(res, layers=(2, 9, 13), lr=0.1, late_from=500) -> dict:
    """Noisy BN's step-to-step moment changes against BN's and the standard network's, and the noise-only
    control's against noisy BN's, per layer and as a range."""
    moments = {(layer, n): moment_stats(res, layer, n, lr=lr)
               for layer in layers for n in ("none", "batch", "noisy_batch", "noise")}

    def ratio(a, b, key):
        return [moments[layer, a][key] / moments[layer, b][key] for layer in layers]
    out = {}
    for name, values, spec in (("mean_vs_bn", ratio("noisy_batch", "batch", "d_mean"), ".0f"),
                               ("mean_vs_std", ratio("noisy_batch", "none", "d_mean"), ".2g"),
                               ("mean_noise_vs_noisy", ratio("noise", "noisy_batch", "d_mean"), ".2f"),
                               ("var_vs_std", ratio("noisy_batch", "none", "d_var"), ".2g"),
                               ("rel_mean_vs_std", ratio("noisy_batch", "none", "rel_d_mean"), ".2g"),
                               ("rel_mean_noise_vs_std", ratio("noise", "none", "rel_d_mean"), ".2g"),
                               ("rel_std_vs_std", ratio("noisy_batch", "none", "rel_d_std"), ".2g")):
        out |= {f"{name}_low": (min(values), spec), f"{name}_high": (max(values), spec)}
        out |= {f"{name}_l{layer}": (value, spec) for layer, value in zip(layers, values)}
    # [ours] the same relative ratio over the probe intervals that end after step ``late_from`` only: past the
    # standard network's early growth, when its deep inputs move by about their whole std per interval
    late = res.select(norm="none", lr=lr)[0].arrays["act_step"][1:] > late_from
    rel = {(n, layer): np.nanmean(moment_changes(res.select(norm=n, lr=lr), layer)["rel_d_mean"][:, late])
           for n in ("none", "noisy_batch") for layer in layers}
    late_ratios = [rel["noisy_batch", layer] / rel["none", layer] for layer in layers]
    return out | {"rel_mean_late_low": (min(late_ratios), ".2g"), "rel_mean_late_high": (max(late_ratios), ".2g")}


CHAPTER = Chapter(
    "noisy_bn",
    experiments=EXPERIMENTS,
    computes=("noisy_bn", "noisy_bn_control"),
    claims=CLAIMS,
    views={"noisy_bn": View((tables.training_table,), (noisy_bn_training,)),
           "noisy_bn_control": View((tables.training_table,)),
           "moments": View((partial(tables.moments_table, layers=NOISY_LAYERS,
                                    norms=("none", "batch", "noisy_batch", "noise"), lr=0.1),),
                           (noisy_bn_moments,), claims=False)},
    triage=TRIAGE,
    step=("noise", "Unstable layer inputs do not stop it (noisy BatchNorm)"),
)

show = CHAPTER.show


def steps_to(res, norm: str, level: float, lr: float = 0.1, window: int = 25) -> list:
    """Per seed, the first training step at which the running mean of the last ``window`` batches' training accuracy
    reaches ``level`` (NaN if it never does): how fast a network leaves its plateau (an exercise of the chapter)."""
    out = []
    for r in res.select(norm=norm, lr=lr):
        acc, steps = r.arrays["train_acc"], r.arrays["step"]
        w = min(window, len(acc))
        smooth = np.convolve(acc, np.ones(w) / w, mode="valid")
        hit = np.flatnonzero(smooth >= level)
        out.append(float(steps[hit[0] + w - 1]) if hit.size else float("nan"))
    return out
