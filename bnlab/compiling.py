"""When a run's unprobed steps go through ``torch.compile``, and what happens when they cannot.

Inductor on a CPU writes C++ and needs a compiler; without one (or when compiling fails) a run falls back to eager
mode, says so once, and records why in its engine options (``meta["engine"]["compile_fallback"]``): the results are
the same up to floating-point reordering either way. Compiling costs seconds to a minute per network and
normalisation; it is paid back only by runs with enough steps (``python -m bnlab.bench`` measures both), so
``compile="auto"`` compiles on a CPU from :data:`AUTO_MIN_STEPS` steps. The compiled kernels are cached in the run
store (``<store>/compile-cache``), so a network's second run reuses its first run's kernels.
"""
from __future__ import annotations

import logging
import os
import warnings
import weakref
from functools import lru_cache
from pathlib import Path

import torch

from .norms import ActivationNoise, FixedRescaling

# [ours] the plain-step speed-ups the benchmark measured on the 2-core CPU (VGG-16/16 2.2x, ResNet-56 x1/4 2.3-2.4x,
# the DLN 2.4x) against 20-65 s of compiling with a cold cache: a run of fewer steps than this gains little or loses
AUTO_MIN_STEPS = 300
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
# [ours] plain-step speed-up of torch.compile over eager, by network and whether it normalises, and seconds to
# compile a network whose kernels are already cached: section 5 of ``python -m bnlab.bench`` on the 2-core CPU
# (benchmarks/results/cpu-levers.txt). Compiling fuses the normalisations' many elementwise operations; a plain
# VGG's step is mostly convolution backward, which it leaves as it is. What ``bnlab.estimate`` assumes.
COMPILE_SPEEDUP = {("vgg16", False): 1.0, ("vgg16", True): 2.0, ("vgg11", False): 1.0, ("vgg11", True): 2.0,
                   ("resnet", False): 1.75, ("resnet", True): 1.75, ("dln", False): 1.1, ("dln", True): 2.5}


def compile_speedup(arch: str, norm: str) -> float:
    """The measured speed-up of a compiled plain step of this network (1 where it was not measured)."""
    return COMPILE_SPEEDUP.get((arch, norm != "none"), 1.0)


WARM_COMPILE_S = 6.0


@lru_cache(maxsize=None)
def _cpu_compiler() -> str | None:
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        return get_cpp_compiler()
    except Exception:                     # InvalidCxxCompiler, or an inductor without this helper
        return None


def cpu_compiler() -> str | None:
    """The C++ compiler inductor would use on a CPU (``$CXX``, else g++), or None when there is none."""
    return _cpu_compiler()


# layers that stay eager: random draws from the run's own generator (noisy BatchNorm: inductor would draw its own
# numbers), and a data-dependent initialisation on the first step (the fixed rescaling)
EAGER_ONLY = (ActivationNoise, FixedRescaling)
_COMPILED = weakref.WeakKeyDictionary()       # model -> its CompiledForward, for the measurements (forward_of)


def decide(option, device: torch.device, steps: int, model: torch.nn.Module | None = None) -> tuple[bool, str | None]:
    """(compile?, why not when it was asked for): ``option`` is True, False or "auto" (see the module docstring)."""
    if option is False:
        return False, None
    if option == "auto" and (device.type != "cpu" or steps < AUTO_MIN_STEPS):
        return False, None               # on a GPU, "auto" stays eager: its gain was not measured here
    if model is not None and any(isinstance(m, EAGER_ONLY) for m in model.modules()):
        return False, "random or data-dependent layers (noisy BatchNorm, the fixed rescaling) run eagerly"
    if device.type == "cpu" and cpu_compiler() is None:
        reason = "no C++ compiler for inductor (install g++ or set $CXX); eager mode"
        if option is True:
            warnings.warn(f"torch.compile asked for, but {reason}", RuntimeWarning, stacklevel=2)
        return False, reason
    return True, None


def use_cache_in(store_root: Path | None) -> None:
    """Keep inductor's compiled kernels in the run store, unless the caller set ``$TORCHINDUCTOR_CACHE_DIR``."""
    if store_root is not None and CACHE_ENV not in os.environ:
        os.environ[CACHE_ENV] = str(Path(store_root) / "compile-cache")


class CompiledForward:
    """``torch.compile(model)``, falling back to ``model`` for good if the first compiled call fails (a compiler
    error, an unsupported operation): compiling happens before anything runs, so the eager call starts clean."""

    def __init__(self, model: torch.nn.Module, mode: str = "reduce-overhead"):
        if not torch.cuda.is_available():   # inductor's C++ path warns that no CUDA runtime is found: on a CPU, noise
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        self.model, self.compiled, self.fallback = model, torch.compile(model, mode=mode), None
        self._tried = False
        _COMPILED[model] = self

    def __call__(self, x):
        if self.compiled is None:
            return self.model(x)
        if self._tried:
            return self.compiled(x)
        try:
            out = self.compiled(x)
        except Exception as err:          # noqa: BLE001 -- any failure to compile means: run eagerly
            self.fallback = f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}); eager mode"
            warnings.warn(self.fallback, RuntimeWarning, stacklevel=2)
            self.compiled = None
            return self.model(x)
        self._tried = True
        return out


def forward_of(model: torch.nn.Module):
    """The compiled forward of ``model`` if its run compiles, else the model: what a measurement that evaluates the
    network at other parameters (the landscape probe's points) calls, in training mode, as a training step does."""
    compiled = _COMPILED.get(model)
    return compiled if compiled is not None and compiled.compiled is not None else model


__all__ = ["forward_of", "EAGER_ONLY", "AUTO_MIN_STEPS", "COMPILE_SPEEDUP", "compile_speedup", "WARM_COMPILE_S", "CompiledForward", "cpu_compiler", "decide", "use_cache_in"]
