"""The per-seed measures behind the registered claims (``bnlab.claims``): each returns ``(effect, holds)`` for one
seed (``seed`` None for an analysis that is one computation), with its criterion in the docstring and the code."""
from __future__ import annotations

import numpy as np

from .statistics import (SWEEP_FAILED_ACC, SWEEP_MARGIN, final, ics_stats, landscape_stats, moment_changes,
                         sharpness_stats,
                         step_size_stats, surface_stats, sweep, thm44_vs_vanilla)


def _finals(result, norm, lr, seed, key):
    runs = result.select(norm=norm, lr=lr, seed=seed)
    return final(runs[0], key) if runs else float("nan")


def better(a, b, lr, key="train_acc", margin=0.01):
    """Effect: final ``key`` of network a minus b; holds when a is ahead by more than ``margin`` (NaN: diverged,
    counts as behind)."""
    def measure(result, seed):
        va, vb = _finals(result, a, lr, seed, key), _finals(result, b, lr, seed, key)
        effect = va - vb
        return effect, bool(np.isfinite(va) and (not np.isfinite(vb) or effect > margin))
    return measure


def within(a, b, lr, key="train_acc", tol=0.02):
    """Effect: final ``key`` of a minus b; holds when |a - b| <= ``tol``."""
    def measure(result, seed):
        effect = _finals(result, a, lr, seed, key) - _finals(result, b, lr, seed, key)
        return effect, bool(np.isfinite(effect) and abs(effect) <= tol)
    return measure


def lower_loss(a, b, lr):
    """Effect: final training loss of b over a's; holds when a's is lower (ratio > 1)."""
    def measure(result, seed):
        la, lb = _finals(result, a, lr, seed, "train_loss"), _finals(result, b, lr, seed, "train_loss")
        ratio = lb / la if la > 0 else float("nan")
        return ratio, bool(np.isfinite(ratio) and ratio > 1)
    return measure


def fails(norm, lr, below=SWEEP_FAILED_ACC):
    """Effect: final training accuracy (0 when the run diverged); holds when it stays below ``below``."""
    def measure(result, seed):
        runs = result.select(norm=norm, lr=lr, seed=seed)
        acc = 0.0 if runs[0].status == "diverged" else final(runs[0], "train_acc")
        return acc, bool(acc < below)
    return measure


def smoother(key, lr, smooth="batch", rough="none", min_ratio=2.0, steps=None):
    """Effect: the rough network's median ``key`` (landscape_stats) over the smooth one's; holds when >= min_ratio."""
    def measure(result, seed):
        a = landscape_stats(result, smooth, lr, seed, steps)[key]
        b = landscape_stats(result, rough, lr, seed, steps)[key]
        ratio = b / a if a > 0 else float("inf")
        return ratio, bool(ratio >= min_ratio)
    return measure


def ics_similar_or_larger(lr, min_ratio=0.5):
    """Effect: the smallest, over the measured layers, of BN's median ||G - G'|| over the standard network's; holds
    when it is >= ``min_ratio`` ("similar or larger") at every layer."""
    def measure(result, seed):
        bn, std = ics_stats(result, "batch", lr, seed), ics_stats(result, "none", lr, seed)
        ratio = float(np.min(bn["l2"] / std["l2"]))
        return ratio, bool(ratio >= min_ratio)
    return measure


def dln_ics_contrast(lr, bn_below=0.5, std_above=0.9):
    """Effect: BN's median cos(G, G') (the largest over layers); holds when it is < ``bn_below`` (nearly
    uncorrelated) at every layer while the standard network's is > ``std_above`` (almost no ICS) at every layer."""
    def measure(result, seed):
        bn, std = ics_stats(result, "batch", lr, seed), ics_stats(result, "none", lr, seed)
        return float(np.max(bn["cos"])), bool(np.all(bn["cos"] < bn_below) and np.all(std["cos"] > std_above))
    return measure


def less_stable(a, b, lr, layers):
    """Effect: the smallest, over ``layers``, of network a's mean relative shift of its layer inputs' means per probe
    interval (|change of mean| / std, the same step gap for both) over network b's; holds when it is > 1 at every
    layer (a's inputs move more)."""
    def measure(result, seed):
        ra, rb = result.select(norm=a, lr=lr, seed=seed), result.select(norm=b, lr=lr, seed=seed)
        ratios = [float(np.nanmean(moment_changes(ra, k)["rel_d_mean"]) / np.nanmean(moment_changes(rb, k)["rel_d_mean"]))
                  for k in layers]
        return min(ratios), bool(min(ratios) > 1)
    return measure


def close_loss(a, b, lr, tol=0.1):
    """Effect: final training loss of a over b's; holds when it is within ``tol`` (relative) of 1."""
    def measure(result, seed):
        la, lb = _finals(result, a, lr, seed, "train_loss"), _finals(result, b, lr, seed, "train_loss")
        ratio = la / lb if lb > 0 else float("nan")
        return ratio, bool(np.isfinite(ratio) and abs(ratio - 1) <= tol)
    return measure


def more_than_rescaling(lr):
    """Effect: the fixed-rescaling network's median max beta over BN's; holds when both its beta and its gradient
    change are larger than BN's."""
    def measure(result, seed):
        bn, rs = landscape_stats(result, "batch", lr, seed), landscape_stats(result, "rescaled", lr, seed)
        return rs["beta"] / bn["beta"], bool(rs["beta"] > bn["beta"] and rs["grad_change"] > bn["grad_change"])
    return measure


def theory_error(key, tol):
    def measure(result, seed):
        err = float(np.max(result.arrays[key]))
        return err, bool(err < tol)
    return measure


def thm44_bn_below_vanilla(result, seed):
    """Effect: the median over unit-batches of BN's worst-case weight gradient over the vanilla network's; holds
    when the median is below 1 in every (phase, batch size) cell."""
    t = thm44_vs_vanilla(result)
    return t["median"], bool(np.all(t["cells"] < 1))


def printed_thm41_fails(result, seed):
    n = int(result.arrays["thm41_printed_violations"])
    return n, bool(n > 0)


def step_size_onset(first):
    """Effect: the standard network's smallest step size with relative loss > 10^3 (median over mini-batches);
    holds within a decade of 1e-3."""
    def measure(result, seed):
        onset = step_size_stats(result, "none", first)["onset"]
        return onset, bool(1e-4 <= onset <= 1e-2)
    return measure


def step_size_range(first):
    """Effect: BN's largest loss-lowering step size over the standard network's; holds when that ratio and the
    ratio of the divergence onsets are both >= 100 (no divergence in the grid counts as beyond it)."""
    def measure(result, seed):
        std, bn = step_size_stats(result, "none", first), step_size_stats(result, "batch", first)
        ratio = bn["decreasing"] / std["decreasing"] if std["decreasing"] > 0 else float("inf")
        return ratio, bool(bn["decreasing"] >= 100 * std["decreasing"] and bn["onset"] >= 100 * std["onset"])
    return measure


def sweep_same_at_smallest(result, seed):
    std, bn = sweep(result, "none", seed), sweep(result, "batch", seed)
    lo = min(std)
    gap = bn[lo][1] - std[lo][1]
    learned = min(bn[lo][0], std[lo][0]) >= SWEEP_FAILED_ACC
    return gap, bool(np.isfinite(gap) and abs(gap) <= 0.05 and learned)


def sweep_bn_best_at_larger(result, seed):
    std, bn = sweep(result, "none", seed), sweep(result, "batch", seed)
    best = lambda d: max(d, key=lambda lr: -1.0 if not np.isfinite(d[lr][1]) else d[lr][1])  # noqa: E731
    b_bn, b_std = best(bn), best(std)
    margin = bn[b_bn][1] - std[b_std][1]
    return margin, bool(b_bn > min(bn) and margin > SWEEP_MARGIN)


def sharpness_smaller(result, seed):
    std, bn = sharpness_stats(result, "none", seed), sharpness_stats(result, "batch", seed)
    return std["median"] / bn["median"], bool(bn["median"] < std["median"])


def edge_of_stability(net):
    def measure(result, seed):
        s = sharpness_stats(result, net, seed)
        ratio = s["late"] / (2 / float(result.arrays["lr"]))
        return ratio, bool(0.5 <= ratio <= 2.0)
    return measure


def wider_basin(result, seed):
    std, bn = surface_stats(result, "none", seed), surface_stats(result, "batch", seed)
    return bn["within2x"] - std["within2x"], bool(bn["within2x"] > std["within2x"])
