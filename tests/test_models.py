import torch

from bnlab.config import ModelConfig
from bnlab.models import build, layer_weights, loss_fn
from bnlab.norms import BatchNorm


def test_vgg16_has_the_papers_layer_count_and_output():
    m = build(ModelConfig(arch="vgg16", norm="batch", width=0.0625, in_channels=1))
    assert len(m) == 14                    # 13 convs + 1 linear: the paper plots up to layer #13
    assert sum(isinstance(b.norm, BatchNorm) for b in m.blocks) == 13
    assert all(b.layer.bias is None for b in m.blocks[:13])     # BN makes a conv bias redundant
    out = m(torch.randn(4, 1, 32, 32))
    assert out.shape == (4, 10)
    assert build(ModelConfig(arch="vgg16", width=1.0)).blocks[12].layer.out_channels == 512


def test_standard_vgg_keeps_biases_and_has_no_norm():
    m = build(ModelConfig(arch="vgg11", norm="none", width=0.125))
    assert len(m) == 9 and m.blocks[0].layer.bias is not None
    assert not any(isinstance(x, BatchNorm) for x in m.modules())


def test_deep_linear_network_is_a_product_of_matrices():
    m = build(ModelConfig(arch="dln", norm="none"), dtype=torch.float64)
    assert len(m) == 25
    x = torch.randn(5, 10, dtype=torch.float64)
    prod = torch.eye(10, dtype=torch.float64)
    for w in layer_weights(m):
        prod = w @ prod
    torch.testing.assert_close(m(x), x @ prod.T)
    y = torch.randn(5, 10, dtype=torch.float64)
    torch.testing.assert_close(loss_fn(m, m(x), y), ((m(x) - y) ** 2).sum(1).mean())


def test_glorot_uniform_init_and_seed():
    a = build(ModelConfig(arch="dln"), seed=0)
    b = build(ModelConfig(arch="dln"), seed=0)
    c = build(ModelConfig(arch="dln"), seed=1)
    w = a.blocks[0].weight
    bound = (6 / 20) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound
    assert torch.equal(w, b.blocks[0].weight) and not torch.equal(w, c.blocks[0].weight)
