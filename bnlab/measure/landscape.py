"""Loss-landscape probes along the gradient [S Sec. 3.1-3.2, Fig. 4, 10, 11, App. A.2.2].

At a training step with parameters w and gradient g, for each distance eta: loss L(w - eta g), gradient
predictiveness ||grad L(w) - grad L(w - eta g)||, and effective beta-smoothness (max over eta of that
change divided by ||eta g||). Same batch, BatchNorm in training mode, running statistics untouched.
Two back-ends: an in-place loop (parameters restored exactly) and ``torch.func.vmap`` over a probe twin.
"""
import copy

import numpy as np
import torch
from torch.func import functional_call, grad_and_value, vmap

from ..compiling import forward_of
from ..models import loss_fn
from ..norms import frozen_state
from .base import Probe


def etas_for(lr: float, range_x_lr, points: int, log: bool = True) -> torch.Tensor:
    lo, hi = range_x_lr
    if points == 1:
        return torch.tensor([lo * lr], dtype=torch.float64)
    grid = torch.logspace(np.log10(lo), np.log10(hi), points, dtype=torch.float64) if log else \
        torch.linspace(lo, hi, points, dtype=torch.float64)
    return grid * lr


def _loop(model, x, y, params, w0, g0, etas):
    losses, grads = [], []
    forward = forward_of(model)        # the run's compiled forward where it compiles (same parameters, train mode)
    try:
        for eta in etas.tolist():
            with torch.no_grad():
                for p, w, g in zip(params, w0, g0):
                    p.copy_(w - eta * g)
            loss = loss_fn(model, forward(x), y)
            losses.append(loss.detach())
            grads.append([t.detach() for t in torch.autograd.grad(loss, params)])
    finally:
        with torch.no_grad():
            for p, w in zip(params, w0):
                p.copy_(w)
    return torch.stack(losses), grads


def probe_twin(model):
    """A copy whose normalisation layers keep no running statistics, so ``torch.func`` can batch it."""
    twin = copy.deepcopy(model)
    for m in twin.modules():
        if hasattr(m, "running_mean"):
            m.track_running_stats = False
            for name in ("running_mean", "running_var", "running_norm", "num_batches_tracked"):
                if name in m._buffers:
                    m._buffers[name] = None
    return twin


def _vmap(model, x, y, names, w0, g0, etas, chunk_size=None):
    twin = probe_twin(model)

    def loss_at(flat):
        out = functional_call(twin, dict(zip(names, flat)), (x,))
        return loss_fn(twin, out, y)

    stacked = [w[None] - etas.to(w.dtype).view(-1, *[1] * w.dim()).to(w.device) * g[None] for w, g in zip(w0, g0)]
    grads, losses = vmap(grad_and_value(loss_at), chunk_size=chunk_size, randomness="same")(stacked)
    return losses, [[g[k] for g in grads] for k in range(len(etas))]


def probe_along_gradient(model, x, y, etas, backend: str = "loop", chunk_size=None) -> dict:
    """Loss, gradient change and beta at w - eta g for each eta; ``model.grad`` must hold g (same batch).

    Returns tensors on the model's device: ``loss`` [K], ``grad_change`` [K], ``beta`` [K], ``gnorm``.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    names, params = [n for n, _ in named], [p for _, p in named]
    w0 = [p.detach().clone() for p in params]
    g0 = [p.grad.detach().clone() for p in params]
    with frozen_state(model):
        if backend == "loop":
            losses, grads = _loop(model, x, y, params, w0, g0, etas)
        elif backend == "vmap":
            losses, grads = _vmap(model, x, y, names, w0, g0, etas, chunk_size)
        else:
            raise ValueError(f"backend must be 'loop' or 'vmap', got {backend!r}")
    gnorm = torch.sqrt(sum((g.double() ** 2).sum() for g in g0))
    change = torch.stack([torch.sqrt(sum(((a.double() - b.double()) ** 2).sum() for a, b in zip(gk, g0)))
                          for gk in grads])
    etas_d = etas.to(change.device)
    return {"loss": losses.double(), "grad_change": change, "beta": change / (etas_d * gnorm).clamp_min(1e-300),
            "gnorm": gnorm}


def weight_norms(model) -> torch.Tensor:
    """The l2 norm of each block's weight (``block.weight``), in block order: what a rescaling of the weights
    changes, so that beta can be read against it (beta * ||w||^2 is unchanged by w -> c w in a BN network)."""
    return torch.stack([b.weight.detach().double().norm() for b in model.blocks])


class LandscapeProbe(Probe):
    """Records, per probed step, the loss and gradient change at each eta and the effective beta, with the gradient's
    norm and each block's weight norm (so distances can be read relative to the weights: eta ||g|| / ||w||)."""

    def __init__(self, lr, range_x_lr, points, log, every, backend="loop"):
        self.etas, self.every, self.backend = etas_for(lr, range_x_lr, points, log), every, backend
        self.records = {"step": [], "loss0": [], "loss": [], "change": [], "beta": [], "gnorm": [], "wnorm": []}

    def after_backward(self, step, model, x, y, loss):
        res = probe_along_gradient(model, x, y, self.etas, self.backend)
        r = self.records
        r["step"].append(step), r["loss0"].append(loss.detach().double()), r["loss"].append(res["loss"])
        r["change"].append(res["grad_change"]), r["beta"].append(res["beta"])
        r["gnorm"].append(res["gnorm"]), r["wnorm"].append(weight_norms(model))

    def arrays(self) -> dict:
        r, k = self.records, len(self.etas)
        cpu = lambda xs, shape: torch.stack(xs).cpu().numpy() if xs else np.zeros(shape)  # noqa: E731
        return {"land_eta": self.etas.numpy(), "land_step": np.array(r["step"]),
                "land_loss0": cpu(r["loss0"], (0,)), "land_loss": cpu(r["loss"], (0, k)),      # [T], [T, K]
                "land_grad_change": cpu(r["change"], (0, k)), "land_beta": cpu(r["beta"], (0, k)),
                "land_gnorm": cpu(r["gnorm"], (0,)), "land_wnorm": cpu(r["wnorm"], (0, 0))}   # [T], [T, blocks]
