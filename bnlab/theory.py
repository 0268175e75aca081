"""Numerical checks of Santurkar et al.'s Section 4 (Thms 4.1, 4.2, 4.4, Lemma 4.5) on real data, in float64.

Why: the theorems are statements about one BatchNorm layer with the rest of the network held fixed. Checking
them on a real Fashion-MNIST batch and a real (briefly trained) network shows which statements are identities,
which printed forms fail (the 1/sqrt(m) erratum of Thm 4.1) and how large each term
is in practice. The theory chapter explains the results.

Setup (the paper's Fig. 7): x (1x32x32 -> 1024) -> y = x W^T (d units, no bias) ->
BN without eps (sigma = biased batch std) -> z = gamma * yhat + beta -> ReLU -> Linear -> cross-entropy (mean
over the batch). The vanilla network drops the BN step and shares every other parameter. As in the paper,
W_{.j} is unit j's weight vector (row j of ``Params.W``), g = dL^/dz_j and H_jj = d^2 L^/dz_j dz_j; every
"grad_{y_j} L" of the statements is read as g (the paper's "identical loss" convention, Sec. 4).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from .config import DataConfig
from .scales import Scale
from .data import load_images
from .recipes import Analysis
from .train import progress_bar

F64 = torch.float64

LEMMA45_SCALES = (1e-3, 0.5, 2.0, 1e3)   # factors a in BN((aW)x) = BN(Wx)

# What run_checks returns. P = 2 phases (init, trained), M batch sizes, U checked units, d hidden units,
# A = len(LEMMA45_SCALES), S training steps. j is a unit, g = dL^/dz_j, v = grad_{y_j} L^, yhat = yhat_j.
KEYS = {
    # setup
    "batch_sizes": "[M] int: the batch sizes m of the checked batches",
    "phase_steps": "[P] int: SGD steps before each phase (0 = initialisation)",
    "units": "[U] int: indices of the checked units",
    "hidden": "0-d int: d, units in the BN layer",
    "lr": "0-d: SGD learning rate of the short training",
    "train_batch": "0-d int: training batch size",
    "train_loss": "[S]: training loss of the BN network per step",
    "sigma": "[P,M,U]: sigma_j, biased batch std of y_j (no eps)",
    "gamma": "[P,M,U]: gamma_j",
    "gamma2_over_sigma2": "[P,M,U]: gamma_j^2 / sigma_j^2",
    "g_sq": "[P,M,U]: |g|^2",
    "g_mean_term": "[P,M,U]: (1/m) <1, g>^2",
    "g_yhat": "[P,M,U]: <g, yhat_j> (its sign matters for Thm 4.2)",
    # Theorem 4.1
    "thm41_lhs": "[P,M,U]: |grad_{y_j} L^|^2 (autograd)",
    "thm41_rhs": "[P,M,U]: corrected RHS (gamma^2/sigma^2)(|g|^2 - <1,g>^2/m - <g,yhat>^2/m)",
    "thm41_rhs_printed": "[P,M,U]: printed RHS, 1/sqrt(m) on the last term",
    "thm41_relerr": "[P,M,U]: |lhs - rhs| / max(|lhs|, |rhs|)",
    "thm41_printed_violated": "[P,M,U] bool: lhs > printed RHS (the printed inequality fails)",
    "thm41_shrink": "[P,M,U]: |grad_{y_j} L^|^2 / |g|^2 (BN's total effect on the gradient norm)",
    "thm41_projection": "[P,M,U]: lhs / ((gamma^2/sigma^2) |g|^2), the additive part alone (<= 1)",
    "thm41_factc2_relerr": "[P,M,U]: autograd v vs (gamma/sigma) P g of Fact C.2 / eq. (47), relative",
    # Theorem 4.2
    "thm42_lhs": "[P,M,U]: v^T (d^2 L^/dy_j dy_j) v (double backward w.r.t. y_j)",
    "thm42_rhs": "[P,M,U]: (gamma^2/sigma^2) v^T H_jj v - gamma/(m sigma^2) <g, yhat> |v|^2",
    "thm42_term_hessian": "[P,M,U]: (gamma^2/sigma^2) v^T H_jj v",
    "thm42_term_sep": "[P,M,U]: gamma/(m sigma^2) <g, yhat> |v|^2 (subtracted)",
    "thm42_relerr": "[P,M,U]: |lhs - rhs| / max(|lhs|, |rhs|, |term_hessian| + |term_sep|)",
    "thm42_vHv": "[P,M,U]: v^T H_jj v, H_jj = d^2 L^/dz_j dz_j (>= 0 when H_jj is PSD)",
    "thm42_gHg": "[P,M,U]: g^T H_jj g",
    # Theorem 4.4
    "thm44_lambda": "[P,M]: lambda = spectral norm of the input batch X [m, 1024]",
    "thm44_top_sv_ones_cos": "[P,M]: |cos| between X's top left singular vector and the all-ones vector",
    "thm44_actual": "[P,M,U]: |grad_{W_.j} L^|^2 = |X^T v|^2",
    "thm44_autograd_relerr": "[P,M,U]: |X^T v|^2 vs autograd's |dL^/dW_.j|^2, relative",
    "thm44_bound": "[P,M,U]: lambda^2 * corrected Thm 4.1 RHS (the max over |X|_2 <= lambda, v fixed)",
    "thm44_bound_printed": "[P,M,U]: lambda^2 * printed Thm 4.1 RHS",
    "thm44_vanilla_convention": "[P,M,U]: lambda^2 |g|^2 (vanilla g_j under the identical-loss reading)",
    "thm44_vanilla": "[P,M,U]: lambda^2 |dL/dy_j|^2 of the vanilla network at its own y",
    "thm44_vanilla_actual": "[P,M,U]: |X^T dL/dy_j|^2, the vanilla network's actual weight gradient",
    # Observation 4.3
    "obs43_z_relerr": "[P,M]: gamma = sigma, beta = mu gives z = y (max relative difference)",
    "obs43_g_relerr": "[P,M]: ... and the BN network's g equals the vanilla gradient (max relative difference)",
    # Lemma 4.5
    "lemma45_scales": "[A]: factors a",
    "lemma45_z_relerr": "[A]: BN((aW)x) vs BN(Wx), trained network, largest batch",
    "lemma45_loss_relerr": "[A]: L^(aW) vs L^(W)",
    "lemma45_grad_relerr": "[A]: a * dL^/dW at aW vs dL^/dW at W",
    "lemma45_unit_k": "[d]: k_j = <W*_j, W0_j>/|W*_j|^2, W0 = initial, W* = trained weights of unit j",
    "lemma45_unit_inner": "[d]: <W*_j, W0_j> (the lemma needs > 0)",
    "lemma45_unit_dist": "[d]: |W0_j - W*_j|^2",
    "lemma45_unit_dist_k": "[d]: |W0_j - k_j W*_j|^2 (lemma's LHS)",
    "lemma45_unit_rhs": "[d]: |W0 - W*|^2 - (|W*|^2 - <W*, W0>)^2/|W*|^2 (lemma's RHS)",
    "lemma45_unit_reduction": "[d]: (|W*|^2 - <W*, W0>)^2/|W*|^2, the distance saved",
    "lemma45_unit_relerr": "[d]: |dist_k - rhs| / dist",
    **{f"lemma45_matrix_{k}": f"0-d: as lemma45_unit_{k}, for the whole matrix W"
       for k in ("k", "inner", "dist", "dist_k", "rhs", "reduction", "relerr")},
    "lemma45_loss_Wstar": "0-d: BN network's loss at W* (largest batch)",
    "lemma45_loss_kWstar": "0-d: ... at k_j W*_j per unit (equal: kW* is a BN optimum too)",
    # summaries
    "thm41_max_relerr": "0-d: max of thm41_relerr",
    "thm41_printed_violations": "0-d int: count of thm41_printed_violated (out of P*M*U)",
    "thm42_max_relerr": "0-d: max of thm42_relerr",
    "thm44_max_ratio": "0-d: max of thm44_actual / thm44_bound (<= 1)",
}


@dataclass
class Params:
    """The Fig. 7 network: W [d, d_in], gamma, beta [d], V [classes, d], c [classes]."""

    W: torch.Tensor
    gamma: torch.Tensor
    beta: torch.Tensor
    V: torch.Tensor
    c: torch.Tensor

    def tensors(self):
        return [self.W, self.gamma, self.beta, self.V, self.c]

    def clone(self) -> "Params":
        return Params(*(t.detach().clone() for t in self.tensors()))


def init_params(hidden: int, d_in: int = 1024, classes: int = 10, seed: int = 0, device="cpu") -> Params:
    """Glorot-uniform W and V [ours], gamma = 1, beta = 0, c = 0; float64."""
    gen = torch.Generator().manual_seed(seed)

    def glorot(rows, cols):
        bound = math.sqrt(6.0 / (rows + cols))
        return ((torch.rand(rows, cols, generator=gen, dtype=F64) * 2 - 1) * bound).to(device)

    return Params(glorot(hidden, d_in), torch.ones(hidden, dtype=F64, device=device),
                  torch.zeros(hidden, dtype=F64, device=device), glorot(classes, hidden),
                  torch.zeros(classes, dtype=F64, device=device))


def batch_norm(y: torch.Tensor):
    """BN of y [m, d] without eps: (yhat [m, d], mu [d], sigma [d]), sigma the biased batch std."""
    mu = y.mean(0)
    sigma = ((y - mu) ** 2).mean(0).sqrt()
    return (y - mu) / sigma, mu, sigma


def head_loss(z: torch.Tensor, labels: torch.Tensor, p: Params) -> torch.Tensor:
    """The network after the BN layer ("rest of the network" in Fig. 7): mean CE(ReLU(z) V^T + c)."""
    return F.cross_entropy(torch.relu(z) @ p.V.T + p.c, labels)


def bn_loss_from_y(y: torch.Tensor, labels: torch.Tensor, p: Params) -> torch.Tensor:
    """L^(y): the BN network's loss as a function of the pre-BN activations y [m, d]."""
    yhat, _, _ = batch_norm(y)
    return head_loss(p.gamma * yhat + p.beta, labels, p)


def network_loss(x: torch.Tensor, labels: torch.Tensor, p: Params, bn: bool = True) -> torch.Tensor:
    """Loss of the BN network (``bn``) or of the vanilla one on images x [m, 1, 32, 32] or [m, d_in]."""
    y = x.reshape(x.shape[0], -1) @ p.W.T
    return bn_loss_from_y(y, labels, p) if bn else head_loss(y, labels, p)


def train_bn_network(p: Params, data, steps: int, batch_size: int, lr: float, seed: int = 0, progress=False):
    """Plain SGD on the BN network (W, gamma, beta, V, c); returns (trained Params, losses [steps])."""
    p = p.clone()
    params = [t.requires_grad_(True) for t in p.tensors()]
    batches = data.batches(batch_size, seed, dtype=F64)
    losses = np.empty(steps)
    bar = progress_bar(steps, "theory: training the BN network", progress)
    for step in range(steps):
        x, labels = next(batches)
        loss = network_loss(x, labels, p)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for t, gr in zip(params, grads):
                t -= lr * gr
        losses[step] = loss.item()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return p.clone(), losses


def _rel(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """|a - b| / max(|a|, |b|, scale): 0 where everything is 0 (e.g. a dead unit with g = 0)."""
    den = torch.maximum(a.abs(), b.abs())
    if scale is not None:
        den = torch.maximum(den, scale.abs())
    return (a - b).abs() / den.clamp_min(1e-300)


def _hessian_terms(grad_y, y, grad_z, zl, v, g, units) -> tuple:
    """Per unit j: v^T (d^2 L^/dy_j dy_j) v, v^T H_jj v and g^T H_jj g (Hessian-vector products, Thm 4.2)."""
    lhs42, vHv, gHg = (torch.empty(len(units), dtype=F64, device=y.device) for _ in range(3))
    for k, j in enumerate(units.tolist()):
        hv_y, = torch.autograd.grad(grad_y[:, j] @ v[:, k], y, retain_graph=True)
        lhs42[k] = v[:, k] @ hv_y[:, j]
        hv_z, = torch.autograd.grad(grad_z[:, j] @ v[:, k], zl, retain_graph=True)
        vHv[k] = v[:, k] @ hv_z[:, j]
        hg_z, = torch.autograd.grad(grad_z[:, j] @ g[:, k], zl, retain_graph=True)
        gHg[k] = g[:, k] @ hg_z[:, j]
    return lhs42, vHv, gHg


def _observation43(p: Params, x, labels, sigma, mu, yv) -> tuple:
    """Observation 4.3: gamma = sigma_j, beta = mu_j makes z = y, so the BN network's g is the vanilla gradient.
    Returns the relative differences of z from y and of the two gradients."""
    p43 = replace(p, gamma=sigma.detach().clone(), beta=mu.detach().clone())
    y43 = (x @ p.W.T).detach()
    yhat43, _, _ = batch_norm(y43)
    z43 = (p43.gamma * yhat43 + p43.beta).requires_grad_(True)
    g43, = torch.autograd.grad(head_loss(z43, labels, p43), z43)
    gv_all, = torch.autograd.grad(head_loss(yv, labels, p), yv)
    return ((z43.detach() - y43).abs().max() / y43.abs().max(),
            (g43 - gv_all).abs().max() / gv_all.abs().max().clamp_min(1e-300))


def unit_checks(p: Params, x: torch.Tensor, labels: torch.Tensor, units) -> dict:
    """Thms 4.1, 4.2, 4.4 and Obs. 4.3 for the units ``units`` (list of U ints) on one batch x [m, ...].

    Returns a dict of tensors (keys as in :data:`KEYS`): [U] per unit (float64; thm41_printed_violated bool),
    0-d per batch (thm44_lambda, thm44_top_sv_ones_cos, obs43_*).
    """
    p = p.clone()
    x = x.reshape(x.shape[0], -1).to(F64)
    m = x.shape[0]
    units = torch.as_tensor(list(units), device=x.device)
    gam = p.gamma[units]

    # BN network, y as the leaf: grad_y L^ (with graph, for the Hessian along it)
    y = (x @ p.W.T).detach().requires_grad_(True)
    yhat, mu, sigma = batch_norm(y)
    z = p.gamma * yhat + p.beta
    grad_y, = torch.autograd.grad(head_loss(z, labels, p), y, create_graph=True)
    # the same downstream network with z as the leaf: g = dL^/dz and H_jj = d^2 L^/dz_j dz_j
    zl = z.detach().requires_grad_(True)
    grad_z, = torch.autograd.grad(head_loss(zl, labels, p), zl, create_graph=True)

    g = grad_z.detach()[:, units]                 # [m, U]
    v = grad_y.detach()[:, units]                 # grad_{y_j} L^, [m, U]
    yh = yhat.detach()[:, units]
    s = sigma.detach()[units]
    scale = gam ** 2 / s ** 2                     # gamma^2 / sigma_j^2

    # Theorem 4.1, corrected (1/m) and printed (1/sqrt m)
    g_sq = (g ** 2).sum(0)
    mean_term = g.sum(0) ** 2 / m                 # (1/m) <1, g>^2
    g_yhat = (g * yh).sum(0)                      # <g, yhat_j>
    lhs41 = (v ** 2).sum(0)
    rhs41 = scale * (g_sq - mean_term - g_yhat ** 2 / m)
    rhs41_printed = scale * (g_sq - mean_term - g_yhat ** 2 / math.sqrt(m))
    # Fact C.2 / eq. (47): grad_{y_j} L^ = (gamma/sigma) P g with P = I - 11^T/m - yhat yhat^T/m
    v_formula = (gam / s) * (g - g.mean(0) - yh * g_yhat / m)
    fact_c2 = (v - v_formula).norm(dim=0) / torch.maximum(v.norm(dim=0), v_formula.norm(dim=0)).clamp_min(1e-300)

    # Theorem 4.2: v^T (d^2 L^/dy_j dy_j) v  vs  (gamma^2/sigma^2) v^T H_jj v - gamma/(m sigma^2) <g, yhat> |v|^2
    lhs42, vHv, gHg = _hessian_terms(grad_y, y, grad_z, zl, v, g, units)
    term_h = scale * vHv
    term_sep = gam / (m * s ** 2) * g_yhat * lhs41
    rhs42 = term_h - term_sep

    # Theorem 4.4: |grad_{W_.j} L^|^2 = |X^T grad_{y_j} L^|^2 <= lambda^2 |grad_{y_j} L^|^2, lambda = |X|_2
    u, sv, _ = torch.linalg.svd(x, full_matrices=False)
    lam = sv[0]
    actual44 = ((x.T @ v) ** 2).sum(0)
    W = p.W.detach().clone().requires_grad_(True)
    grad_W, = torch.autograd.grad(network_loss(x, labels, replace(p, W=W)), W)
    autograd44 = (grad_W[units] ** 2).sum(1)
    # the vanilla network at its own activations y (same W, V, c)
    yv = (x @ p.W.T).detach().requires_grad_(True)
    gv, = torch.autograd.grad(head_loss(yv, labels, p), yv)
    gv = gv[:, units]

    obs43_z, obs43_g = _observation43(p, x, labels, sigma, mu, yv)

    return dict(
        sigma=s, gamma=gam, gamma2_over_sigma2=scale,
        g_sq=g_sq, g_mean_term=mean_term, g_yhat=g_yhat,
        thm41_lhs=lhs41, thm41_rhs=rhs41, thm41_rhs_printed=rhs41_printed, thm41_relerr=_rel(lhs41, rhs41),
        thm41_printed_violated=lhs41 > rhs41_printed + 1e-12 * lhs41.abs(),
        thm41_shrink=lhs41 / g_sq.clamp_min(1e-300), thm41_projection=lhs41 / (scale * g_sq).clamp_min(1e-300),
        thm41_factc2_relerr=fact_c2,
        thm42_lhs=lhs42, thm42_rhs=rhs42, thm42_term_hessian=term_h, thm42_term_sep=term_sep,
        thm42_relerr=_rel(lhs42, rhs42, term_h.abs() + term_sep.abs()), thm42_vHv=vHv, thm42_gHg=gHg,
        thm44_lambda=lam, thm44_actual=actual44, thm44_autograd_relerr=_rel(autograd44, actual44),
        thm44_bound=lam ** 2 * rhs41, thm44_bound_printed=lam ** 2 * rhs41_printed,
        thm44_vanilla_convention=lam ** 2 * g_sq, thm44_vanilla=lam ** 2 * (gv ** 2).sum(0),
        thm44_vanilla_actual=((x.T @ gv) ** 2).sum(0), thm44_top_sv_ones_cos=u[:, 0].sum().abs() / math.sqrt(m),
        obs43_z_relerr=obs43_z, obs43_g_relerr=obs43_g,
    )


def lemma45_distance(w0: torch.Tensor, wstar: torch.Tensor) -> dict:
    """Lemma 4.5's identity for rows of w0, wstar [..., n] (a vector, or one row per unit).

    k = <W*, W0>/|W*|^2; dist_k = |W0 - k W*|^2 (LHS), rhs = |W0 - W*|^2 - (|W*|^2 - <W*, W0>)^2 / |W*|^2.
    """
    w0, wstar = w0.to(F64), wstar.to(F64)
    inner, ns = (wstar * w0).sum(-1), (wstar ** 2).sum(-1)
    k = inner / ns
    dist = ((w0 - wstar) ** 2).sum(-1)
    reduction = (ns - inner) ** 2 / ns
    dist_k = ((w0 - k[..., None] * wstar) ** 2).sum(-1)
    rhs = dist - reduction
    return dict(k=k, inner=inner, dist=dist, dist_k=dist_k, rhs=rhs, reduction=reduction,
                relerr=(dist_k - rhs).abs() / dist.clamp_min(1e-300))


def scale_invariance(p: Params, x: torch.Tensor, labels: torch.Tensor, scales=LEMMA45_SCALES) -> dict:
    """BN((aW)x) = BN(Wx) and dL^/d(aW) = (1/a) dL^/dW [IS 3.3] for each a: relative errors [A]."""
    x = x.reshape(x.shape[0], -1).to(F64)

    def z_loss_grad(W):
        W = W.detach().clone().requires_grad_(True)
        yhat, _, _ = batch_norm(x @ W.T)
        z = p.gamma * yhat + p.beta
        loss = head_loss(z, labels, p)
        gW, = torch.autograd.grad(loss, W)
        return z.detach(), loss.detach(), gW

    z0, l0, g0 = z_loss_grad(p.W)
    zr, lr_, gr = [], [], []
    for a in scales:
        za, la, ga = z_loss_grad(a * p.W)
        zr.append((za - z0).abs().max() / z0.abs().max())
        lr_.append((la - l0).abs() / l0.abs())
        gr.append((a * ga - g0).norm() / g0.norm())
    return dict(z_relerr=torch.stack(zr), loss_relerr=torch.stack(lr_), grad_relerr=torch.stack(gr))


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def flops(scale: Scale) -> float:
    """FLOPs of :func:`run_checks` at ``scale`` (in fp64), roughly: the training steps (3 forwards of the one-hidden-layer
    network each) and, per phase and checked batch, one backward per checked unit (counted as 3 forwards) [ours]."""
    cfg = scale.theory
    per_sample = 2 * (1024 * cfg.hidden + cfg.hidden * 10)
    train_flops = 3 * per_sample * cfg.train_batch * cfg.steps
    checks = 2 * 3 * per_sample * sum(cfg.batch_sizes) * cfg.units
    return float(train_flops + checks)


def run_checks(scale: Scale, plan) -> dict:
    """All checks at ``scale`` (sizes: ``scale.theory``, ours: the paper has no experiment for Section 4): a flat
    dict of numpy arrays, keys and shapes in :data:`KEYS`. Trains the BN network briefly (SGD) and checks it at
    initialisation and after training.
    """
    cfg, dev = scale.theory, plan.device
    data = load_images(DataConfig("fashion_mnist", train_subset=cfg.train_subset, test_subset=16), device=dev,
                       root=plan.data_dir)
    p0 = init_params(cfg.hidden, seed=0, device=dev)
    p1, losses = train_bn_network(p0, data, cfg.steps, cfg.train_batch, cfg.lr, seed=0, progress=plan.progress)
    units = list(range(cfg.units))
    eval_batches = {m: next(data.batches(m, seed=1000 + m, dtype=F64)) for m in cfg.batch_sizes}

    per = {}
    for phase in (p0, p1):
        rows = {}
        for m, (x, labels) in eval_batches.items():
            for k, val in unit_checks(phase, x, labels, units).items():
                rows.setdefault(k, []).append(_np(val))
        for k, vals in rows.items():
            per.setdefault(k, []).append(np.stack(vals))
    out = {k: np.stack(v) for k, v in per.items()}

    # Lemma 4.5: scale invariance on the trained network (largest batch), distance identity W0 -> W*
    x, labels = eval_batches[max(cfg.batch_sizes)]
    out.update({f"lemma45_{k}": _np(v) for k, v in scale_invariance(p1, x, labels).items()})
    out["lemma45_scales"] = np.asarray(LEMMA45_SCALES, dtype=np.float64)
    out.update({f"lemma45_unit_{k}": _np(v) for k, v in lemma45_distance(p0.W, p1.W).items()})
    out.update({f"lemma45_matrix_{k}": _np(v) for k, v in lemma45_distance(p0.W.flatten(), p1.W.flatten()).items()})
    unit = lemma45_distance(p0.W, p1.W)
    with torch.no_grad():
        kW = replace(p1, W=unit["k"][:, None] * p1.W)   # per-unit k_j W*_{.j}: still a BN optimum if k_j > 0
        out["lemma45_loss_Wstar"] = _np(network_loss(x, labels, p1))
        out["lemma45_loss_kWstar"] = _np(network_loss(x, labels, kW))

    out.update(
        batch_sizes=np.asarray(cfg.batch_sizes), phase_steps=np.asarray([0, cfg.steps]),
        units=np.asarray(units), hidden=np.asarray(cfg.hidden), lr=np.asarray(cfg.lr),
        train_batch=np.asarray(cfg.train_batch), train_loss=losses,
        thm41_max_relerr=np.asarray(out["thm41_relerr"].max()),
        thm41_printed_violations=np.asarray(out["thm41_printed_violated"].sum()),
        thm42_max_relerr=np.asarray(out["thm42_relerr"].max()),
        thm44_max_ratio=np.asarray((out["thm44_actual"] / np.maximum(out["thm44_bound"], 1e-300)).max()),
    )
    assert set(out) == set(KEYS), sorted(set(out) ^ set(KEYS))
    return out


THEORY = Analysis(run_checks, sizes=lambda scale: scale.theory, flops=flops,
                  block_steps=lambda scale: 2 * scale.theory.steps, dataset="fashion_mnist")   # at every scale

__all__ = ["KEYS", "Params", "init_params", "batch_norm", "head_loss", "bn_loss_from_y", "network_loss",
           "train_bn_network", "unit_checks", "lemma45_distance", "scale_invariance", "run_checks", "flops", "THEORY"]
