"""Test loss and accuracy of a network in training: in inference mode, and (for noisy BatchNorm) with its noise left on,
from a stream of its own; :class:`Evaluator` does it every ``eval_every`` steps of a run and keeps the records."""
from __future__ import annotations

import numpy as np
import torch

from .device import set_tf32, strict_fp32
from .norms import ActivationNoise


@torch.no_grad()
def evaluate(model, data, dtype, train: bool = False) -> tuple[float, float]:
    """(loss, accuracy) on the test set (or the training set) in inference mode."""
    was_training = model.training
    model.eval()
    try:
        return _loss_and_accuracy(model, data, dtype, train)
    finally:
        model.train(was_training)


def _loss_and_accuracy(model, data, dtype, train: bool = False) -> tuple[float, float]:
    total_loss, correct, n = 0.0, 0, 0
    for x, y in data.test_batches(1000, dtype, train=train):
        out = model(x)
        total_loss += float(torch.nn.functional.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        n += y.shape[0]
    return total_loss / n, correct / n


@torch.no_grad()
def evaluate_with_noise(model, data, dtype, seed: int, step: int) -> tuple[float, float]:
    """(loss, accuracy) on the test set in inference mode but with noisy BatchNorm's noise left on, drawn from a
    stream of its own (seeded by the run's seed and the step), so the training run's noise is not disturbed."""
    noises = [m for m in model.modules() if isinstance(m, ActivationNoise)]
    saved = [(m.generator, m._last) for m in noises]
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(7_919 * (seed + 1) + step)
    was_training = model.training
    model.eval()
    for m in noises:
        m.train(), setattr(m, "generator", gen)
    try:
        return _loss_and_accuracy(model, data, dtype)
    finally:
        for m, (g, last) in zip(noises, saved):
            m.generator, m._last = g, last
        model.train(was_training)


class Evaluator:
    """Test loss and accuracy every ``every`` steps and at the end; with precision ``tf32`` they may use TF32 (they
    are not differences of gradients). Records after a divergence are dropped by :meth:`truncate`. A network with
    noisy BatchNorm's noise is evaluated twice: as usual (noise off, the paper's reading) and with the noise on."""

    def __init__(self, model, data, dtype, every: int, steps: int, tf32: bool, seed: int = 0):
        self.model, self.data, self.dtype = model, data, dtype
        self.every, self.steps, self.tf32, self.seed = every, steps, tf32, seed
        self.noisy = any(isinstance(m, ActivationNoise) for m in model.modules())
        self.records = {"eval_step": [], "test_loss": [], "test_acc": []}
        if self.noisy:
            self.records.update(test_loss_noise_on=[], test_acc_noise_on=[])

    def due(self, done: int) -> bool:
        return done % self.every == 0 or done == self.steps

    def record(self, at_step: int) -> None:
        set_tf32(self.tf32)
        values = [at_step, *evaluate(self.model, self.data, self.dtype)]
        if self.noisy:
            values += evaluate_with_noise(self.model, self.data, self.dtype, self.seed, at_step)
        strict_fp32()
        for k, v in zip(self.records, values):
            self.records[k].append(v)

    def resume(self, records: dict, start: int) -> None:
        """Continue from a checkpoint's records; an evaluation the interruption cut off is done again."""
        self.records = records
        if start and start % self.every == 0 and records["eval_step"][-1:] != [start]:
            self.record(start)

    def truncate(self, diverged: int) -> None:
        """Drop the evaluations at and after the divergence step (taken on the weights that diverged)."""
        keep = [i for i, e in enumerate(self.records["eval_step"]) if e < diverged]
        self.records = {k: [v[i] for i in keep] for k, v in self.records.items()}

    def arrays(self) -> dict:
        return {k: np.asarray(v, dtype=np.float32 if k != "eval_step" else np.int64) for k, v in self.records.items()}
