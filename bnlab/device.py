"""Device and precision in one place: every function takes ``device=`` and calls :func:`pick`.

Strict fp32 is the default because the ICS and landscape signals are differences of gradients:
TF32 or bf16 rounding is as large as what we measure (performance-notes.md, section 1.4).
"""
from __future__ import annotations

import os
import platform
import warnings

import torch



def pick(device=None) -> torch.device:
    """The device to use: the argument, else ``$BNLAB_DEVICE``, else cuda if available, else cpu."""
    choice = device if device is not None else os.environ.get("BNLAB_DEVICE")
    if choice is not None:
        dev = torch.device(choice)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but no GPU is visible; use device='cpu' "
                               "or unset BNLAB_DEVICE")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def has_gpu() -> bool:
    return torch.cuda.is_available()


def strict_fp32() -> None:
    """Turn TF32 off for matmuls and convolutions (new API where present, old flags otherwise)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for backend in (getattr(torch.backends.cuda, "matmul", None), getattr(torch.backends.cudnn, "conv", None)):
            if backend is not None and hasattr(backend, "fp32_precision"):
                try:
                    backend.fp32_precision = "ieee"
                except Exception:  # older torch: attribute exists but is read-only
                    pass
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def dtype_of(precision: str) -> torch.dtype:
    return {"fp32": torch.float32, "fp64": torch.float64}[precision]


def describe(device=None) -> dict:
    """What produced a result: device name, torch version, precision flags (for provenance)."""
    dev = pick(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    else:
        name = f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    return {"device": str(dev.type), "device_name": name, "torch": torch.__version__,
            "tf32": bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)}


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
