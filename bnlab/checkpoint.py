"""A run's latest state in one file, and what resuming from it needs: a check that the state fits the run, and the
noise stream of noisy BatchNorm put back (or, from another device type, reseeded)."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .atomic import atomic_write
from .store import quarantine


class Checkpointer:
    """The run's latest state in one file: read when the run starts, rewritten every ``every`` steps, on
    interruption and when the run ends, removed by whoever makes the run's result durable (:func:`train` itself
    unless it is asked to keep it). Every checkpoint records the hash of its config: a file that cannot be read, that
    belongs to another config, or that does not fit this run is moved aside as ``<name>.corrupt``, named in a
    warning, and the run starts over. ``path`` None: no checkpoints."""

    KEYS = ("model", "opt", "losses", "accs", "evals", "probes", "step", "wall_s")

    def __init__(self, path: Path | None, every: int = 250, config_hash: str | None = None, steps: int | None = None):
        self.path, self.every = (Path(path) if path is not None else None), every
        self.config_hash, self.steps = config_hash, steps

    def load(self, device) -> dict | None:
        if self.path is None or not self.path.exists():
            return None
        try:
            state = torch.load(self.path, weights_only=False, map_location=device)
        except Exception as err:  # noqa: BLE001  (truncated zip, pickle or EOF errors: all mean "unreadable")
            self.reject(f"could not be read ({type(err).__name__}: {err})")
            return None
        try:
            problem = self.problem(state)
        except Exception as err:  # noqa: BLE001  (a foreign object where a tensor or a dict belongs)
            problem = f"is not a bnlab checkpoint ({type(err).__name__}: {err})"
        if problem is not None:
            self.reject(problem)
            return None
        return state

    def problem(self, state) -> str | None:
        """Why ``state`` cannot be this run's checkpoint (None: it can)."""
        if not isinstance(state, dict) or not all(k in state for k in self.KEYS):
            return "is not a bnlab checkpoint (keys missing)"
        have = state.get("config_hash")
        if self.config_hash is not None and have is not None and have != self.config_hash:
            return f"belongs to config {have}, not to this run's config {self.config_hash}"
        step = state["step"]
        if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= (self.steps or step):
            return f"records step {step!r}, outside this run's 0..{self.steps}"
        if self.steps is not None and tuple(state["losses"].shape) != (self.steps,):
            return f"holds {tuple(state['losses'].shape)} losses, not this run's {self.steps}"
        return None

    def reject(self, why: str) -> None:
        aside = quarantine(self.path)
        warnings.warn(f"checkpoint {self.path} {why}; moved to {aside}, the run starts from step 0", stacklevel=3)

    def due(self, done: int, last: bool) -> bool:
        return self.path is not None and done % self.every == 0 and not last

    def save(self, state: dict) -> None:
        if self.path is not None:
            atomic_write(self.path, lambda f: torch.save(state, f))   # a temp name of its own: never shared

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def check_fits(state: dict, probes: list) -> None:
    """Raise ValueError when a checkpoint's state was not made by a run with these probes."""
    if len(state["probes"]) != len(probes):
        raise ValueError(f"it holds the state of {len(state['probes'])} probes, this run has {len(probes)}")


def restore_noise(noise: torch.Generator, saved: torch.Tensor, seed: int, step: int) -> None:
    """Put noisy BatchNorm's noise stream back as the checkpoint left it. A checkpoint written on the other device
    type (a CPU generator's state is 5056 bytes, a GPU's 16) cannot restore that stream here, and no stream could
    match it: the run goes on with a stream seeded from its seed and the step, and says so."""
    saved = saved.cpu()
    if saved.numel() == noise.get_state().numel():
        noise.set_state(saved)
        return
    noise.manual_seed(1_000_003 * (seed + 1) + step)
    warnings.warn(f"this checkpoint was written on another device type: the run resumes at step {step} with a noise "
                  f"stream of its own (noisy BatchNorm's draws differ from here on; nothing else does)", stacklevel=3)
