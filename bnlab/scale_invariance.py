"""Training a BN network whose conv weights are scale invariant (chapter "BatchNorm after 2018", items 4 and 5).

Item 4 (van Laarhoven 2017; Hoffer et al. 2018; Arora, Li & Lyu 2019; Wan et al. 2021): every conv filter of the
BN VGG feeds a per-channel BatchNorm, so its gradient is orthogonal to it, its norm grows by Pythagoras under plain
SGD, a 100x larger learning rate on it is absorbed by a larger norm (the effective rate eta / ||W||^2 tunes itself),
and weight decay on it sets the angular update per step. Item 5 (Wu & Johnson 2021): at every evaluation the test
accuracy with the EMA running statistics, with PreciseBN's (recomputed with the weights frozen) and with each test
batch's own statistics.

One analysis, :data:`SCALE_INVARIANCE`, with its own loop on :class:`bnlab.engine.Stepper`: two parameter groups
(the scale-invariant conv weights; gamma, beta and the classifier, which never get weight decay) are not something
a ``RunConfig`` describes, and adding fields to it would change every config hash. The knobs are on
:class:`ScaleInvSizes`, per scale in :data:`SIZES`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import data as data_mod
from .config import DataConfig, ModelConfig, PAPER_SETTINGS, _check, _check_types
from .scales import Scale, _check_seeds
from .device import strict_fp32
from .engine import Stepper
from .flops import model_flops
from .measure.population_stats import accuracy_batch_stats, accuracy_population, precise_bn
from .measure.scale_invariance import ConvLog, equilibrium_angle, scale_invariant_convs
from .models import build
from .recipes import Analysis
from .train import progress_bar


@dataclass(frozen=True, kw_only=True)
class ScaleInvSizes:
    """The BN VGG (``vgg_width``) trained ``steps`` steps at batch ``batch`` per arm and seed. Arms: ``k<m>`` (conv
    weights at m x ``lr``, no decay; m in ``multipliers``), ``wd<lambda>`` (conv weights at ``lr`` with decay lambda,
    one per ``wds``), ``lr<high_lr>`` (every parameter at ``high_lr``). Every ``eval_every`` steps (and at the end)
    the test accuracy on the first ``eval_images`` test images; for the ``population_arms`` also with PreciseBN
    statistics over ``precise_batches`` training batches of ``batch`` and with the batch statistics of test batches
    of ``batch``, and at the end of test batches of each of ``small_batches``."""

    vgg_width: float
    steps: int
    batch: int
    lr: float
    multipliers: tuple
    wds: tuple
    high_lr: float
    eval_every: int
    eval_images: int
    precise_batches: int
    small_batches: tuple
    population_arms: tuple
    seeds: tuple

    def __post_init__(self):
        _check_types(self, ints=("steps", "batch", "eval_every", "eval_images", "precise_batches"),
                     numbers=("vgg_width", "lr", "high_lr"))
        _check(self.steps >= 1 and self.batch >= 2 and self.eval_every >= 1 and self.precise_batches >= 1
               and self.lr > 0 and self.high_lr > 0 and 1 in self.multipliers
               and all(0 < w * self.lr < 1 for w in self.wds) and all(b >= 2 for b in self.small_batches)
               and set(self.population_arms) <= set(arm_names(self)), f"bad scale-invariance sizes {self}")
        _check_seeds(self)


def arm_names(s: ScaleInvSizes) -> list:
    return [f"k{m:g}" for m in s.multipliers] + [f"wd{w:g}" for w in s.wds] + [f"lr{s.high_lr:g}"]


def arms(s: ScaleInvSizes) -> dict:
    """Arm name -> (lr of the conv weights, their weight decay, lr of every other parameter)."""
    out = {f"k{m:g}": (m * s.lr, 0.0, s.lr) for m in s.multipliers}
    out.update({f"wd{w:g}": (s.lr, w, s.lr) for w in s.wds})
    out[f"lr{s.high_lr:g}"] = (s.high_lr, 0.0, s.high_lr)
    return out


_SMALL = (2, 4, 8, 16, 32)
SIZES = {
    "smoke": ScaleInvSizes(vgg_width=0.0625, steps=12, batch=32, lr=0.1, multipliers=(1, 100), wds=(2e-2, 8e-2),
                           high_lr=0.5, eval_every=6, eval_images=128, precise_batches=3, small_batches=(2, 8),
                           population_arms=("k1", "lr0.5"),
                           seeds=(0,)),
    "cpu": ScaleInvSizes(vgg_width=0.0625, steps=1000, batch=128, lr=0.1, multipliers=(1, 100), wds=(2e-2, 8e-2),
                         high_lr=0.5, eval_every=100, eval_images=2000, precise_batches=50, small_batches=_SMALL,
                         population_arms=("k1", "lr0.5"),
                         seeds=(0, 1, 2)),
    "colab": ScaleInvSizes(vgg_width=0.25, steps=2000, batch=128, lr=0.1, multipliers=(1, 100), wds=(2e-2, 8e-2),
                           high_lr=0.5, eval_every=200, eval_images=10_000, precise_batches=100, small_batches=_SMALL,
                           population_arms=("k1", "lr0.5"), seeds=(0, 1, 2)),
    "paper": ScaleInvSizes(vgg_width=1.0, steps=15_000, batch=128, lr=0.1, multipliers=(1, 10, 100, 1000),
                           wds=(5e-4, 5e-3, 5e-2), high_lr=0.5, eval_every=500, eval_images=10_000,
                           precise_batches=200,
                           small_batches=_SMALL, population_arms=("k1", "lr0.5"), seeds=(0, 1, 2)),
}
SIZES["paper_fmnist"] = SIZES["paper"]


def _model_cfg(scale: Scale, s: ScaleInvSizes) -> ModelConfig:
    return ModelConfig(arch=PAPER_SETTINGS["vgg"]["arch"], norm="batch", width=s.vgg_width,
                       in_channels=1 if scale.dataset == "fashion_mnist" else 3)


class _AfterBackward:
    """The hook :meth:`Stepper.step` calls between the backward pass and the optimiser's step."""

    def __init__(self, log: ConvLog):
        self.log = log

    def before_forward(self, step, model):
        pass

    def after_backward(self, step, model, x, y, loss):
        self.log.before_step()


def eval_steps(s: ScaleInvSizes) -> list:
    """The steps done at each evaluation: every ``eval_every`` and the last."""
    out = list(range(s.eval_every, s.steps + 1, s.eval_every))
    return out if out and out[-1] == s.steps else out + [s.steps]


def _train_arm(model, conv_lr, wd, other_lr, s, images, x_test, y_test, seed, plan, population, bar):
    convs = scale_invariant_convs(model)
    conv_ids = {id(m.weight) for m in convs}
    others = [p for p in model.parameters() if id(p) not in conv_ids]
    opt = torch.optim.SGD([{"params": [m.weight for m in convs], "lr": conv_lr, "weight_decay": wd},
                           {"params": others, "lr": other_lr, "weight_decay": 0.0}])
    log = ConvLog(convs, [conv_lr] * len(convs), [wd] * len(convs))
    hook = _AfterBackward(log)
    stepper = Stepper(model, opt, plan.engine)
    batches = images.batches(s.batch, seed)
    precise_stream = images.batches(s.batch, 1_000_003 + seed)     # PreciseBN's batches: a stream of their own
    due = set(eval_steps(s))
    loss_t, acc_t = np.full(s.steps, np.nan), np.full(s.steps, np.nan)
    ev = {k: [] for k in ("acc_ema", "acc_precise", "acc_batch")}
    small, diverged = [np.nan] * len(s.small_batches), -1
    model.train()
    for t in range(s.steps):
        x, y = next(batches)
        out, loss = stepper.step(t, x, y, (hook,))
        log.after_step()
        loss_t[t], acc_t[t] = float(loss.detach()), float((out.argmax(1) == y).double().mean())
        if bar is not None:
            bar.update(1)
        if not np.isfinite(loss_t[t]):
            diverged = t
            break
        if t + 1 in due:
            ev["acc_ema"].append(accuracy_population(model, x_test, y_test))
            if population:
                ev["acc_precise"].append(accuracy_population(precise_bn(model, precise_stream, s.precise_batches),
                                                             x_test, y_test))
                ev["acc_batch"].append(accuracy_batch_stats(model, x_test, y_test, s.batch))
                if t + 1 == s.steps:
                    small = [accuracy_batch_stats(model, x_test, y_test, b) for b in s.small_batches]
            model.train()
    n_eval = len(due)
    rec = log.arrays()
    pad = lambda a: np.concatenate([a, np.full((s.steps - len(a),) + a.shape[1:], np.nan)])  # noqa: E731
    res = {k: pad(v) for k, v in rec.items()}
    res.update(train_loss=loss_t, train_acc=acc_t, diverged_step=np.asarray(diverged))
    for k, v in ev.items():
        res[k] = np.asarray(v + [np.nan] * (n_eval - len(v)))
    res["acc_small_batches"] = np.asarray(small, dtype=np.float64)
    return res


def scale_invariance(scale: Scale, plan) -> dict:
    """Train the BN VGG once per arm and seed (strict fp32), logging every step per scale-invariant conv layer, and
    evaluate it every ``eval_every`` steps.

    Keys: ``seeds`` [S], ``arms`` (names), ``conv_layers`` (how many, C), ``eval_step`` [E], ``small_batches``
    [NB]; per arm a: ``a/conv_lr``, ``a/wd``, ``a/other_lr``, ``a/delta_star`` (Delta* for the arm's conv lr and
    decay; 0 without decay); with the seeds first: ``a/w_sq``, ``a/g_sq``, ``a/max_cos``, ``a/pythagoras``,
    ``a/angle`` [S, steps, C] (before/over step t; NaN after a divergence), ``a/train_loss``, ``a/train_acc`` [S,
    steps], ``a/diverged_step`` [S] (-1: did not), ``a/acc_ema`` [S, E]; for the population arms also
    ``a/acc_precise``, ``a/acc_batch`` [S, E] and ``a/acc_small_batches`` [S, NB] (at the last step; NaN elsewhere).
    """
    s, dev = SIZES[scale.name], plan.device
    strict_fp32()
    images = data_mod.load(DataConfig(scale.dataset, train_subset=scale.train_subset, test_subset=scale.test_subset),
                           0, dev, plan.data_dir)
    n = min(s.eval_images, images.x_test.shape[0])
    x_test, y_test = images.normalise(images.x_test[:n]), images.y_test[:n]
    cfg = _model_cfg(scale, s)
    table = arms(s)
    out: dict = {"seeds": np.asarray(s.seeds), "arms": np.asarray(list(table)), "eval_step": np.asarray(eval_steps(s)),
                 "small_batches": np.asarray(s.small_batches), "batch": np.asarray(s.batch),
                 "precise_batches": np.asarray(s.precise_batches), "precision": "strict fp32 (TF32 off)"}
    rows: dict = {}
    bar = progress_bar(len(table) * len(s.seeds) * s.steps, "scale invariance: steps", plan.progress)
    for name, (conv_lr, wd, other_lr) in table.items():
        out[f"{name}/conv_lr"], out[f"{name}/wd"], out[f"{name}/other_lr"] = (np.asarray(conv_lr), np.asarray(wd),
                                                                               np.asarray(other_lr))
        out[f"{name}/delta_star"] = np.asarray(equilibrium_angle(conv_lr, wd) if wd else 0.0)
        for seed in s.seeds:
            model = build(cfg, seed, dev)
            res = _train_arm(model, conv_lr, wd, other_lr, s, images, x_test, y_test, seed, plan,
                             name in s.population_arms, bar)
            for k, v in res.items():
                rows.setdefault(f"{name}/{k}", []).append(v)
    if bar is not None:
        bar.close()
    out["conv_layers"] = np.asarray(len(scale_invariant_convs(build(cfg, 0, "cpu"))))
    out.update({k: np.asarray(v, dtype=np.float64) for k, v in rows.items()})
    return out


def _flops(scale: Scale) -> float:
    s = SIZES[scale.name]
    f = model_flops(_model_cfg(scale, s))
    n_eval = len(eval_steps(s))
    test = min(s.eval_images, 10_000)
    per_run = 3 * f * s.batch * s.steps + f * test * n_eval
    population = f * n_eval * (s.precise_batches * s.batch + test) + f * test * len(s.small_batches)
    return float(len(s.seeds) * (len(arms(s)) * per_run + len(s.population_arms) * population))


def _block_steps(scale: Scale) -> int:
    s = SIZES[scale.name]
    n_eval = len(eval_steps(s))
    test = min(s.eval_images, 10_000)
    small = sum(test // b for b in s.small_batches)
    per_pop = n_eval * (s.precise_batches + 2 * test // s.batch) + small
    return 14 * len(s.seeds) * (len(arms(s)) * s.steps + len(s.population_arms) * per_pop)


SCALE_INVARIANCE = Analysis(
    scale_invariance, sizes=lambda scale: SIZES[scale.name], flops=_flops, block_steps=_block_steps)


__all__ = ["ScaleInvSizes", "SIZES", "SCALE_INVARIANCE", "scale_invariance", "arms", "arm_names", "eval_steps"]
