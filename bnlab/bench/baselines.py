"""The baselines the engine is timed against: a torchvision-style DataLoader loop, and the naive gradient ICS
(one full pass per layer) that the fast one must agree with."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import DataConfig, ModelConfig
from ..data import DatasetNotFound, ImageData, load_images
from ..engine import EngineOptions, Stepper
from ..measure import ICSProbe, gradient_ics
from ..models import build, loss_fn
from ..norms import frozen_state
from .timing import BenchConfig

# ---- data ---------------------------------------------------------------------------------------
def synthetic_images(n_train: int, n_test: int, device, in_channels: int = 1, seed: int = 0) -> ImageData:
    """Random uint8 images of Fashion-MNIST's (padded) shape and random labels, as an ImageData."""
    gen = torch.Generator().manual_seed(seed)
    x_tr = torch.randint(0, 256, (n_train, in_channels, 32, 32), generator=gen, dtype=torch.uint8)
    x_te = torch.randint(0, 256, (n_test, in_channels, 32, 32), generator=gen, dtype=torch.uint8)
    y_tr = torch.randint(0, 10, (n_train,), generator=gen)
    y_te = torch.randint(0, 10, (n_test,), generator=gen)
    xf = x_tr.double() / 255.0
    mean = xf.mean(dim=(0, 2, 3), keepdim=True).float()
    std = xf.std(dim=(0, 2, 3), keepdim=True).float()
    dev = torch.device(device)
    return ImageData("synthetic", x_tr.to(dev), y_tr.to(dev), x_te.to(dev), y_te.to(dev), mean.to(dev),
                     std.to(dev), tuple(str(i) for i in range(10)))


def bench_data(cfg: BenchConfig) -> tuple:
    """(ImageData on the device, a line saying which data it is): real Fashion-MNIST if found, else synthetic."""
    if cfg.data in ("auto", "real"):
        try:
            data = load_images(DataConfig("fashion_mnist"), cfg.device, download=False)
            return data, f"Fashion-MNIST (real, {data.x_train.shape[0]} training images, padded to 32x32)"
        except (DatasetNotFound, OSError) as err:
            if cfg.data == "real":
                raise
            reason = f"{type(err).__name__}"
    else:
        reason = "asked for"
    data = synthetic_images(cfg.synthetic_n, 10_000, cfg.device, seed=cfg.seed)
    return data, f"synthetic uint8 images of Fashion-MNIST's shape ({cfg.synthetic_n} x 1x32x32; {reason})"


class PILImages(torch.utils.data.Dataset):
    """The plain baseline's data set, torchvision style: uint8 numpy images -> PIL -> transform, int label."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def _baseline_transform(mean, std):
    """``transforms.Compose([ToTensor(), Normalize(mean, std)])``, or the same by hand without torchvision."""
    try:
        from torchvision import transforms
        return transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)]), \
            "torchvision ToTensor+Normalize"
    except ImportError:
        m = torch.tensor(mean).view(-1, 1, 1)
        s = torch.tensor(std).view(-1, 1, 1)

        def transform(img):
            a = torch.from_numpy(np.array(img, dtype=np.uint8))
            a = a[None] if a.dim() == 2 else a.permute(2, 0, 1)
            return (a.float() / 255.0 - m) / s
        return transform, "hand-written ToTensor/Normalize (torchvision not installed)"


def baseline_loader(data: ImageData, batch_size: int, seed: int):
    """The plain pipeline: PIL images + ToTensor + Normalize + DataLoader(num_workers=0, shuffle=True)."""
    x = data.x_train.cpu().permute(0, 2, 3, 1).numpy()          # NHWC uint8, as PIL wants it
    if x.shape[-1] == 1:
        x = x[..., 0]
    transform, kind = _baseline_transform(data.mean.flatten().tolist(), data.std.flatten().tolist())
    ds = PILImages(np.ascontiguousarray(x), data.y_train.cpu().numpy(), transform)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=0, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    return loader, kind


def _endless(loader):
    while True:
        yield from loader


# ---- steps --------------------------------------------------------------------------------------
def _model_and_opt(model_cfg: ModelConfig, cfg: BenchConfig, lr: float, dtype=torch.float32):
    model = build(model_cfg, cfg.seed, cfg.device, dtype)
    model.train()
    return model, torch.optim.SGD(model.parameters(), lr=lr)


def engine_stepper(model, opt, batches, probes=(), ring: int = 64, options: EngineOptions | None = None):
    """One training step as ``bnlab.train.train`` takes it (the same :class:`bnlab.engine.Stepper`; probes due
    every step), without the loop's bookkeeping: no host sync."""
    stepper = Stepper(model, opt, options)
    dev = next(model.parameters()).device
    losses = torch.zeros(ring, device=dev, dtype=torch.float64)
    accs = torch.zeros(ring, device=dev, dtype=torch.float64)
    classifier = model.kind == "classifier"
    count = [0]

    def step():
        i = count[0]
        x, y = next(batches)
        out, loss = stepper.step(i, x, y, probes)
        for p in probes:
            p.after_step(i, model, x, y)
        losses[i % ring] = loss.detach()
        if classifier:
            accs[i % ring] = (out.argmax(1) == y).double().mean()
        count[0] += 1
    return step


def baseline_stepper(model, opt, loader, device):
    """The plain loop: batches from the DataLoader, copied to the device, ``loss.item()`` every step."""
    it = _endless(loader)
    log = []

    def step():
        x, y = next(it)
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss = nn.functional.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.append(loss.item())
    return step


# ---- ICS, naive reference -----------------------------------------------------------------------
@torch.no_grad()
def _load_blocks(model, blocks, source):
    for i in blocks:
        for p, s in zip(model.blocks[i].parameters(), source[i]):
            p.copy_(s)


def naive_gradient_ics(model, x, y, old_params, grads, layers) -> dict:
    """Reference G': per measured layer, one full forward and backward of the whole network (all gradients).

    Same contract as :func:`bnlab.measure.gradient_ics`: ``model`` holds W^(t+1), ``old_params[i]`` block i's
    W^(t); returns {layer: (G, G')} and leaves parameters and running statistics as they were.
    """
    new_params = [[p.detach().clone() for p in b.parameters()] for b in model.blocks]
    params = list(model.parameters())
    index = {id(p): k for k, p in enumerate(params)}
    out = {}
    with frozen_state(model):
        try:
            for layer in sorted(layers):
                _load_blocks(model, range(layer - 1), new_params)                 # layers < i at W^(t+1)
                _load_blocks(model, range(layer - 1, len(model)), old_params)     # layers >= i at W^(t)
                loss = loss_fn(model, model(x), y)
                all_grads = torch.autograd.grad(loss, params)
                out[layer] = (grads[layer], all_grads[index[id(model.blocks[layer - 1].weight)]])
        finally:
            _load_blocks(model, range(len(model)), new_params)
    return out


class NaiveICSProbe(ICSProbe):
    """:class:`ICSProbe` with the naive G' (for timing against the shared-prefix one)."""

    def after_step(self, step, model, x, y):
        pairs = naive_gradient_ics(model, x, y, self._old, self._grads, self.layers)
        r = self.records
        r["step"].append(step)
        g = [(a.flatten().double(), b.flatten().double()) for a, b in (pairs[k] for k in self.layers)]
        r["l2"].append(torch.stack([(a - b).norm() for a, b in g]))
        r["cos"].append(torch.stack([torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-300) for a, b in g]))
        r["gnorm"].append(torch.stack([a.norm() for a, _ in g]))
        del self._old, self._grads


def ics_agreement(model_cfg: ModelConfig, data, cfg: BenchConfig, layers, lr: float, warm_steps: int = 3) -> dict:
    """Max relative difference ||G'_fast - G'_naive|| / ||G'_naive|| over ``layers`` at one step."""
    dtype = torch.float64 if model_cfg.arch == "dln" else torch.float32
    model, opt = _model_and_opt(model_cfg, cfg, lr, dtype)
    batches = data.batches(cfg.batch_size, cfg.seed, dtype)
    step = engine_stepper(model, opt, batches)
    for _ in range(warm_steps):
        step()
    x, y = next(batches)
    loss = loss_fn(model, model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    old = [[p.detach().clone() for p in b.parameters()] for b in model.blocks]
    grads = {k: model.blocks[k - 1].weight.grad.detach().clone() for k in layers}
    opt.step()
    before = [p.detach().clone() for p in model.parameters()]
    fast = gradient_ics(model, x, y, old, grads, layers)
    naive = naive_gradient_ics(model, x, y, old, grads, layers)
    untouched = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    rel = {k: float((fast[k][1] - naive[k][1]).double().norm() / naive[k][1].double().norm().clamp_min(1e-300))
           for k in layers}
    shift = {k: float((fast[k][0] - fast[k][1]).double().norm() / fast[k][0].double().norm().clamp_min(1e-300))
             for k in layers}
    return {"max_rel_diff": max(rel.values()), "rel_diff": {str(k): v for k, v in rel.items()},
            "bitwise_equal": all(torch.equal(fast[k][1], naive[k][1]) for k in layers),
            "ics_rel": {str(k): v for k, v in shift.items()}, "params_untouched": untouched}
