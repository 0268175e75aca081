"""Section 4 checks (bnlab.theory) against plain references: explicit Jacobians/Hessians, finite differences."""
import math

import numpy as np
import pytest
import torch
from torch.autograd.functional import hessian, jacobian

from bnlab import theory
from bnlab.scales import TheorySizes
from conftest import cpu_plan

F64 = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    """These are tiny, latency-bound computations: extra threads only add contention on a busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(m=8, d_in=20, hidden=5, seed=1):
    """A small float64 Fig. 7 network with non-trivial gamma, beta and a random batch of m inputs."""
    gen = torch.Generator().manual_seed(seed)
    p = theory.init_params(hidden, d_in=d_in, seed=seed)
    p.gamma = 0.5 + torch.rand(hidden, generator=gen, dtype=F64)
    p.beta = 0.3 * torch.randn(hidden, generator=gen, dtype=F64)
    x = torch.randn(m, d_in, generator=gen, dtype=F64) + 0.5
    labels = torch.randint(0, 10, (m,), generator=gen)
    return p, x, labels


def ref_bn_column(a, gamma, beta):
    """One unit's BN written out plainly: biased variance, no eps."""
    mean = a.sum() / a.numel()
    var = ((a - mean) ** 2).sum() / a.numel()
    return gamma * (a - mean) / var.sqrt() + beta


def with_column(t, j, col):
    t = t.clone()
    t[:, j] = col
    return t


def references(p, x, labels, j):
    """Reference quantities for unit j from explicit Jacobians and Hessians (no double backward)."""
    y = x @ p.W.T
    yhat, _, _ = theory.batch_norm(y)
    z = p.gamma * yhat + p.beta
    J = jacobian(lambda a: ref_bn_column(a, p.gamma[j], p.beta[j]), y[:, j])           # dz_j/dy_j, [m, m]
    g = jacobian(lambda c: theory.head_loss(with_column(z, j, c), labels, p), z[:, j])  # dL^/dz_j
    v = J.T @ g                                                                         # grad_{y_j} L^
    H_y = hessian(lambda a: theory.bn_loss_from_y(with_column(y, j, a), labels, p), y[:, j])
    H_z = hessian(lambda c: theory.head_loss(with_column(z, j, c), labels, p), z[:, j])
    return dict(y=y, g=g, v=v, H_y=H_y, H_z=H_z)


def rel(a, b):
    a, b = float(a), float(b)
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


@pytest.mark.parametrize("m", [4, 8, 32])
def test_thm41_corrected_identity_matches_explicit_jacobian(m):
    p, x, labels = tiny(m=m)
    units = range(p.W.shape[0])
    out = theory.unit_checks(p, x, labels, units)
    assert out["thm41_relerr"].max() < 1e-8
    for j in units:
        ref = references(p, x, labels, j)
        lhs_ref = float(ref["v"] @ ref["v"])
        assert lhs_ref > 0
        assert rel(out["thm41_lhs"][j], lhs_ref) < 1e-10
        # the corrected right-hand side, recomputed in numpy from the reference g
        g, yj = ref["g"].numpy(), ref["y"][:, j].numpy()
        sigma = yj.std()                      # numpy's default: biased (ddof=0), as in the theorem
        yhat = (yj - yj.mean()) / sigma
        gam = float(p.gamma[j])
        rhs_ref = gam ** 2 / sigma ** 2 * (g @ g - g.sum() ** 2 / m - (g @ yhat) ** 2 / m)
        assert rel(lhs_ref, rhs_ref) < 1e-8
        assert rel(out["thm41_rhs"][j], rhs_ref) < 1e-10
        printed = gam ** 2 / sigma ** 2 * (g @ g - g.sum() ** 2 / m - (g @ yhat) ** 2 / math.sqrt(m))
        assert rel(out["thm41_rhs_printed"][j], printed) < 1e-8


def test_thm41_gradient_against_finite_differences():
    p, x, labels = tiny(m=8)
    j, h = 2, 1e-6
    y = x @ p.W.T
    out = theory.unit_checks(p, x, labels, [j])
    fd = torch.empty(8, dtype=F64)
    for b in range(8):
        e = torch.zeros_like(y)
        e[b, j] = h
        fd[b] = (theory.bn_loss_from_y(y + e, labels, p) - theory.bn_loss_from_y(y - e, labels, p)) / (2 * h)
    assert rel(fd @ fd, out["thm41_lhs"][0]) < 1e-6


def test_thm41_printed_version_is_violated_at_m8():
    p, x, labels = tiny(m=8)
    out = theory.unit_checks(p, x, labels, range(p.W.shape[0]))
    assert out["thm41_printed_violated"].any()
    # the printed form subtracts more than the identity allows wherever <g, yhat> != 0
    nonzero = out["g_yhat"].abs() > 1e-12
    assert torch.all(out["thm41_lhs"][nonzero] > out["thm41_rhs_printed"][nonzero])
    assert torch.all(out["thm41_projection"] <= 1 + 1e-12)


@pytest.mark.parametrize("m", [4, 8, 32])
def test_thm42_equality_matches_explicit_hessians(m):
    p, x, labels = tiny(m=m)
    units = range(p.W.shape[0])
    out = theory.unit_checks(p, x, labels, units)
    assert out["thm42_relerr"].max() < 1e-8
    for j in units:
        ref = references(p, x, labels, j)
        v, g = ref["v"], ref["g"]
        lhs_ref = v @ ref["H_y"] @ v
        _, _, sigma = theory.batch_norm(ref["y"])
        yhat_j = (ref["y"][:, j] - ref["y"][:, j].mean()) / sigma[j]
        gam, s = p.gamma[j], sigma[j]
        term_h = gam ** 2 / s ** 2 * (v @ ref["H_z"] @ v)
        term_sep = gam / (m * s ** 2) * (g @ yhat_j) * (v @ v)
        rhs_ref = term_h - term_sep
        scale = float(term_h.abs() + term_sep.abs())
        assert abs(float(lhs_ref - rhs_ref)) < 1e-8 * scale            # eq. (50): an equality
        assert abs(float(out["thm42_lhs"][j] - lhs_ref)) < 1e-10 * scale
        assert abs(float(out["thm42_rhs"][j] - rhs_ref)) < 1e-10 * scale
        assert rel(out["thm42_vHv"][j], v @ ref["H_z"] @ v) < 1e-8
        assert rel(out["thm42_gHg"][j], g @ ref["H_z"] @ g) < 1e-8
    # ReLU + cross-entropy: H_jj is PSD
    assert torch.all(out["thm42_vHv"] >= -1e-15) and torch.all(out["thm42_gHg"] >= -1e-15)


def test_thm44_weight_gradient_and_bound():
    p, x, labels = tiny(m=16)
    out = theory.unit_checks(p, x, labels, range(p.W.shape[0]))
    assert out["thm44_autograd_relerr"].max() < 1e-12
    assert torch.all(out["thm44_actual"] <= out["thm44_bound"] * (1 + 1e-12))
    assert rel(out["thm44_lambda"], torch.linalg.matrix_norm(x, ord=2)) < 1e-12
    # the vanilla quantities: the same network without the BN step
    y = (x @ p.W.T).requires_grad_(True)
    gv, = torch.autograd.grad(theory.head_loss(y, labels, p), y)
    assert torch.allclose(out["thm44_vanilla_actual"], ((x.T @ gv) ** 2).sum(0), rtol=1e-12, atol=0)
    assert out["obs43_z_relerr"] < 1e-12 and out["obs43_g_relerr"] < 1e-12


def test_lemma45_distance_identity_and_projection():
    gen = torch.Generator().manual_seed(3)
    w0 = torch.randn(7, 50, generator=gen, dtype=F64)
    wstar = w0 + 0.8 * torch.randn(7, 50, generator=gen, dtype=F64)
    d = theory.lemma45_distance(w0, wstar)
    assert torch.all(d["inner"] > 0)
    assert d["relerr"].max() < 1e-12
    assert torch.all(d["dist_k"] <= d["dist"])
    # k W* is the closest point to W0 on the ray through W*: a grid of other k is never closer
    for i in range(7):
        ks = d["k"][i] + torch.linspace(-0.5, 0.5, 101, dtype=F64)
        grid = ((w0[i] - ks[:, None] * wstar[i]) ** 2).sum(1)
        assert d["dist_k"][i] <= grid.min() + 1e-12
    whole = theory.lemma45_distance(w0.flatten(), wstar.flatten())
    assert whole["relerr"] < 1e-12 and whole["rhs"] < whole["dist"]


def test_lemma45_scale_invariance_of_bn():
    p, x, labels = tiny(m=16)
    out = theory.scale_invariance(p, x, labels, scales=(1e-3, 0.5, 3.0, 1e3))
    for k in ("z_relerr", "loss_relerr", "grad_relerr"):
        assert out[k].max() < 1e-12, k


def test_run_checks_smoke_on_fashion_mnist(tmp_path):
    plan = cpu_plan(home=tmp_path, data_dir=tmp_path / "data")
    out = theory.run_checks(plan.scale, plan)
    assert set(out) == set(theory.KEYS)
    P, M, U = 2, len(out["batch_sizes"]), len(out["units"])
    for k, v in out.items():
        assert isinstance(v, np.ndarray) and v.dtype != object, k
        assert np.all(np.isfinite(v)), k
        doc = theory.KEYS[k]
        if doc.startswith("[P,M,U]"):
            assert v.shape == (P, M, U), k
        elif doc.startswith("[P,M]"):
            assert v.shape == (P, M), k
        elif doc.startswith("[d]"):
            assert v.shape == (int(out["hidden"]),), k
        elif doc.startswith("0-d"):
            assert v.shape == (), k
    assert out["thm41_max_relerr"] < 1e-8 and out["thm42_max_relerr"] < 1e-8
    assert out["thm41_factc2_relerr"].max() < 1e-10 and out["thm44_autograd_relerr"].max() < 1e-10
    assert 0 < out["thm41_printed_violations"] <= P * M * U
    assert out["thm41_printed_violated"][:, list(out["batch_sizes"]).index(8)].any()
    assert out["thm44_max_ratio"] <= 1 + 1e-12
    assert np.all(out["thm42_vHv"] >= -1e-15)
    assert out["lemma45_unit_relerr"].max() < 1e-10 and out["lemma45_matrix_relerr"] < 1e-10
    assert max(out[k].max() for k in ("lemma45_z_relerr", "lemma45_loss_relerr", "lemma45_grad_relerr")) < 1e-10
    assert abs(out["lemma45_loss_kWstar"] - out["lemma45_loss_Wstar"]) < 1e-12
    assert out["train_loss"][-10:].mean() < out["train_loss"][:10].mean()    # the training did something
    assert np.any(out["sigma"][0] != out["sigma"][1])                          # trained W differs from init
    with pytest.raises(ValueError, match="units"):
        TheorySizes(hidden=8, units=16, batch_sizes=(8,), steps=1, train_batch=8, lr=0.1, train_subset=0)
