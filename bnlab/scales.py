"""How big a reproduction is: the scales (the paper's sizes, a reader's GPU, a CPU-sized one, a seconds-long smoke
test), the per-scale sizes of the ResNets and of the analyses, and :func:`resolve`, the one place that decides which
scale a run uses when none is given.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .config import DATASETS, PRECISIONS, SCALES, _check, _check_types, _is_int


# ---- per-scale sizes of the ResNets and of the analyses (every value is [ours]: the papers give none that fit a CPU)
@dataclass(frozen=True, kw_only=True)
class ResNetSize:
    """The CIFAR ResNet of Bjorck et al.'s sweep at a scale: depth 6n+2, channel width factor and training length
    (None = the scale's VGG length; shorter where the VGG's length would not fit three seeds on the machine)."""

    depth: int
    width: float
    steps: int | None = None

    def __post_init__(self):
        _check_types(self, ints=("depth",) + (("steps",) if self.steps is not None else ()), numbers=("width",))
        _check(self.steps is None or self.steps >= 1, f"ResNet steps must be >= 1, got {self.steps}")
        _check(self.depth >= 8 and (self.depth - 2) % 6 == 0, f"ResNet depth must be 6n+2 >= 8, got {self.depth}")


@dataclass(frozen=True, kw_only=True)
class StepSizeSizes:
    """Bjorck et al.'s step-size test: the first ``batches`` mini-batches, ``etas`` step sizes over 10^log_eta."""

    batches: int
    log_eta: tuple
    etas: int

    def __post_init__(self):
        _check_types(self, ints=("batches", "etas"))
        _check(self.batches >= 1 and self.etas >= 2 and self.log_eta[0] < self.log_eta[1],
               f"step-size sizes need batches >= 1, etas >= 2 and log_eta low < high, got {self}")


def _check_seeds(sizes):
    """An analysis's seeds: distinct non-negative ints, at least one (the first is the one its figures draw)."""
    seeds = sizes.seeds
    _check(isinstance(seeds, tuple) and len(seeds) >= 1 and len(set(seeds)) == len(seeds)
           and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds),
           f"{type(sizes).__name__}.seeds must be a tuple of distinct non-negative ints, got {seeds!r}")


@dataclass(frozen=True, kw_only=True)
class SharpnessSizes:
    """Training length (None = the scale's VGG length), probe interval and power-iteration cap of the sharpness
    analysis, at learning rate ``lr``."""

    steps: int | None
    every: int
    iters: int
    lr: float
    seeds: tuple = (0,)          # one training run per network and seed

    def __post_init__(self):
        _check_types(self, ints=("every", "iters") + (("steps",) if self.steps is not None else ()), numbers=("lr",))
        _check(self.every >= 1 and self.iters >= 1 and self.lr > 0, f"bad sharpness sizes {self}")
        _check_seeds(self)


@dataclass(frozen=True, kw_only=True)
class SurfaceSizes:
    """Training before the 2-D surface is drawn (None = the VGG length), grid points per axis, fixed images."""

    steps: int | None
    points: int
    images: int
    lr: float
    seeds: tuple = (0,)          # one training run (and one pair of random directions) per network and seed

    def __post_init__(self):
        _check_types(self, ints=("points", "images") + (("steps",) if self.steps is not None else ()), numbers=("lr",))
        _check_seeds(self)
        _check(self.points >= 3 and self.points % 2 == 1 and self.images >= 1 and self.lr > 0,
               f"surface sizes need an odd number of points >= 3 (the centre is a grid point), got {self}")


@dataclass(frozen=True, kw_only=True)
class TheorySizes:
    """Section 4's checks: hidden units d, units checked, batch sizes m, training steps, batch and lr, subset."""

    hidden: int
    units: int
    batch_sizes: tuple
    steps: int
    train_batch: int
    lr: float
    train_subset: int

    def __post_init__(self):
        _check_types(self, ints=("hidden", "units", "steps", "train_batch", "train_subset"), numbers=("lr",))
        _check(self.units <= self.hidden and min(self.batch_sizes) >= 3, f"bad theory sizes {self}")


# ---- scales -----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Scale:
    """How big a reproduction is: the paper's, a reader's GPU, a CPU-sized one, or a seconds-long smoke test.
    Every per-scale size lives here, so one object says what a scale trains and measures."""

    name: str
    dataset: str                 # image data set for the VGG chapters
    vgg_width: float             # 0.0625 = channels 4..32 instead of 64..512
    vgg_steps: int
    eval_every: int
    train_subset: int
    test_subset: int
    dln_steps: int
    probe_every: int             # steps between ICS / landscape / activation probes
    dln_probe_every: int
    seeds: tuple
    resnet: ResNetSize
    step_size: StepSizeSizes
    sharpness: SharpnessSizes
    surface: SurfaceSizes
    theory: TheorySizes
    train_precision: str = "fp32"  # of the VGG and ResNet runs; "tf32" = TF32 between measurements (PRECISIONS)
    dln_seeds: tuple | None = None  # the deep linear network's seeds (None: ``seeds``); its runs are cheap
    all_seeds_for: tuple = ()    # networks (keys of bnlab.recipes.RUN_BUILDERS) whose every arm gets all seeds (the
    #                              shipped evidence); elsewhere the arms a grid marks secondary get the first seed only
    landscape_points: int = 8    # K, the step sizes each landscape probe tries along the gradient ([ours] 8, log-spaced);
    #                              the smoke scale tries 3, enough to exercise the probe at a third of its cost
    vgg_long_steps: int | None = None  # the longer reading of the VGG landscape (None: ``vgg_steps``, the same runs):
    #                              does a verdict at ``vgg_steps`` depend on how long the network trained?

    def __post_init__(self):
        _check(self.dataset in DATASETS, f"unknown dataset {self.dataset!r}")
        _check(self.train_precision in PRECISIONS, f"unknown precision {self.train_precision!r}")
        _check(self.vgg_long_steps is None or (_is_int(self.vgg_long_steps) and self.vgg_long_steps >= self.vgg_steps),
               f"vgg_long_steps must be None or an integer >= vgg_steps ({self.vgg_steps}), got {self.vgg_long_steps!r}")

    def seeds_for(self, network: str) -> tuple:
        """The seeds every arm of a grid of ``network`` runs is trained with."""
        return self.dln_seeds if network == "dln" and self.dln_seeds is not None else self.seeds


_PAPER_SIZES = dict(resnet=ResNetSize(depth=110, width=1.0),           # Bjorck et al. 2018's ResNet-110
                    step_size=StepSizeSizes(batches=50, log_eta=(-5.0, 3.0), etas=33),
                    sharpness=SharpnessSizes(steps=None, every=500, iters=30, lr=0.1),
                    surface=SurfaceSizes(steps=None, points=31, images=5000, lr=0.1),
                    theory=TheorySizes(hidden=512, units=128, batch_sizes=(8, 32, 128, 512), steps=3000, train_batch=128,
                                       lr=0.1, train_subset=0))
# [ours] TF32 between measurements at the paper's sizes: the suite is ~115 PFLOP, 29 min at 100% of an H100's
# strict-fp32 peak, 4 min at its TF32 peak (``python -m bnlab.bench``, section 4); measurements stay strict fp32
PAPER = Scale(name="paper", dataset="cifar10", vgg_width=1.0, vgg_steps=15_000, eval_every=100, train_subset=0,
              test_subset=0, dln_steps=10_000, probe_every=100, dln_probe_every=100, seeds=(0, 1, 2), train_precision="tf32",
              **_PAPER_SIZES)
# The paper's sizes on Fashion-MNIST: for a GPU without internet, where CIFAR-10 cannot be downloaded [ours]
PAPER_FMNIST = Scale(name="paper_fmnist", dataset="fashion_mnist", vgg_width=1.0, vgg_steps=15_000, eval_every=100,
                     train_subset=0, test_subset=0, dln_steps=10_000, probe_every=100, dln_probe_every=100, seeds=(0, 1, 2),
                     train_precision="tf32", **_PAPER_SIZES)
# [ours] A reader's GPU, e.g. a free Colab T4 (about 4.5 TFLOP/s effective in fp32, no TF32): CIFAR-10, half-width
# VGG, 3,000 steps, so every chapter runs live in 15 minutes or less (`python -m bnlab estimate --scale colab
# --tflops 4.5`); the default live scale when a GPU is present
COLAB = Scale(name="colab", dataset="cifar10", vgg_width=0.5, vgg_steps=3_000, eval_every=250, train_subset=0,
              test_subset=0, dln_steps=5_000, probe_every=100, dln_probe_every=100, seeds=(0, 1, 2),
              resnet=ResNetSize(depth=56, width=0.5), step_size=_PAPER_SIZES["step_size"],
              sharpness=SharpnessSizes(steps=None, every=250, iters=20, lr=0.1),
              surface=SurfaceSizes(steps=None, points=31, images=2048, lr=0.1),
              theory=_PAPER_SIZES["theory"])
# [ours] at cpu scale a ResNet-56 at a quarter of the width (channels 4, 8, 16) is the deepest that fits. Depth
# matters: without BN the initial output grows with depth (the Bjorck et al. chapter shows it), the effect Bjorck et al.
# build on. Its sweeps train 500 steps, half the VGG's, so that every arm gets three seeds on 2 cores.
# The deep linear network at the paper's 10,000 steps with five seeds (its seeds disagree more than the VGG's).
# The shipped evidence: every arm of the VGG, DLN and ResNet grids with all seeds.
CPU = Scale(name="cpu", dataset="fashion_mnist", vgg_width=0.0625, vgg_steps=1_000, eval_every=100, train_subset=0,
            test_subset=2_000, dln_steps=10_000, probe_every=25, dln_probe_every=100, seeds=(0, 1, 2),
            dln_seeds=(0, 1, 2, 3, 4),
            all_seeds_for=("vgg", "dln", "resnet", "resnet20"), vgg_long_steps=6_000,
            resnet=ResNetSize(depth=56, width=0.25, steps=500),
            step_size=StepSizeSizes(batches=20, log_eta=(-5.0, 3.0), etas=33),
            sharpness=SharpnessSizes(steps=600, every=50, iters=20, lr=0.1, seeds=(0, 1, 2)),
            surface=SurfaceSizes(steps=500, points=21, images=512, lr=0.1, seeds=(0, 1, 2)),
            theory=TheorySizes(hidden=128, units=64, batch_sizes=(8, 32, 128), steps=1000, train_batch=128, lr=0.1,
                               train_subset=10_000))
SMOKE = Scale(name="smoke", dataset="fashion_mnist", vgg_width=0.0625, vgg_steps=12, eval_every=6, train_subset=512,
              test_subset=256, dln_steps=30, probe_every=4, dln_probe_every=10, seeds=(0,), vgg_long_steps=24,
              landscape_points=3,
              resnet=ResNetSize(depth=8, width=0.25), step_size=StepSizeSizes(batches=2, log_eta=(-5.0, 3.0), etas=9),
              sharpness=SharpnessSizes(steps=12, every=6, iters=4, lr=0.1),
              surface=SurfaceSizes(steps=12, points=5, images=128, lr=0.1),
              theory=TheorySizes(hidden=32, units=16, batch_sizes=(8, 32, 128), steps=60, train_batch=64, lr=0.1,
                                 train_subset=1024))
SCALE_BY_NAME = {s.name: s for s in (PAPER, PAPER_FMNIST, COLAB, CPU, SMOKE)}


def get_scale(name) -> Scale:
    """The :class:`Scale` named ``name`` (a Scale is returned as it is)."""
    if isinstance(name, Scale):
        return name
    if name not in SCALE_BY_NAME:
        raise ValueError(f"unknown scale {name!r}; choose one of {SCALES}")
    return SCALE_BY_NAME[name]


def resolve(scale=None, mode: str = "live", env=None):
    """The scale a run uses: the argument, else ``$BNLAB_SCALE`` (an empty variable means unset), else the default:
    live, ``colab`` with a GPU and ``cpu`` without; cached, None (the largest scale that ships, ``bnlab.results``).
    The one place the default is decided and the variable read."""
    env = os.environ if env is None else env
    if isinstance(scale, Scale):
        return scale
    scale = scale or env.get("BNLAB_SCALE") or None
    if scale is None and mode == "live":
        from .device import has_gpu
        scale = "colab" if has_gpu() else "cpu"
    if scale is not None:
        get_scale(scale)                   # an unknown name fails here, with the valid ones
    return scale


__all__ = ["Scale", "ResNetSize", "StepSizeSizes", "SharpnessSizes", "SurfaceSizes", "TheorySizes", "PAPER",
           "PAPER_FMNIST", "COLAB", "CPU", "SMOKE", "SCALE_BY_NAME", "get_scale", "resolve"]
