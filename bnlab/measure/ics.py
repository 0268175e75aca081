"""Gradient-based internal covariate shift [S Def. 2.1, Fig. 3].

ICS of layer i at step t: || G - G' || with G the gradient of W_i used by the step, and G' the gradient
of W_i on the same batch once layers 1..i-1 have taken their step (layers i..k still at step t).
Fast path: the updated prefix is run once and shared by all measured layers, and each backward
stops at W_i (``torch.autograd.grad`` on that tensor only). The ICS chapter explains it.
"""
import numpy as np
import torch

from ..models import loss_fn
from ..norms import frozen_state
from .base import Probe


def _block_params(model, i):
    return [p for p in model.blocks[i].parameters()]


@torch.no_grad()
def _swap(model, blocks, source):
    for i in blocks:
        for p, s in zip(_block_params(model, i), source[i]):
            p.copy_(s)


def gradient_ics(model, x, y, old_params, grads, layers) -> dict:
    """G' for each 1-based layer in ``layers``; ``model`` holds W^(t+1), ``old_params[i]`` block i's W^(t).

    Returns {layer: (G, G')}. The model's parameters and running statistics are left as they were.
    """
    layers = sorted(layers)
    new_params = [[p.detach().clone() for p in _block_params(model, i)] for i in range(len(model))]
    out = {}
    with frozen_state(model):
        acts = [x]
        with torch.no_grad():                       # shared prefix at W^(t+1)
            for i in range(layers[-1] - 1):
                acts.append(model.blocks[i](acts[-1]))
        _swap(model, range(layers[0] - 1, len(model)), old_params)
        try:
            for layer in layers:                    # blocks before `layer` are not run again
                w = model.blocks[layer - 1].weight
                loss = loss_fn(model, model(acts[layer - 1], start=layer - 1), y)
                (g_prime,) = torch.autograd.grad(loss, [w])
                out[layer] = (grads[layer], g_prime)
        finally:
            _swap(model, range(len(model)), new_params)
    return out


class ICSProbe(Probe):
    """Records ||G - G'||, cos(G, G') and ||G|| for each measured layer."""

    def __init__(self, layers, every):
        self.layers, self.every = tuple(sorted(layers)), every
        self.records = {"step": [], "l2": [], "cos": [], "gnorm": []}

    def after_backward(self, step, model, x, y, loss):
        self._old = [[p.detach().clone() for p in _block_params(model, i)] for i in range(len(model))]
        self._grads = {k: model.blocks[k - 1].weight.grad.detach().clone() for k in self.layers}

    def after_step(self, step, model, x, y):
        pairs = gradient_ics(model, x, y, self._old, self._grads, self.layers)
        l2, cos, gn = [], [], []
        for k in self.layers:
            g, gp = (t.flatten().double() for t in pairs[k])
            l2.append((g - gp).norm()), gn.append(g.norm())
            cos.append(torch.dot(g, gp) / (g.norm() * gp.norm()).clamp_min(1e-300))
        r = self.records
        r["step"].append(step), r["l2"].append(torch.stack(l2)), r["cos"].append(torch.stack(cos))
        r["gnorm"].append(torch.stack(gn))
        del self._old, self._grads

    def arrays(self) -> dict:
        r = self.records
        cpu = lambda xs: torch.stack(xs).cpu().numpy() if xs else np.zeros((0, len(self.layers)))  # noqa: E731
        return {"ics_layers": np.array(self.layers), "ics_step": np.array(r["step"]),
                "ics_l2": cpu(r["l2"]), "ics_cos": cpu(r["cos"]), "ics_gnorm": cpu(r["gnorm"])}  # [T, layer]
