"""Scale invariance of the weights in front of a BatchNorm (van Laarhoven 2017; Hoffer et al. 2018; Arora, Li & Lyu
2019; Wan et al. 2021).

A conv filter w_c whose output channel is normalised per channel leaves the loss unchanged when it is scaled, so
<w_c, g_c> = 0 and g(c w) = g(w) / c. Under plain SGD with weight decay lambda the norm then moves by Pythagoras,
||w_{t+1}||^2 = (1 - eta lambda)^2 ||w_t||^2 + eta^2 ||g_t||^2: without decay it only grows, which lowers the
effective learning rate eta / ||w||^2 (the rate tunes itself); with decay it settles where the angular update per
step is Delta* = atan(sqrt(2 eta lambda - eta^2 lambda^2) / (1 - eta lambda)).

Functions here take one layer's weight and gradient tensors (output channels first); :class:`ConvLog` applies them to
every scale-invariant conv layer of a model at every step.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..norms import BatchNorm


def scale_invariant_convs(model) -> list:
    """The conv layers of ``model``'s blocks that feed a per-channel BatchNorm directly: their weights are scale
    invariant filter by filter."""
    return [b.layer for b in model.blocks
            if isinstance(getattr(b, "layer", None), nn.Conv2d) and isinstance(getattr(b, "norm", None),
                                                                              (BatchNorm, nn.BatchNorm2d))]


def max_abs_cos(w: torch.Tensor, g: torch.Tensor) -> float:
    """max over output channels c of |cos(w_c, g_c)| (0 for a filter with a zero gradient)."""
    w, g = w.detach().double().flatten(1), g.detach().double().flatten(1)
    denom = w.norm(dim=1) * g.norm(dim=1)
    cos = (w * g).sum(dim=1) / torch.where(denom > 0, denom, torch.ones_like(denom))
    return float(cos.abs().max())


def pythagoras_ratio(w_sq_before: float, w_sq_after: float, g_sq: float, lr: float, wd: float = 0.0) -> float:
    """(||w_{t+1}||^2 - (1 - eta lambda)^2 ||w_t||^2) / (eta^2 ||g_t||^2): 1 exactly when w_t is orthogonal to g_t
    and the step was plain SGD with weight decay lambda (g_t the loss gradient, without the decay term)."""
    return (w_sq_after - (1 - lr * wd) ** 2 * w_sq_before) / (lr ** 2 * g_sq)


def angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """The angle (radians) between two tensors as vectors, accurate for tiny angles (2 atan2 of the chord and its
    complement between the unit vectors, instead of acos of a cosine near 1)."""
    a, b = a.detach().double().flatten(), b.detach().double().flatten()
    ua, ub = a / a.norm(), b / b.norm()
    return float(2 * torch.atan2((ua - ub).norm(), (ua + ub).norm()))


def equilibrium_angle(lr: float, wd: float) -> float:
    """Delta* = atan(sqrt(2 eta lambda - eta^2 lambda^2) / (1 - eta lambda)): the angular update per step at which
    plain SGD with weight decay holds ||w|| steady (momentum 0; Wan et al. 2021's limit sqrt(2 eta lambda / (1 +
    alpha)) to first order)."""
    el = lr * wd
    return math.atan(math.sqrt(2 * el - el * el) / (1 - el))


class ConvLog:
    """Per step and per scale-invariant conv layer: ||W||^2 before the step, ||g||^2 (the loss gradient), max_c
    |cos(w_c, g_c)|, the Pythagoras ratio and the angle between W_t and W_{t+1}. Call :meth:`before_step` after the
    backward pass and :meth:`after_step` after the optimiser's step; ``lrs`` and ``wds`` are the layers' own."""

    KEYS = ("w_sq", "g_sq", "max_cos", "pythagoras", "angle")

    def __init__(self, layers, lrs, wds):
        self.layers, self.lrs, self.wds = list(layers), list(lrs), list(wds)
        self.records = {k: [] for k in self.KEYS}
        self._before = None

    @torch.no_grad()
    def before_step(self) -> None:
        ws = [m.weight.detach().clone() for m in self.layers]
        gs = [m.weight.grad.detach() for m in self.layers]
        self._before = (ws, [float(w.double().pow(2).sum()) for w in ws], [float(g.double().pow(2).sum()) for g in gs])
        self.records["w_sq"].append(self._before[1])
        self.records["g_sq"].append(self._before[2])
        self.records["max_cos"].append([max_abs_cos(w, g) for w, g in zip(ws, gs)])

    @torch.no_grad()
    def after_step(self) -> None:
        ws, w_sq, g_sq = self._before
        after = [float(m.weight.detach().double().pow(2).sum()) for m in self.layers]
        self.records["pythagoras"].append([pythagoras_ratio(b, a, g, lr, wd) if g > 0 else float("nan")
                                           for b, a, g, lr, wd in zip(w_sq, after, g_sq, self.lrs, self.wds)])
        self.records["angle"].append([angle(w, m.weight) for w, m in zip(ws, self.layers)])
        self._before = None

    def arrays(self) -> dict:
        """Each key as a float64 array [steps, layers]."""
        return {k: np.asarray(v, dtype=np.float64).reshape(len(v), len(self.layers)) for k, v in self.records.items()}


__all__ = ["scale_invariant_convs", "max_abs_cos", "pythagoras_ratio", "angle", "equilibrium_angle", "ConvLog"]
