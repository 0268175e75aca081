"""Device and precision in one place: every function takes ``device=`` and calls :func:`pick`.

Strict fp32 is the default because the ICS and landscape signals are differences of gradients:
TF32 or bf16 rounding is as large as what we measure. Precision "tf32" trains
and evaluates in TF32 on a GPU between measurements and measures in strict fp32 (``bnlab.train``).
"""
from __future__ import annotations

import os
import platform
import warnings

import torch



def pick(device=None) -> torch.device:
    """The device to use: the argument, else ``$BNLAB_DEVICE`` (which also reaches it through ``bnlab.plan``; read
    here too, so that a network built without a plan lands where its inputs do), else cuda if available, else cpu."""
    if device is None:
        device = os.environ.get("BNLAB_DEVICE") or None
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but no GPU is visible; use device='cpu' "
                               "or unset BNLAB_DEVICE")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def has_gpu() -> bool:
    return torch.cuda.is_available()


def set_tf32(on: bool) -> None:
    """TF32 tensor cores for fp32 matmuls and convolutions on (``on``) or off (new API where present, old flags
    otherwise). No effect on a CPU's arithmetic."""
    mode = "tf32" if on else "ieee"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for backend in (getattr(torch.backends.cuda, "matmul", None), getattr(torch.backends.cudnn, "conv", None)):
            if backend is not None and hasattr(backend, "fp32_precision"):
                try:
                    backend.fp32_precision = mode
                except Exception:  # older torch: attribute exists but is read-only
                    pass
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


def strict_fp32() -> None:
    """Turn TF32 off for matmuls and convolutions: what every measurement runs in."""
    set_tf32(False)


def dtype_of(precision: str) -> torch.dtype:
    return {"fp32": torch.float32, "tf32": torch.float32, "fp64": torch.float64}[precision]


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
