"""Checks of BatchNorm's algorithm that the first chapter shows: ours against torch's, gamma/beta
recovering the identity, and the difference between training (Alg. 1) and inference (Alg. 2)."""
from __future__ import annotations

import torch
from torch import nn

from .norms import BatchNorm
from .tables import table


def compare_to_torch(shapes=((128, 16), (64, 8, 8, 8), (5, 3, 4, 4)), steps: int = 3, seed: int = 0) -> list:
    """For each input shape: max |ours - torch| over outputs, input gradients and running statistics
    after ``steps`` training batches, and over eval-mode outputs (float64). Returns rows of dicts."""
    rows = []
    gen = torch.Generator().manual_seed(seed)
    for shape in shapes:
        c = shape[1]
        ours = BatchNorm(c).double()
        ref = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(c).double()
        with torch.no_grad():
            gamma, beta = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5, torch.randn(c, generator=gen,
                                                                                                dtype=torch.float64)
            for m in (ours, ref):
                m.weight.copy_(gamma), m.bias.copy_(beta)
        out_err = grad_err = 0.0
        for _ in range(steps):
            x = torch.randn(shape, generator=gen, dtype=torch.float64) * 3 + 1
            xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
            ya, yb = ours(xa), ref(xb)
            w = torch.randn(ya.shape, generator=gen, dtype=torch.float64)
            (ya * w).sum().backward(), (yb * w).sum().backward()
            out_err = max(out_err, float((ya - yb).detach().abs().max()))
            grad_err = max(grad_err, float((xa.grad - xb.grad).abs().max()),
                           float((ours.weight.grad - ref.weight.grad).abs().max()))
        stats_err = max(float((ours.running_mean - ref.running_mean).abs().max()),
                        float((ours.running_var - ref.running_var).abs().max()))
        ours.eval(), ref.eval()
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            eval_err = float((ours(x) - ref(x)).abs().max())
        gradcheck = torch.autograd.gradcheck(BatchNorm(c).double().train(), (
            torch.randn((4,) + tuple(shape[1:2]) + ((2, 2) if len(shape) == 4 else ()), generator=gen,
                        dtype=torch.float64, requires_grad=True),))
        rows.append({"shape": tuple(shape), "output": out_err, "gradients": grad_err, "running stats": stats_err,
                     "eval output": eval_err, "gradcheck": bool(gradcheck)})
    return rows


def identity_recovery(seed: int = 0) -> float:
    """Max |BN(x) - x| when gamma = batch std and beta = batch mean [IS Sec. 3]: BN can undo itself."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 6, generator=gen, dtype=torch.float64) * 4 - 2
    bn = BatchNorm(6, eps=0.0).double()
    with torch.no_grad():
        bn.weight.copy_(x.std(0, unbiased=False)), bn.bias.copy_(x.mean(0))
    return float((bn(x) - x).detach().abs().max())


def batch_dependence(seed: int = 0) -> dict:
    """How much one example's output moves when its batch companions change, in training and in inference
    mode (after the running statistics have seen 200 batches)."""
    gen = torch.Generator().manual_seed(seed)
    bn = BatchNorm(4).double()
    for _ in range(200):
        bn(torch.randn(32, 4, generator=gen, dtype=torch.float64) * 2 + 1)
    probe = torch.randn(1, 4, generator=gen, dtype=torch.float64) * 2 + 1
    batch_a = torch.cat([probe, torch.randn(31, 4, generator=gen, dtype=torch.float64) * 2 + 1])
    batch_b = torch.cat([probe, torch.randn(31, 4, generator=gen, dtype=torch.float64) * 2 + 1])
    out = {}
    for mode in ("train", "eval"):
        bn.train(mode == "train")
        with torch.no_grad():
            out[mode] = float((bn(batch_a)[0] - bn(batch_b)[0]).abs().max())
    return out


def report(rows, tol: float = 1e-10) -> str:
    """The comparison as a table, errors shown against ``tol`` (round-off differs between machines)."""
    fmt = lambda e: f"< {tol:.0e}" if e < tol else f"{e:.2e} (!)"  # noqa: E731
    keys = ("output", "gradients", "running stats", "eval output")
    body = [[str(r["shape"])] + [fmt(r[k]) for k in keys] + ["passed" if r["gradcheck"] else "FAILED"] for r in rows]
    return table(body, ["input shape", "max |diff| output", "gradients", "running stats", "eval output",
                        "gradcheck"])
