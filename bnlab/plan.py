"""The edge: everything a computation needs to know about *where and how* it runs, resolved once.

A :class:`RunPlan` is frozen and passed down explicitly: the command line (``python -m bnlab``) and
:func:`bnlab.run` build one with :meth:`RunPlan.from_env`, the only place that reads the environment; the runner,
the training loop and the analyses take it as an argument and never look at ``os.environ``. It holds the scale
(every per-scale size), the engine options, the device, the run store and the data folder, and whether to show
progress bars. None of it changes what a run computes, so none of it is part of a config's hash.

Environment variables read here (all optional): ``BNLAB_SCALE``, ``BNLAB_DEVICE``, ``BNLAB_HOME`` (the run store,
default ``~/.cache/bnlab``), ``BNLAB_DATA`` (default ``$BNLAB_HOME/data``), ``BNLAB_PROGRESS`` (``0`` hides the
bars), ``BNLAB_CHANNELS_LAST`` / ``BNLAB_COMPILE`` (``1`` turns them on), ``BNLAB_LANDSCAPE`` (loop, vmap, auto)
and ``BNLAB_JOBS`` (processes for an experiment's independent runs: a number, or ``auto``, :func:`auto_jobs`).
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


MAX_AUTO_JOBS = 8     # [ours] a cap: measured only on two cores (below), so not stretched to every core of a server


def auto_jobs(device) -> int:
    """How many processes an experiment's independent runs take by default on ``device`` (``jobs="auto"``): on a CPU,
    one per thread torch would use (each process then runs on one), up to :data:`MAX_AUTO_JOBS`; on a GPU, one.
    Why: a small network's step on two threads leaves much of the second core idle between its many small
    operations, and two single-thread processes keep both busy. That pays for the deep linear network, not for the
    convolutional networks (:data:`PROCESS_SPEEDUP`), so a live run takes the pool only where the estimate says it is
    faster (``bnlab.runner.live_plan``)."""
    if torch.device(str(device)).type != "cpu":
        return 1
    return max(1, min(MAX_AUTO_JOBS, torch.get_num_threads()))


# Per-run throughput of two single-thread processes over one process of two threads, same lever (the engine's
# default, compile="auto"), by (network, with a normalisation): section 5 of ``python -m bnlab.bench`` on the idle
# 2-core CPU (benchmarks/results/cpu-levers.txt; eager gave 1.67 and 2.05 for the DLN, 0.86 to 1.15 for the rest).
# The DLN, bound by per-operation overhead, gains; the conv nets, bound by convolutions, stay within this machine's
# noise of 1. What ``bnlab.estimate`` assumes for a run in a process pool.
PROCESS_SPEEDUP = {("vgg16", False): 1.16, ("vgg16", True): 0.94, ("vgg11", False): 1.16, ("vgg11", True): 0.94,
                   ("resnet", False): 0.93, ("resnet", True): 1.19, ("dln", False): 1.65, ("dln", True): 2.16}


def process_speedup(arch: str, norm: str) -> float:
    """The measured per-run speed-up of this network's runs in a CPU process pool (1 where not measured)."""
    return PROCESS_SPEEDUP.get((arch, norm != "none"), 1.0)


def _jobs(value, device) -> int:
    """``jobs`` as given (an integer >= 1 or ``"auto"``), resolved; else a ValueError that says what is allowed."""
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return auto_jobs(pick(device))
        try:
            value = int(value)
        except ValueError:
            raise ValueError(f"jobs (--jobs, BNLAB_JOBS) must be a whole number >= 1 or 'auto', got {value!r}") from None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"jobs (--jobs, BNLAB_JOBS) must be a whole number >= 1 or 'auto', got {value!r}")
    return value


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
    def from_env(cls, scale=None, device=None, engine: EngineOptions | None = None, jobs: int | str | None = None,
                 progress: bool | None = None, home=None, data_dir=None, env=None,
                 default_jobs: int | str = 1) -> "RunPlan":
        """Arguments first, then the environment, then the defaults (scale: ``bnlab.scales.resolve``; device: cuda
        if available; jobs: ``default_jobs``, ``"auto"`` for a live chapter, :func:`auto_jobs`)."""
        env = os.environ if env is None else env
        get = lambda name: env.get(name) or None  # noqa: E731  (an empty variable means unset)
        scale = resolve_scale(scale, "live", env)
        if engine is None:
            engine = EngineOptions(channels_last=_flag(get("BNLAB_CHANNELS_LAST")), compile=_compile_flag(get("BNLAB_COMPILE")),
                                   landscape=get("BNLAB_LANDSCAPE") or "auto")
        home = Path(home or get("BNLAB_HOME") or DEFAULT_HOME)
        if device is None:
            check_device(get("BNLAB_DEVICE"), "BNLAB_DEVICE")
        device = device or get("BNLAB_DEVICE")
        jobs = _jobs(jobs if jobs is not None else get("BNLAB_JOBS") or default_jobs, device)
        return cls(scale=scale, device=device, engine=engine, home=home,
                   data_dir=data_dir or get("BNLAB_DATA"), jobs=jobs,
                   progress=progress if progress is not None else get("BNLAB_PROGRESS") != "0")

    @property
    def store(self) -> RunStore:
        """The run store under ``home``: finished runs, checkpoints, analyses, claims."""
        return RunStore(self.home)

    def pools(self, pending: int) -> bool:
        """Whether ``pending`` runs still to compute go to a pool of ``jobs`` processes (``bnlab.runner.compute``),
        as the estimate and its preview assume too: one place for the condition, so they cannot drift apart."""
        return self.jobs > 1 and pending > 1

    def with_(self, **changes) -> "RunPlan":
        """A copy with some fields changed (e.g. ``plan.with_(progress=False)`` for a pool worker)."""
        return replace(self, **changes)


__all__ = ["RunPlan", "DEFAULT_HOME", "auto_jobs", "process_speedup", "PROCESS_SPEEDUP"]
