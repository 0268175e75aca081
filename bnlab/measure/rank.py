"""Rank collapse (Daneshmand et al. 2020, 2021): how far apart a batch's representations stay with depth.

Without normalisation the rows of a deep network's representation of a batch collapse towards one direction; BN
keeps them apart. Three readings of one block output H (B examples x features), all in float64:

- :func:`stable_rank`: ||Hc||_F^2 / sigma_1(Hc)^2 of the batch-centred Hc (a continuous rank, 1 when every row
  is the same direction plus a constant; centring removes the shared mean that ReLU outputs all carry);
- :func:`mean_abs_cos`: the mean |cos| between the raw rows h_i, h_j, i != j (1 = collapsed to one direction);
- :func:`orthogonality_gap`: ||H H^T / ||H||_F^2 - I / B||_F, Daneshmand et al. 2021's distance of the batch's
  Gram matrix from that of orthogonal rows of equal norm (0 = orthogonal).
"""
from __future__ import annotations

import torch

from ..norms import frozen_state


def _rows(h: torch.Tensor) -> torch.Tensor:
    """One row per example (feature maps flattened), float64."""
    return h.detach().reshape(h.shape[0], -1).double()


def stable_rank(h: torch.Tensor) -> float:
    """||Hc||_F^2 / sigma_1(Hc)^2 with Hc the batch-centred rows (0 for a batch of identical rows)."""
    hc = _rows(h)
    hc = hc - hc.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(hc)
    return float((s ** 2).sum() / s[0] ** 2) if s[0] > 0 else 0.0


def mean_abs_cos(h: torch.Tensor) -> float:
    """The mean |cos(h_i, h_j)| over pairs of distinct rows (raw, not centred); a zero row counts as cos 0."""
    r = _rows(h)
    n = r.norm(dim=1, keepdim=True)
    u = r / torch.where(n > 0, n, torch.ones_like(n))
    c = (u @ u.T).abs()
    b = r.shape[0]
    return float((c.sum() - c.diagonal().sum()) / (b * (b - 1)))


def orthogonality_gap(h: torch.Tensor) -> float:
    """||H H^T / ||H||_F^2 - I / B||_F (Daneshmand et al. 2021): 0 for orthogonal rows of equal norm, sqrt(1 - 1/B)
    for rows that all point one way."""
    r = _rows(h)
    g = r @ r.T / (r ** 2).sum()
    return float(torch.linalg.matrix_norm(g - torch.eye(r.shape[0], dtype=g.dtype, device=g.device) / r.shape[0]))


@torch.no_grad()
def block_outputs(model, x, blocks: int | None = None) -> list:
    """The output of each of the first ``blocks`` blocks on ``x`` (all by default) in the model's mode; running
    statistics restored afterwards (a measurement, not a training step)."""
    outs, h = [], x
    with frozen_state(model):
        for block in list(model.blocks)[:blocks]:
            h = block(h)
            outs.append(h)
    return outs


def rank_profile(model, x, blocks: int | None = None) -> dict:
    """``srank``, ``cos`` and ``gap`` [blocks]: the three readings at each block output, in training mode (batch
    statistics: the network's forward at initialisation)."""
    was = model.training
    model.train()
    try:
        outs = block_outputs(model, x, blocks)
    finally:
        model.train(was)
    return {"srank": [stable_rank(h) for h in outs], "cos": [mean_abs_cos(h) for h in outs],
            "gap": [orthogonality_gap(h) for h in outs]}


__all__ = ["stable_rank", "mean_abs_cos", "orthogonality_gap", "block_outputs", "rank_profile"]
