"""The statistics behind the chapters' tables and claims: numbers from results, no formatting.

Medians and means over steps and seeds, per network; ``bnlab.tables`` formats them, ``bnlab.claims`` judges
them against fixed criteria.
"""
from __future__ import annotations

import warnings

import numpy as np

from .measure.step_size import DIVERGENCE


def nan_safe(fn, a, *args, **kw):
    """``fn`` (a NaN-aware numpy reduction) without the warning an all-NaN slice raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(a, *args, **kw)


def final(run, key: str, frac: float = 0.1) -> float:
    """Mean of the last ``frac`` of a curve (the final value for evaluation curves); NaN if diverged."""
    a = np.asarray(run.arrays.get(key, []), dtype=np.float64)
    if not len(a) or run.status != "ok":
        return float("nan")
    if key == "test_acc":
        return float(a[-1])
    n = max(1, int(len(a) * frac))
    return float(nan_safe(np.nanmean, a[-n:]))


def groups(result):
    """(norm, lr, runs) for each network and learning rate, in registry order."""
    seen = []
    for r in result.runs:
        if (r.norm, r.lr) not in seen:
            seen.append((r.norm, r.lr))
    return [(n, lr, result.select(norm=n, lr=lr)) for n, lr in seen]


def stack(runs, key) -> np.ndarray:
    """Arrays of several seeds stacked (shorter ones padded with NaN)."""
    arrs = [np.asarray(r.arrays[key], dtype=np.float64) for r in runs]
    n = max(a.shape[0] for a in arrs)
    out = np.full((len(arrs), n) + arrs[0].shape[1:], np.nan)
    for i, a in enumerate(arrs):
        out[i, :a.shape[0]] = a
    return out


def layer_index(run, layer) -> int:
    """Where ``layer`` sits among the run's recorded activation layers (a clear error if it was not recorded)."""
    layers = list(run.arrays["act_layers"])
    if layer not in layers:
        raise ValueError(f"layer {layer} was not recorded; recorded layers: {layers}")
    return layers.index(layer)


def moment_changes(runs, layer):
    """|mean_{t+1} - mean_t|, |var_{t+1} - var_t| (per probe interval) and drift from step 0, averaged over
    units; arrays [seed, T-1] and [seed, T]. The ``rel_`` entries are the same changes relative to each unit's own
    scale, so networks whose activations differ in size compare fairly: |mean_{t+1} - mean_t| / std_t and
    |std_{t+1} - std_t| / std_t, per probe interval (the same step gap for every network)."""
    li = layer_index(runs[0], layer)
    mean, var = stack(runs, "act_mean")[:, :, li, :], stack(runs, "act_var")[:, :, li, :]
    std = np.sqrt(np.maximum(var, 1e-300))
    return {"d_mean": np.abs(np.diff(mean, axis=1)).mean(-1), "d_var": np.abs(np.diff(var, axis=1)).mean(-1),
            "drift_mean": np.abs(mean - mean[:, :1]).mean(-1), "drift_var": np.abs(var - var[:, :1]).mean(-1),
            "rel_d_mean": (np.abs(np.diff(mean, axis=1)) / std[:, :-1]).mean(-1),
            "rel_d_std": (np.abs(np.diff(std, axis=1)) / std[:, :-1]).mean(-1)}


# [ours] the standard VGG's initial plateau at cpu scale: its training loss stays near ln 10 for about its first 200
# steps, where every network's landscape is flat; "early in training" claims are tested after it (bnlab.claims.EARLY)
PLATEAU = (0, 199)


def divergence_onset(eta: np.ndarray, rel: np.ndarray, threshold: float = DIVERGENCE) -> np.ndarray:
    """Per row of ``rel`` [T, K]: the smallest eta whose relative loss exceeds ``threshold`` (inf if none)."""
    above = rel > threshold
    return np.where(above.any(1), eta[np.argmax(above, axis=1)], np.inf)


def largest_decreasing(eta: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Per row: the largest eta up to which every step size lowers the loss (relative loss < 1); 0 if none."""
    below = rel < 1
    n_ok = np.argmin(np.concatenate([below, np.zeros((len(rel), 1), bool)], 1), axis=1)   # first failure
    return np.where(n_ok > 0, eta[np.maximum(n_ok - 1, 0)], 0.0)


def ics_stats(result, norm, lr, seed=None):
    """Median over steps and seeds (or one ``seed``) of ||G - G'|| and cos(G, G') per measured layer."""
    runs = result.select(norm=norm, lr=lr, seed=seed)
    l2 = np.concatenate([r.arrays["ics_l2"] for r in runs])
    cos = np.concatenate([r.arrays["ics_cos"] for r in runs])
    rel = np.concatenate([r.arrays["ics_l2"] / np.maximum(r.arrays["ics_gnorm"], 1e-300) for r in runs])
    return {"layers": list(runs[0].arrays["ics_layers"]), "l2": nan_safe(np.nanmedian, l2, axis=0),
            "cos": nan_safe(np.nanmedian, cos, axis=0), "rel": nan_safe(np.nanmedian, rel, axis=0)}


def landscape_stats(result, norm, lr=None, seed=None, steps=None):
    """Medians over probed steps (and seeds, or one ``seed``) of loss spread, max gradient change and max beta;
    ``steps`` = (first, last): only the probes in that range of training steps."""
    runs = result.select(norm=norm, lr=lr, seed=seed)

    def probed(r, key):
        a = r.arrays[key]
        if steps is None:
            return a
        at = r.arrays["land_step"]
        return a[(at >= steps[0]) & (at <= steps[1])]
    loss = np.concatenate([probed(r, "land_loss") for r in runs])
    change = np.concatenate([probed(r, "land_grad_change") for r in runs])
    beta = np.concatenate([probed(r, "land_beta") for r in runs])
    keys = ("loss_spread", "grad_change", "beta", "beta_max", "beta_scaled", "wnorm", "rel_step")
    if not len(loss):                                  # no probe in ``steps`` (a short run)
        return dict.fromkeys(keys, float("nan"))
    spread = nan_safe(np.nanmax, loss, axis=1) - nan_safe(np.nanmin, loss, axis=1)
    beta_top = nan_safe(np.nanmax, beta, axis=1)
    out = {"loss_spread": float(nan_safe(np.nanmedian, spread)),
           "grad_change": float(nan_safe(np.nanmedian, nan_safe(np.nanmax, change, axis=1))),
           "beta": float(nan_safe(np.nanmedian, beta_top)), "beta_max": float(nan_safe(np.nanmax, beta))}
    if all("land_wnorm" in r.arrays for r in runs):
        # what rescaling the weights cannot fake: beta * ||w||^2 is the same for w and c w in a network whose loss
        # is scale-invariant (BN); and the training step's length relative to the weights, lr ||g|| / ||w||
        w2 = np.concatenate([(probed(r, "land_wnorm") ** 2).sum(1) for r in runs])
        step = np.concatenate([r.lr * probed(r, "land_gnorm") for r in runs])
        out |= {"beta_scaled": float(nan_safe(np.nanmedian, beta_top * w2)),
                "wnorm": float(nan_safe(np.nanmedian, np.sqrt(w2))),
                "rel_step": float(nan_safe(np.nanmedian, step / np.sqrt(w2)))}
    else:
        out |= dict.fromkeys(keys[4:], float("nan"))
    return out


def moment_stats(result, layer, norm, lr=None) -> dict:
    """Mean over steps, units and seeds of the step-to-step change of the mean and variance of inputs (and of
    the relative changes, ``rel_d_mean`` and ``rel_d_std``)."""
    m = moment_changes(result.select(norm=norm, lr=lr), layer)
    return {k: float(nan_safe(np.nanmean, v)) for k, v in m.items()}


def thm44_vs_vanilla(result) -> dict:
    """Theorem 4.4's comparison at the same weights: BN's worst-case squared weight gradient (lambda^2 times the
    Thm 4.1 right-hand side) over the vanilla network's (lambda^2 |dL/dy_j|^2), per unit; medians per (phase, batch
    size) cell and overall, the share of units below 1, and the same for the actual gradients."""
    a = result.arrays
    with np.errstate(divide="ignore", invalid="ignore"):
        worst = a["thm44_bound"] / a["thm44_vanilla"]
        actual = a["thm44_actual"] / a["thm44_vanilla_actual"]
    cells = nan_safe(np.nanmedian, worst, axis=-1)              # [phase, batch size]
    return {"median": float(nan_safe(np.nanmedian, worst)), "below": float(np.mean(worst < 1)),
            "cells": cells, "worst_cell": float(np.nanmax(cells)),
            "actual_median": float(nan_safe(np.nanmedian, actual)), "actual_below": float(np.mean(actual < 1))}


def step_size_stats(result, net: str, first: int | None = None) -> dict:
    """Bjorck et al.'s test for one network, medians over the measured mini-batches (or over the ``first`` ones;
    ``first=1`` is the network at initialisation): the smallest step size whose relative loss exceeds the
    threshold (inf: none in the grid) and the same as a relative distance eta |g| / |w|, the largest step size up
    to which every step lowers the loss, the best step size, the gradient norm, and the relative loss at the
    network's own learning rate."""
    a = result.arrays
    eta = a["eta"]
    rows = slice(0, first)
    rel = np.where(a[f"{net}/nonfinite"], np.inf, a[f"{net}/rel_loss"])[rows]
    gnorm, wnorm = a[f"{net}/gnorm"][rows], a[f"{net}/wnorm"][rows]
    onset = divergence_onset(eta, rel, float(a["threshold"]))
    lr = float(a[f"{net}/lr"])
    at_lr = rel[:, int(np.argmin(np.abs(np.log(eta) - np.log(lr))))]
    return {"lr": lr, "batches": len(rel), "diverging": int(np.isfinite(onset).sum()),
            "gnorm": float(np.median(gnorm)), "onset_dist": float(np.median(onset * gnorm / wnorm)),
            "onset": float(np.median(onset)), "decreasing": float(np.median(largest_decreasing(eta, rel))),
            "best": float(np.median(eta[np.argmin(rel, 1)])), "min_rel": float(np.median(rel.min(1))),
            "at_lr": float(np.median(at_lr)), "eta_max": float(eta[-1])}


def net_prefix(net: str, seed, seeds) -> str:
    """Where an analysis that trains once per seed (sharpness, the 2-D surface) keeps one network's arrays: the
    first seed's under ``net/`` (what the figures draw), a later seed s's under ``net/seed<s>/``."""
    return net if seed is None or seed == seeds[0] else f"{net}/seed{seed}"


def analysis_seeds(result) -> list:
    """The seeds an analysis trained its networks with (its ``seeds`` array); [None] for one computation."""
    seeds = result.arrays.get("seeds")
    return [None] if seeds is None else [int(x) for x in np.atleast_1d(seeds)]


def _prefix(result, net, seed) -> str:
    return net_prefix(net, seed, analysis_seeds(result))


def sharpness_stats(result, net: str, seed=None) -> dict:
    """lambda_max, the smallest Ritz value and g^T H g / |g|^2 at step 0; lambda_max's median over the second half
    of the measurements and overall, its largest value, how often it exceeds 2/lr; medians of effective beta
    (max over eta), |Hg|/|g|, g^T H g / |g|^2 and the smallest Ritz value; the final test accuracy. ``seed``:
    which training run (None: the first)."""
    a, p = result.arrays, _prefix(result, net, seed)
    lam = a[f"{p}/sharp_max"]
    half = lam[len(lam) // 2:]
    beta = nan_safe(np.nanmax, a[f"{p}/land_beta"], axis=1)
    acc = a[f"{p}/test_acc"]
    return {"first": float(lam[0]), "min_first": float(a[f"{p}/sharp_min"][0]),
            "curv_first": float(a[f"{p}/sharp_grad_curvature"][0]),
            "median": float(np.median(lam)), "late": float(np.median(half)),
            "largest": float(lam.max()), "above": float(np.mean(lam > 2 / float(a["lr"]))),
            "beta": float(nan_safe(np.nanmedian, beta)), "hg": float(np.median(a[f"{p}/sharp_hg_ratio"])),
            "curv": float(np.median(a[f"{p}/sharp_grad_curvature"])),
            "min": float(np.median(a[f"{p}/sharp_min"])), "test_acc": float(acc[-1]) if len(acc) else float("nan")}


def surface_stats(result, net: str, seed=None) -> dict:
    """The 2-D surface of one network: loss and accuracy at the centre, the share of the plotted square where
    the loss stays below twice the centre's and below chance level (ln 10), the median loss on the square's edge,
    the finite-difference curvature at the centre (mean of the a and b directions), and the largest loss on the
    a-axis in inference mode and in training mode. ``seed``: which training run (None: the first)."""
    a, net = result.arrays, _prefix(result, net, seed)
    L, c = a[f"{net}/loss"], a["coords"]
    mid, h = len(c) // 2, float(c[1] - c[0])
    l0 = float(L[mid, mid])
    edge = np.concatenate([L[0], L[-1], L[1:-1, 0], L[1:-1, -1]])
    curv = ((L[mid + 1, mid] + L[mid - 1, mid] - 2 * l0) + (L[mid, mid + 1] + L[mid, mid - 1] - 2 * l0)) / (2 * h * h)
    return {"centre": l0, "acc": float(a[f"{net}/acc"][mid, mid]), "test_acc": float(a[f"{net}/test_acc"]),
            "within2x": float(np.mean(L < 2 * l0)), "below_chance": float(np.mean(L < np.log(10))),
            "edge": float(np.median(edge)), "curv": float(curv), "slice_eval_max": float(L[:, mid].max()),
            "slice_train_max": float(a[f"{net}/slice_train_mode"].max())}


ANALYSIS_NETS = ("none", "batch")


SWEEP_FAILED_ACC = 0.2      # [ours] a run "fails" when it diverges or its final training accuracy stays below this


SWEEP_MARGIN = 0.01         # [ours] "better" test accuracy: by more than this (one seed: differences below are noise)


def sweep(result, norm, seed=None):
    """{lr: (final train acc, final test acc, diverged)} for one network: means over the seeds that did not diverge;
    "diverged" only if every seed did."""
    out = {}
    for lr in sorted({r.lr for r in result.select(norm=norm)}):
        runs = result.select(norm=norm, lr=lr, seed=seed)
        ok = [r for r in runs if r.status == "ok"]
        out[lr] = (float(nan_safe(np.nanmean, [final(r, "train_acc") for r in ok])) if ok else float("nan"),
                   float(nan_safe(np.nanmean, [final(r, "test_acc") for r in ok])) if ok else float("nan"),
                   not ok)
    return out
