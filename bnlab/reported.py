"""The numbers a chapter's prose reports, computed from its results.

One function per passage that needs more than a table shows: it returns ``{glue name: (value, format spec)}``, and
the chapter glues them with ``bnlab.glue.glue_all`` so its markdown inserts them (``{glue:text}`name```). Keeping
the arithmetic here keeps the notebooks thin and lets a reader see how each number in the text is made.
"""
from __future__ import annotations

import dataclasses
import functools
import warnings

import numpy as np

from .claims import common_seeds, judge, specs
from .criteria import RULES
from .results import Result
from .statistics import (PLATEAU, SWEEP_FAILED_ACC, analysis_seeds, divergence_onset, final, ics_stats,
                         landscape_stats, moment_changes, moment_stats, sharpness_stats, step_size_stats,
                         surface_stats, thm44_vs_vanilla)


class Passage(dict):
    """A passage's ``{glue name: (value, format spec)}``, with ``per_seed``: each name's value computed on each seed's
    runs alone (where the result has several seeds), so a check can see which pooled numbers rest on seeds that
    disagree (``tests/test_prose.py``)."""

    per_seed: dict = {}


def _one_seed(arg, seed):
    """``arg`` restricted to one seed's runs when it is a result of training runs (anything else as it is)."""
    if isinstance(arg, Result) and arg.runs:
        return dataclasses.replace(arg, runs=[r for r in arg.runs if r.seed == seed])
    return arg


def _seeds_of(args) -> list:
    sets = [{r.seed for r in a.runs} for a in args if isinstance(a, Result) and a.runs]
    return sorted(set.intersection(*sets)) if sets else []


def _quietly(fn, *args, **kw):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def passage(fn=None, *, per_seed: bool = True):
    """A passage's numbers describe the runs the text was written about (the shipped ``cpu`` scale); on a run too
    short to have them (e.g. no initial plateau in 12 smoke steps) the chapter still runs: a warning says which
    passage has no numbers, and nothing is glued for it. Each number is also computed per seed (``Passage``), unless
    the passage describes seeds it picks itself (``per_seed=False``: its numbers are per seed already)."""
    if fn is None:
        return functools.partial(passage, per_seed=per_seed)

    @functools.wraps(fn)
    def wrapper(*args, **kw):
        try:
            out = Passage(_quietly(fn, *args, **kw))
        except (ValueError, IndexError, KeyError, ZeroDivisionError) as err:
            warnings.warn(f"the numbers of {fn.__name__} cannot be computed from this result "
                          f"({type(err).__name__}: {err}); the text describes the shipped runs", stacklevel=2)
            return Passage()
        seeds = _seeds_of(args) if per_seed else []
        by_seed = {name: [] for name in out}
        for seed in seeds if len(seeds) > 1 else ():
            try:
                one = _quietly(fn, *[_one_seed(a, seed) for a in args], **kw)
            except (ValueError, IndexError, KeyError, ZeroDivisionError):
                one = {}
            for name in out:
                v = one.get(name, (float("nan"), ""))[0]
                by_seed[name].append(float(v) if isinstance(v, (int, float, np.floating, np.integer)) else float("nan"))
        out.per_seed = {k: v for k, v in by_seed.items() if v}
        return out
    return wrapper


def _mean_final(result, norm, lr, key, seed=None) -> float:
    return float(np.mean([final(r, key) for r in result.select(norm=norm, lr=lr, seed=seed)]))


# ---- chapters 2 and 3: training and moments -----------------------------------------------------------------------
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


@passage
def noisy_bn_training(res, lr=0.1) -> dict:
    """Final training and test accuracy (means over seeds) of the three networks, and the standard network's
    seed range."""
    finals = {(n, key): [final(r, key) for r in res.select(norm=n, lr=lr)]
              for n in ("none", "batch", "noisy_batch") for key in ("train_acc", "test_acc")}
    out = {f"{key}_{n}": (np.mean(values), ".3f") for (n, key), values in finals.items()}
    for n in ("noisy_batch", "noise"):          # evaluated with the noise left on (off is the paper's reading)
        on = [final(r, "test_acc_noise_on") for r in res.select(norm=n, lr=lr)]
        off = [final(r, "test_acc") for r in res.select(norm=n, lr=lr)]
        out |= {f"test_acc_noise_on_{n}": (np.mean(on), ".3f"), f"test_acc_noise_off_{n}": (np.mean(off), ".3f"),
                f"noise_on_cost_{n}": (np.mean(off) - np.mean(on), ".3f")}
    return out | {"train_acc_none_low": (min(finals["none", "train_acc"]), ".3f"),
                  "train_acc_none_high": (max(finals["none", "train_acc"]), ".3f")}


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


def _by_seed(pooled: Passage, name: str) -> list:
    """A passage's number ``name`` in each seed (a one-seed result: the number itself)."""
    return [v for v in pooled.per_seed.get(name, []) if np.isfinite(v)] or [pooled[name][0]]


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
            out |= {f"{rel}moment_ratio_seed_low_l{layer}": (min(_by_seed(pooled, f"{rel}moment_ratio_low_l{layer}")),
                                                            ".3g"),
                    f"{rel}moment_ratio_seed_high_l{layer}": (max(_by_seed(pooled, f"{rel}moment_ratio_high_l{layer}")),
                                                             ".3g")}
        close = sum(v < RULES["clearly"].threshold for v in _by_seed(pooled, f"moment_ratio_low_l{layer}"))
        out[f"moment_ratio_n_close_l{layer}"] = (str(close), "")
    return out


# ---- chapter 4: gradient ICS of the VGG ---------------------------------------------------------------------------
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
        out[f"avg_loss_{n}_lr{lr:g}"] = (_mean_final(dln, n, lr, "train_loss"), ".3g")
    return out


@passage
def dln_summed_ics(summed) -> dict:
    """The summed-loss reading (lrs 1e-3, 1e-4 on the mean): ICS ratios per seed and per layer, cosines, relative
    ICS, final losses and their ratio."""
    ics = {(n, lr): ics_stats(summed, n, lr) for n in ("none", "batch") for lr in (1e-3, 1e-4)}
    seeds = common_seeds(summed, (("none", 1e-3), ("batch", 1e-3)))
    ratios = np.concatenate([ics_stats(summed, "batch", 1e-3, s)["l2"] / ics_stats(summed, "none", 1e-3, s)["l2"]
                             for s in seeds])
    loss_ratios = [_mean_final(summed, "none", 1e-3, "train_loss", s) / _mean_final(summed, "batch", 1e-3, "train_loss", s)
                   for s in seeds]
    out = {"sum_ratio_low": (ratios.min(), ".2f"), "sum_ratio_high": (ratios.max(), ".3g"),
           "sum_loss_ratio": (_mean_final(summed, "none", 1e-3, "train_loss") /
                              _mean_final(summed, "batch", 1e-3, "train_loss"), ".2f"),
           "sum_loss_ratio_low": (min(loss_ratios), ".2f"), "sum_loss_ratio_high": (max(loss_ratios), ".2f")}
    for (n, lr), s in ics.items():
        out[f"sum_loss_{n}_lr{lr:g}"] = (_mean_final(summed, n, lr, "train_loss"), ".3g")
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
    return [_mean_final(result, "none", lr, "train_loss", s) / _mean_final(result, "batch", lr, "train_loss", s)
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
        out |= {"sum_seeds": (str(len(stats)), ""), **_span(f"sum_ratio_{tag}", np.concatenate(ratios), ".3g"),
                f"sum_n_bn_larger_{tag}": (str(sum(bool(np.all(r > 1)) for r in ratios)), ""),
                **_span(f"sum_loss_ratio_{tag}", _final_loss_ratios(summed, lr), ".2f"),
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
            **_span("avg_loss_ratio", loss, ".2f"),
            "avg_n_lower": (str(sum(r > RULES["lower"].threshold for r in loss)), "")}


# ---- chapter 5: the summed-loss landscape of the deep linear network ------------------------------------------------
@passage
def dln_summed_landscape(summed) -> dict:
    """Per claim, in how many seeds BN is the smoother network (ratio > 1); the extremes of the loss along the
    gradient and of the effective beta per network over seeds; the median beta per network."""
    out = {}
    for spec in specs("dln_summed_loss", "05_landscape"):
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


# ---- chapter 5: the landscape -------------------------------------------------------------------------------------


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
                  "averaged_none_loss_final": (_mean_final(dln, "none", None, "train_loss"), ".0f")}


# ---- chapter 6: l_p normalisations --------------------------------------------------------------------------------
LP_NETS = ("none", "batch", "l1", "l2", "linf")


@passage
def lp_vgg_training(res, lr=0.1) -> dict:
    """Final training accuracy and seed count per network, and the largest gap of an l_p network to BN (the
    median effects of chapter 6's claims)."""
    found = [judge(spec, res) for spec in specs(res.experiment, "06_lp_normalization") if spec.id.endswith("_like_bn_vgg")]
    out = {"lp_vgg_largest_gap": (max(abs(v.effect) for v in found), ".2g")}
    for n in LP_NETS:
        out |= {f"vgg_{n}_train_acc": (_mean_final(res, n, lr, "train_acc"), ".3f"),
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
        out[f"dln_{n}_loss"] = (_mean_final(dln, n, None, "train_loss"), ".4g")
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


# ---- chapter 7: theory --------------------------------------------------------------------------------------------
@passage
def theory_checks(res) -> dict:
    a = res.arrays
    t44 = thm44_vs_vanilla(res)
    worst = np.unravel_index(np.nanargmax(t44["cells"]), t44["cells"].shape)
    share_above = np.mean(a["gamma2_over_sigma2"] > 1, axis=-1)     # [phase, batch size]: gamma^2 / sigma_j^2 > 1
    return {"thm41_checked": (str(a["thm41_printed_violated"].size), ""),
            "thm41_printed_negative": (np.mean(a["thm41_rhs_printed"] < 0), ".0%"),
            "thm44_max_ratio": (a["thm44_max_ratio"], ".2f"),
            "thm44_below": (t44["below"], ".0%"), "thm44_worst_cell": (t44["worst_cell"], ".2f"),
            "thm44_worst_cell_m": (str(int(a["batch_sizes"][worst[1]])), ""),
            "thm44_worst_cell_phase": ("at initialisation" if worst[0] == 0 else "after training", ""),
            "thm44_actual_median": (t44["actual_median"], ".2f"), "thm44_actual_below": (t44["actual_below"], ".0%"),
            "gamma_sigma_above_low": (share_above.min(), ".0%"), "gamma_sigma_above_high": (share_above.max(), ".0%"),
            "gamma_sigma_above_worst": (share_above[worst], ".0%"),
            "scale_invariance_relerr": (np.max(a["lemma45_z_relerr"]), ".1e")}


@passage
def theory_details(res) -> dict:
    """Ranges over batch sizes and phases of the medians ``tables.theory_details`` shows, the median sigma and the
    smallest Hessian term of Thm 4.2."""
    a = res.arrays
    out = {"sigma_median": (np.median(a["sigma"]), ".2f"),
           "thm42_hessian_term_min": (a["thm42_term_hessian"].min(), ".1e")}
    for name, per_cell in (("shrink_median", np.median(a["thm41_shrink"], axis=-1)),
                           ("g_yhat_positive", np.mean(a["g_yhat"] > 0, axis=-1)),
                           ("quad_form_negative", np.mean(a["thm42_lhs"] < 0, axis=-1)),
                           ("top_sv_ones_cos", a["thm44_top_sv_ones_cos"])):
        out |= {f"{name}_low": (per_cell.min(), ".2f"), f"{name}_high": (per_cell.max(), ".2f")}
    return out


@passage
def lemma45(res) -> dict:
    """For how many units the rescaled optimum k W* is closer to the initial weights, and the median saving."""
    a = res.arrays
    return {"lemma45_units_closer": (str(int(np.sum(a["lemma45_unit_reduction"] > 0))), ""),
            "lemma45_units": (str(a["lemma45_unit_reduction"].size), ""),
            "lemma45_saving": (np.median(a["lemma45_unit_reduction"] / a["lemma45_unit_dist"]), ".0%")}


# ---- chapter 8: Bjorck et al. -------------------------------------------------------------------------------------
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


_RATE_TAGS = {0.0001: "small", 0.003: "mid", 0.1: "large"}


def _span(tag, values, spec) -> dict:
    """The lowest and highest of ``values`` as ``{tag}_low`` and ``{tag}_high``."""
    return {f"{tag}_low": (min(values), spec), f"{tag}_high": (max(values), spec)}


def sweep_seeds(res, tag) -> dict:
    """Per network and rate of a learning-rate sweep, over its seeds: how many seeds, how many diverged, how many
    trained (final training accuracy >= SWEEP_FAILED_ACC), and the lowest and highest final test accuracy of the
    seeds that did not diverge (``{tag}_{std|bn}_{small|mid|large}_...``); the number of training steps."""
    out = {f"{tag}_steps": (res.runs[0].config["train"]["steps"], ".0f")}
    for norm, short in (("none", "std"), ("batch", "bn")):
        for lr, rate in _RATE_TAGS.items():
            runs = res.select(norm=norm, lr=lr)
            ok = [r for r in runs if r.status == "ok"]
            test = [final(r, "test_acc") for r in ok]
            key = f"{tag}_{short}_{rate}"
            out |= {f"{key}_seeds": (len(runs), ".0f"), f"{key}_diverged": (len(runs) - len(ok), ".0f"),
                    f"{key}_trained": (sum(final(r, "train_acc") >= SWEEP_FAILED_ACC for r in ok), ".0f")}
            if test:
                out |= _span(f"{key}_test", test, ".2f")
    return out


def _losses(res, norm, lr, step=None) -> list:
    """The training loss of every seed of one arm at ``step`` (None: the final loss of the runs that did not diverge)."""
    runs = res.select(norm=norm, lr=lr)
    if step is None:
        return [final(r, "train_loss") for r in runs if r.status == "ok"]
    return [r.arrays["train_loss"][step] for r in runs if len(r.arrays["train_loss"]) > step]


@passage(per_seed=False)
def resnet56_sweep(res) -> dict:
    """The ResNet-56 learning-rate sweep over its seeds (:func:`sweep_seeds`), and the losses that tell its story:
    the first loss without BN, how late the diverged runs stop, the loss after one step and at the end at the
    smallest rate (both networks), the surviving standard run at lr 0.003, and the variance reaching the last
    recorded layer at step 0 (seed 0). Its numbers are per seed already (counts, ranges over the seeds, seed 0)."""
    diverged = [r.diverged_step for r in res.select(norm="none") if r.status == "diverged"]
    survivors = _losses(res, "none", 0.003)
    run0 = res.select(norm="none", lr=0.1, seed=0)[0]
    return {**sweep_seeds(res, "r56"), **_span("r56_loss0", _losses(res, "none", 0.1, 0), ",.0f"),
            "r56_diverged_by": (max(diverged), ".0f"),
            **_span("r56_std_loss1_small", _losses(res, "none", 0.0001, 1), ".3g"),
            **_span("r56_std_loss_small", _losses(res, "none", 0.0001), ".3g"),
            **_span("r56_bn_loss0_small", _losses(res, "batch", 0.0001, 0), ".2g"),
            **_span("r56_bn_loss_small", _losses(res, "batch", 0.0001), ".2g"),
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
            **_span("r20_bn_first", first["batch"], ".2f"), **_span("r20_std_first", first["none"], ".2f")}


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


# ---- chapter 9: sharpness ---------------------------------------------------------------------------------------
def _over_seeds(res, stats, tag, keys) -> dict:
    """The lowest and highest of ``stats(res, net, seed)[key]`` over an analysis's seeds, per network
    (``{tag}_{std|bn}_{key}_low`` / ``_high``), and the number of seeds (``{tag}_seeds``)."""
    seeds = analysis_seeds(res)
    out = {f"{tag}_seeds": (len(seeds), ".0f")}
    for net, short in (("none", "std"), ("batch", "bn")):
        per_seed = [stats(res, net, seed) for seed in seeds]
        for key, spec in keys:
            out |= _span(f"{tag}_{short}_{key}", [s[key] for s in per_seed], spec)
    return out


@passage
def sharpness_passage(res) -> dict:
    """lambda_max of the standard network on and off its initial plateau (the first measurement with lambda_max
    >= 1 ends it), BN's, and how effective beta compares with |Hg|/|g| before and after."""
    a = res.arrays
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
            "sh_bn_min_first": (bn["min_first"], ",.0f"), "sh_bn_curv_first": (bn["curv_first"], ".3g"),
            **_over_seeds(res, sharpness_stats, "sh", (("late", ".3g"), ("median", ".3g"), ("test_acc", ".2f")))}


@passage
def surface_passage(res) -> dict:
    std, bn = surface_stats(res, "none"), surface_stats(res, "batch")
    return {"sf_bn_centre": (bn["centre"], ".2f"), "sf_std_centre": (std["centre"], ".2f"),
            "sf_bn_within_pct": (100 * bn["within2x"], ".0f"), "sf_std_within_pct": (100 * std["within2x"], ".0f"),
            "sf_bn_edge": (bn["edge"], ".2g"), "sf_std_edge": (std["edge"], ".2g"), "sf_bn_curv": (bn["curv"], ".2g"),
            "sf_std_curv": (std["curv"], ".2g"), "sf_bn_test": (bn["test_acc"], ".2f"),
            "sf_std_test": (std["test_acc"], ".2f"), "sf_bn_eval_max": (bn["slice_eval_max"], ".3g"),
            "sf_bn_train_max": (bn["slice_train_max"], ".2g"), "sf_std_train_max": (std["slice_train_max"], ".2g"),
            **_over_seeds(res, surface_stats, "sf", (("within2x", ".2f"), ("centre", ".2f"), ("test_acc", ".2f"),
                                                    ("slice_eval_max", ".3g"), ("slice_train_max", ".2g")))}


CONTROLS = ("layer", "group", "rescaled")


@passage
def confounders_training(res, lr=0.1) -> dict:
    """The controls' final accuracies (range over the three) against BN's and the standard network's, and the
    inverse of the smallest layer-input variance at initialisation (the rescaling's largest factor)."""
    acc = {n: {key: _mean_final(res, n, lr, key) for key in ("train_acc", "test_acc")}
           for n in ("none", "batch", *CONTROLS)}
    out = {}
    for key in ("train_acc", "test_acc"):
        out |= {f"cf_ctl_{key}_low": (min(acc[n][key] for n in CONTROLS), ".2f"),
                f"cf_ctl_{key}_high": (max(acc[n][key] for n in CONTROLS), ".2f"),
                f"cf_std_{key}": (acc["none"][key], ".2f"), f"cf_bn_{key}": (acc["batch"][key], ".2f")}
    first = min(res.select(norm="none", lr=lr), key=lambda r: r.seed)          # seed 0 (one seed's runs: that seed)
    var0 = first.arrays["act_var"][0].mean(-1)
    return out | {"cf_inv_var0": (1 / var0.min(), ".0e")}


@passage(per_seed=False)
def confounders_failure(res, lr=0.1) -> dict:
    """The controls' seeds apart: LayerNorm's and GroupNorm's mean final accuracies, the fixed rescaling's seeds that
    trained and its worst seed (lowest final training accuracy): the step of its worst loss after the start, that
    loss and the mean loss after it, the median gradient norm at the probes before and after it, and its largest
    effective beta and where."""
    bad, *good = sorted(res.select(norm="rescaled", lr=lr), key=lambda r: final(r, "train_acc"))
    arms = {"layer": res.select(norm="layer", lr=lr), "group": res.select(norm="group", lr=lr), "rs_ok": good,
            "fail": [bad]}
    out = {f"cf_{name}_{key}": (np.mean([final(r, key) for r in runs]), ".2f")
           for name, runs in arms.items() for key in ("train_acc", "test_acc")}
    a = bad.arrays
    peak = 100 + int(np.argmax(a["train_loss"][100:]))       # its worst step once it has left the start
    at, t, gn, beta = a["step"][peak], a["land_step"], a["land_gnorm"], np.nanmax(a["land_beta"], axis=1)
    return out | {"cf_fail_step": (at, ".0f"), "cf_fail_peak": (a["train_loss"][peak], ".2g"),
                  "cf_fail_end": (np.mean(a["train_loss"][peak + 20:]), ".3f"), "cf_fail_beta": (np.nanmax(beta), ".2g"),
                  "cf_fail_gnorm0": (np.median(gn[t < at]), ".2g"), "cf_fail_gnorm1": (np.median(gn[t > at]), ".2g"),
                  "cf_fail_beta_step": (t[np.nanargmax(beta)], ".0f")}


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
        out |= _span(f"cf_rescaled_over_bn_{key}", [per_seed["rescaled", s][key] / per_seed["batch", s][key]
                                                    for s in seeds], ".3g")
    return out | {f"cf_{n}_beta_max": (land[n]["beta_max"], ".2g") for n in land}


__all__ = ["confounders_failure", "moment_ratios", "moment_ratio_seeds", "noisy_bn_training", "noisy_bn_moments", "vgg_ics", "dln_averaged_ics", "dln_summed_ics",
           "dln_summed_ics_seeds", "dln_averaged_ics_seeds",
           "vgg_landscape", "dln_averaged_landscape", "dln_summed_landscape", "lp_vgg_training", "lp_vgg_moments",
           "lp_vgg_landscape", "lp_dln",
           "theory_checks", "theory_details", "lemma45", "vgg_step_size", "resnet56_sweep", "resnet56_step_size",
           "resnet56_depth_profile", "resnet20_sweep", "sharpness_passage", "surface_passage", "confounders_training",
           "confounders_landscape"]
