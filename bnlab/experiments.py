"""The registry: each experiment (a figure of the paper, or a check) -> what produces it, either a grid of
training runs of one network (built by ``bnlab.recipes``) or an analysis function (``bnlab.recipes.Analysis``).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import analyses, theory
from .config import Scale, get_scale
from .recipes import RUN_BUILDERS, Analysis


@dataclass(frozen=True)
class Experiment:
    name: str
    figures: str
    description: str
    network: str = ""             # a key of RUN_BUILDERS for a grid of training runs; "" for an analysis
    grid: tuple = ()              # (norm, lr, all_seeds): all_seeds False = first seed only, unless the scale gives
    #                               every arm of this network all seeds (``Scale.all_seeds_for``, the cpu scale) [ours, for cost]
    analysis: Analysis | None = None

    def __post_init__(self):
        if (self.analysis is None) == (self.network == ""):
            raise ValueError(f"experiment {self.name!r}: give a network and a grid, or an analysis")
        if self.network and self.network not in RUN_BUILDERS:
            raise ValueError(f"experiment {self.name!r}: unknown network {self.network!r}; one of {list(RUN_BUILDERS)}")

    def dataset_at(self, scale: Scale | str) -> str:
        """The data an analysis reads at ``scale`` (a grid's runs name their own)."""
        return self.analysis.data_set(get_scale(scale)) if self.analysis is not None else ""

    def runs(self, scale: Scale | str) -> list:
        """The training runs of a grid at ``scale`` (none for an analysis: it trains its own, see its config)."""
        scale = get_scale(scale)
        if self.analysis is not None:
            return []
        make, seeds = RUN_BUILDERS[self.network], scale.seeds_for(self.network)
        return [make(scale, norm, lr, seed) for norm, lr, all_seeds in self.grid
                for seed in (seeds if all_seeds or self.network in scale.all_seeds_for else seeds[:1])]

    def config_hash(self, scale: Scale | str) -> str:
        """An analysis's sized config hash at ``scale`` (what its stored and cached results are checked against)."""
        return self.analysis.config_hash(get_scale(scale))


EXPERIMENTS = {e.name: e for e in (
    Experiment("bn_vs_standard", "Fig. 1", "VGG with and without BatchNorm at three learning rates", "vgg",
               (("none", 0.1, True), ("batch", 0.1, True), ("none", 0.5, False), ("batch", 0.5, False),
                ("none", 0.01, False), ("batch", 0.01, False))),
    Experiment("noisy_bn", "Fig. 2, 8", "BatchNorm with injected distributional noise", "vgg",
               (("none", 0.1, True), ("batch", 0.1, True), ("noisy_batch", 0.1, False), ("noise", 0.1, False))),
    # the paper's control (Sec. 2.1): the same noise, in absolute units, in the standard network; noisy_bn's "noise"
    # arm is ours, with the noise relative to each channel's batch std
    Experiment("noisy_bn_control", "Sec. 2.1", "the standard VGG with noisy BN's noise in absolute units", "vgg",
               (("noise_abs", 0.1, True),)),
    Experiment("ics_vgg", "Fig. 3a", "gradient-based ICS of the VGG", "vgg",
               (("none", 0.1, True), ("batch", 0.1, True), ("none", 0.01, False), ("batch", 0.01, False))),
    # [ours] lr 0.01 (the runs of Fig. 3a): the same probes at a second rate, where 2/lr is ten times larger
    Experiment("landscape_vgg", "Fig. 4, 11a", "loss landscape along the gradient, VGG", "vgg",
               (("none", 0.1, True), ("batch", 0.1, True), ("none", 0.01, False), ("batch", 0.01, False))),
    # [ours] the same probes on BN and the standard VGG at lr 0.1, trained longer (Scale.vgg_long_steps): at cpu scale
    # the standard VGG's initial plateau is a fifth of the probes at 1,000 steps; its claims were registered with
    # the verdicts our explanation predicts before the runs were made
    Experiment("landscape_vgg_long", "Fig. 4 (longer reading)", "loss landscape along the gradient, VGG trained "
               "longer", "vgg_long", (("none", 0.1, True), ("batch", 0.1, True))),
    # [ours] The paper does not say whether the DLN's loss is summed or averaged over its 1000 samples. A sum
    # scales the gradient by 1000, so lr 1e-6 on the sum is lr 1e-3 on our mean loss. The summed reading is the main
    # one (it gives the paper's Fig. 10 magnitudes): lrs 1e-3 and 1e-4 on the mean are the paper's 1e-6 and 1e-7.
    Experiment("dln_summed_loss", "Fig. 3b, 9, 10, 11b",
               "the DLN at the step sizes a summed loss implies: ICS, layer inputs and landscape", "dln",
               (("none", 1e-3, True), ("batch", 1e-3, True), ("none", 1e-4, False), ("batch", 1e-4, False))),
    # the averaged-loss reading (lr 1e-6 on the mean), a side note: the network barely moves in 10,000 steps
    Experiment("ics_dln", "Fig. 3b (averaged-loss reading)", "gradient-based ICS of the DLN, averaged loss", "dln",
               (("none", 1e-6, True), ("batch", 1e-6, True))),
    Experiment("landscape_dln", "Fig. 10 (averaged-loss reading)", "loss landscape of the DLN, averaged loss", "dln",
               (("none", 1e-6, True), ("batch", 1e-6, True))),
    Experiment("lp_vgg", "Fig. 5a, 6, 12", "l_p normalisations beside BatchNorm, VGG", "vgg",
               tuple((n, 0.1, n in ("none", "batch")) for n in ("none", "batch", "l1", "l2", "linf"))),
    Experiment("lp_dln", "Fig. 5b, 13", "l_p normalisations beside BatchNorm, deep linear network", "dln",
               tuple((n, 1e-3, n in ("none", "batch")) for n in ("none", "batch", "l1", "l2", "linf"))),   # the summed reading
    Experiment("theory", "Sec. 4", "numerical checks of Theorems 4.1, 4.2, 4.4 and Lemma 4.5", analysis=theory.THEORY),
    # ---- beyond the paper (book/08_bjorck, book/09_smoothness); every setting here is [ours] unless a source is named ----
    # Bjorck et al. 2018: each network at its "normal" lr (BN 0.1, standard 1e-4)
    Experiment("bjorck_step_size", "Bjorck, rel. loss", "relative loss after one step vs step size, first "
               "mini-batches (Bjorck et al.), VGG", analysis=analyses.STEP_SIZE),
    # Bjorck et al. 2018, Fig. 1: a ResNet at lrs 0.0001, 0.003, 0.1 with and without BN
    Experiment("bjorck_lr_sweep", "Bjorck, Fig. 1", "ResNet with and without BatchNorm at three learning rates "
               "(Bjorck et al.)", "resnet", tuple((n, lr, False) for n in ("none", "batch") for lr in (1e-4, 3e-3, 0.1))),
    # [ours] the same sweep on a ResNet-20: is the failure without BN one of depth (exploding output) or of lr?
    Experiment("bjorck_lr_sweep_resnet20", "Bjorck, Fig. 1 (depth 20)", "the learning-rate sweep on a ResNet-20, "
               "whose output does not explode at initialisation", "resnet20",
               tuple((n, lr, lr == 0.1) for n in ("none", "batch") for lr in (1e-4, 3e-3, 0.1))),
    Experiment("bjorck_step_size_resnet", "Bjorck, rel. loss", "relative loss after one step vs step size, first "
               "mini-batches (Bjorck et al.), ResNet", analysis=analyses.STEP_SIZE_RESNET),
    Experiment("sharpness", "beyond", "top Hessian eigenvalue during training, next to effective beta and 2/lr",
               analysis=analyses.SHARPNESS),
    Experiment("loss_surface", "Li et al. 2-D", "2-D loss surface around a trained VGG, filter-normalised "
               "directions (Li et al.)", analysis=analyses.SURFACE),
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
    "03_noisy_bn": ("noisy_bn", "noisy_bn_control"),
    "04_gradient_ics": ("ics_vgg", "dln_summed_loss", "ics_dln"),
    "05_landscape": ("landscape_vgg", "landscape_vgg_long", "dln_summed_loss", "landscape_dln"),
    "06_lp_normalization": ("lp_vgg", "lp_dln"),
    "07_theory": ("theory",),
    "08_bjorck": ("bjorck_step_size", "bn_vs_standard", "bjorck_lr_sweep", "bjorck_step_size_resnet",
                  "bjorck_lr_sweep_resnet20"),
    "09_smoothness": ("sharpness", "loss_surface", "confounders"),
    "10_findings": ("landscape_vgg", "landscape_vgg_long"),
}
