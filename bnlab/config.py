"""Frozen, validated run configurations and the five named scales.

A run is fully described by a :class:`RunConfig`; its hash is the cache key of the
result (see :mod:`bnlab.results`). The paper's settings live in :data:`PAPER_SETTINGS`
(one table; each value's source in its comment); ``cpu`` and ``smoke`` shrink them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace, is_dataclass

ARCHS = ("vgg16", "vgg11", "dln", "resnet")
NORMS = ("none", "batch", "torch_batch", "noisy_batch", "noise", "noise_abs", "l1", "l2", "linf", "layer", "group",
         "rescaled", "skipinit")
DATASETS = ("fashion_mnist", "cifar10", "dln_synthetic")
# "tf32": steps without probes and the test-set evaluations in TF32 on a GPU (tensor cores; no effect on a CPU);
# probed steps and the probes in strict fp32, so every gradient-based measurement stays exact [ours]
PRECISIONS = ("fp32", "tf32", "fp64")
SCALES = ("paper", "paper_fmnist", "colab", "cpu", "smoke")  # largest first: a chapter shows the largest one shipped

# One table of the paper's settings ([S]: Santurkar et al. 2018, with the place it says so). [ours] marks our
# defaults for what the paper leaves open.
PAPER_SETTINGS = {
    "vgg": {
        "dataset": "cifar10",          # [S App. A.1]
        "arch": "vgg16",               # [ours] 13 conv + 1 linear; paper only says "VGG-like"
        "optimizer": "SGD, momentum 0, weight decay 0",  # [ours] "standard SGD"
        "lr": 0.1,                     # [S App. A.1]; 0.5 in Fig. 1, 0.01 in Fig. 3
        "batch_size": 128,             # [S App. A.1]
        "steps": 15_000,               # [S App. A.1]
        "augmentation": "none",        # [S App. A.1]
        "init": "Glorot uniform",      # [S] Glorot; uniform is [ours]
        "loss": "cross-entropy",       # [ours] inferred
        "bn_eps": 1e-5,                # [ours]
        "probe_range_x_lr": (0.5, 4.0),  # [S Fig. 4]: eta in [0.05, 0.4] at lr 0.1
    },
    "dln": {
        "depth": 25, "dim": 10,        # [S App. A.1]
        "samples": 1000,               # full batch [S App. A.1]
        "steps": 10_000,               # [S App. A.1]
        "lr": 1e-6,                    # [S App. A.1]; 1e-7 in Fig. 3b
        "loss": "squared l2, mean over samples",  # [ours] mean vs sum not stated
        "init": "Glorot uniform",      # [S] Glorot
        "precision": "fp64",           # [ours] fp32 rounds away eta*g at eta = 1e-8
        "probe_range_x_lr": (0.01, 30.0),  # [S Fig. 10]: eta in [1e-8, 3e-5] at lr 1e-6
    },
}


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_types(obj, ints=(), numbers=()) -> None:
    """Integers must be ints (``steps=2.5`` or ``depth=20.0`` is an error, not a silent truncation) and numbers must
    be numbers (``lr="0.1"`` says so instead of failing later with a TypeError)."""
    for name in ints:
        v = getattr(obj, name)
        _check(_is_int(v), f"{name} must be an integer, got {v!r} ({type(v).__name__})")
    for name in numbers:
        v = getattr(obj, name)
        _check(_is_number(v), f"{name} must be a number, got {v!r} ({type(v).__name__})")


@dataclass(frozen=True)
class ModelConfig:
    """Which network: a VGG or a ResNet for 32x32 images, or the deep linear network (DLN)."""

    arch: str = "vgg16"          # vgg16 | vgg11 | dln | resnet
    norm: str = "none"           # see NORMS; "noise" = standard net + noisy-BN's noise
    width: float = 1.0           # multiplier on VGG channel counts (1.0 = 64..512)
    depth: int = 0               # ResNet depth 6n + 2; 0 = the architecture's default (ResNet-110)
    in_channels: int = 3
    num_classes: int = 10
    dln_depth: int = 25
    dln_dim: int = 10

    def __post_init__(self):
        _check_types(self, ints=("depth", "in_channels", "num_classes", "dln_depth", "dln_dim"), numbers=("width",))
        _check(self.in_channels >= 1, f"in_channels must be >= 1 (1 for Fashion-MNIST, 3 for CIFAR-10), got "
                                      f"{self.in_channels}")
        _check(self.num_classes >= 2, f"num_classes must be >= 2 (10 for both data sets), got {self.num_classes}")
        _check(self.arch in ARCHS, f"unknown arch {self.arch!r}; choose one of {ARCHS}")
        _check(self.norm in NORMS, f"unknown norm {self.norm!r}; choose one of {NORMS}")
        _check(0 < self.width < float("inf"), f"width must be a finite number > 0 (1.0 is the paper's VGG, 0.125 our cpu "
                                              f"scale), got {self.width}")
        _check(self.dln_depth >= 1 and self.dln_dim >= 1, "dln_depth and dln_dim must be >= 1")
        if self.arch == "resnet":
            d = resnet_depth(self)
            _check(d >= 8 and (d - 2) % 6 == 0,
                   f"ResNet depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 56, 110), got {d}")
        else:
            _check(self.depth == 0, f"depth is a ResNet setting; leave it 0 for {self.arch}")
            _check(self.norm != "skipinit", f"norm 'skipinit' scales a residual branch: it needs arch 'resnet', not "
                                            f"{self.arch!r}")


RESNET_DEFAULT_DEPTH = 110       # Bjorck et al. 2018's ResNet-110


def resnet_depth(cfg: ModelConfig) -> int:
    return cfg.depth or RESNET_DEFAULT_DEPTH


def n_layers(cfg: ModelConfig) -> int:
    """How many blocks ("layers" to the probes) the network has: for a ResNet, stem + 3n residual blocks + head."""
    if cfg.arch == "dln":
        return cfg.dln_depth
    if cfg.arch == "resnet":
        return (resnet_depth(cfg) - 2) // 2 + 2
    return {"vgg16": 14, "vgg11": 9}[cfg.arch]


@dataclass(frozen=True)
class DataConfig:
    """Which data. Image sets are padded to 32x32; the DLN data is x ~ N(0, I), y = A x."""

    dataset: str = "cifar10"
    train_subset: int = 0        # 0 = whole training set; else the first n images
    test_subset: int = 0         # 0 = whole test set; else the first n images
    dln_samples: int = 1000      # [S App. A.1]
    dln_dim: int = 10

    def __post_init__(self):
        _check_types(self, ints=("train_subset", "test_subset", "dln_samples", "dln_dim"))
        _check(self.dataset in DATASETS,
               f"unknown dataset {self.dataset!r}; choose one of {DATASETS} "
               "(CIFAR-10 needs internet once; Fashion-MNIST works offline)")
        _check(self.train_subset >= 0 and self.test_subset >= 0, "subsets must be >= 0 (0 = all)")
        _check(self.dln_samples >= 1 and self.dln_dim >= 1,
               f"dln_samples and dln_dim must be >= 1, got {self.dln_samples} and {self.dln_dim}")


@dataclass(frozen=True)
class TrainConfig:
    """Plain SGD at a constant learning rate, as in the paper."""

    lr: float = 0.1              # per step, loss averaged over the batch
    steps: int = 15_000
    batch_size: int = 128        # for the DLN, the whole data set (full-batch GD)
    seed: int = 0
    momentum: float = 0.0        # the paper: plain SGD
    weight_decay: float = 0.0
    precision: str = "fp32"      # fp32 (TF32 off) | tf32 (training steps only) | fp64
    eval_every: int = 100        # steps between test-set evaluations
    log_every: int = 1           # keep every n-th per-step training loss/accuracy

    def __post_init__(self):
        _check_types(self, ints=("steps", "batch_size", "seed", "eval_every", "log_every"),
                     numbers=("lr", "momentum", "weight_decay"))
        _check(0 <= self.seed < 2**32, f"seed must be in [0, 2**32), got {self.seed}")
        _check(self.lr > 0 and self.lr < 100,
               f"lr must be in (0, 100), got {self.lr}; the paper uses 0.1 and 0.5 for VGG, 1e-6 for the DLN")
        _check(self.steps >= 1, "steps must be >= 1")
        _check(0 <= self.momentum < 1 and 0 <= self.weight_decay < float("inf"),
               f"momentum must be in [0, 1) and weight_decay a finite number >= 0, got {self.momentum} and "
               f"{self.weight_decay}")
        _check(self.batch_size >= 2, "batch_size must be >= 2 (BatchNorm needs a batch)")
        _check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}")
        _check(self.eval_every >= 1 and self.log_every >= 1, "eval_every and log_every must be >= 1")


@dataclass(frozen=True)
class ProbeConfig:
    """Measurements taken during training, every ``every`` steps (0 = off)."""

    every: int = 0
    activation_layers: tuple = ()    # 1-based layer numbers whose pre-ReLU units are recorded
    activation_units: int = 4        # random units (channels) per layer
    ics_layers: tuple = ()           # 1-based layers for the gradient-based ICS
    landscape: bool = False          # loss / gradient along the gradient direction
    landscape_range: tuple = (0.5, 4.0)  # eta range as multiples of lr
    landscape_points: int = 8        # K
    landscape_log: bool = True       # geometric spacing of eta

    def __post_init__(self):
        _check_types(self, ints=("every", "activation_units", "landscape_points"))
        _check(self.every >= 0, "every must be >= 0 (0 turns probes off)")
        _check(isinstance(self.landscape_range, tuple) and len(self.landscape_range) == 2
               and all(_is_number(v) for v in self.landscape_range),
               f"landscape_range must be a pair of numbers (lo, hi), got {self.landscape_range!r}")
        lo, hi = self.landscape_range
        _check(0 < lo <= hi < float("inf"), "landscape_range must be (lo, hi) with 0 < lo <= hi < inf, in multiples of lr")
        _check(self.landscape_points >= 1 and self.activation_units >= 1,
               "landscape_points and activation_units must be >= 1")
        _check(isinstance(self.landscape, bool) and isinstance(self.landscape_log, bool),
               "landscape and landscape_log must be True or False")
        layers = self.activation_layers + self.ics_layers if isinstance(self.activation_layers, tuple) and \
            isinstance(self.ics_layers, tuple) else None
        _check(layers is not None and all(_is_int(i) and i >= 1 for i in layers),
               f"activation_layers and ics_layers must be tuples of layer numbers (integers from 1), got "
               f"{self.activation_layers!r} and {self.ics_layers!r}")


@dataclass(frozen=True)
class RunConfig:
    """One training run: model, data, optimisation and measurements."""

    name: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    def __post_init__(self):
        _check((self.model.arch == "dln") == (self.data.dataset == "dln_synthetic"),
               "the DLN trains on dataset 'dln_synthetic' and the VGGs and ResNets on image datasets")
        depth = n_layers(self.model)
        too_deep = [i for i in self.probe.activation_layers + self.probe.ics_layers if i > depth]
        _check(not too_deep, f"layers {too_deep} do not exist: {self.model.arch} has {depth} layers")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def hash(self) -> str:
        return config_hash(self)


def config_hash(cfg) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of a config: the cache key."""
    payload = json.dumps(asdict(cfg) if is_dataclass(cfg) else cfg, sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def from_dict(d: dict) -> RunConfig:
    """Rebuild a RunConfig from :meth:`RunConfig.to_dict` (tuples restored)."""
    def build(cls, values):
        kw = {}
        for f in fields(cls):
            if f.name in values:
                v = values[f.name]
                kw[f.name] = tuple(v) if isinstance(v, list) else v
        return cls(**kw)
    return RunConfig(name=d["name"], model=build(ModelConfig, d["model"]), data=build(DataConfig, d["data"]),
                     train=build(TrainConfig, d["train"]), probe=build(ProbeConfig, d["probe"]))


def diff_configs(a: dict, b: dict, prefix: str = "") -> list:
    """Names of the fields where two config dicts differ (dotted paths)."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff_configs(va, vb, f"{prefix}{k}.")
        elif (list(va) if isinstance(va, (list, tuple)) else va) != (list(vb) if isinstance(vb, (list, tuple)) else vb):
            out.append(f"{prefix}{k}")
    return out


__all__ = ["ModelConfig", "DataConfig", "TrainConfig", "ProbeConfig", "RunConfig", "PAPER_SETTINGS", "config_hash",
           "from_dict", "diff_configs", "replace"]
