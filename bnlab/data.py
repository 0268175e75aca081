"""Data held on the device once, batches drawn there (no DataLoader in the hot path).

Image sets are stored as uint8 [N, C, 32, 32] and normalised per batch on the device; the
deep linear network's synthetic regression data is generated from the seed.
Every VGG chapter reads these; the chapter on BN against the standard network explains the choice of data.
"""
from __future__ import annotations

import gzip
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import DataConfig
from .device import pick
from .atomic import atomic_write
from .store import DEFAULT_HOME, quarantine, remove_stale_temps

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                  "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class DatasetNotFound(FileNotFoundError):
    """Raised when a data set is neither on disk nor downloadable; the message says how to get it."""


def data_dir(root=None) -> Path:
    """The data folder: ``root`` (a run plan's ``data_dir``: ``$BNLAB_DATA`` or ``$BNLAB_HOME/data``), else the
    default home's."""
    return Path(root) if root is not None else DEFAULT_HOME / "data"


@dataclass
class ImageData:
    """A whole image data set on one device: uint8 images, int64 labels, per-channel mean/std."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: torch.Tensor      # [1, C, 1, 1], in [0, 1] units
    std: torch.Tensor
    classes: tuple

    @property
    def device(self):
        return self.x_train.device

    def normalise(self, x_uint8: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        return (x_uint8.to(dtype) / 255.0 - self.mean.to(dtype)) / self.std.to(dtype)

    def batches(self, batch_size: int, seed: int, dtype=torch.float32, start: int = 0):
        """Endless shuffled batches (x float, y int64), reshuffled each epoch from an explicit generator.

        ``start`` skips that many batches without drawing them (resuming a run gives the same batches).
        """
        n = self.x_train.shape[0]
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} is larger than the training set ({n} images)")
        per_epoch = n // batch_size
        gen = torch.Generator(device="cpu").manual_seed(seed)
        epoch, skip = divmod(start, per_epoch)
        for _ in range(epoch):
            torch.randperm(n, generator=gen)
        while True:
            order = torch.randperm(n, generator=gen).to(self.device)
            for i in range(skip * batch_size, per_epoch * batch_size, batch_size):
                idx = order[i:i + batch_size]
                yield self.normalise(self.x_train[idx], dtype), self.y_train[idx]
            skip = 0

    def test_batches(self, batch_size: int = 1000, dtype=torch.float32, train: bool = False):
        x, y = (self.x_train, self.y_train) if train else (self.x_test, self.y_test)
        for i in range(0, x.shape[0], batch_size):
            yield self.normalise(x[i:i + batch_size], dtype), y[i:i + batch_size]


@dataclass
class RegressionData:
    """The DLN task [S App. A.1]: fit y = A x with x ~ N(0, I); full batch."""

    x: torch.Tensor         # [n, d]
    y: torch.Tensor         # [n, d]
    A: torch.Tensor         # [d, d]
    name: str = "dln_synthetic"

    def batches(self, batch_size: int, seed: int, dtype=torch.float64, start: int = 0):
        """The whole data set every step (full-batch gradient descent, as in the paper)."""
        x, y = self.x.to(dtype), self.y.to(dtype)
        while True:
            yield x, y


# ---- loading ------------------------------------------------------------------------------------
def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(folder: Path, stem: str):
    for candidate in (folder / stem, folder / f"{stem}.gz", folder / "FashionMNIST" / "raw" / stem,
                      folder / "FashionMNIST" / "raw" / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def _fashion_arrays(root: Path, download: bool):
    for folder in (root / "fashion-mnist", root, DEBIAN_FASHION_DIR):
        found = {split: [_find_idx(folder, s) for s in stems] for split, stems in _FASHION_FILES.items()}
        if all(p is not None for ps in found.values() for p in ps):
            return {split: tuple(_read_idx(p) for p in ps) for split, ps in found.items()}
    if download:
        try:
            from torchvision.datasets import FashionMNIST
            tr = FashionMNIST(str(root), train=True, download=True)
            te = FashionMNIST(str(root), train=False, download=True)
            return {"train": (tr.data.numpy(), tr.targets.numpy()), "test": (te.data.numpy(), te.targets.numpy())}
        except Exception as err:  # no network, or torchvision missing
            reason = f" (download failed: {type(err).__name__}: {err})"
    else:
        reason = ""
    raise DatasetNotFound(
        f"Fashion-MNIST not found in {root / 'fashion-mnist'} or {DEBIAN_FASHION_DIR}{reason}. "
        "Install it offline with `sudo apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu), or put the "
        "four *-ubyte.gz files in that folder, or call with download=True on a machine with internet.")


def _cifar_arrays(root: Path, download: bool):
    try:
        from torchvision.datasets import CIFAR10
        tr = CIFAR10(str(root), train=True, download=download)
        te = CIFAR10(str(root), train=False, download=download)
    except RuntimeError as err:
        raise DatasetNotFound(
            f"CIFAR-10 not found in {root} ({err}). It needs one download (170 MB): call with download=True "
            "on a machine with internet (Colab works), or use dataset='fashion_mnist', which works offline "
            "(`--scale paper_fmnist` runs the paper's sizes on it)."
        ) from None
    except Exception as err:  # network errors
        raise DatasetNotFound(f"CIFAR-10 could not be downloaded into {root}: {type(err).__name__}: {err}. "
                              "Use dataset='fashion_mnist' offline (`--scale paper_fmnist` runs the paper's "
                              "sizes on it).") from None
    to_nchw = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2))  # noqa: E731
    return {"train": (to_nchw(tr.data), np.array(tr.targets)), "test": (to_nchw(te.data), np.array(te.targets))}


def _pad_to_32(x: np.ndarray) -> np.ndarray:
    """[N, H, W] or [N, C, H, W] uint8 -> [N, C, 32, 32] (zero padding, centred)."""
    if x.ndim == 3:
        x = x[:, None]
    ph, pw = 32 - x.shape[2], 32 - x.shape[3]
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
    return x


_STATS: dict = {}      # (data set, images, a fingerprint of them) -> (mean, std), once per process


def _direct_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images in [0, 1], in float64 (what the normalisation of the inputs uses)."""
    xf = x.double() / 255.0
    return xf.mean(dim=(0, 2, 3), keepdim=True).float(), xf.std(dim=(0, 2, 3), keepdim=True).float()


def channel_stats(dataset: str, x: torch.Tensor, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel mean and std of the training images ``x``, computed once per data set and subset: kept in
    this process and in ``<root>/<dataset>-stats.json`` (a float64 pass over 60,000 images took seconds per run).
    The file is optional: unreadable, it is recomputed; unwritable, the run goes on."""
    key = f"{len(x)}:{int(x[:64].sum())}:{int(x[-64:].sum())}"      # which images (a subset is a prefix)
    if (dataset, key) in _STATS:
        return _STATS[dataset, key]
    path = Path(root) / f"{dataset}-stats.json"
    try:
        saved = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        saved = {}
    if key in saved and {"mean", "std"} <= set(saved[key]):
        shape = (1, -1, 1, 1)
        stats = (torch.tensor(saved[key]["mean"]).reshape(shape), torch.tensor(saved[key]["std"]).reshape(shape))
    else:
        stats = _direct_stats(x)
        saved[key] = {"mean": stats[0].flatten().tolist(), "std": stats[1].flatten().tolist()}
        try:
            atomic_write(path, lambda f: f.write(json.dumps(saved).encode()))
        except Exception as err:  # noqa: BLE001  (optional, as the tensor cache)
            warnings.warn(f"the statistics cache {path} was not written ({type(err).__name__}: {err}); the next run "
                          f"computes them again", stacklevel=2)
    _STATS[dataset, key] = stats
    return stats


def load_images(cfg: DataConfig, device=None, root=None, download: bool = True) -> ImageData:
    """Load an image data set once onto ``device`` as uint8 (cached as a .pt file under the data dir)."""
    dev = pick(device)
    root = data_dir(root)
    cache = root / f"{cfg.dataset}.pt"
    arrays = None
    if cache.exists():
        try:
            arrays = torch.load(cache, weights_only=True)
            if not {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
                raise KeyError("x_train, y_train, x_test, y_test")
        except Exception as err:  # noqa: BLE001  (truncated or foreign file: rebuild it from the source files)
            aside = quarantine(cache)
            warnings.warn(f"the tensor cache {cache} could not be read ({type(err).__name__}); moved to {aside} "
                          f"and rebuilt from the source files", stacklevel=2)
            arrays = None
    if arrays is None:
        loader = {"fashion_mnist": _fashion_arrays, "cifar10": _cifar_arrays}.get(cfg.dataset)
        if loader is None:
            raise ValueError(f"{cfg.dataset!r} is not an image data set; use load_regression for the DLN")
        raw = loader(root, download)
        arrays = {f"x_{s}": torch.from_numpy(_pad_to_32(raw[s][0])) for s in ("train", "test")}
        arrays.update({f"y_{s}": torch.from_numpy(raw[s][1].astype(np.int64)) for s in ("train", "test")})
        remove_stale_temps(root)                                  # left by a writer killed before its rename
        try:
            atomic_write(cache, lambda f: torch.save(arrays, f))       # a temp name of its own
        except Exception as err:  # noqa: BLE001  (the cache is optional: a full or read-only disk costs a re-read)
            warnings.warn(f"the tensor cache {cache} was not written ({type(err).__name__}: {err}); the run goes on, "
                          f"and the next one reads the source files again", stacklevel=2)
    x_tr, y_tr, x_te, y_te = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    if cfg.train_subset:
        x_tr, y_tr = x_tr[:cfg.train_subset], y_tr[:cfg.train_subset]
    if cfg.test_subset:
        x_te, y_te = x_te[:cfg.test_subset], y_te[:cfg.test_subset]
    mean, std = channel_stats(cfg.dataset, x_tr, root)
    classes = FASHION_CLASSES if cfg.dataset == "fashion_mnist" else CIFAR_CLASSES
    return ImageData(cfg.dataset, x_tr.to(dev), y_tr.to(dev), x_te.to(dev), y_te.to(dev), mean.to(dev),
                     std.to(dev), classes)


def load_regression(cfg: DataConfig, seed: int = 0, device=None) -> RegressionData:
    """The DLN's data: x ~ N(0, I_d), A_ij ~ N(0, 1) [ours: standard normal], y = x A^T; float64."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    A = torch.randn(cfg.dln_dim, cfg.dln_dim, generator=gen, dtype=torch.float64)
    x = torch.randn(cfg.dln_samples, cfg.dln_dim, generator=gen, dtype=torch.float64)
    dev = pick(device)
    return RegressionData(x.to(dev), (x @ A.T).to(dev), A.to(dev))


def load(cfg: DataConfig, seed: int = 0, device=None, root=None, download: bool = True):
    """Image data or DLN data, whichever ``cfg.dataset`` names."""
    if cfg.dataset == "dln_synthetic":
        return load_regression(cfg, seed, device)
    return load_images(cfg, device, root, download)
