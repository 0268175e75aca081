"""The record of one training run, as the training loop returns it and a result holds it."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Run:
    """One training run: its config (as a dict), status (``ok`` or ``diverged``, with the first non-finite step),
    arrays (curves and measurements) and meta (wall time, engine options, device, where it resumed)."""

    config: dict
    status: str
    diverged_step: int | None
    arrays: dict
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def norm(self) -> str:
        return self.config["model"]["norm"]

    @property
    def lr(self) -> float:
        return self.config["train"]["lr"]

    @property
    def seed(self) -> int:
        return self.config["train"]["seed"]

    def __getitem__(self, key):
        return self.arrays[key]

    @property
    def final_test_acc(self) -> float:
        """The last test accuracy (NaN when there is none or it is not finite)."""
        acc = self.arrays.get("test_acc")
        return float(acc[-1]) if acc is not None and len(acc) and np.isfinite(acc[-1]) else float("nan")


__all__ = ["Run"]
