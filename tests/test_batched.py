"""Runs stepped as one batched model take the steps their separate runs take (``bnlab.batched``)."""
import pytest
import torch

from bnlab.batched import SeedBatch, batchable
from bnlab.config import ModelConfig
from bnlab.engine import EngineOptions, Stepper
from bnlab.models import build


def _separate(cfg, seeds, lrs, batches, dtype):
    """Each run alone, through the engine's step and torch's SGD: losses per step, final parameters and buffers."""
    losses, states = [], []
    for k, (seed, lr) in enumerate(zip(seeds, lrs)):
        model = build(cfg, seed, dtype=dtype)
        model.train()
        stepper = Stepper(model, torch.optim.SGD(model.parameters(), lr=lr), EngineOptions(compile=False))
        losses.append([stepper.step(i, x[k], y[k])[1].item() for i, (x, y) in enumerate(batches)])
        states.append({n: t.detach().clone() for n, t in model.state_dict().items()})
    return torch.tensor(losses, dtype=torch.float64), states


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_batched_seeds_and_learning_rates_equal_separate_runs_in_float64(norm):
    """Deep linear network, float64, three seeds at three learning rates, ten full-batch steps each on its own data:
    every loss and every parameter and running statistic equal to the separate run's to 1e-12 relative. (Entries
    that are zero in exact arithmetic -- a BatchNorm bias behind another BatchNorm gets a zero gradient, the running
    mean of a normalised input is zero -- hold rounding noise of ~1e-18 in both: they are compared to 1e-15
    absolute.)"""
    cfg, seeds, lrs = ModelConfig(arch="dln", norm=norm), (0, 1, 2), (1e-3, 3e-3, 1e-2)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(3, 64, 10, generator=gen, dtype=torch.float64),
                torch.randn(3, 64, 10, generator=gen, dtype=torch.float64)) for _ in range(10)]
    ref_losses, ref_states = _separate(cfg, seeds, lrs, batches, torch.float64)

    models = [build(cfg, s, dtype=torch.float64) for s in seeds]
    batch = SeedBatch(models, lrs)
    losses = torch.stack([batch.step(x, y)[1] for x, y in batches], dim=1)
    torch.testing.assert_close(losses, ref_losses.to(losses.dtype), rtol=1e-12, atol=0)
    batch.write_to(models)
    for model, ref in zip(models, ref_states):
        for name, t in model.state_dict().items():
            torch.testing.assert_close(t, ref[name], rtol=1e-12, atol=1e-15, msg=name)


def test_batched_vgg_steps_match_separate_steps_in_float32():
    """The convolutional networks batch too (grouped convolutions): fp32, two steps, within float32 rounding."""
    cfg, seeds, lrs = ModelConfig(arch="vgg16", norm="batch", width=0.0625, in_channels=1), (0, 1), (0.1, 0.05)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(2, 16, 1, 32, 32, generator=gen), torch.randint(0, 10, (2, 16), generator=gen))
               for _ in range(2)]
    ref_losses, ref_states = _separate(cfg, seeds, lrs, batches, torch.float32)
    models = [build(cfg, s) for s in seeds]
    start = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]
    batch = SeedBatch(models, lrs)
    losses = torch.stack([batch.step(x, y)[1] for x, y in batches], dim=1)
    torch.testing.assert_close(losses, ref_losses.float(), rtol=1e-5, atol=1e-6)
    batch.write_to(models)
    # each tensor against the separate steps, as a norm relative to how far the two steps moved it: the grouped and
    # the separate convolutions sum in different orders, and on one thread the first convolution's weight (whose
    # gradient with BN after it is a difference of large terms) differs by 1.6e-4 in one entry, 1.5e-4 of its update
    for model, ref, init in zip(models, ref_states, start):
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                err, moved = (t - ref[name]).norm().item(), (ref[name] - init[name]).norm().item()
                assert err <= 1e-3 * moved + 1e-6, (name, err, moved)
            else:
                assert torch.equal(t, ref[name]), name


def test_what_cannot_be_batched_is_refused():
    noisy = build(ModelConfig(arch="dln", norm="noisy_batch"), 0, dtype=torch.float64)
    assert not batchable(noisy) and batchable(build(ModelConfig(arch="dln", norm="batch"), 0))
    with pytest.raises(ValueError, match="UNBATCHABLE"):
        SeedBatch([noisy], [0.1])
    with pytest.raises(ValueError, match="learning rates"):
        SeedBatch([build(ModelConfig(arch="dln", norm="none"), 0)], [0.1, 0.2])
