"""Pluggable normalisations: BatchNorm from scratch, noisy BatchNorm, the l_p variants, and (as controls
for the smoothness story) LayerNorm, GroupNorm and a fixed rescaling that controls for BN's scale at initialisation.

Every layer normalises per channel over the batch (and height x width for convolutions), as in
Ioffe & Szegedy's Alg. 1; the first chapter checks :class:`BatchNorm` against torch's.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

# How the book names and colours each network (a key of ``bnlab.config.NORMS``): one colour per network across
# every chapter's figures
NORM_LABELS = {"none": "Standard", "batch": "Standard + BatchNorm", "torch_batch": "Standard + torch BatchNorm",
               "noisy_batch": "Standard + noisy BatchNorm", "noise": "Standard + noise",
               "noise_abs": "Standard + absolute noise",
               "l1": "Standard + L1", "l2": "Standard + L2", "linf": "Standard + L-inf",
               "layer": "Standard + LayerNorm", "group": "Standard + GroupNorm",
               "rescaled": "Standard + fixed rescaling", "skipinit": "Standard + SkipInit"}
NORM_COLOURS = {"none": "#4c72b0", "batch": "#dd8452", "torch_batch": "#c44e52", "noisy_batch": "#55a868",
                "noise": "#8172b3", "noise_abs": "#a05195", "l1": "#937860", "l2": "#da8bc3", "linf": "#8c8c8c",
                "layer": "#64b5cd", "group": "#ccb974", "rescaled": "#222222",
                "skipinit": "#2ca02c"}


def _reduce_dims(x: torch.Tensor):
    """Dimensions that hold the 'batch' of one activation: N, or N x H x W for feature maps."""
    return [0] + list(range(2, x.dim()))


def _per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.view([1, -1] + [1] * (x.dim() - 2))


class BatchNorm(nn.Module):
    """Batch normalisation [Ioffe & Szegedy 2015, Alg. 1]; running statistics as PyTorch keeps them.

    Training: normalise with the batch mean and the biased batch variance, gradients flow through both.
    Inference (Alg. 2): normalise with running averages (exponential, momentum 0.1, unbiased variance).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.track_running_stats = True
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None   # gamma
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None    # beta
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = _reduce_dims(x)
        if self.training or self.running_mean is None:
            mean = x.mean(dims)
            var = x.var(dims, unbiased=False)
        if self.training and self.running_mean is not None:
            with torch.no_grad():
                n = x.numel() // x.shape[1]
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_((var * n / max(n - 1, 1)).to(self.running_var.dtype), self.momentum)
                self.num_batches_tracked += 1
        elif not self.training and self.running_mean is not None:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - _per_channel(mean, x)) / torch.sqrt(_per_channel(var, x) + self.eps)
        if self.weight is None:
            return x_hat
        return x_hat * _per_channel(self.weight, x) + _per_channel(self.bias, x)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class ActivationNoise(nn.Module):
    """The noise of Santurkar et al.'s "noisy BatchNorm" [S Alg. 1], active in training mode only.

    Each step draws, per channel j, mu_j ~ U(-n_mu, n_mu) and sigma_j ~ U(1, n_sigma); then per element
    m ~ U(mu_j - r_mu, mu_j + r_mu), s ~ N(sigma_j, r_sigma) (r_sigma read as a standard deviation [ours]),
    and a <- s * a + m. With ``replay`` on, the last draw is reused, so probes see the step's noise.

    ``relative``: the additive part is in units of each channel's batch standard deviation (m * std_j(a)). After a
    BatchNorm that std is about 1, so this is the same noise; in a network without normalisation (our control
    "Standard + noise" [ours]) it keeps the noise as large, relative to the activations, as noisy BN's is.
    """

    def __init__(self, num_features: int, n_mu=0.5, n_sigma=1.25, r_mu=0.1, r_sigma=0.1, relative: bool = False):
        super().__init__()
        self.num_features = num_features
        self.n_mu, self.n_sigma, self.r_mu, self.r_sigma = n_mu, n_sigma, r_mu, r_sigma
        self.relative = relative
        self.replay = False
        self._last = None
        self.generator = None     # the run's own noise stream (bnlab.train sets it and saves it in checkpoints)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if self.replay and self._last is not None and self._last[0].shape == x.shape:
            s, m = self._last
            return s * x + m
        c = x.shape[1]
        opts = dict(device=x.device, dtype=x.dtype, generator=self.generator)
        mu = _per_channel((torch.rand(c, **opts) * 2 - 1) * self.n_mu, x)
        sigma = _per_channel(1 + torch.rand(c, **opts) * (self.n_sigma - 1), x)
        m = mu + (torch.rand(x.shape, **opts) * 2 - 1) * self.r_mu
        s = sigma + torch.randn(x.shape, **opts) * self.r_sigma
        if self.relative:
            dims = [0] + list(range(2, x.dim()))
            m = m * x.detach().std(dim=dims, keepdim=True)
        self._last = (s, m)
        return s * x + m


class LpNorm(nn.Module):
    """Centre per channel, then divide by the l_p "average norm" of the un-centred activations [S Sec. 3.3].

    N_1 = mean |y|, N_2 = sqrt(mean y^2), N_inf = max |y| over the batch (x H x W) [ours: our reading of
    the paper's one-sentence definition]; then a learnable gamma, beta as in BatchNorm. Inference uses
    running averages of the mean and of N_p.
    """

    def __init__(self, num_features: int, p: str, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if p not in ("l1", "l2", "linf"):
            raise ValueError(f"p must be 'l1', 'l2' or 'linf', got {p!r}")
        self.p, self.eps, self.momentum = p, eps, momentum
        self.track_running_stats = True
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_norm", torch.ones(num_features))

    def _norm(self, x, dims):
        if self.p == "l1":
            return x.abs().mean(dims)
        if self.p == "l2":
            return x.pow(2).mean(dims).sqrt()
        return x.abs().amax(dims)

    def forward(self, x):
        dims = _reduce_dims(x)
        if self.training or self.running_mean is None:
            mean, norm = x.mean(dims), self._norm(x, dims)
        if self.training and self.running_mean is not None:
            with torch.no_grad():
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
                self.running_norm.lerp_(norm.to(self.running_norm.dtype), self.momentum)
        elif not self.training:
            mean, norm = self.running_mean, self.running_norm
        x_hat = (x - _per_channel(mean, x)) / (_per_channel(norm, x) + self.eps)
        return x_hat * _per_channel(self.weight, x) + _per_channel(self.bias, x)

    def extra_repr(self):
        return f"p={self.p}"


class FixedRescaling(nn.Module):
    """A control for BatchNorm [ours]: BN's scale at initialisation, then no normalisation.

    At the first training batch, :meth:`initialise` (called by ``bnlab.models.Block`` before its weight layer runs)
    divides each output channel of the preceding weight layer by sqrt(var + eps) of that channel's output on the
    batch, and stores mean / sqrt(var + eps) as a fixed shift. On that batch the layer's output is then exactly
    BN's; afterwards every batch, in training and in inference, goes through the same rescaled weights and fixed
    shift, followed by a learnable gamma, beta as in BN. Nothing is normalised per batch. The scale is folded into
    the weights rather than kept as a fixed multiplier, which would multiply the weights' effective learning rate by
    1 / var (a data-dependent initialisation as in Salimans & Kingma 2016). Before the first training batch the
    layer is the identity.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.weight = nn.Parameter(torch.ones(num_features))    # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))     # beta
        self.register_buffer("shift", torch.zeros(num_features))
        self.register_buffer("initialised", torch.tensor(False))

    @property
    def pending_init(self) -> bool:
        return not bool(self.initialised)

    @torch.no_grad()
    def initialise(self, layer: nn.Module, x: torch.Tensor) -> None:
        """Rescale ``layer`` (conv or linear, output channels first) so that ``layer(x)`` has per-channel variance
        var / (var + eps) on this batch, and store the matching shift."""
        y = layer(x)
        dims = _reduce_dims(y)
        scale = torch.sqrt(y.var(dims, unbiased=False) + self.eps)
        layer.weight.div_(scale.view([-1] + [1] * (layer.weight.dim() - 1)).to(layer.weight.dtype))
        if layer.bias is not None:
            layer.bias.div_(scale.to(layer.bias.dtype))
        self.shift.copy_((y.mean(dims) / scale).to(self.shift.dtype))
        self.initialised.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - _per_channel(self.shift.to(x.dtype), x)) * _per_channel(self.weight, x) + \
            _per_channel(self.bias, x)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, initialised={bool(self.initialised)}"


def group_count(num_features: int) -> int:
    """GroupNorm's number of groups [ours]: 32 as Wu & He (2018), but at least 2 channels per group."""
    groups = min(32, max(1, num_features // 2))
    while num_features % groups:
        groups -= 1
    return groups


def make_norm(kind: str, num_features: int, spatial: bool) -> nn.Module:
    """The normalisation layer named by ``kind`` (see ``bnlab.config.NORMS``) for ``num_features`` channels."""
    if kind in ("none", "skipinit"):     # SkipInit normalises nothing: its scalar sits on the residual branch
        return nn.Identity()
    if kind == "batch":
        return BatchNorm(num_features)
    if kind == "torch_batch":
        return (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(num_features)
    if kind == "noisy_batch":
        return nn.Sequential(BatchNorm(num_features), ActivationNoise(num_features))
    if kind == "noise":
        return ActivationNoise(num_features, relative=True)
    if kind == "noise_abs":   # the paper's control: noisy BN's noise as it stands, in units of 1 whatever the scale
        return ActivationNoise(num_features)
    if kind in ("l1", "l2", "linf"):
        return LpNorm(num_features, kind)
    if kind == "layer":      # per example over channels (x height x width), per-channel gamma and beta
        return nn.GroupNorm(1, num_features)
    if kind == "group":
        return nn.GroupNorm(group_count(num_features), num_features)
    if kind == "rescaled":
        return FixedRescaling(num_features)
    raise ValueError(f"unknown normalisation {kind!r}")


def has_shift(kind: str) -> bool:
    """Whether the layer subtracts a mean and adds its own learned shift, so that a bias before it is redundant
    [IS Sec. 3.2] (for LayerNorm and GroupNorm nearly so: the per-channel shift after them takes its place)."""
    return kind not in ("none", "noise", "noise_abs", "skipinit")


@contextlib.contextmanager
def frozen_state(model: nn.Module):
    """Measurement passes: running statistics restored afterwards, noise replayed from the last step."""
    buffers = dict(model.named_buffers())
    saved = {k: b.clone() for k, b in buffers.items()}
    noises = [m for m in model.modules() if isinstance(m, ActivationNoise)]
    for m in noises:
        m.replay = True
    try:
        yield model
    finally:
        for m in noises:
            m.replay = False
        with torch.no_grad():
            for k, v in saved.items():
                buffers[k].copy_(v)
