"""Signal propagation at initialisation: rank collapse (Daneshmand et al. 2020, 2021) and the downscaled residual
branch (De & Smith 2020); BN's gradient explosion (Yang et al. 2019) is ``bnlab.explosion``.

Two analyses (``bnlab.recipes.Analysis``), each with its own frozen sizes per scale (:data:`RANK_SIZES`, ...;
ours: the papers give none that fit a CPU). Every array that differs by seed has the seeds as its first axis,
in the order of the result's ``seeds`` array. SkipInit's training runs (De & Smith's scalar on the residual
branch, ``norm="skipinit"``) are not here: they are ordinary ResNet runs through ``bnlab.train``, so that their BN
and standard comparators at the same rate are the very runs of Bjorck et al.'s learning-rate sweep.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import data as data_mod
from .config import DataConfig, ModelConfig, PAPER_SETTINGS, _check, _check_types, n_layers
from .scales import Scale, _check_seeds
from .flops import model_flops
from .measure.rank import rank_profile, stable_rank
from .measure.residual import branch_skip_ratios, downscaling_exponent
from .models import build, mlp
from .recipes import Analysis
from .train import progress_bar

PRECISION = "fp64 (measurements at initialisation); strict fp32 (training)"
F64 = torch.float64


def _in_channels(scale: Scale) -> int:
    return 1 if scale.dataset == "fashion_mnist" else 3


def _images(scale: Scale, plan):
    return data_mod.load(DataConfig(scale.dataset, train_subset=scale.train_subset, test_subset=scale.test_subset),
                         0, plan.device, plan.data_dir)


def _first_batch(data, batch: int, seed: int, dtype=F64):
    return next(data.batches(batch, seed, dtype))


def _seeded_mlp(seed: int, device, dtype=torch.float32, **kw):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = mlp(**kw)
    return model.to(device=device, dtype=dtype)


def _mlp_flops(depth: int, width: int, in_features: int, classes: int = 10) -> float:
    """Forward FLOPs per example of :func:`bnlab.models.mlp`."""
    return 2.0 * (in_features * width + max(depth - 1, 0) * width * width + (width if depth else in_features) * classes)


# ---- item 1: rank collapse --------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RankSizes:
    """One training batch of ``batch`` images per seed through the VGG (``vgg_width``; ``vgg_norms``), the ResNet
    (``resnet_depth`` x ``resnet_width``; none and BN) and the DLN (its 1000 samples; none and BN), at
    initialisation."""

    batch: int
    vgg_width: float
    vgg_norms: tuple
    resnet_depth: int
    resnet_width: float
    seeds: tuple

    def __post_init__(self):
        _check_types(self, ints=("batch", "resnet_depth"), numbers=("vgg_width", "resnet_width"))
        _check(self.batch >= 2 and {"none", "batch"} <= set(self.vgg_norms), f"bad rank sizes {self}")
        _check_seeds(self)


RANK_SIZES = {
    "smoke": RankSizes(batch=32, vgg_width=0.0625, vgg_norms=("none", "batch", "layer"), resnet_depth=8,
                       resnet_width=0.25, seeds=(0, 1)),
    "cpu": RankSizes(batch=128, vgg_width=0.0625, vgg_norms=("none", "batch", "layer", "group", "rescaled"),
                     resnet_depth=56, resnet_width=0.25, seeds=(0, 1, 2, 3, 4)),
    "colab": RankSizes(batch=128, vgg_width=0.5, vgg_norms=("none", "batch", "layer", "group", "rescaled"),
                       resnet_depth=110, resnet_width=0.5, seeds=(0, 1, 2, 3, 4)),
    "paper": RankSizes(batch=128, vgg_width=1.0, vgg_norms=("none", "batch", "layer", "group", "rescaled"),
                       resnet_depth=110, resnet_width=1.0, seeds=(0, 1, 2, 3, 4)),
}
RANK_SIZES["paper_fmnist"] = RANK_SIZES["paper"]


def _rank_models(scale: Scale) -> dict:
    s, c = RANK_SIZES[scale.name], _in_channels(scale)
    dln = PAPER_SETTINGS["dln"]
    out = {("vgg", n): ModelConfig(arch="vgg16", norm=n, width=s.vgg_width, in_channels=c) for n in s.vgg_norms}
    out.update({("resnet", n): ModelConfig(arch="resnet", norm=n, depth=s.resnet_depth, width=s.resnet_width,
                                           in_channels=c) for n in ("none", "batch")})
    out.update({("dln", n): ModelConfig(arch="dln", norm=n, dln_depth=dln["depth"], dln_dim=dln["dim"])
                for n in ("none", "batch")})
    return out


def rank_collapse(scale: Scale, plan) -> dict:
    """At initialisation, per seed: the stable rank of the centred representations, the mean |cos| between
    examples and the orthogonality gap at every hidden block (the classifier excluded), BN in training mode, fp64.

    Keys: ``seeds`` [S], ``batch``; per network net in {vgg, resnet, dln} and norm n: ``net/n/srank``,
    ``net/n/cos``, ``net/n/gap`` [S, hidden blocks] (VGG 13, ResNet 1 + 3 x blocks per stage, DLN 25: its last
    block is the output, so all 25); ``net/n/input_srank`` [S] the stable rank of the batch itself.
    """
    s, dev = RANK_SIZES[scale.name], plan.device
    models = _rank_models(scale)
    images = _images(scale, plan)
    out: dict = {"seeds": np.asarray(s.seeds), "batch": np.asarray(s.batch), "precision": PRECISION}
    rows: dict = {}
    bar = progress_bar(len(s.seeds) * len(models), "rank collapse: networks", plan.progress)
    for seed in s.seeds:
        x_img, _ = _first_batch(images, s.batch, seed)
        x_dln = data_mod.load_regression(DataConfig("dln_synthetic"), seed, dev).x.to(F64)
        for (net, norm), cfg in models.items():
            x = x_dln if net == "dln" else x_img
            model = build(cfg, seed, dev, F64)
            hidden = len(model) if net == "dln" else len(model) - 1
            prof = rank_profile(model, x, hidden)
            prof["input_srank"] = stable_rank(x)
            for k, v in prof.items():
                rows.setdefault(f"{net}/{norm}/{k}", []).append(v)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    out.update({k: np.asarray(v, dtype=np.float64) for k, v in rows.items()})
    return out


def _rank_flops(scale: Scale) -> float:
    s = RANK_SIZES[scale.name]
    return float(sum(model_flops(cfg) * (1000 if cfg.arch == "dln" else s.batch)
                     for cfg in _rank_models(scale).values()) * len(s.seeds))


def _rank_block_steps(scale: Scale) -> int:
    s = RANK_SIZES[scale.name]
    return sum(n_layers(cfg) for cfg in _rank_models(scale).values()) * len(s.seeds)


RANK_COLLAPSE = Analysis(rank_collapse, sizes=lambda scale: RANK_SIZES[scale.name], flops=_rank_flops,
                         block_steps=_rank_block_steps)


# ---- item 3: the residual branch at initialisation ---------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ResidualSizes:
    """One batch of ``batch`` images per seed through the ResNet of ``depth`` x ``width``, none and BN."""

    depth: int
    width: float
    batch: int
    seeds: tuple

    def __post_init__(self):
        _check_types(self, ints=("depth", "batch"), numbers=("width",))
        _check(self.depth >= 14 and (self.depth - 2) % 6 == 0 and self.batch >= 2,
               f"residual sizes need a ResNet depth 6n + 2 with n >= 2 (the fit needs two blocks), got {self}")
        _check_seeds(self)


RESIDUAL_SIZES = {
    "smoke": ResidualSizes(depth=20, width=0.25, batch=32, seeds=(0, 1)),
    "cpu": ResidualSizes(depth=56, width=0.25, batch=128, seeds=(0, 1, 2, 3, 4)),
    "colab": ResidualSizes(depth=110, width=0.5, batch=128, seeds=(0, 1, 2, 3, 4)),
    "paper": ResidualSizes(depth=110, width=1.0, batch=128, seeds=(0, 1, 2, 3, 4)),
}
RESIDUAL_SIZES["paper_fmnist"] = RESIDUAL_SIZES["paper"]


def _residual_cfg(scale: Scale, norm: str) -> ModelConfig:
    s = RESIDUAL_SIZES[scale.name]
    return ModelConfig(arch="resnet", norm=norm, depth=s.depth, width=s.width, in_channels=_in_channels(scale))


def residual_scaling(scale: Scale, plan) -> dict:
    """Per seed and residual block k: E[branch^2], E[shortcut^2] and r_k = rms(branch) / rms(shortcut) at
    initialisation (training mode, fp64), and the exponent p of r_k ~ k^(-p) fitted inside the first stage (its
    blocks keep the resolution and the channel count; the zero-padded shortcut at a stage boundary halves E[x^2]).

    Keys: ``seeds`` [S], ``stage_blocks`` (blocks per stage n), ``none/...`` and ``batch/...``: ``ratio``,
    ``branch_sq``, ``skip_sq`` [S, 3n], ``exponent`` [S].
    """
    s, dev = RESIDUAL_SIZES[scale.name], plan.device
    images = _images(scale, plan)
    n = (s.depth - 2) // 6
    out: dict = {"seeds": np.asarray(s.seeds), "stage_blocks": np.asarray(n), "precision": PRECISION}
    rows: dict = {}
    for seed in s.seeds:
        x, _ = _first_batch(images, s.batch, seed)
        for norm in ("none", "batch"):
            r = branch_skip_ratios(build(_residual_cfg(scale, norm), seed, dev, F64), x)
            r["exponent"] = downscaling_exponent(r["ratio"], n)
            for k, v in r.items():
                rows.setdefault(f"{norm}/{k}", []).append(v)
    out.update({k: np.asarray(v, dtype=np.float64) for k, v in rows.items()})
    return out


RESIDUAL_SCALING = Analysis(
    residual_scaling, sizes=lambda scale: RESIDUAL_SIZES[scale.name],
    flops=lambda scale: float(sum(model_flops(_residual_cfg(scale, n)) for n in ("none", "batch"))
                              * RESIDUAL_SIZES[scale.name].batch * len(RESIDUAL_SIZES[scale.name].seeds)),
    block_steps=lambda scale: 2 * n_layers(_residual_cfg(scale, "none")) * len(RESIDUAL_SIZES[scale.name].seeds))


__all__ = ["RankSizes", "ResidualSizes", "RANK_SIZES", "RESIDUAL_SIZES", "RANK_COLLAPSE", "RESIDUAL_SCALING",
           "rank_collapse", "residual_scaling"]
