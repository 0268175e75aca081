"""How a training step is executed, kept apart from what it computes.

:meth:`Stepper.step` is the one hot path: ``bnlab.train.train`` runs it, and ``bnlab.bench`` times it. The
:class:`EngineOptions` change only memory layout and kernel scheduling, never the run's settings, so they are not
part of a config's hash; each run records the options it used (``RunResult.meta["engine"]``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .compiling import CompiledForward, decide
from .models import loss_fn

LANDSCAPE_BACKENDS = ("auto", "loop", "vmap")
# where the benchmark measured vmap ahead (section 3 of ``python -m bnlab.bench``): the deep linear network, whose
# probes are many tiny matmuls that batch well; for the convolutional networks the loop was as fast or faster
VMAP_FIRST_ARCHS = ("dln",)


@dataclass(frozen=True)
class EngineOptions:
    """``channels_last``: NHWC convolutions (faster cuDNN kernels on recent GPUs; no gain expected on a CPU).
    ``compile``: ``torch.compile(mode="reduce-overhead")`` for steps without probes (CUDA graphs on a GPU, fused
    kernels from inductor on a CPU); probed steps run eagerly, so hooks and in-place probes see the plain module.
    True, False, or ``"auto"`` (the default: on a CPU with a C++ compiler, for runs long enough to pay for
    compiling; ``bnlab.compiling``). Without a compiler, or if compiling fails, the run falls back to eager mode
    and records why.
    ``landscape``: the landscape probe's back-end, ``"loop"`` (parameters perturbed in place), ``"vmap"``
    (``torch.func`` over a BN-safe twin) or ``"auto"`` (vmap for the deep linear network, the loop otherwise: what
    ``python -m bnlab.bench`` measured faster); the two agree to ~1e-7.
    """

    channels_last: bool = False
    compile: bool | str = "auto"
    landscape: str = "auto"

    def __post_init__(self):
        if self.compile not in (True, False, "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {self.compile!r}")
        if self.landscape not in LANDSCAPE_BACKENDS:
            raise ValueError(f"landscape back-end must be one of {LANDSCAPE_BACKENDS}, got {self.landscape!r}")

    def landscape_for(self, arch: str) -> str:
        """The back-end a run of network ``arch`` uses ("auto" resolved)."""
        if self.landscape != "auto":
            return self.landscape
        return "vmap" if arch in VMAP_FIRST_ARCHS else "loop"

    def describe(self, arch: str | None = None) -> dict:
        """The options as recorded: for one run (``arch`` given) with the back-end it used."""
        d = asdict(self)
        if arch is not None:
            d["landscape"] = self.landscape_for(arch)
        return d


class Stepper:
    """A model prepared for the options (memory format, compiled forward) and the one training step."""

    def __init__(self, model, opt, options: EngineOptions | None = None, steps: int | None = None):
        """``steps``: how many steps the run takes (what ``compile="auto"`` decides on; None: not known, so "auto"
        stays eager and only ``compile=True`` compiles)."""
        self.model, self.opt = model, opt
        self.options = options or EngineOptions()
        if self.options.channels_last:
            model.to(memory_format=torch.channels_last)
        device = next(model.parameters()).device
        compiling, self.compile_fallback = decide(self.options.compile, device, 0 if steps is None else steps,
                                                  model)
        self.forward = CompiledForward(model) if compiling else model

    @property
    def compiled(self) -> bool:
        return isinstance(self.forward, CompiledForward) and self.forward.compiled is not None

    def describe(self, arch: str) -> dict:
        """The options this run used, as its record keeps them: compile resolved, and why it fell back if it did."""
        d = {**self.options.describe(arch), "compile": self.compiled}
        fallback = self.compile_fallback or getattr(self.forward, "fallback", None)
        if fallback:
            d["compile_fallback"] = fallback
        return d

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.options.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def step(self, step: int, x: torch.Tensor, y: torch.Tensor, probes=()) -> tuple:
        """Forward, backward and SGD update on (x, y), with ``probes`` (those due at ``step``) at their hooks.
        Returns (output, loss) as device tensors: nothing here waits for the device."""
        model, opt = self.model, self.opt
        x = self.inputs(x)
        for p in probes:
            p.before_forward(step, model)
        out = (model if probes else self.forward)(x)
        loss = loss_fn(model, out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for p in probes:
            p.after_backward(step, model, x, y, loss)
        opt.step()
        return out, loss


__all__ = ["EngineOptions", "Stepper"]
