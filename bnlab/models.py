"""The networks as lists of blocks: a VGG for 32x32 images, the 25-layer deep linear network, and (for Bjorck et
al.'s learning-rate sweep) a CIFAR ResNet of depth 6n + 2.

"Layer #k" in the paper is block k here (1-based): one conv or linear weight, its normalisation, its
nonlinearity. Keeping the blocks separate lets the ICS measurement reuse a shared prefix
(``bnlab.measure.ics``); ``block.norm``'s output is the "layer input distribution" of Fig. 1.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig, resnet_depth
from .device import pick
from .norms import has_shift, make_norm

VGG_LAYOUTS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
}


class Block(nn.Module):
    """weight layer -> normalisation -> nonlinearity (-> 2x2 max-pool)."""

    def __init__(self, layer: nn.Module, norm: nn.Module, act: bool, pool: bool = False, flatten: bool = False,
                 global_pool: bool = False):
        super().__init__()
        self.flatten = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()) if global_pool else \
            nn.Flatten() if flatten else None
        self.layer, self.norm = layer, norm
        self.act = nn.ReLU() if act else nn.Identity()
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()

    @property
    def weight(self) -> nn.Parameter:
        """The block's weight tensor: what the ICS measures (Santurkar et al. Sec. 2.2; which tensor is [ours])."""
        return self.layer.weight

    def forward(self, x):
        if self.flatten is not None:
            x = self.flatten(x)
        # norm "rescaled" has a data-dependent initialisation [ours], a control for BN's scale
        return self.pool(self.act(_normalise(self.norm, self.layer, x, self.training)))


def _normalise(norm: nn.Module, layer: nn.Module, x: torch.Tensor, training: bool) -> torch.Tensor:
    """``norm(layer(x))``; a norm with a data-dependent initialisation ("rescaled") sets itself up first."""
    if training and getattr(norm, "pending_init", False):
        norm.initialise(layer, x)
    return norm(layer(x))


class ResidualBlock(nn.Module):
    """He et al.'s (2016) basic block for CIFAR: conv-norm-ReLU-conv-norm, plus the shortcut, then ReLU.

    A block that halves the resolution uses the parameter-free shortcut ("option A": subsample, pad channels with
    zeros), so the only normalisations are those of the two convolutions. ``layer``/``norm`` name the first
    convolution and its normalisation, which the probes read as the block's "layer" and "layer input".
    """

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str):
        super().__init__()
        bias = not has_shift(norm)
        self.layer = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)
        self.norm = make_norm(norm, c_out, spatial=True)
        self.layer2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias)
        self.norm2 = make_norm(norm, c_out, spatial=True)
        self.stride, self.pad = stride, c_out - c_in
        # SkipInit (De & Smith 2020): no normalisation, one learnable scalar on the branch, 0 at initialisation, so
        # every block starts as the identity on its shortcut; the other norms have no such scalar
        self.alpha = nn.Parameter(torch.zeros(())) if norm == "skipinit" else None

    @property
    def weight(self) -> nn.Parameter:
        return self.layer.weight

    def shortcut(self, x):
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad:
            x = nn.functional.pad(x, (0, 0, 0, 0, 0, self.pad))
        return x

    def branch(self, x):
        """The residual branch: conv-norm-ReLU-conv-norm (times SkipInit's alpha), what is added to the shortcut."""
        h = torch.relu(_normalise(self.norm, self.layer, x, self.training))
        h = _normalise(self.norm2, self.layer2, h, self.training)
        return h if self.alpha is None else self.alpha * h

    def forward(self, x):
        return torch.relu(self.branch(x) + self.shortcut(x))


class Blockwise(nn.Module):
    """A sequence of blocks; ``forward(x, start, stop)`` runs blocks[start:stop] only."""

    def __init__(self, blocks, kind: str):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.kind = kind  # "classifier" or "regression"

    def forward(self, x, start: int = 0, stop=None):
        for block in self.blocks[start:stop]:
            x = block(x)
        return x

    def __len__(self):
        return len(self.blocks)


def _glorot(model: nn.Module) -> nn.Module:
    """Glorot (Xavier) uniform weights and zero biases [S App. A.1; uniform is ours]."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def vgg(cfg: ModelConfig) -> Blockwise:
    """VGG for 32x32 inputs: 3x3 convs (BN before ReLU), five max-pools, one linear classifier."""
    blocks, c_in = [], cfg.in_channels
    layout = VGG_LAYOUTS[cfg.arch]
    for i, item in enumerate(layout):
        if item == "M":
            continue
        c_out = max(1, round(item * cfg.width))
        pool = i + 1 < len(layout) and layout[i + 1] == "M"
        conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=not has_shift(cfg.norm))
        blocks.append(Block(conv, make_norm(cfg.norm, c_out, spatial=True), act=True, pool=pool))
        c_in = c_out
    blocks.append(Block(nn.Linear(c_in, cfg.num_classes), nn.Identity(), act=False, flatten=True))
    return _glorot(Blockwise(blocks, "classifier"))


def deep_linear(cfg: ModelConfig) -> Blockwise:
    """x -> W_1 ... W_k x (k = 25 square 10x10 layers, no biases), normalisation after each layer [ours]."""
    d = cfg.dln_dim
    blocks = [Block(nn.Linear(d, d, bias=False), make_norm(cfg.norm, d, spatial=False), act=False)
              for _ in range(cfg.dln_depth)]
    return _glorot(Blockwise(blocks, "regression"))


def resnet(cfg: ModelConfig) -> Blockwise:
    """CIFAR ResNet of depth 6n + 2 [He et al. 2016, Sec. 4.2]: a 3x3 conv, three stages of n basic blocks
    (16, 32, 64 channels times ``width``; stages 2 and 3 halve the resolution), global average pool, linear.
    He (Kaiming) normal initialisation as in that paper; BN, where present, after every convolution."""
    n = (resnet_depth(cfg) - 2) // 6
    c = [max(1, round(k * cfg.width)) for k in (16, 32, 64)]
    blocks = [Block(nn.Conv2d(cfg.in_channels, c[0], 3, padding=1, bias=not has_shift(cfg.norm)),
                    make_norm(cfg.norm, c[0], spatial=True), act=True)]
    c_in = c[0]
    for stage, c_out in enumerate(c):
        for i in range(n):
            blocks.append(ResidualBlock(c_in, c_out, 2 if stage > 0 and i == 0 else 1, cfg.norm))
            c_in = c_out
    blocks.append(Block(nn.Linear(c_in, cfg.num_classes), nn.Identity(), act=False, global_pool=True))
    model = Blockwise(blocks, "classifier")
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


def mlp(depth: int, width: int, in_features: int = 1024, num_classes: int = 10, norm: str = "batch") -> Blockwise:
    """Yang et al.'s (2019) fully connected network: ``depth`` x [Linear(width) -> norm -> ReLU] -> Linear(classes),
    He-normal weights (fan-in), the input flattened; biases only where no normalisation follows (``has_shift``).
    Built from the current RNG state (wrap it in ``torch.random.fork_rng`` to seed it)."""
    blocks, d = [], in_features
    for i in range(depth):
        blocks.append(Block(nn.Linear(d, width, bias=not has_shift(norm)), make_norm(norm, width, spatial=False),
                            act=True, flatten=i == 0))
        d = width
    blocks.append(Block(nn.Linear(d, num_classes), nn.Identity(), act=False, flatten=depth == 0))
    model = Blockwise(blocks, "classifier")
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def construct(cfg: ModelConfig) -> Blockwise:
    """The network ``cfg`` describes, initialised from the current RNG state on the current default device."""
    return {"dln": deep_linear, "resnet": resnet}.get(cfg.arch, vgg)(cfg)


def build(cfg: ModelConfig, seed: int = 0, device=None, dtype=torch.float32) -> Blockwise:
    """The network ``cfg`` describes, initialised from ``seed``, on ``device``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = construct(cfg)
    return model.to(device=pick(device), dtype=dtype)


def loss_fn(model: Blockwise, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for the VGGs; squared l2 error summed over outputs, mean over samples for the DLN."""
    if model.kind == "classifier":
        return nn.functional.cross_entropy(out, y)
    return (out - y).pow(2).sum(dim=1).mean()

