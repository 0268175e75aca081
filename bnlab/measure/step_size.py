"""Relative loss after one gradient step, as a function of the step size (Bjorck et al. 2018).

At parameters w with gradient g on a batch: L(w - eta g) / L(w) on the same batch for each eta, BatchNorm in
training mode (batch statistics; running statistics restored), parameters restored exactly. Bjorck et al. call a
step "divergent" when this ratio exceeds 10^3 (Bjorck et al. 2018).
"""
from __future__ import annotations

import torch

from ..models import loss_fn
from ..norms import frozen_state

DIVERGENCE = 1e3      # Bjorck et al.'s threshold on the relative loss


@torch.no_grad()
def relative_loss(model, x, y, etas) -> torch.Tensor:
    """L(w - eta g) / L(w) for each eta in ``etas`` [K]; ``p.grad`` must hold g for the batch (x, y).

    Returns float64 [K] on the model's device; a non-finite loss (overflow) gives inf. The model's parameters,
    gradients and running statistics are left as they were.
    """
    params = [p for p in model.parameters() if p.grad is not None]
    w0 = [p.detach().clone() for p in params]
    g0 = [p.grad.detach().clone() for p in params]
    out = []
    with frozen_state(model):
        base = loss_fn(model, model(x), y).double()
        try:
            for eta in torch.as_tensor(etas, dtype=torch.float64).tolist():
                for p, w, g in zip(params, w0, g0):
                    p.copy_(w - eta * g)
                loss = loss_fn(model, model(x), y).double()
                out.append(torch.where(torch.isfinite(loss), loss, torch.full_like(loss, float("inf"))))
        finally:
            for p, w in zip(params, w0):
                p.copy_(w)
    return torch.stack(out) / base


__all__ = ["DIVERGENCE", "relative_loss"]
