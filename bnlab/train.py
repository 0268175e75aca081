"""The training loop: plain SGD at the paper's settings, measurement probes every n steps.

:func:`train` is the step and the order of things; its collaborators each do one job: :class:`Checkpointer`
(resume, save every n steps and on interruption), :class:`DivergenceMonitor` (losses stay on the device; the first
non-finite step is found where the host syncs anyway, and recorded, not raised), :class:`Evaluator` (test loss and
accuracy every ``eval_every`` steps) and the probes of ``bnlab.measure`` (ICS, landscape, activations, ...).
"""
from __future__ import annotations

import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import data as data_mod
from .config import RunConfig
from .device import describe, dtype_of, set_tf32, strict_fp32
from .engine import Stepper
from .measure import make_probes
from .models import build
from .norms import ActivationNoise
from .plan import RunPlan
from .records import Run
from .store import atomic_write, quarantine


def progress_bar(total: int, desc: str, enabled: bool, leave: bool = False, initial: int = 0):
    """A tqdm bar on stderr, or None when ``enabled`` is False (a run plan's ``progress``)."""
    if not enabled:
        return None
    return tqdm(total=total, desc=desc, file=sys.stderr, mininterval=2.0, leave=leave, dynamic_ncols=True,
                initial=initial)


@contextmanager
def _signals_deferred(signums=(signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR2", None))):
    """Hold back SIGINT / SIGTERM / SIGUSR2 (Ctrl-C, a scheduler's stop or preemption warning) until the block
    ends, then deliver them to the handlers they were meant for. Only the main thread can do this; elsewhere it
    does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught, previous = [], {}
    for sig in filter(None, signums):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum, frame in caught[:1]:
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


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


def finite(loss: torch.Tensor) -> torch.Tensor:
    """Whether a loss is finite in float32, the precision its curve is stored in."""
    return torch.isfinite(loss.float())


class DivergenceMonitor:
    """Per-step losses (and accuracies) kept on the device, so no step waits for the host. Every ``sync_every``
    steps, and where a probe or an evaluation syncs anyway, :meth:`first_bad` looks for the first non-finite loss
    since the last look: that step is where the run diverged."""

    def __init__(self, steps: int, device, sync_every: int = 50):
        self.losses = torch.full((steps,), float("nan"), device=device, dtype=torch.float64)
        self.accs = torch.full((steps,), float("nan"), device=device, dtype=torch.float64)
        self.sync_every, self.synced, self.done = sync_every, 0, 0

    def record(self, step: int, loss, accuracy=None) -> None:
        self.losses[step] = loss.detach()
        if accuracy is not None:
            self.accs[step] = accuracy

    def first_bad(self) -> int | None:
        """The first step since the last sync whose loss is not finite (one host sync). Finite means finite as the
        curve is stored, in float32: a float64 loss beyond float32's range is a divergence, not an inf one step
        before the recorded divergence."""
        bad = (~finite(self.losses[self.synced:self.done])).nonzero()
        return self.synced + int(bad[0]) if len(bad) else None

    def sync_due(self, last: bool, evaluating: bool) -> bool:
        return self.done % self.sync_every == 0 or last or evaluating

    def state(self) -> dict:
        return {"losses": self.losses, "accs": self.accs}

    def load_state(self, state: dict, step: int) -> int | None:
        """Continue from a checkpoint at ``step``; returns the first non-finite step before it, if any (a checkpoint
        written on interruption or at the end may hold one that was not looked for yet)."""
        self.losses.copy_(state["losses"]), self.accs.copy_(state["accs"])
        self.synced, self.done = 0, step
        bad = self.first_bad()
        self.synced = step
        return bad

    def forget_from(self, step: int) -> None:
        """Nothing at or after ``step`` (the divergence) is kept."""
        self.losses[step:] = float("nan")
        self.accs[step:] = float("nan")


def _check_fits(state: dict, probes: list) -> None:
    """Raise ValueError when a checkpoint's state was not made by a run with these probes."""
    if len(state["probes"]) != len(probes):
        raise ValueError(f"it holds the state of {len(state['probes'])} probes, this run has {len(probes)}")


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


def _restore_noise(noise: torch.Generator, saved: torch.Tensor, seed: int, step: int) -> None:
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


def train(cfg: RunConfig, plan: RunPlan | None = None, data=None, checkpoint: Path | None = None,
          extra_probes=(), checkpoint_every: int = 250, sync_every: int = 50, keep_checkpoint: bool = False) -> Run:
    """Train one run as ``cfg`` says, on ``plan``'s device with its engine options and progress display, and return
    its record (curves and probe measurements).

    ``checkpoint``: a file that holds the latest state; if it exists the run resumes from it (:class:`Checkpointer`).
    ``extra_probes``: measurement objects beyond those ``cfg.probe`` asks for (see ``bnlab.measure.Probe``), or
    functions that make one from the built model.
    ``keep_checkpoint``: leave the finished run's state in ``checkpoint`` (its caller removes it once the result is
    stored: a kill before that resumes at the last step instead of step 0); by default it is removed here.
    """
    plan = plan if plan is not None else RunPlan()
    dev = torch.device(plan.device)
    strict_fp32()
    tc = cfg.train
    dtype = dtype_of(tc.precision)
    data = data if data is not None else data_mod.load(cfg.data, tc.seed, dev, plan.data_dir)
    model = build(cfg.model, tc.seed, dev, dtype)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
    stepper = Stepper(model, opt, plan.engine)
    probes = make_probes(cfg, model, plan.engine.landscape_for(cfg.model.arch))
    probes += [make(model) if callable(make) else make for make in extra_probes]
    classifier = model.kind == "classifier"
    tf32_between = tc.precision == "tf32"
    monitor = DivergenceMonitor(tc.steps, dev, sync_every)
    evaluator = Evaluator(model, data, dtype, tc.eval_every, tc.steps, tf32_between, tc.seed) if classifier \
        else None
    ckpt = Checkpointer(checkpoint, checkpoint_every, cfg.hash, tc.steps)
    # every random stream is the run's own and travels in its checkpoint: data order (``data.batches``), the
    # initialisation (``build``), and here the noise of noisy BatchNorm, on the run's device
    noise = torch.Generator(device=dev).manual_seed(tc.seed)
    for m in model.modules():
        if isinstance(m, ActivationNoise):
            m.generator = noise

    start, wall_before, diverged_before = 0, 0.0, None
    state = ckpt.load(dev)
    if state is not None:
        try:
            _check_fits(state, probes)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            start, wall_before = state["step"], state["wall_s"]
            diverged_before = monitor.load_state(state, start)
            for p, s in zip(probes, state["probes"]):
                p.load_state(s)
            if "noise" in state:
                _restore_noise(noise, state["noise"], tc.seed, start)
            elif dev.type == "cpu":
                noise.set_state(state["rng"])       # a checkpoint from bnlab before 0.2.0: the CPU's global stream
            if evaluator is not None:
                evaluator.resume(state["evals"], start)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            # another network's state, or a foreign file: half applied, so start again from a fresh build
            ckpt.reject(f"does not fit this run ({type(err).__name__}: {str(err)[:300]})")
            return train(cfg, plan, data, checkpoint, extra_probes, checkpoint_every, sync_every, keep_checkpoint)
    t0 = time.perf_counter()

    def snapshot(step: int) -> dict:
        return {"model": model.state_dict(), "opt": opt.state_dict(), **monitor.state(),
                "evals": evaluator.records if evaluator is not None else {}, "probes": [p.state() for p in probes],
                "noise": noise.get_state(), "step": step, "wall_s": wall_before + time.perf_counter() - t0,
                "config_hash": cfg.hash}

    batches = data.batches(tc.batch_size, tc.seed, dtype, start=start)
    bar = progress_bar(tc.steps, f"{cfg.name} (seed {tc.seed})", plan.progress, initial=start)
    try:
        for step in range(start, tc.steps if diverged_before is None else start):
            # A step and its measurements are one unit: an interrupt (Ctrl-C, a cluster job's preemption) that
            # arrives inside it takes effect once the step is done and measured, never half-way.
            with _signals_deferred():
                x, y = next(batches)
                active = [p for p in probes if p.due(step, tc.steps)]
                if tf32_between:
                    set_tf32(not active)        # measured steps (and what the probes compute) in strict fp32
                out, loss = stepper.step(step, x, y, active)
                monitor.record(step, loss, (out.argmax(1) == y).double().mean() if classifier else None)
                if active and not bool(finite(loss)):
                    monitor.done = step + 1
                    break                       # diverged here: nothing is measured on a non-finite loss
                for p in active:
                    p.after_step(step, model, x, y)
                monitor.done = step + 1
            done, last = monitor.done, monitor.done == tc.steps
            evaluating = evaluator is not None and evaluator.due(done)
            if monitor.sync_due(last, evaluating):
                if monitor.first_bad() is not None:
                    break
                if bar is not None:
                    bar.update(done - monitor.synced)
                monitor.synced = done
            if evaluating:
                evaluator.record(done)
            if ckpt.due(done, last):
                ckpt.save(snapshot(done))
    except (KeyboardInterrupt, SystemExit):    # Ctrl-C, or a cluster job's preemption / time-out (bnlab.launch)
        for p in probes:
            p.truncate(monitor.done)
        ckpt.save(snapshot(monitor.done))
        if bar is not None:
            bar.close()
        raise
    finally:
        strict_fp32()
    status, diverged_step = "ok", diverged_before if diverged_before is not None else monitor.first_bad()
    if diverged_step is not None:
        # recorded at the step it happened; nothing measured or evaluated on it or after it is kept
        status = "diverged"
        monitor.forget_from(diverged_step)
        for p in probes:
            p.truncate(diverged_step)
        if evaluator is not None:
            evaluator.truncate(diverged_step)
    if bar is not None:
        bar.close()
    wall = wall_before + time.perf_counter() - t0
    steps_done = max(0, (diverged_step if diverged_step is not None else tc.steps) - start)
    steps_per_s = round(steps_done / max(wall - wall_before, 1e-9), 2) if steps_done or state is None \
        else state.get("steps_per_s", 0.0)
    if keep_checkpoint and monitor.done > start:
        with _signals_deferred():               # the finished state, kept until the caller has stored the result
            ckpt.save({**snapshot(monitor.done), "steps_per_s": steps_per_s})

    keep = np.arange(0, tc.steps, tc.log_every)
    arrays = {"step": keep, "train_loss": monitor.losses.cpu().numpy()[keep].astype(np.float32)}
    if classifier:
        arrays["train_acc"] = monitor.accs.cpu().numpy()[keep].astype(np.float32)
        arrays.update(evaluator.arrays())
    for p in probes:
        arrays.update(p.arrays())
    if not keep_checkpoint:
        ckpt.remove()
    meta = {"wall_s": round(wall, 2), "steps_per_s": steps_per_s,
            "engine": plan.engine.describe(cfg.model.arch), "resumed_at_step": start, "device": str(dev),
            "device_name": describe(dev)["device_name"]}
    return Run(cfg.to_dict(), status, diverged_step, arrays, meta)
