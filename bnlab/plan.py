"""The edge: everything a computation needs to know about *where and how* it runs, resolved once.

A :class:`RunPlan` is frozen and passed down explicitly: the command line (``python -m bnlab``) and
:func:`bnlab.run` build one with :meth:`RunPlan.from_env`, the only place that reads the environment; the runner,
the training loop and the analyses take it as an argument and never look at ``os.environ``. It holds the scale
(every per-scale size), the engine options, the device, the run store and the data folder, and whether to show
progress bars. None of it changes what a run computes, so none of it is part of a config's hash.

Environment variables read here (all optional): ``BNLAB_SCALE``, ``BNLAB_DEVICE``, ``BNLAB_HOME`` (the run store,
default ``~/.cache/bnlab``), ``BNLAB_DATA`` (default ``$BNLAB_HOME/data``), ``BNLAB_PROGRESS`` (``0`` hides the
bars), ``BNLAB_CHANNELS_LAST`` / ``BNLAB_COMPILE`` (``1`` turns them on) and ``BNLAB_LANDSCAPE`` (loop, vmap, auto).
An empty variable counts as unset.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .scales import CPU, Scale, get_scale, resolve as resolve_scale
from .device import pick
from .engine import EngineOptions
from .store import DEFAULT_HOME, RunStore


def check_device(device, source: str = "device") -> None:
    """Raise ValueError, naming ``source`` (e.g. ``BNLAB_DEVICE``) and the choices, unless ``device`` (None: pick one)
    names a device torch knows, bnlab runs on (cpu or cuda) and this machine has; the same words as ``--device``."""
    if device is None or isinstance(device, torch.device) and device.type == "cpu":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"{source} {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{source} {device!r}: bnlab runs on cpu or cuda (cuda:N for one GPU)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{source} {device!r}: no GPU is visible here; use cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{source} {device!r}: only {torch.cuda.device_count()} GPU(s) are visible")


def _flag(value: str | None) -> bool:
    return (value or "0").lower() in ("1", "true", "yes", "on")


def _compile_flag(value: str | None):
    """``$BNLAB_COMPILE``: 1 / 0 (or true / false ...), unset or "auto" for the default (``bnlab.compiling``)."""
    if value is None or value.lower() == "auto":
        return "auto"
    return _flag(value)


@dataclass(frozen=True)
class RunPlan:
    """Scale, device, engine options, run store, data folder and progress display of a computation."""

    scale: Scale = CPU
    device: str | None = None            # None: cuda if available, else cpu
    engine: EngineOptions = field(default_factory=EngineOptions)
    home: Path = DEFAULT_HOME
    data_dir: Path | None = None         # None: ``home / "data"``
    progress: bool = True
    jobs: int = 1

    def __post_init__(self):
        object.__setattr__(self, "scale", get_scale(self.scale))
        check_device(self.device)
        object.__setattr__(self, "device", str(pick(self.device)))
        object.__setattr__(self, "home", Path(self.home))
        object.__setattr__(self, "data_dir", Path(self.data_dir) if self.data_dir is not None else self.home / "data")
        if not isinstance(self.jobs, int) or isinstance(self.jobs, bool) or self.jobs < 1:
            raise ValueError(f"jobs must be an integer >= 1, got {self.jobs!r}")

    @classmethod
    def from_env(cls, scale=None, device=None, engine: EngineOptions | None = None, jobs: int = 1,
                 progress: bool | None = None, home=None, data_dir=None, env=None) -> "RunPlan":
        """Arguments first, then the environment, then the defaults (scale: ``bnlab.scales.resolve``; device: cuda
        if available)."""
        env = os.environ if env is None else env
        get = lambda name: env.get(name) or None  # noqa: E731  (an empty variable means unset)
        scale = resolve_scale(scale, "live", env)
        if engine is None:
            engine = EngineOptions(channels_last=_flag(get("BNLAB_CHANNELS_LAST")), compile=_compile_flag(get("BNLAB_COMPILE")),
                                   landscape=get("BNLAB_LANDSCAPE") or "auto")
        home = Path(home or get("BNLAB_HOME") or DEFAULT_HOME)
        if device is None:
            check_device(get("BNLAB_DEVICE"), "BNLAB_DEVICE")
        return cls(scale=scale, device=device or get("BNLAB_DEVICE"), engine=engine, home=home,
                   data_dir=data_dir or get("BNLAB_DATA"), jobs=jobs,
                   progress=progress if progress is not None else get("BNLAB_PROGRESS") != "0")

    @property
    def store(self) -> RunStore:
        """The run store under ``home``: finished runs, checkpoints, analyses, claims."""
        return RunStore(self.home)

    def with_(self, **changes) -> "RunPlan":
        """A copy with some fields changed (e.g. ``plan.with_(progress=False)`` for a pool worker)."""
        return replace(self, **changes)


__all__ = ["RunPlan", "DEFAULT_HOME"]
