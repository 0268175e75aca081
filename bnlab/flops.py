"""FLOP counts: of a network's forward pass, of a training run with its probes and evaluations, of the whole
suite at a scale. The benchmark (``bnlab.bench``) and the cost estimate (``bnlab.estimate``) both count with these.

Convention (the usual MFU one): 2 x multiply-adds of the conv and linear layers; normalisation, ReLU, pooling and
residual additions are not counted; a training step is forward + backward = 3 forwards.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from .config import ModelConfig, RunConfig
from .models import construct


def layer_flops(model, input_hw=(32, 32)) -> dict:
    """FLOPs (2 x multiply-adds) of one sample's forward through each conv and linear layer, {module: FLOPs}, from
    the shapes their outputs take in one forward pass on the meta device (any architecture, no compute). ``model``
    must live on the meta device (see :func:`model_flops`).

    Normalisation, ReLU, pooling and residual additions are not counted (the usual MFU convention).
    """
    first = next(m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    flops, hooks = {}, []

    def count(layer, _inputs, out):
        if isinstance(layer, nn.Conv2d):
            kh, kw = layer.kernel_size
            flops[layer] = flops.get(layer, 0) + 2 * (layer.in_channels // layer.groups) * kh * kw * out[0].numel()
        else:
            flops[layer] = flops.get(layer, 0) + 2 * layer.in_features * out[0].numel()
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(count))
    was_training = model.training
    try:
        shape = (1, first.in_channels, *input_hw) if isinstance(first, nn.Conv2d) else (1, first.in_features)
        with torch.no_grad():
            model.eval()(torch.empty(shape, device="meta"))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return flops


def meta_model(model_cfg: ModelConfig):
    """The network ``model_cfg`` describes, built on the meta device (shapes only: no memory, no init cost)."""
    with torch.device("meta"):
        return construct(model_cfg)


@lru_cache(maxsize=None)
def _block_flops(model_cfg: ModelConfig) -> tuple:
    model = meta_model(model_cfg)
    flops = layer_flops(model)
    return tuple(sum(flops.get(m, 0) for m in block.modules()) for block in model.blocks)


def block_flops(model_cfg: ModelConfig) -> list:
    """Forward FLOPs per image of each block of the network (every weight layer sits in a block); counted once per
    config (building even a meta-device network costs milliseconds, and the registry asks hundreds of times)."""
    return list(_block_flops(model_cfg))


def flop_ratios(blocks: list, ics_layers, ks) -> dict:
    """What a probed step costs in plain steps if time followed FLOPs (a compute-bound device, where only
    vmap-style batching or fusing the non-FLOP work of a step can beat it by much).

    Convention: a step is forward + backward = 3x the forward (the backward computes input and weight gradients,
    each as costly as the forward). The gradient ICS of layer i (1-based) needs the forward of blocks i..end at the
    old weights and a backward restricted to W_i (input gradients above i, the weight gradient of i): twice the
    FLOPs of blocks i..end; the updated prefix (blocks before the last measured one) is run once, forward only.
    A landscape point needs the loss and the full gradient at w - eta g: one forward + backward, a step's FLOPs.
    """
    total = sum(blocks)
    tail = lambda i: sum(blocks[i - 1:])  # noqa: E731
    ics_extra = sum(blocks[:max(ics_layers) - 1]) + sum(2 * tail(i) for i in ics_layers)
    return {"ics": 1 + ics_extra / (3 * total), **{f"landscape_k{k}": 1.0 + k for k in ks}}


@lru_cache(maxsize=None)
def model_flops(model_cfg: ModelConfig) -> int:
    """Forward FLOPs per image of the network ``model_cfg`` describes: every conv and linear layer, whether or not
    a block holds it (so ``sum(block_flops(cfg)) == model_flops(cfg)`` checks that every layer sits in a block)."""
    return sum(layer_flops(meta_model(model_cfg)).values())


def vgg_flops(arch: str, width: float, in_channels: int) -> int:
    """Forward FLOPs per image of a VGG."""
    return model_flops(ModelConfig(arch=arch, width=width, in_channels=in_channels))



def times_due(every: int, steps: int) -> int:
    """How often a probe with period ``every`` runs in ``steps`` steps (step 0, every n-th, and the last)."""
    if every <= 0:
        return 0
    return len(range(0, steps, every)) + (1 if (steps - 1) % every else 0)



TEST_SET_SIZE = {"cifar10": 10_000, "fashion_mnist": 10_000}


def evaluated_images(run) -> int:
    """Test images a run's evaluations forward in all (every ``eval_every`` steps and at the last step)."""
    t = run.train
    n_evals = t.steps // t.eval_every + (1 if t.steps % t.eval_every else 0)
    return n_evals * (run.data.test_subset or TEST_SET_SIZE[run.data.dataset])


def run_flops(run: RunConfig) -> dict:
    """FLOPs of one training run: its steps, its probes as :func:`flop_ratios` counts them, its evaluations (one
    forward per test image), and how many of them precision "tf32" may take in TF32 (unprobed steps, evaluations)."""
    p, t = run.probe, run.train
    blocks = block_flops(run.model)
    step = 3 * sum(blocks) * t.batch_size
    n_probe = times_due(p.every, t.steps)
    ratios = flop_ratios(blocks, p.ics_layers or (1,), (p.landscape_points,))
    extra = (ratios["ics"] - 1) * bool(p.ics_layers) + \
        (ratios[f"landscape_k{p.landscape_points}"] - 1) * bool(p.landscape)
    evaluation = 0 if run.model.arch == "dln" else sum(blocks) * evaluated_images(run)
    out = {"train": float(step * t.steps), "probes": float(step * n_probe * extra), "eval": float(evaluation)}
    out["tf32_eligible"] = float(step * (t.steps - n_probe) + evaluation) if t.precision == "tf32" else 0.0
    out["total"] = out["train"] + out["probes"] + out["eval"]
    return out
