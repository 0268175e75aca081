"""The registry: each experiment (a figure of the paper, or a check) -> the runs that produce it.

Settings come from ``paper-spec.md`` (section numbers in the comments); ``[ours]`` marks our choices
where the paper is silent. Every VGG run of one scale carries the same probes, and every DLN run
likewise, so a run shared by two figures (e.g. BN at lr 0.1) has one config hash and is trained once.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import (DataConfig, ModelConfig, ProbeConfig, RunConfig, Scale, TrainConfig, get_scale,
                     n_layers, PAPER_SETTINGS)

def vgg_run(scale: Scale, norm: str, lr: float, seed: int) -> RunConfig:
    """A VGG run at ``scale`` with the standard probe set (paper-spec sections 2.1, 3, 5, 6)."""
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
                          landscape_points=8))                   # [ours] K = 8, log-spaced


def dln_run(scale: Scale, norm: str, lr: float, seed: int) -> RunConfig:
    """A 25-layer deep linear network run (paper-spec sections 2.2, 3, Fig. 3b, 9, 10)."""
    s = PAPER_SETTINGS["dln"]
    return RunConfig(
        name=f"{norm}_lr{lr:g}",
        model=ModelConfig(arch="dln", norm=norm, dln_depth=s["depth"], dln_dim=s["dim"]),
        data=DataConfig("dln_synthetic", dln_samples=s["samples"], dln_dim=s["dim"]),
        train=TrainConfig(lr=lr, steps=scale.dln_steps, batch_size=s["samples"], seed=seed, precision="fp64",
                          eval_every=scale.dln_steps),
        probe=ProbeConfig(every=scale.dln_probe_every, activation_layers=(1, 11, 24), ics_layers=(9, 17),
                          landscape=True, landscape_range=s["probe_range_x_lr"], landscape_points=8))


# [ours] Bjorck et al. (2018) train a ResNet-110 on CIFAR-10; at cpu scale a ResNet-56 at a quarter of the width
# (channels 4, 8, 16) is the deepest that fits. Depth matters: without BN the initial output grows with depth
# (chapter 08_bjorck shows it), which is the effect Bjorck et al. build on.
RESNET_SIZES = {"paper": dict(depth=110, width=1.0), "colab": dict(depth=56, width=0.5), "cpu": dict(depth=56, width=0.25),
                "smoke": dict(depth=8, width=0.25)}


def resnet_run(scale: Scale, norm: str, lr: float, seed: int, depth: int | None = None) -> RunConfig:
    """A CIFAR ResNet run for Bjorck et al.'s learning-rate sweep (paper-spec section 11.3), the VGG's data and
    length at ``scale``; layer-input statistics of the stem, a middle and the last residual block. ``depth``
    overrides the scale's depth (its width is kept)."""
    in_ch = 1 if scale.dataset == "fashion_mnist" else 3
    sizes = dict(RESNET_SIZES[scale.size_key])
    if depth is not None:
        sizes["depth"] = depth
    model = ModelConfig(arch="resnet", norm=norm, in_channels=in_ch, **sizes)
    last = n_layers(model) - 1
    return RunConfig(
        name=f"resnet{model.depth}_{norm}_lr{lr:g}",
        model=model,
        data=DataConfig(scale.dataset, train_subset=scale.train_subset, test_subset=scale.test_subset),
        train=TrainConfig(lr=lr, steps=scale.vgg_steps, batch_size=128, seed=seed, eval_every=scale.eval_every,
                          precision=scale.train_precision),
        probe=ProbeConfig(every=scale.probe_every, activation_layers=(1, (last + 1) // 2, last)))


def resnet20_run(scale: Scale, norm: str, lr: float, seed: int) -> RunConfig:
    """The same ResNet at depth 20, shallow enough that its output does not explode at initialisation without BN."""
    return resnet_run(scale, norm, lr, seed, depth=20)


RUN_BUILDERS = {"vgg": vgg_run, "dln": dln_run, "resnet": resnet_run, "resnet20": resnet20_run}


@dataclass(frozen=True)
class Experiment:
    name: str
    figures: str
    description: str
    network: str                  # a key of RUN_BUILDERS, or "none" (an analysis, not a set of training runs)
    grid: tuple = ()              # (norm, lr, all_seeds): all_seeds False = first seed only [ours, for cost]
    compute: str = ""             # for network "none": "module:function" taking (scale, device) -> arrays
    dataset: str = "fashion_mnist"  # for network "none": the data the analysis reads

    def runs(self, scale) -> list:
        scale = get_scale(scale) if isinstance(scale, str) else scale
        if self.network == "none":
            return []
        make = RUN_BUILDERS[self.network]
        return [make(scale, norm, lr, seed) for norm, lr, all_seeds in self.grid
                for seed in (scale.seeds if all_seeds else scale.seeds[:1])]


EXPERIMENTS = {e.name: e for e in (
    Experiment("bn_vs_standard", "Fig. 1", "VGG with and without BatchNorm at three learning rates", "vgg",
               (("none", 0.1, True), ("batch", 0.1, True), ("none", 0.5, False), ("batch", 0.5, False),
                ("none", 0.01, False), ("batch", 0.01, False))),
    Experiment("noisy_bn", "Fig. 2, 8", "BatchNorm with injected distributional noise", "vgg",
               (("none", 0.1, True), ("batch", 0.1, True), ("noisy_batch", 0.1, False), ("noise", 0.1, False))),
    Experiment("ics_vgg", "Fig. 3a", "gradient-based ICS of the VGG", "vgg",
               (("none", 0.1, True), ("batch", 0.1, True), ("none", 0.01, False), ("batch", 0.01, False))),
    Experiment("ics_dln", "Fig. 3b", "gradient-based ICS of the deep linear network", "dln",
               (("none", 1e-6, True), ("batch", 1e-6, True), ("none", 1e-7, False), ("batch", 1e-7, False))),
    Experiment("landscape_vgg", "Fig. 4, 11a", "loss landscape along the gradient, VGG", "vgg",
               (("none", 0.1, True), ("batch", 0.1, True))),
    Experiment("landscape_dln", "Fig. 9, 10, 11b", "loss landscape along the gradient, deep linear network", "dln",
               (("none", 1e-6, True), ("batch", 1e-6, True))),
    # [ours] The paper does not say whether the DLN's loss is summed or averaged over its 1000 samples. A sum
    # scales the gradient by 1000, so lr 1e-6 on the sum is lr 1e-3 on our mean loss: this grid is that reading.
    Experiment("dln_summed_loss", "Fig. 3b, 10 (summed-loss reading)",
               "the DLN at the step sizes a summed loss implies: ICS and landscape", "dln",
               (("none", 1e-3, True), ("batch", 1e-3, True), ("none", 1e-4, False), ("batch", 1e-4, False))),
    Experiment("lp_vgg", "Fig. 5a, 6, 12", "l_p normalisations beside BatchNorm, VGG", "vgg",
               tuple((n, 0.1, n in ("none", "batch")) for n in ("none", "batch", "l1", "l2", "linf"))),
    Experiment("lp_dln", "Fig. 5b, 13", "l_p normalisations beside BatchNorm, deep linear network", "dln",
               tuple((n, 1e-6, n in ("none", "batch")) for n in ("none", "batch", "l1", "l2", "linf"))),
    Experiment("theory", "Sec. 4", "numerical checks of Theorems 4.1, 4.2, 4.4 and Lemma 4.5", "none",
               compute="bnlab.theory:run_checks"),
    # ---- beyond the paper (book/08_bjorck, book/09_smoothness); every setting here is [ours] unless a source is named ----
    # Bjorck et al. 2018, paper-spec.md 11.3: each network at its "normal" lr (BN 0.1, standard 1e-4)
    Experiment("bjorck_step_size", "Bjorck, rel. loss", "relative loss after one step vs step size, first "
               "mini-batches (Bjorck et al.), VGG", "none", compute="bnlab.beyond:step_size", dataset="fashion_mnist"),
    # Bjorck et al. 2018, Fig. 1: a ResNet at lrs 0.0001, 0.003, 0.1 with and without BN
    Experiment("bjorck_lr_sweep", "Bjorck, Fig. 1", "ResNet with and without BatchNorm at three learning rates "
               "(Bjorck et al.)", "resnet", tuple((n, lr, False) for n in ("none", "batch") for lr in (1e-4, 3e-3, 0.1))),
    # [ours] the same sweep on a ResNet-20: is the failure without BN one of depth (exploding output) or of lr?
    Experiment("bjorck_lr_sweep_resnet20", "Bjorck, Fig. 1 (depth 20)", "the learning-rate sweep on a ResNet-20, "
               "whose output does not explode at initialisation", "resnet20",
               tuple((n, lr, lr == 0.1) for n in ("none", "batch") for lr in (1e-4, 3e-3, 0.1))),
    Experiment("bjorck_step_size_resnet", "Bjorck, rel. loss", "relative loss after one step vs step size, first "
               "mini-batches (Bjorck et al.), ResNet", "none", compute="bnlab.beyond:step_size_resnet",
               dataset="fashion_mnist"),
    Experiment("sharpness", "beyond", "top Hessian eigenvalue during training, next to effective beta and 2/lr",
               "none", compute="bnlab.beyond:sharpness", dataset="fashion_mnist"),
    Experiment("loss_surface", "Li et al. 2-D", "2-D loss surface around a trained VGG, filter-normalised "
               "directions (Li et al.)", "none", compute="bnlab.beyond:surface", dataset="fashion_mnist"),
    Experiment("confounders", "beyond", "LayerNorm, GroupNorm and a fixed rescaling beside BatchNorm, VGG", "vgg",
               tuple((n, 0.1, n in ("none", "batch")) for n in ("none", "batch", "layer", "group", "rescaled"))),
)}


def get(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; `python -m bnlab list` shows them: {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name]


# Which experiments each chapter (book/<chapter>.ipynb) computes, in order: what `python -m bnlab estimate` counts
# per chapter (tests/test_notebooks.py checks it against the chapters' bnlab.run calls)
CHAPTERS = {
    "01_batchnorm": ("bn_vs_standard",),
    "02_bn_vs_standard": ("bn_vs_standard",),
    "03_noisy_bn": ("noisy_bn",),
    "04_gradient_ics": ("ics_vgg", "ics_dln", "dln_summed_loss"),
    "05_landscape": ("landscape_vgg", "landscape_dln", "dln_summed_loss"),
    "06_lp_normalization": ("lp_vgg", "lp_dln"),
    "07_theory": ("theory",),
    "08_bjorck": ("bjorck_step_size", "bn_vs_standard", "bjorck_lr_sweep", "bjorck_step_size_resnet",
                  "bjorck_lr_sweep_resnet20"),
    "09_smoothness": ("sharpness", "loss_surface", "confounders"),
}
