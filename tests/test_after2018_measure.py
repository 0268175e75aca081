"""The measurements of the chapter "BatchNorm after 2018", each against an independent computation on tiny inputs;
each test also perturbs the measurement (a wrong axis, an off-by-one) and checks that the reference catches it."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from bnlab.config import ModelConfig
from bnlab.measure import gradient_explosion as ge
from bnlab.measure import population_stats as ps
from bnlab.measure import rank, residual
from bnlab.measure import scale_invariance as si
from bnlab.models import Block, Blockwise, ResidualBlock, build, mlp
from bnlab.norms import BatchNorm, has_shift, make_norm

F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---- rank -------------------------------------------------------------------------------------------------------
def test_stable_rank_matches_numpy_svd_of_the_centred_batch():
    h = torch.randn(20, 3, 2, 2, generator=gen(), dtype=F64) + 3.0
    m = h.reshape(20, -1).numpy()
    mc = m - m.mean(axis=0)
    s = np.linalg.svd(mc, compute_uv=False)
    assert rank.stable_rank(h) == pytest.approx((s ** 2).sum() / s[0] ** 2, rel=1e-12)
    # perturbed: centring over the wrong axis, or none, gives another number
    for wrong in (m - m.mean(axis=1, keepdims=True), m):
        sw = np.linalg.svd(wrong, compute_uv=False)
        assert abs((sw ** 2).sum() / sw[0] ** 2 - rank.stable_rank(h)) > 1e-3


def test_stable_rank_of_a_collapsed_batch_is_one_and_of_orthogonal_rows_is_full():
    v = torch.randn(1, 8, dtype=F64, generator=gen())
    coef = torch.randn(16, 1, dtype=F64, generator=gen(1))
    assert rank.stable_rank(coef * v + 5.0) == pytest.approx(1.0, abs=1e-9)
    q = torch.linalg.qr(torch.randn(10, 10, dtype=F64, generator=gen(2)))[0]
    assert rank.stable_rank(q) == pytest.approx(9.0, rel=1e-9)       # centring removes one direction


def explicit_gram(h):
    r = h.reshape(h.shape[0], -1).double()
    b = r.shape[0]
    G = torch.empty(b, b, dtype=F64)
    for i in range(b):
        for j in range(b):
            G[i, j] = (r[i] * r[j]).sum()
    return G, r


def test_mean_abs_cos_and_orthogonality_gap_match_explicit_gram_matrices():
    h = torch.randn(7, 5, generator=gen(3), dtype=F64)
    G, r = explicit_gram(h)
    b = 7
    cos = [abs(float(G[i, j] / (G[i, i] * G[j, j]).sqrt())) for i in range(b) for j in range(b) if i != j]
    assert rank.mean_abs_cos(h) == pytest.approx(np.mean(cos), rel=1e-12)
    gap = float(((G / np.trace(G.numpy()) - torch.eye(b, dtype=F64) / b) ** 2).sum().sqrt())
    assert rank.orthogonality_gap(h) == pytest.approx(gap, rel=1e-12)
    # perturbed: the cosines between columns, the mean over all pairs incl. the diagonal, a gap with I/(B-1)
    assert abs(rank.mean_abs_cos(h.T.contiguous()) - np.mean(cos)) > 1e-3
    assert abs(np.mean(cos) * (b - 1) / b + 1 / b - np.mean(cos)) > 1e-3
    gap_wrong = float(((G / np.trace(G.numpy()) - torch.eye(b, dtype=F64) / (b - 1)) ** 2).sum().sqrt())
    assert abs(gap_wrong - rank.orthogonality_gap(h)) > 1e-3


def test_orthogonality_gap_limits():
    q = torch.linalg.qr(torch.randn(6, 6, dtype=F64, generator=gen(4)))[0]
    assert rank.orthogonality_gap(q) == pytest.approx(0.0, abs=1e-12)
    same = torch.ones(6, 1, dtype=F64) * torch.randn(1, 4, dtype=F64, generator=gen(5))
    assert rank.orthogonality_gap(same) == pytest.approx(np.sqrt(1 - 1 / 6), rel=1e-12)
    assert rank.mean_abs_cos(same) == pytest.approx(1.0, rel=1e-12)


def test_rank_profile_reads_each_block_output_and_leaves_running_stats():
    model = build(ModelConfig(arch="dln", norm="batch", dln_depth=4, dln_dim=5), 0, "cpu", F64)
    x = torch.randn(30, 5, dtype=F64, generator=gen(6))
    prof = rank.rank_profile(model, x)
    h, ref = x, []
    for b in model.blocks:
        h = b(h)
        ref.append(rank.stable_rank(h))
    assert prof["srank"] == pytest.approx(ref, rel=1e-12)
    assert prof["srank"][1:] != pytest.approx(ref[:-1], rel=1e-6)       # off by one block is caught
    model2 = build(ModelConfig(arch="dln", norm="batch", dln_depth=4, dln_dim=5), 0, "cpu", F64)
    snap = {k: b.clone() for k, b in model2.named_buffers()}
    rank.rank_profile(model2, x)
    assert all(torch.equal(b, snap[k]) for k, b in model2.named_buffers())


# ---- gradient explosion ---------------------------------------------------------------------------------------------
def test_growth_rate_recovers_a_geometric_rate_and_the_window():
    ls = np.arange(1, 21)
    v = 3.0 * 1.467 ** (-ls)                                        # grows by 1.467 per layer towards the input
    assert ge.growth_rate(v, 3, 17) == pytest.approx(1.467, rel=1e-12)
    noisy = v * np.exp(np.random.default_rng(0).normal(0, 0.01, 20))
    assert ge.growth_rate(noisy, 3, 17) == pytest.approx(1.467, rel=2e-2)
    # a kink outside the window does not matter, inside it does (the window is 1-based and inclusive)
    kinked = v.copy()
    kinked[:2] *= 100
    kinked[17:] *= 100
    assert ge.growth_rate(kinked, 3, 17) == pytest.approx(1.467, rel=1e-12)
    assert ge.growth_rate(kinked, 2, 17) != pytest.approx(1.467, rel=1e-3)
    assert ge.growth_rate(kinked, 3, 18) != pytest.approx(1.467, rel=1e-3)
    assert ge.fit_window(32) == (3, 29) and ge.fit_window(6) == (1, 6)


def test_dynamic_range_reads_layers_two_and_L_minus_two():
    v = np.array([1e5, 1e4, 1e3, 1e2, 1e1, 1e0])
    assert ge.dynamic_range(v) == pytest.approx(np.log10(1e4 / 1e2))


def test_preactivation_gradients_match_autograd_on_explicit_tensors():
    torch.manual_seed(0)
    model = mlp(depth=5, width=7, in_features=6, num_classes=3, norm="batch").double()
    x = torch.randn(9, 6, dtype=F64, generator=gen(7))
    y = torch.randint(0, 3, (9,), generator=gen(8))
    got = ge.preactivation_grad_sq(model, x, y)
    # reference: the forward written out, the linear outputs as leaves of autograd.grad
    hs, h = [], x
    for b in list(model.blocks)[:-1]:
        z = b.layer(h)
        hs.append(z)
        zb = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + b.norm.eps) * b.norm.weight + b.norm.bias
        h = torch.relu(zb)
    loss = nn.functional.cross_entropy(model.blocks[-1].layer(h), y)
    grads = torch.autograd.grad(loss, hs)
    ref = np.array([float(g.pow(2).sum()) for g in grads])
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    assert not np.allclose(got[1:], ref[:-1], rtol=1e-3)         # off by one layer is caught
    assert all(p.grad is None for p in model.parameters())          # gradients left as they were


def test_mlp_is_he_initialised_with_biases_only_without_bn():
    torch.manual_seed(0)
    bn, plain = mlp(3, 512, 256, norm="batch"), mlp(3, 512, 256, norm="none")
    assert bn.blocks[0].layer.bias is None and plain.blocks[0].layer.bias is not None
    assert float(bn.blocks[1].layer.weight.detach().var()) == pytest.approx(2 / 512, rel=0.05)


# ---- residual branch ----------------------------------------------------------------------------------------------
def test_branch_skip_ratios_match_a_manual_forward():
    cfg = ModelConfig(arch="resnet", norm="batch", depth=14, width=0.25, in_channels=1)
    model = build(cfg, 0, "cpu", F64)
    x = torch.randn(8, 1, 32, 32, dtype=F64, generator=gen(9))
    got = residual.branch_skip_ratios(model, x)
    h, ref_b, ref_s = x, [], []
    model.train()
    with torch.no_grad():
        for b in model.blocks:
            if isinstance(b, ResidualBlock):
                z = torch.relu(b.norm(b.layer(h)))
                z = b.norm2(b.layer2(z))
                s = b.shortcut(h)
                ref_b.append(float(z.pow(2).mean())), ref_s.append(float(s.pow(2).mean()))
            h = b(h)
    np.testing.assert_allclose(got["branch_sq"], ref_b, rtol=1e-10)
    np.testing.assert_allclose(got["skip_sq"], ref_s, rtol=1e-10)
    np.testing.assert_allclose(got["ratio"], np.sqrt(np.array(ref_b) / np.array(ref_s)), rtol=1e-10)
    assert not np.allclose(got["ratio"], np.array(ref_b) / np.array(ref_s), rtol=1e-3)   # rms, not mean square
    assert len(got["ratio"]) == 6


def test_downscaling_exponent_recovers_the_power():
    k = np.arange(1, 10)
    assert residual.downscaling_exponent(2.0 * k ** -0.5) == pytest.approx(0.5, rel=1e-12)
    assert residual.downscaling_exponent(np.r_[2.0 * k ** -0.5, [50, 50]], 9) == pytest.approx(0.5, rel=1e-12)
    assert residual.downscaling_exponent(np.r_[[9.0], 2.0 * k ** -0.5], 9) != pytest.approx(0.5, rel=1e-2)


# ---- SkipInit -----------------------------------------------------------------------------------------------------
def test_skipinit_block_is_the_identity_on_its_branch_at_alpha_zero():
    assert make_norm("skipinit", 4, spatial=True).__class__ is nn.Identity and not has_shift("skipinit")
    torch.manual_seed(0)
    blk = ResidualBlock(4, 4, 1, "skipinit").double()
    x = torch.randn(3, 4, 8, 8, dtype=F64, generator=gen(10))
    assert torch.equal(blk.branch(x), torch.zeros_like(x))
    assert torch.equal(blk(x), torch.relu(x))
    blk2 = ResidualBlock(4, 8, 2, "skipinit").double()
    assert torch.equal(blk2(x), torch.relu(blk2.shortcut(x)))
    with torch.no_grad():
        blk.alpha.fill_(0.5)
    plain = ResidualBlock(4, 4, 1, "none").double()
    plain.load_state_dict({k: v for k, v in blk.state_dict().items() if k != "alpha"})
    assert torch.allclose(blk(x), torch.relu(0.5 * plain.branch(x) + x))
    # alpha is learnable and receives a gradient at 0 (the branch's output is not zero)
    with torch.no_grad():
        blk.alpha.zero_()
    blk(x).sum().backward()
    assert blk.alpha.grad is not None and float(blk.alpha.grad.abs()) > 0
    assert "alpha" not in ResidualBlock(4, 4, 1, "batch").state_dict()


def test_skipinit_resnet_trains_through_the_normal_path_once_the_norm_is_registered(monkeypatch, tmp_path):
    """The SkipInit runs are ordinary ResNet runs (``recipes.resnet_run``) once "skipinit" is in
    ``config.NORMS``; a registered norm changes no existing config's hash (the hash reads only a config's values)."""
    from bnlab import config
    from bnlab.scales import SMOKE
    from bnlab.recipes import resnet_run
    from bnlab.train import train
    from conftest import cpu_plan, fashion_available
    before = resnet_run(SMOKE, "batch", 0.1, 0).hash
    monkeypatch.setattr(config, "NORMS", config.NORMS + ("skipinit",))
    assert resnet_run(SMOKE, "batch", 0.1, 0).hash == before
    cfg = resnet_run(SMOKE, "skipinit", 0.1, 0)
    model = build(cfg.model, 0, "cpu")
    assert sum(isinstance(b, ResidualBlock) and b.alpha is not None for b in model.blocks) == 3
    if not fashion_available():
        pytest.skip("Fashion-MNIST not installed")
    res = train(cfg, cpu_plan())
    assert res.status == "ok" and len(res["train_loss"]) == cfg.train.steps


# ---- scale invariance ---------------------------------------------------------------------------------------------
def bn_convnet(seed=0, eps=1e-14):
    """Exactly scale invariant with eps ~ 0 (BN's eps = 1e-5 breaks it by ~eps / var)."""
    torch.manual_seed(seed)
    blocks = [Block(nn.Conv2d(2, 4, 3, padding=1, bias=False), BatchNorm(4, eps=eps), act=True),
              Block(nn.Conv2d(4, 3, 3, padding=1, bias=False), BatchNorm(3, eps=eps), act=True),
              Block(nn.Linear(3 * 6 * 6, 5), nn.Identity(), act=False, flatten=True)]
    return Blockwise(blocks, "classifier").double()


def test_conv_filters_before_bn_are_orthogonal_to_their_gradients():
    model = bn_convnet()
    x, y = torch.randn(10, 2, 6, 6, dtype=F64, generator=gen(11)), torch.randint(0, 5, (10,), generator=gen(12))
    nn.functional.cross_entropy(model(x), y).backward()
    convs = si.scale_invariant_convs(model)
    assert len(convs) == 2
    for m in convs:
        assert si.max_abs_cos(m.weight, m.weight.grad) < 1e-9
        # perturbed: the cosine over input channels (wrong axis) is not zero
        assert si.max_abs_cos(m.weight.transpose(0, 1), m.weight.grad.transpose(0, 1)) > 1e-3
    # g(c w) = g(w) / c, filter by filter
    g0 = convs[0].weight.grad.clone()
    model.zero_grad()
    with torch.no_grad():
        convs[0].weight[1] *= 3.0
    nn.functional.cross_entropy(model(x), y).backward()
    assert torch.allclose(convs[0].weight.grad[1], g0[1] / 3.0, rtol=1e-8)
    # a layer without BN after it is not scale invariant: its filters and gradients are not orthogonal
    lin = model.blocks[-1].layer
    assert si.max_abs_cos(lin.weight, lin.weight.grad) > 1e-3
    # with BN's default eps the identity holds to about eps / var
    model = bn_convnet(eps=1e-5)
    nn.functional.cross_entropy(model(x), y).backward()
    assert all(si.max_abs_cos(m.weight, m.weight.grad) < 1e-3 for m in si.scale_invariant_convs(model))


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_pythagoras_identity_under_plain_sgd(wd):
    model = bn_convnet(1)
    x, y = torch.randn(10, 2, 6, 6, dtype=F64, generator=gen(13)), torch.randint(0, 5, (10,), generator=gen(14))
    convs = si.scale_invariant_convs(model)
    lr = 0.7
    opt = torch.optim.SGD([{"params": [m.weight for m in convs], "lr": lr, "weight_decay": wd},
                           {"params": [p for p in model.parameters() if all(p is not m.weight for m in convs)],
                            "lr": 0.1}])
    log = si.ConvLog(convs, [lr] * 2, [wd] * 2)
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        log.before_step()
        opt.step()
        log.after_step()
    a = log.arrays()
    assert a["pythagoras"].shape == (3, 2)
    np.testing.assert_allclose(a["pythagoras"], 1.0, atol=1e-8)
    assert np.all(a["max_cos"] < 1e-9)
    # perturbed: forgetting the decay factor (or squaring lr wrongly) breaks the identity
    if wd:
        wrong = (a["w_sq"][1] - a["w_sq"][0]) / (lr ** 2 * a["g_sq"][0])
        assert np.all(np.abs(wrong - 1) > 1e-3)
    wrong_lr = [si.pythagoras_ratio(b, a_, g, lr * 1.01, wd) for b, a_, g in
                zip(a["w_sq"][0], a["w_sq"][1], a["g_sq"][0])]
    assert np.all(np.abs(np.asarray(wrong_lr) - 1) > 1e-3)


def test_angle_and_equilibrium_angle():
    a = torch.tensor([1.0, 0.0], dtype=F64)
    for t in (1e-6, 0.3, 2.0):
        b = torch.tensor([np.cos(t), np.sin(t)], dtype=F64) * 5
        assert si.angle(a, b) == pytest.approx(t, rel=1e-9)
    # the fixed point of ||w||^2 -> (1 - el)^2 ||w||^2 + eta^2 ||g||^2 with ||g|| ||w|| = const (g ~ 1/||w||)
    eta, lam = 0.1, 2e-2
    w2, c = 1.0, 1.0
    for _ in range(200_000):
        w2 = (1 - eta * lam) ** 2 * w2 + eta ** 2 * c / w2
    g = np.sqrt(c / w2)
    # at equilibrium the step w -> (1 - el) w - eta g (g orthogonal to w) turns w by atan(eta g / ((1 - el) |w|))
    delta = np.arctan(eta * g / ((1 - eta * lam) * np.sqrt(w2)))
    assert si.equilibrium_angle(eta, lam) == pytest.approx(delta, rel=1e-6)
    assert si.equilibrium_angle(eta, lam) == pytest.approx(np.sqrt(2 * eta * lam), rel=0.02)
    assert si.equilibrium_angle(eta, 4 * lam) != pytest.approx(delta, rel=0.1)


# ---- population statistics ----------------------------------------------------------------------------------------
def test_precise_bn_equals_the_direct_mean_and_variance_over_the_same_batches():
    model = bn_convnet(2)
    model.train()
    xs = [torch.randn(6, 2, 6, 6, dtype=F64, generator=gen(20 + i)) * (1 + i) + i for i in range(4)]
    for x in xs[:2]:
        model(x)                       # some EMA history that PreciseBN must discard
    snap = copy.deepcopy(model.state_dict())
    twin = ps.precise_bn(model, iter([(x, None) for x in xs]), 4)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in snap.items())   # the model is untouched
    assert not twin.training
    bn1, bn2 = twin.blocks[0].norm, twin.blocks[1].norm
    # reference: per batch, the first layer's conv output; its mean and unbiased variance over N x H x W; averaged
    means, vars_, means2, vars2 = [], [], [], []
    with torch.no_grad():
        for x in xs:
            z = model.blocks[0].layer(x)
            means.append(z.mean((0, 2, 3))), vars_.append(z.var((0, 2, 3), unbiased=True))
            h = model.blocks[0].act(model.blocks[0].norm.__class__.forward(_train_mode(model.blocks[0].norm), z))
            z2 = model.blocks[1].layer(h)
            means2.append(z2.mean((0, 2, 3))), vars2.append(z2.var((0, 2, 3), unbiased=True))
    assert torch.allclose(bn1.running_mean, torch.stack(means).mean(0), rtol=1e-12)
    assert torch.allclose(bn1.running_var, torch.stack(vars_).mean(0), rtol=1e-12)
    assert torch.allclose(bn2.running_mean, torch.stack(means2).mean(0), rtol=1e-10)
    assert torch.allclose(bn2.running_var, torch.stack(vars2).mean(0), rtol=1e-10)
    # perturbed: the variance of the pooled batches is not the mean of the per-batch variances
    pooled = torch.cat([model.blocks[0].layer(x).detach() for x in xs]).var((0, 2, 3), unbiased=True)
    assert not torch.allclose(bn1.running_var, pooled, rtol=1e-3)
    # and the last batch alone (momentum 1 without the average) is not it either
    assert not torch.allclose(bn1.running_mean, means[-1], rtol=1e-3)


def _train_mode(norm):
    n = copy.deepcopy(norm)
    n.train()
    return n


def test_precise_bn_works_on_torch_batchnorm_too():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).double()
    xs = [torch.randn(5, 3, dtype=F64, generator=gen(30 + i)) for i in range(3)]
    twin = ps.precise_bn(model, iter([(x, None) for x in xs]), 3)
    with torch.no_grad():
        zs = [model[0](x) for x in xs]
    assert torch.allclose(twin[1].running_mean, torch.stack([z.mean(0) for z in zs]).mean(0))
    assert torch.allclose(twin[1].running_var, torch.stack([z.var(0) for z in zs]).mean(0))
    assert twin[1].momentum == model[1].momentum


def test_batch_statistics_accuracy_normalises_each_batch_by_itself():
    model = bn_convnet(3)
    x, y = torch.randn(12, 2, 6, 6, dtype=F64, generator=gen(40)), torch.randint(0, 5, (12,), generator=gen(41))
    snap = {k: b.clone() for k, b in model.named_buffers()}
    model.eval()
    got = ps.accuracy_batch_stats(model, x, y, 4)
    assert all(torch.equal(b, snap[k]) for k, b in model.named_buffers()) and not model.training
    ref_model = copy.deepcopy(model).train()
    with torch.no_grad():
        ref = np.mean([float((ref_model(x[i:i + 4]).argmax(1) == y[i:i + 4]).double().mean()) for i in (0, 4, 8)])
    assert got == pytest.approx(ref)
    assert ps.accuracy_batch_stats(model, x, y, 5) == pytest.approx(np.mean(
        [float((ref_model(x[i:i + 5]).argmax(1) == y[i:i + 5]).double().mean()) for i in (0, 5)]))
    # population statistics give another prediction than batch statistics (the point of the measurement)
    with torch.no_grad():
        pop = (model.eval()(x).argmax(1) == y).double().mean()
    assert ps.accuracy_population(model, x, y) == pytest.approx(float(pop))
