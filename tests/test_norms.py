import pytest
import torch
from torch import nn

from bnlab.norms import ActivationNoise, BatchNorm, LpNorm, frozen_state, make_norm

SHAPES = [(16, 5), (7, 3), (8, 4, 6, 6), (3, 2, 5, 7), (32, 8, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_matches_torch_in_train_and_eval(shape):
    torch.manual_seed(sum(shape))
    c = shape[1]
    ours = BatchNorm(c).double()
    ref = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(c).double()
    with torch.no_grad():
        for m in (ours, ref):
            m.weight.copy_(torch.linspace(0.5, 2.0, c))
            m.bias.copy_(torch.linspace(-1.0, 1.0, c))
    for step in range(3):   # running statistics accumulate identically
        x = (torch.randn(shape, dtype=torch.float64) * 3 + 2).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        y, y2 = ours(x), ref(x2)
        torch.testing.assert_close(y, y2)
        w = torch.randn_like(y)
        (y * w).sum().backward()
        (y2 * w).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad)
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 3
    ours.eval(), ref.eval()
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x))


def test_batchnorm_gradcheck_float64():
    torch.manual_seed(0)
    bn = BatchNorm(3).double()
    x = torch.randn(6, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: bn(t), (x,))


def test_batchnorm_train_output_is_standardised_and_eval_is_affine():
    torch.manual_seed(1)
    bn = BatchNorm(4)
    x = torch.randn(64, 4, 3, 3) * 5 + 3
    y = bn(x)
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(y.var((0, 2, 3), unbiased=False), torch.ones(4), atol=1e-3)
    bn.eval()
    a, b = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    # inference is a fixed affine map per channel: the output for one example does not depend on the others
    torch.testing.assert_close(bn(torch.cat([a, b]))[:2], bn(a))


def test_noise_statistics_follow_the_paper():
    torch.manual_seed(0)
    noise = ActivationNoise(8)
    x = torch.ones(4096, 8)
    y = noise(x)   # = s + m: per channel, mean sigma_j + mu_j with sigma_j in [1, 1.25], mu_j in [-0.5, 0.5]
    s, m = noise._last
    mu_j, sigma_j = m.mean(0), s.mean(0)
    assert ((sigma_j > 0.98) & (sigma_j < 1.27)).all() and (mu_j.abs() < 0.52).all()
    assert torch.allclose(s.std(0), torch.full((8,), 0.1), atol=0.01)           # r_sigma as a std
    assert torch.allclose((m - m.mean(0)).abs().max(0).values, torch.full((8,), 0.1), atol=0.01)  # U(+-r_mu)
    torch.testing.assert_close(y, s * x + m)
    noise.eval()
    assert torch.equal(noise(x), x)
    noise.train()
    noise.replay = True
    torch.testing.assert_close(noise(x), y)


@pytest.mark.parametrize("p", ["l1", "l2", "linf"])
def test_lp_norm_centres_and_scales(p):
    torch.manual_seed(2)
    layer = LpNorm(3, p)
    x = torch.randn(200, 3) * 4 + 1
    y = layer(x)
    assert torch.allclose(y.mean(0), torch.zeros(3), atol=1e-5)
    norm = {"l1": x.abs().mean(0), "l2": x.pow(2).mean(0).sqrt(), "linf": x.abs().amax(0)}[p]
    torch.testing.assert_close(y, (x - x.mean(0)) / (norm + 1e-5))
    if p == "linf":
        assert (y.abs() <= 2.0 + 1e-5).all()


def test_make_norm_kinds_and_unknown():
    assert isinstance(make_norm("none", 4, True), nn.Identity)
    assert isinstance(make_norm("torch_batch", 4, True), nn.BatchNorm2d)
    assert isinstance(make_norm("torch_batch", 4, False), nn.BatchNorm1d)
    assert isinstance(make_norm("noisy_batch", 4, True)[1], ActivationNoise)
    with pytest.raises(ValueError, match="unknown normalisation"):
        make_norm("weird", 4, True)


def test_frozen_state_restores_running_statistics():
    bn = BatchNorm(3)
    before = {k: v.clone() for k, v in bn.named_buffers()}
    with frozen_state(bn):
        bn(torch.randn(10, 3) * 7)
    for k, v in bn.named_buffers():
        assert torch.equal(v, before[k])
    bn(torch.randn(10, 3) * 7)
    assert not torch.equal(bn.running_mean, before["running_mean"])
