"""BN's gradient explosion at initialisation (Yang et al. 2019): in a deep fully connected BN network the gradient
with respect to a layer's pre-normalisation output grows geometrically towards the input, by pi / (pi - 1) per
layer in squared norm (the large-batch ReLU limit), because BN's backward pass divides by the batch standard
deviation; without BN (He initialisation) it stays flat.

:func:`preactivation_grad_sq` reads ||dL/dh_l||^2 for every hidden layer l (h_l the linear output, before the
normalisation), :func:`growth_rate` fits the geometric rate, :func:`dynamic_range` is D = log10 of the second
layer's over the (L-2)-th's: the "dynamic range" that Yang et al. saw shrink after one step.
"""
from __future__ import annotations

import numpy as np

from ..models import loss_fn
from ..norms import frozen_state


def preactivation_grad_sq(model, x, y) -> np.ndarray:
    """||dL/dh_l||^2 (summed over the batch and the units) of each hidden block's linear output h_l, l = 1..L (the
    classifier excluded), for the model's loss on (x, y) in training mode; parameters, their gradients and the
    running statistics are left as they were."""
    hidden = list(model.blocks)[:-1]
    saved: list = []

    def keep(_m, _inp, out):
        out.retain_grad()
        saved.append(out)

    hooks = [b.layer.register_forward_hook(keep) for b in hidden]
    grads = {p: p.grad for p in model.parameters()}
    was = model.training
    model.train()
    try:
        with frozen_state(model):
            loss = loss_fn(model, model(x), y)
            loss.backward()
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
        for p, g in grads.items():
            p.grad = g
    return np.asarray([float(h.grad.double().pow(2).sum()) for h in saved])


def growth_rate(values, lo: int, hi: int) -> float:
    """exp(-slope) of the least-squares line through log(values[l]) against l, over layers lo..hi (1-based,
    inclusive): the factor by which the value grows per layer towards the input (> 1: explodes backwards)."""
    v = np.asarray(values, dtype=np.float64)
    ls = np.arange(lo, hi + 1)
    if hi - lo < 1:
        raise ValueError(f"a rate needs two layers or more, got {lo}..{hi}")
    slope = np.polyfit(ls, np.log(v[ls - 1]), 1)[0]
    return float(np.exp(-slope))


def fit_window(depth: int) -> tuple[int, int]:
    """The layers the rate is fitted on: 3..L-3 of L hidden layers, away from the input and the classifier (all of
    them in a net shallower than 8)."""
    return (3, depth - 3) if depth >= 8 else (1, depth)


def dynamic_range(values) -> float:
    """D = log10(||dL/dh_2||^2 / ||dL/dh_{L-2}||^2) (1-based; L hidden layers >= 4)."""
    v = np.asarray(values, dtype=np.float64)
    return float(np.log10(v[1] / v[len(v) - 3]))


__all__ = ["preactivation_grad_sq", "growth_rate", "fit_window", "dynamic_range"]
