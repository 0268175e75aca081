"""Yang et al. 2019 ("A Mean Field Theory of Batch Normalization") on our networks: at initialisation BN makes the
gradients of a deep fully connected network explode with depth, a step of training tames it, and plain BN networks
stop training beyond some depth. Two analyses (``bnlab.recipes.Analysis``) with their own sizes per scale (ours:
the paper gives none that fit a CPU); arrays that differ by seed have the seeds as their first axis.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import ModelConfig, PAPER_SETTINGS, _check, _check_types
from .scales import Scale, _check_seeds
from .device import strict_fp32
from .engine import Stepper
from .flops import model_flops
from .measure.gradient_explosion import dynamic_range, fit_window, growth_rate, preactivation_grad_sq
from .models import build, loss_fn
from .recipes import Analysis
from .train import progress_bar

from .signal_propagation import F64, PRECISION, _first_batch, _images, _in_channels, _mlp_flops, _seeded_mlp


# ---- item 2: gradient explosion at initialisation and after a few steps ------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ExplosionSizes:
    """Yang et al.'s MLP (``depth`` x ``width``, batch ``batch``) at initialisation, BN and standard; the BN MLP's
    rate at the descriptive ``inset_batches``; then the BN MLP trained ``dyn_steps`` steps of SGD at each of
    ``dyn_lrs``, its gradient profile measured before every step; the VGG's weight gradients at initialisation."""

    depth: int
    width: int
    batch: int
    inset_batches: tuple
    dyn_lrs: tuple
    dyn_steps: int
    seeds: tuple

    def __post_init__(self):
        _check_types(self, ints=("depth", "width", "batch", "dyn_steps"))
        _check(self.depth >= 4 and self.width >= 2 and self.batch >= 2 and self.dyn_steps >= 1
               and all(b >= 2 for b in self.inset_batches) and all(lr > 0 for lr in self.dyn_lrs),
               f"bad gradient-explosion sizes {self}")
        _check_seeds(self)


EXPLOSION_SIZES = {
    "smoke": ExplosionSizes(depth=8, width=32, batch=32, inset_batches=(8, 64), dyn_lrs=(0.1, 0.01), dyn_steps=3,
                            seeds=(0, 1)),
    "cpu": ExplosionSizes(depth=32, width=256, batch=128, inset_batches=(32, 512), dyn_lrs=(0.1, 0.01), dyn_steps=100,
                          seeds=(0, 1, 2, 3, 4)),
    "colab": ExplosionSizes(depth=50, width=1024, batch=128, inset_batches=(32, 512, 1024), dyn_lrs=(0.1, 0.01),
                            dyn_steps=300, seeds=(0, 1, 2, 3, 4)),
    "paper": ExplosionSizes(depth=100, width=1024, batch=128, inset_batches=(32, 512, 1024), dyn_lrs=(0.1, 0.01),
                            dyn_steps=1000, seeds=(0, 1, 2, 3, 4)),
}
EXPLOSION_SIZES["paper_fmnist"] = EXPLOSION_SIZES["paper"]


def _vgg_cfg(scale: Scale, norm: str) -> ModelConfig:
    return ModelConfig(arch=PAPER_SETTINGS["vgg"]["arch"], norm=norm, width=scale.vgg_width,
                       in_channels=_in_channels(scale))


def _weight_grad_norms(model, x, y) -> list:
    model.train()
    for p in model.parameters():
        p.grad = None
    loss_fn(model, model(x), y).backward()
    out = [float(b.weight.grad.double().norm()) for b in model.blocks]
    for p in model.parameters():
        p.grad = None
    return out


def gradient_explosion(scale: Scale, plan) -> dict:
    """Per seed: ||dL/dh_l||^2 of every hidden layer of the BN and the standard MLP at initialisation (fp64) and the
    rate exp(-slope) of log of it against l over layers :func:`fit_window` (the factor per layer towards the
    input); the BN MLP's rate at other batch sizes; then for each lr the BN MLP's profile before each of
    ``dyn_steps`` SGD steps and after the last (strict fp32), its dynamic range D_t; the VGG's ||grad W|| per block.

    Keys: ``seeds`` [S], ``depth``, ``fit`` (lo, hi, 1-based), ``theory_rate`` (pi / (pi - 1)), ``inset_batches``
    [NB], ``dyn_lrs`` [NL]; ``batch/grad_sq`` and ``none/grad_sq`` [S, depth]; ``batch/rate`` and ``none/rate``
    [S]; ``batch/inset_rate`` [S, NB]; ``dyn/grad_sq`` [S, NL, dyn_steps + 1, depth], ``dyn/D`` [S, NL,
    dyn_steps + 1] (index t: after t steps), ``dyn/train_loss`` [S, NL, dyn_steps] (NaN after a divergence);
    ``vgg/batch/weight_grad`` and ``vgg/none/weight_grad`` [S, 14].
    """
    s, dev = EXPLOSION_SIZES[scale.name], plan.device
    images = _images(scale, plan)
    in_f = _in_channels(scale) * 32 * 32
    lo, hi = fit_window(s.depth)
    out: dict = {"seeds": np.asarray(s.seeds), "depth": np.asarray(s.depth), "fit": np.asarray([lo, hi]),
                 "theory_rate": np.asarray(np.pi / (np.pi - 1)), "inset_batches": np.asarray(s.inset_batches),
                 "dyn_lrs": np.asarray(s.dyn_lrs), "batch_size": np.asarray(s.batch), "precision": PRECISION}
    rows: dict = {}
    bar = progress_bar(len(s.seeds) * (2 + len(s.dyn_lrs) * s.dyn_steps), "gradient explosion", plan.progress)
    kw = dict(depth=s.depth, width=s.width, in_features=in_f)
    for seed in s.seeds:
        x, y = _first_batch(images, s.batch, seed)
        for norm in ("batch", "none"):
            g = preactivation_grad_sq(_seeded_mlp(seed, dev, F64, norm=norm, **kw), x, y)
            rows.setdefault(f"{norm}/grad_sq", []).append(g)
            rows.setdefault(f"{norm}/rate", []).append(growth_rate(g, lo, hi))
        inset = []
        for b in s.inset_batches:
            xb, yb = _first_batch(images, b, seed)
            inset.append(growth_rate(preactivation_grad_sq(_seeded_mlp(seed, dev, F64, norm="batch", **kw), xb, yb),
                                     lo, hi))
        rows.setdefault("batch/inset_rate", []).append(inset)
        for norm in ("batch", "none"):
            vgg = build(_vgg_cfg(scale, norm), seed, dev, F64)
            rows.setdefault(f"vgg/{norm}/weight_grad", []).append(_weight_grad_norms(vgg, x, y))
        if bar is not None:
            bar.update(2)
        profiles, ds, losses = [], [], []
        strict_fp32()
        for lr in s.dyn_lrs:
            model = _seeded_mlp(seed, dev, torch.float32, norm="batch", **kw)
            stepper = Stepper(model, torch.optim.SGD(model.parameters(), lr=lr), plan.engine)
            batches = images.batches(s.batch, seed)
            prof, loss_t = [], np.full(s.dyn_steps, np.nan)
            xb, yb = next(batches)
            for t in range(s.dyn_steps + 1):
                prof.append(preactivation_grad_sq(model, xb, yb))
                if t == s.dyn_steps or not np.all(np.isfinite(prof[-1])):
                    break
                _, loss = stepper.step(t, xb, yb)
                loss_t[t] = float(loss.detach())
                xb, yb = next(batches)
                if bar is not None:
                    bar.update(1)
            prof += [np.full(s.depth, np.nan)] * (s.dyn_steps + 1 - len(prof))
            profiles.append(prof)
            ds.append([dynamic_range(p) for p in prof])
            losses.append(loss_t)
        rows.setdefault("dyn/grad_sq", []).append(profiles)
        rows.setdefault("dyn/D", []).append(ds)
        rows.setdefault("dyn/train_loss", []).append(losses)
    if bar is not None:
        bar.close()
    out.update({k: np.asarray(v, dtype=np.float64) for k, v in rows.items()})
    return out


def explosion_rate(depth: int, width: int, batch: int, norm: str = "batch", seed: int = 0, plan=None) -> float:
    """The fitted growth rate per layer of ||dL/dh_l||^2 at initialisation, for one MLP of ``depth`` x ``width`` on one
    batch of ``batch`` Fashion-MNIST images (or the plan's scale's data): what :func:`gradient_explosion` measures,
    for a reader's own sizes. Seconds on a CPU at depth 32, width 256."""
    from .plan import RunPlan
    from .scales import get_scale
    plan = plan if plan is not None else RunPlan.from_env(scale="smoke")
    scale = get_scale(plan.scale)
    x, y = _first_batch(_images(scale, plan), batch, seed)
    model = _seeded_mlp(seed, plan.device, F64, norm=norm, depth=depth, width=width,
                        in_features=_in_channels(scale) * 32 * 32)
    return growth_rate(preactivation_grad_sq(model, x, y), *fit_window(depth))


def _explosion_flops(scale: Scale) -> float:
    s = EXPLOSION_SIZES[scale.name]
    f = _mlp_flops(s.depth, s.width, _in_channels(scale) * 1024)
    init = 3 * f * (2 * s.batch + sum(s.inset_batches)) + 2 * 3 * model_flops(_vgg_cfg(scale, "batch")) * s.batch
    dyn = len(s.dyn_lrs) * (2 * s.dyn_steps + 1) * 3 * f * s.batch     # a step and a profile per step
    return float(len(s.seeds) * (init + dyn))


def _explosion_block_steps(scale: Scale) -> int:
    s = EXPLOSION_SIZES[scale.name]
    per_seed = (s.depth + 1) * (2 + len(s.inset_batches) + len(s.dyn_lrs) * (2 * s.dyn_steps + 1)) + 2 * 14
    return per_seed * len(s.seeds)


GRADIENT_EXPLOSION = Analysis(gradient_explosion, sizes=lambda scale: EXPLOSION_SIZES[scale.name],
                              flops=_explosion_flops, block_steps=_explosion_block_steps)


# ---- item 2C: trainability of deep BN MLPs without skip connections ----------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TrainabilitySizes:
    """The BN MLP of width ``width`` at each of ``depths`` x ``lrs``, trained ``steps`` steps of SGD at batch
    ``batch``; its accuracy is the mean training accuracy over the last ``window`` steps."""

    width: int
    depths: tuple
    lrs: tuple
    batch: int
    steps: int
    window: int
    seeds: tuple

    def __post_init__(self):
        _check_types(self, ints=("width", "batch", "steps", "window"))
        _check(self.width >= 2 and all(isinstance(d, int) and d >= 1 for d in self.depths) and self.batch >= 2
               and 1 <= self.window <= self.steps and all(lr > 0 for lr in self.lrs), f"bad trainability sizes {self}")
        _check_seeds(self)


TRAINABILITY_SIZES = {
    "smoke": TrainabilitySizes(width=16, depths=(2, 4), lrs=(0.1, 0.01), batch=32, steps=6, window=3, seeds=(0,)),
    "cpu": TrainabilitySizes(width=128, depths=(16, 32, 64, 128), lrs=(0.1, 0.01), batch=128, steps=300, window=50,
                             seeds=(0, 1, 2)),
    "colab": TrainabilitySizes(width=512, depths=(16, 32, 64, 128), lrs=(0.1, 0.01), batch=128, steps=500, window=100,
                               seeds=(0, 1, 2)),
    "paper": TrainabilitySizes(width=1024, depths=(16, 32, 64, 128, 200), lrs=(0.1, 0.01, 0.001), batch=128,
                               steps=2000, window=100, seeds=(0, 1, 2)),
}
TRAINABILITY_SIZES["paper_fmnist"] = TRAINABILITY_SIZES["paper"]


def trainability(scale: Scale, plan) -> dict:
    """Train the BN MLP (no skip connections) at every depth and lr, per seed (strict fp32, plain SGD).

    Keys: ``seeds`` [S], ``depths`` [ND], ``lrs`` [NL], ``window``; ``train_acc`` and ``train_loss`` [S, ND, NL,
    steps] (per step, on the step's batch; NaN from a divergence on), ``acc`` [S, ND, NL] the mean training accuracy
    over the last ``window`` steps (0 when the run diverged), ``diverged_step`` [S, ND, NL] (-1: did not).
    """
    s, dev = TRAINABILITY_SIZES[scale.name], plan.device
    images = _images(scale, plan)
    in_f = _in_channels(scale) * 32 * 32
    strict_fp32()
    shape = (len(s.seeds), len(s.depths), len(s.lrs))
    accs, losses = np.full(shape + (s.steps,), np.nan), np.full(shape + (s.steps,), np.nan)
    final, diverged = np.zeros(shape), np.full(shape, -1, dtype=np.int64)
    bar = progress_bar(int(np.prod(shape)) * s.steps, "trainability: steps", plan.progress)
    for i, seed in enumerate(s.seeds):
        for j, depth in enumerate(s.depths):
            for k, lr in enumerate(s.lrs):
                model = _seeded_mlp(seed, dev, torch.float32, depth=depth, width=s.width, in_features=in_f)
                model.train()
                stepper = Stepper(model, torch.optim.SGD(model.parameters(), lr=lr), plan.engine)
                batches = images.batches(s.batch, seed)
                acc_t = torch.full((s.steps,), float("nan"), device=dev, dtype=F64)
                loss_t = torch.full((s.steps,), float("nan"), device=dev, dtype=F64)
                for t in range(s.steps):
                    x, y = next(batches)
                    out, loss = stepper.step(t, x, y)
                    acc_t[t], loss_t[t] = (out.argmax(1) == y).double().mean(), loss.detach()
                    if t % 50 == 49 and not bool(torch.isfinite(loss_t[:t + 1]).all()):
                        break
                a, l_ = acc_t.cpu().numpy(), loss_t.cpu().numpy()
                bad = np.flatnonzero(~np.isfinite(l_[:t + 1]))
                if len(bad):
                    diverged[i, j, k] = bad[0]
                    a[bad[0]:], l_[bad[0]:] = np.nan, np.nan
                else:
                    final[i, j, k] = float(np.mean(a[s.steps - s.window:]))
                accs[i, j, k], losses[i, j, k] = a, l_
                if bar is not None:
                    bar.update(s.steps)
    if bar is not None:
        bar.close()
    return {"seeds": np.asarray(s.seeds), "depths": np.asarray(s.depths), "lrs": np.asarray(s.lrs),
            "window": np.asarray(s.window), "width": np.asarray(s.width), "train_acc": accs, "train_loss": losses,
            "acc": final, "diverged_step": diverged, "precision": "strict fp32 (TF32 off)"}


def _trainability_flops(scale: Scale) -> float:
    s = TRAINABILITY_SIZES[scale.name]
    in_f = _in_channels(scale) * 1024
    return float(sum(3 * _mlp_flops(d, s.width, in_f) * s.batch * s.steps for d in s.depths)
                 * len(s.lrs) * len(s.seeds))


def _trainability_block_steps(scale: Scale) -> int:
    s = TRAINABILITY_SIZES[scale.name]
    return sum(d + 1 for d in s.depths) * s.steps * len(s.lrs) * len(s.seeds)


TRAINABILITY = Analysis(trainability, sizes=lambda scale: TRAINABILITY_SIZES[scale.name], flops=_trainability_flops,
                        block_steps=_trainability_block_steps)


__all__ = ["ExplosionSizes", "TrainabilitySizes", "EXPLOSION_SIZES", "TRAINABILITY_SIZES", "GRADIENT_EXPLOSION",
           "TRAINABILITY", "gradient_explosion", "trainability", "explosion_rate"]
