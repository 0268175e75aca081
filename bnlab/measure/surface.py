"""The loss surface on a 2-D plane through the weights, with filter-normalised directions (Li et al. 2018).

Two random Gaussian directions d1, d2 with each filter (a conv output channel, or a row of a
linear layer) rescaled to the norm of the same filter of w; BatchNorm parameters and biases get zero direction, as
in Li et al. Then the loss at w + a d1 + b d2 on a grid of (a, b), on a fixed set of images, BatchNorm in
inference mode (running statistics of the trained network) unless asked otherwise.
"""
from __future__ import annotations

import torch

from ..models import loss_fn
from ..norms import frozen_state
from .base import Probe


def filter_normalised_direction(model, generator: torch.Generator) -> list:
    """One random direction, a list of tensors shaped like ``model.parameters()``.

    Weights of dimension >= 2: Gaussian, each filter d[i] scaled to |d[i]| = |w[i]|. Vectors (biases, BN's
    gamma and beta): zero.
    """
    out = []
    for p in model.parameters():
        if p.dim() <= 1:
            out.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
        w_norm = p.detach().flatten(1).norm(dim=1)
        d_norm = d.flatten(1).norm(dim=1)
        out.append(d * (w_norm / d_norm.clamp_min(1e-12)).view(-1, *[1] * (p.dim() - 1)))
    return out


@torch.no_grad()
def loss_on(model, x, y, batch_size: int = 512, train_mode: bool = False) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` on images x [N, ...] in chunks; BN in inference mode unless
    ``train_mode`` (then batch statistics of each chunk, running statistics restored)."""
    was = model.training
    model.train(train_mode)
    total, correct = 0.0, 0
    try:
        with frozen_state(model):
            for i in range(0, x.shape[0], batch_size):
                out = model(x[i:i + batch_size])
                total += float(loss_fn(model, out, y[i:i + batch_size])) * out.shape[0]
                correct += int((out.argmax(1) == y[i:i + batch_size]).sum())
    finally:
        model.train(was)
    return total / x.shape[0], correct / x.shape[0]


@torch.no_grad()
def loss_surface(model, x, y, d1, d2, alphas, betas, batch_size: int = 512, train_mode: bool = False) -> dict:
    """Loss and accuracy at w + a d1 + b d2 for a in ``alphas``, b in ``betas``: float64 [A, B] tensors (CPU).

    The model's parameters are restored exactly afterwards.
    """
    params = list(model.parameters())
    w0 = [p.detach().clone() for p in params]
    loss = torch.empty(len(alphas), len(betas), dtype=torch.float64)
    acc = torch.empty_like(loss)
    try:
        for i, a in enumerate(torch.as_tensor(alphas, dtype=torch.float64).tolist()):
            for j, b in enumerate(torch.as_tensor(betas, dtype=torch.float64).tolist()):
                for p, w, u, v in zip(params, w0, d1, d2):
                    p.copy_(w + a * u + b * v)
                loss[i, j], acc[i, j] = loss_on(model, x, y, batch_size, train_mode)
    finally:
        for p, w in zip(params, w0):
            p.copy_(w)
    return {"loss": loss, "acc": acc}


class ModelHandle(Probe):
    """Measures nothing: keeps the model that :func:`bnlab.train.train` builds, so an analysis can use the
    trained weights. Pass the handle itself in ``extra_probes``; afterwards ``handle.model`` is the network."""

    every = 0

    def __init__(self):
        self.model, self.records = None, {}

    def __call__(self, model):
        self.model = model
        return self

    def arrays(self) -> dict:
        return {}


__all__ = ["filter_normalised_direction", "loss_on", "loss_surface", "ModelHandle"]
