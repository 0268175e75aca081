import copy

import pytest
import torch

from bnlab.config import ModelConfig
from bnlab.measure import gradient_ics, probe_along_gradient
from bnlab.measure.landscape import etas_for
from bnlab.models import build, loss_fn
from bnlab.norms import ActivationNoise

NETS = [("vgg", "batch"), ("vgg", "none"), ("vgg", "noisy_batch"), ("dln", "batch"), ("dln", "l1")]


def setup(kind, norm, seed=0):
    torch.manual_seed(seed)
    if kind == "vgg":
        model = build(ModelConfig(arch="vgg16", norm=norm, width=0.0625, in_channels=1), seed, dtype=torch.float64)
        x, y = torch.randn(16, 1, 32, 32, dtype=torch.float64), torch.randint(0, 10, (16,))
    else:
        model = build(ModelConfig(arch="dln", norm=norm), seed, dtype=torch.float64)
        x = torch.randn(64, 10, dtype=torch.float64)
        y = x @ torch.randn(10, 10, dtype=torch.float64).T
    return model, x, y


def reference_gradient(model, params_by_block, x, y, block):
    """Obviously correct: a fresh copy holding exactly the given parameters, full forward and backward."""
    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, ActivationNoise):
            mod.replay = True          # the same noise draws as the training step (the copy holds them)
    with torch.no_grad():
        for b, ps in zip(m.blocks, params_by_block):
            for p, v in zip(b.parameters(), ps):
                p.copy_(v)
    m.zero_grad()
    loss_fn(m, m(x), y).backward()
    return m.blocks[block - 1].weight.grad.clone()


@pytest.mark.parametrize("kind, norm", NETS)
def test_gradient_ics_matches_definition_2_1(kind, norm):
    model, x, y = setup(kind, norm)
    lr = 0.1 if kind == "vgg" else 1e-3
    layers = (5, 10) if kind == "vgg" else (9, 17)
    old = [[p.detach().clone() for p in b.parameters()] for b in model.blocks]
    loss_fn(model, model(x), y).backward()
    grads = {k: model.blocks[k - 1].weight.grad.clone() for k in layers}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    new = [[p.detach().clone() for p in b.parameters()] for b in model.blocks]
    pairs = gradient_ics(model, x, y, old, grads, layers)
    for k in layers:
        mixed = [new[i] if i < k - 1 else old[i] for i in range(len(model))]
        torch.testing.assert_close(pairs[k][1], reference_gradient(model, mixed, x, y, k), rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(pairs[k][0], grads[k])
        assert not torch.allclose(pairs[k][1], pairs[k][0], rtol=1e-12, atol=0)   # the prefix moved
    for b, ps in zip(model.blocks, new):                       # model left at W^(t+1), statistics untouched
        for p, v in zip(b.parameters(), ps):
            assert torch.equal(p, v)
    for k, v in model.named_buffers():
        assert torch.equal(v, buffers[k])


@pytest.mark.parametrize("kind, norm", NETS)
def test_landscape_probe_matches_reference_and_restores(kind, norm):
    model, x, y = setup(kind, norm, seed=1)
    loss_fn(model, model(x), y).backward()
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    g0 = {n: p.grad.clone() for n, p in model.named_parameters()}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    lr = 0.1 if kind == "vgg" else 1e-3
    etas = etas_for(lr, (0.5, 4.0), 3)
    res = probe_along_gradient(model, x, y, etas, "loop")
    gnorm = torch.sqrt(sum((g ** 2).sum() for g in g0.values()))
    for k, eta in enumerate(etas.tolist()):
        m = copy.deepcopy(model)
        for mod in m.modules():
            if isinstance(mod, ActivationNoise):
                mod.replay = True
        with torch.no_grad():
            for n, p in m.named_parameters():
                p.copy_(w0[n] - eta * g0[n])
        m.zero_grad()
        loss = loss_fn(m, m(x), y)
        loss.backward()
        change = torch.sqrt(sum(((p.grad - g0[n]) ** 2).sum() for n, p in m.named_parameters()))
        torch.testing.assert_close(res["loss"][k], loss.detach(), rtol=1e-10, atol=0)
        torch.testing.assert_close(res["grad_change"][k], change, rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(res["beta"][k], change / (eta * gnorm), rtol=1e-8, atol=1e-12)
    for n, p in model.named_parameters():
        assert torch.equal(p, w0[n]) and torch.equal(p.grad, g0[n])
    for k, v in model.named_buffers():
        assert torch.equal(v, buffers[k])


@pytest.mark.parametrize("kind, norm", NETS)
def test_vmap_probe_agrees_with_loop(kind, norm):
    model, x, y = setup(kind, norm, seed=2)
    loss_fn(model, model(x), y).backward()
    etas = etas_for(0.1 if kind == "vgg" else 1e-3, (0.5, 4.0), 4)
    a = probe_along_gradient(model, x, y, etas, "loop")
    b = probe_along_gradient(model, x, y, etas, "vmap")
    for key in ("loss", "grad_change", "beta"):
        torch.testing.assert_close(a[key], b[key], rtol=1e-7, atol=1e-10)


def test_unknown_backend():
    model, x, y = setup("dln", "none")
    loss_fn(model, model(x), y).backward()
    with pytest.raises(ValueError, match="backend"):
        probe_along_gradient(model, x, y, etas_for(1e-3, (1, 2), 2), "magic")
