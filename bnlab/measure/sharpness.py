"""Sharpness: the largest eigenvalue of the Hessian of the training loss.

At a training step with parameters w, batch (x, y) and gradient g: lambda_max of H = d^2 L / dw^2 on that batch,
by the Lanczos method on Hessian-vector products (double backward), BatchNorm in training mode (batch statistics;
running statistics restored), parameters untouched. Also the curvature along the gradient, g^T H g / |g|^2, and
|H g| / |g|, the limit eta -> 0 of the landscape probe's gradient change / |eta g| ([S Fig. 4c]), so the
effective beta-smoothness can be read against the Hessian. The reference value is 2 / lr: gradient descent on a
quadratic with curvature above 2 / lr diverges along that direction (Cohen et al. 2021, "edge of stability").
"""
from __future__ import annotations

import numpy as np
import torch

from ..models import loss_fn
from ..norms import frozen_state
from .base import Probe


def _dot(a, b) -> torch.Tensor:
    return sum((u.double() * v.double()).sum() for u, v in zip(a, b))


def _norm(a) -> torch.Tensor:
    return torch.sqrt(_dot(a, a))


def lanczos_extremes(matvec, v0, iters: int = 20, tol: float = 1e-3, min_iters: int = 3) -> dict:
    """Extreme eigenvalues of a symmetric operator ``matvec`` (on lists of tensors) by the Lanczos method.

    Builds the Krylov basis from ``v0`` with full re-orthogonalisation; the Ritz values (eigenvalues of the
    small tridiagonal matrix) approach the extreme eigenvalues from inside. Stops when the largest Ritz value
    changes by less than ``tol`` (relative) or after ``iters`` products. Power iteration would find the
    eigenvalue of largest *magnitude*, which for a BN network at initialisation is a large negative one;
    Lanczos gets the largest algebraic eigenvalue from the same products.

    Returns floats "max" (largest Ritz value), "min", "dominant" (largest in magnitude, signed), "residual"
    (|A v - max v| for the Ritz vector v: an error bar on "max"), int "products", and "vector" (v, unit norm).
    """
    q = [t / _norm(v0).to(t.dtype) for t in v0]
    basis, alphas, betas = [q], [], []
    top, n = None, 0
    for n in range(1, iters + 1):
        w = matvec(basis[-1])
        alpha = float(_dot(basis[-1], w))
        alphas.append(alpha)
        for _ in range(2):                                    # full re-orthogonalisation, twice
            for b in basis:
                c = _dot(w, b).to(w[0].dtype)
                w = [wi - c * bi for wi, bi in zip(w, b)]
        beta = float(_norm(w))
        T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            T += torch.diag(off, 1) + torch.diag(off, -1)
        ritz, vecs = torch.linalg.eigh(T)
        new = float(ritz[-1])
        converged = top is not None and n >= min_iters and abs(new - top) <= tol * max(abs(new), 1e-30)
        top = new
        if converged or beta <= 1e-12 * max(abs(float(ritz[0])), abs(new), 1e-30) or n == iters:
            break
        betas.append(beta)
        basis.append([t / beta for t in w])
    y = vecs[:, -1].tolist()
    v = [sum(c * b[i] for c, b in zip(y, basis)) for i in range(len(v0))]
    v = [t / _norm(v).to(t.dtype) for t in v]
    dominant = float(ritz[-1]) if abs(float(ritz[-1])) >= abs(float(ritz[0])) else float(ritz[0])
    return {"max": float(ritz[-1]), "min": float(ritz[0]), "dominant": dominant,
            "residual": abs(beta * float(vecs[-1, -1])), "products": n, "vector": v}


def hessian_top(model, x, y, iters: int = 20, tol: float = 1e-3, v0=None, generator=None) -> dict:
    """lambda_max of the Hessian of ``loss_fn(model(x), y)`` w.r.t. all parameters, on one batch.

    BatchNorm in training mode; running statistics and parameters as before. ``v0``: a starting vector
    (list of tensors shaped like the parameters), else Gaussian from ``generator``. Returns what
    :func:`lanczos_extremes` returns plus "grad_curvature" (g^T H g / |g|^2) and "hg_ratio" (|H g| / |g|).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    with frozen_state(model):
        loss = loss_fn(model, model(x), y)
        grads = torch.autograd.grad(loss, params, create_graph=True)

        def hvp(v):
            return [h.detach() for h in torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)]

        if v0 is None:
            v0 = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]
        res = lanczos_extremes(hvp, v0, iters, tol)
        g = [t.detach() for t in grads]
        hg = hvp(g)
    gn2 = _dot(g, g).clamp_min(1e-300)
    res["grad_curvature"] = float(_dot(g, hg) / gn2)
    res["hg_ratio"] = float(_norm(hg) / gn2.sqrt())
    return res


class SharpnessProbe(Probe):
    """Records lambda_max (and the smallest Ritz value), g^T H g / |g|^2 and |H g| / |g| every ``every`` steps.

    Each measurement starts Lanczos from the previous top eigenvector (warm start), else from a Gaussian vector.

    Pass it to :func:`bnlab.train.train` as ``extra_probes=[lambda model: SharpnessProbe(25)]``.
    """

    def __init__(self, every: int, iters: int = 20, tol: float = 1e-3, seed: int = 0):
        self.every, self.iters, self.tol = every, iters, tol
        self.generator = torch.Generator().manual_seed(seed)
        self._v = None
        self.records = {"step": [], "max": [], "min": [], "dominant": [], "residual": [], "grad_curvature": [],
                        "hg_ratio": [], "products": []}

    def after_backward(self, step, model, x, y, loss):
        res = hessian_top(model, x, y, self.iters, self.tol, self._v, self.generator)
        self._v = res["vector"]
        r = self.records
        r["step"].append(step)
        for k in ("max", "min", "dominant", "residual", "grad_curvature", "hg_ratio", "products"):
            r[k].append(res[k])

    def state(self):
        return {"records": self.records, "v": self._v, "rng": self.generator.get_state()}

    def load_state(self, state):
        self.records, self._v = state["records"], state["v"]
        self.generator.set_state(state["rng"])

    def arrays(self) -> dict:
        r = self.records
        out = {"sharp_step": np.array(r["step"], dtype=np.int64),
               "sharp_products": np.array(r["products"], dtype=np.int64)}
        for k in ("max", "min", "dominant", "residual", "grad_curvature", "hg_ratio"):
            out[f"sharp_{k}"] = np.array(r[k], dtype=np.float64)
        return out


__all__ = ["lanczos_extremes", "hessian_top", "SharpnessProbe"]
