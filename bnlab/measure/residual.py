"""What BN does to a residual network at initialisation (De & Smith 2020): it divides each residual branch by the
standard deviation of the block's input, which grows along the stage as the skip connections add up, so the
branch is downscaled relative to the skip path by about 1/sqrt(k) at the k-th block and the deep network starts
close to the identity. Without BN the branch is as large as the skip path all the way down.

:func:`branch_skip_ratios` reads, per residual block, the root mean square of the branch (what is added, SkipInit's
alpha included) and of the shortcut it is added to; :func:`downscaling_exponent` fits r_k ~ k^(-p).
"""
from __future__ import annotations

import numpy as np
import torch

from ..models import ResidualBlock
from ..norms import frozen_state


@torch.no_grad()
def branch_skip_ratios(model, x) -> dict:
    """Per residual block k (in order): ``branch_sq`` = E[b(x)^2], ``skip_sq`` = E[s(x)^2] of the shortcut s(x) the
    branch is added to, ``ratio`` = rms(b) / rms(s), on the batch ``x`` in training mode (running statistics
    restored). float64 numpy arrays [blocks]."""
    branch, skip, h = [], [], x
    was = model.training
    model.train()
    try:
        with frozen_state(model):
            for block in model.blocks:
                if isinstance(block, ResidualBlock):
                    b, s = block.branch(h), block.shortcut(h)
                    branch.append(float(b.double().pow(2).mean()))
                    skip.append(float(s.double().pow(2).mean()))
                    h = torch.relu(b + s)
                else:
                    h = block(h)
    finally:
        model.train(was)
    branch, skip = np.asarray(branch), np.asarray(skip)
    return {"branch_sq": branch, "skip_sq": skip, "ratio": np.sqrt(branch / skip)}


def downscaling_exponent(ratios, blocks: int | None = None) -> float:
    """p of the least-squares fit log r_k = c - p log k over the first ``blocks`` blocks (k = 1, 2, ...): 1/2 when
    the branch is downscaled as 1/sqrt(depth), 0 when it is not."""
    r = np.asarray(ratios, dtype=np.float64)[:blocks]
    if len(r) < 2:
        raise ValueError("the exponent needs two blocks or more")
    k = np.arange(1, len(r) + 1)
    return float(-np.polyfit(np.log(k), np.log(r), 1)[0])


__all__ = ["branch_skip_ratios", "downscaling_exponent"]
