import torch

from bnlab.config import ModelConfig, n_layers
from bnlab.models import ResidualBlock, build, loss_fn
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
    for w in (b.weight for b in m.blocks):
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


def test_resnet_has_6n_plus_2_weight_layers_and_classifies():
    m = build(ModelConfig(arch="resnet", depth=20, norm="batch", width=0.25, in_channels=1))
    convs = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]
    linears = [x for x in m.modules() if isinstance(x, torch.nn.Linear)]
    assert len(convs) + len(linears) == 20 and len(m) == n_layers(m_cfg := ModelConfig(arch="resnet", depth=20))
    assert n_layers(m_cfg) == 11                               # stem + 9 residual blocks + classifier
    assert sum(isinstance(x, BatchNorm) for x in m.modules()) == 19 and all(c.bias is None for c in convs)
    assert m(torch.randn(3, 1, 32, 32)).shape == (3, 10)
    assert [c.out_channels for c in convs][-1] == 16           # 64 x width
    assert n_layers(ModelConfig(arch="resnet")) == 56          # ResNet-110 by default


def test_resnet_shortcut_subsamples_and_pads_channels():
    block = ResidualBlock(4, 8, stride=2, norm="none")
    torch.nn.init.zeros_(block.layer2.weight), torch.nn.init.zeros_(block.layer2.bias)
    x = torch.randn(2, 4, 8, 8)
    expected = torch.relu(torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 4, 4, 4)], dim=1))
    torch.testing.assert_close(block(x), expected)             # residual branch off: only the shortcut is left


def test_resnet_without_bn_output_grows_with_depth_and_bn_keeps_it():
    """Bjorck et al.'s observation that the chapter's ResNet sweep rests on: without BN the initial output grows
    (about exponentially) with depth; with BN it stays of order one."""
    x = torch.randn(64, 1, 32, 32)
    scale = {}
    for norm in ("none", "batch"):
        for depth in (8, 56):
            m = build(ModelConfig(arch="resnet", depth=depth, norm=norm, width=0.25, in_channels=1), seed=0)
            with torch.no_grad():
                scale[norm, depth] = m(x).pow(2).mean().sqrt().item()
    assert scale["none", 56] > 100 * scale["none", 8]
    assert scale["batch", 56] < 10 * scale["batch", 8] and scale["batch", 56] < 10


def test_resnet_builds_with_every_norm():
    for norm in ("none", "batch", "noisy_batch", "l2", "layer", "group", "rescaled"):
        m = build(ModelConfig(arch="resnet", depth=8, norm=norm, width=0.25, in_channels=1))
        assert torch.isfinite(m(torch.randn(4, 1, 32, 32))).all()
    rescaled = [x for x in m.modules() if hasattr(x, "pending_init")]
    assert rescaled and not any(r.pending_init for r in rescaled)   # initialised on the first training batch
