"""FLOP counts: of a network's forward pass and training step, of a training run with its probes and evaluations, of
the whole suite at a scale. The benchmark (``bnlab.bench``) and the cost estimate (``bnlab.estimate``) both count
with these.

What is counted: ``torch.utils.flop_counter.FlopCounterMode`` (2 x multiply-adds of every convolution and matrix
product, the usual MFU convention; normalisation, ReLU, pooling, residual additions, biases, the loss and the SGD
update count nothing) runs once per network on the meta device, which computes shapes only, so counting costs
milliseconds and no memory: the forward per block (:func:`block_flops`, :func:`model_flops`) and a whole plain
training step, forward and backward, as autograd runs it (:func:`step_flops`).

What it cannot count is counted here as multiples of those: a probed step (:func:`flop_ratios`), a run's probes,
evaluations and analyses (:func:`run_flops`, ``bnlab.analyses``).

The hand count, :func:`layer_flops` (2 x multiply-adds from each conv and linear layer's output shape), and the
rule of thumb "a step is 3 forwards" (:func:`hand_step_flops`) are kept as an independent check:
``tests/test_flops.py`` asserts that the two counts of a step agree within :data:`STEP_TOLERANCE`.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import ModelConfig, RunConfig
from .models import construct, loss_fn

# How far "a step is 3 forwards" (:func:`hand_step_flops`) may lie from the step FlopCounterMode counts. The rule
# counts the first layer's input gradient, which autograd never computes (the images need no gradient): it
# over-counts by exactly the first layer's forward, 1.35% (DLN) to 2.38% (a ResNet-8 at half width) of the counted
# step at the sizes tests/test_flops.py uses, 0.06% (ResNet-110) to 0.19% (VGG-16) at the paper's.
STEP_TOLERANCE = 0.025


def layer_flops(model, input_hw=(32, 32)) -> dict:
    """The hand count: FLOPs (2 x multiply-adds) of one sample's forward through each conv and linear layer,
    {module: FLOPs}, from the shapes their outputs take in one forward pass on the meta device (any architecture,
    no compute). ``model`` must live on the meta device (see :func:`meta_model`).

    Normalisation, ReLU, pooling and residual additions are not counted (the usual MFU convention). The package
    counts with FlopCounterMode (:func:`counted_flops`); this stays as the check on it (:func:`hand_step_flops`).
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


def _example(model, model_cfg: ModelConfig, batch: int):
    """A batch of inputs and targets of the right shapes, on the meta device."""
    if model.kind == "classifier":
        return (torch.empty(batch, model_cfg.in_channels, 32, 32, device="meta"),
                torch.empty(batch, dtype=torch.long, device="meta"))
    return torch.empty(batch, model_cfg.dln_dim, device="meta"), torch.empty(batch, model_cfg.dln_dim, device="meta")


def counted_flops(model_cfg: ModelConfig, batch: int = 2, custom_mapping=None) -> dict:
    """FLOPs per image that ``FlopCounterMode`` counts in one plain training step on the meta device (forward in
    training mode, the loss, its backward): ``{"forward": FLOPs of the forward, "blocks": [forward FLOPs of each
    block], "step": FLOPs of forward + backward}``.

    ``batch`` is 2 so that batch statistics exist; every count is linear in the batch and is divided by it.
    The data-dependent initialisation of norm "rescaled" (one extra forward of each layer, once per run) is no
    part of a step: it is marked done. ``custom_mapping`` is passed to FlopCounterMode (its FLOP formula per op).
    """
    model = meta_model(model_cfg)
    for m in model.modules():
        if getattr(m, "initialised", None) is not None:
            m.initialised = torch.tensor(True)          # a real (CPU) flag: a meta tensor has no truth value
    x, y = _example(model, model_cfg, batch)
    counter = FlopCounterMode(display=False, custom_mapping=custom_mapping)
    with counter:
        out = model(x)
        forward = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
        loss_fn(model, out, y).backward()
    per_image = lambda n: n // batch if n % batch == 0 else n / batch          # noqa: E731
    prefix = f"{type(model).__name__}.blocks."
    return {"forward": per_image(forward.get("Global", 0)),
            "blocks": [per_image(forward.get(f"{prefix}{i}", 0)) for i in range(len(model.blocks))],
            "step": per_image(counter.get_total_flops())}


@lru_cache(maxsize=None)
def _counted(model_cfg: ModelConfig) -> dict:
    return counted_flops(model_cfg)


def block_flops(model_cfg: ModelConfig) -> list:
    """Forward FLOPs per image of each block of the network (every weight layer sits in a block), as
    FlopCounterMode counts them; counted once per config (building even a meta-device network costs milliseconds,
    and the registry asks hundreds of times)."""
    return list(_counted(model_cfg)["blocks"])


def step_flops(model_cfg: ModelConfig) -> int:
    """FLOPs per image of one plain training step (forward, loss, backward: input and weight gradients where
    autograd computes them), as FlopCounterMode counts it. Close to 3 forwards (:func:`hand_step_flops`), less
    the first layer's input gradient."""
    return _counted(model_cfg)["step"]


def hand_step_flops(model_cfg: ModelConfig) -> int:
    """The hand count of a step, per image: 3 x the forward of every conv and linear layer (:func:`layer_flops`):
    the backward computes input and weight gradients, each as costly as the forward. The check on
    :func:`step_flops`, which it over-counts by the first layer's input gradient (:data:`STEP_TOLERANCE`)."""
    return 3 * sum(layer_flops(meta_model(model_cfg)).values())


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


def model_flops(model_cfg: ModelConfig) -> int:
    """Forward FLOPs per image of the network ``model_cfg`` describes, as FlopCounterMode counts them: every
    convolution and matrix product, whether or not a block holds it (so ``sum(block_flops(cfg)) ==
    model_flops(cfg)`` checks that every layer sits in a block)."""
    return _counted(model_cfg)["forward"]


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
    """FLOPs of one training run: its steps (:func:`step_flops`), its probes as :func:`flop_ratios` counts them (in
    plain steps), its evaluations (one forward per test image), and how many of them precision "tf32" may take in
    TF32 (unprobed steps, evaluations)."""
    p, t = run.probe, run.train
    blocks = block_flops(run.model)
    step = step_flops(run.model) * t.batch_size
    n_probe = times_due(p.every, t.steps)
    ratios = flop_ratios(blocks, p.ics_layers or (1,), (p.landscape_points,))
    extra = (ratios["ics"] - 1) * bool(p.ics_layers) + \
        (ratios[f"landscape_k{p.landscape_points}"] - 1) * bool(p.landscape)
    evaluation = 0 if run.model.arch == "dln" else sum(blocks) * evaluated_images(run)
    out = {"train": float(step * t.steps), "probes": float(step * n_probe * extra), "eval": float(evaluation)}
    out["tf32_eligible"] = float(step * (t.steps - n_probe) + evaluation) if t.precision == "tf32" else 0.0
    out["total"] = out["train"] + out["probes"] + out["eval"]
    return out
