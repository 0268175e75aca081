"""What an experiment is made of: training runs built for a scale (a VGG, the deep linear network, a ResNet), or an
:class:`Analysis`, a function that computes its arrays itself (and may train runs of its own on the way).

Settings come from Santurkar et al. 2018 (``config.PAPER_SETTINGS``, with the places the paper gives them); ``[ours]`` marks our choices where the
paper is silent. Every VGG run of one scale carries the same probes, and every DLN run likewise, so a run shared
by two figures (e.g. BN at lr 0.1) has one config hash and is trained once.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable

from .config import (DataConfig, ModelConfig, ProbeConfig, RunConfig, TrainConfig, config_hash, n_layers,
                     PAPER_SETTINGS)
from .scales import Scale


def vgg_run(scale: Scale, norm: str, lr: float, seed: int) -> RunConfig:
    """A VGG run at ``scale`` with the standard probe set (Santurkar et al. App. A.1; the probes of Figs. 1-6)."""
    in_ch = 1 if scale.dataset == "fashion_mnist" else 3
    return RunConfig(
        name=f"{norm}_lr{lr:g}",
        model=ModelConfig(arch=PAPER_SETTINGS["vgg"]["arch"], norm=norm, width=scale.vgg_width, in_channels=in_ch),
        data=DataConfig(scale.dataset, train_subset=scale.train_subset, test_subset=scale.test_subset),
        train=TrainConfig(lr=lr, steps=scale.vgg_steps, batch_size=128, seed=seed, eval_every=scale.eval_every,
                          precision=scale.train_precision),
        probe=ProbeConfig(every=scale.probe_every,
                          activation_layers=(2, 3, 9, 11, 13),   # layers the paper plots (Figs 1, 2, 6, 8)
                          ics_layers=(5, 10),                    # Fig. 3a
                          landscape=True, landscape_range=PAPER_SETTINGS["vgg"]["probe_range_x_lr"],
                          landscape_points=scale.landscape_points))


def vgg_long_run(scale: Scale, norm: str, lr: float, seed: int) -> RunConfig:
    """The same VGG run trained ``scale.vgg_long_steps`` steps (the same run where the scale sets none): the longer
    reading that tests whether a landscape verdict at the scale's length is set by how long the network trained."""
    cfg = vgg_run(scale, norm, lr, seed)
    return replace(cfg, train=replace(cfg.train, steps=scale.vgg_long_steps or scale.vgg_steps))


def dln_run(scale: Scale, norm: str, lr: float, seed: int) -> RunConfig:
    """A 25-layer deep linear network run (Santurkar et al. App. A.1; Figs. 3b, 9, 10)."""
    s = PAPER_SETTINGS["dln"]
    return RunConfig(
        name=f"{norm}_lr{lr:g}",
        model=ModelConfig(arch="dln", norm=norm, dln_depth=s["depth"], dln_dim=s["dim"]),
        data=DataConfig("dln_synthetic", dln_samples=s["samples"], dln_dim=s["dim"]),
        train=TrainConfig(lr=lr, steps=scale.dln_steps, batch_size=s["samples"], seed=seed, precision="fp64",
                          eval_every=scale.dln_steps),
        probe=ProbeConfig(every=scale.dln_probe_every, activation_layers=(1, 11, 24), ics_layers=(9, 17),
                          landscape=True, landscape_range=s["probe_range_x_lr"],
                          landscape_points=scale.landscape_points))


def resnet_run(scale: Scale, norm: str, lr: float, seed: int, depth: int | None = None) -> RunConfig:
    """A CIFAR ResNet run for Bjorck et al.'s learning-rate sweep (Bjorck et al. 2018, Fig. 1), the VGG's data at
    ``scale`` and the ResNet's length (the VGG's unless the scale shortens it); layer-input statistics of the stem, a middle and the last residual block. ``depth``
    overrides the scale's depth (its width is kept)."""
    in_ch = 1 if scale.dataset == "fashion_mnist" else 3
    model = ModelConfig(arch="resnet", norm=norm, in_channels=in_ch, depth=depth or scale.resnet.depth,
                        width=scale.resnet.width)
    last = n_layers(model) - 1
    return RunConfig(
        name=f"resnet{model.depth}_{norm}_lr{lr:g}",
        model=model,
        data=DataConfig(scale.dataset, train_subset=scale.train_subset, test_subset=scale.test_subset),
        train=TrainConfig(lr=lr, steps=scale.resnet.steps or scale.vgg_steps, batch_size=128, seed=seed,
                          eval_every=scale.eval_every, precision=scale.train_precision),
        probe=ProbeConfig(every=scale.probe_every, activation_layers=(1, (last + 1) // 2, last)))


def resnet20_run(scale: Scale, norm: str, lr: float, seed: int) -> RunConfig:
    """The same ResNet at depth 20, shallow enough that its output does not explode at initialisation without BN."""
    return resnet_run(scale, norm, lr, seed, depth=20)


RUN_BUILDERS = {"vgg": vgg_run, "vgg_long": vgg_long_run, "dln": dln_run, "resnet": resnet_run, "resnet20": resnet20_run}




@dataclass(frozen=True)
class Analysis:
    """An experiment computed by a function, not assembled from a grid of training runs.

    ``compute(scale, plan)`` returns a flat dict of numpy arrays (plus an optional ``"precision"`` string).
    ``sizes(scale)`` is the frozen, validated part of the :class:`~bnlab.scales.Scale` it reads, and
    ``runs(scale)`` the training runs it makes; both go into :meth:`config`, which is hashed, stored with the
    result and checked against the registry when a cached result is loaded. ``flops`` and ``block_steps`` feed
    ``python -m bnlab estimate``.
    """

    compute: Callable
    sizes: Callable
    runs: Callable = lambda scale: []
    flops: Callable = lambda scale: 0.0
    block_steps: Callable = lambda scale: 0
    dataset: str | None = None   # None: the scale's image data set, which the analysis trains and measures on

    def data_set(self, scale: Scale) -> str:
        """The data set the analysis reads at ``scale`` (what its provenance and banner name)."""
        return self.dataset or scale.dataset

    def config(self, scale: Scale) -> dict:
        return {"sizes": asdict(self.sizes(scale)), "dataset": self.data_set(scale),
                "runs": [r.to_dict() for r in self.runs(scale)]}

    def config_hash(self, scale: Scale) -> str:
        return config_hash(self.config(scale))


__all__ = ["vgg_run", "vgg_long_run", "dln_run", "resnet_run", "resnet20_run", "RUN_BUILDERS", "Analysis"]
