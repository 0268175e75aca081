"""The training loop: plain SGD at the paper's settings, measurement probes every n steps.

:func:`train` is the step and the order of things; its collaborators each do one job: ``bnlab.checkpoint``'s
:class:`Checkpointer` (resume, save every n steps and on interruption), :class:`DivergenceMonitor` (losses stay on the
device; the first non-finite step is found where the host syncs anyway, and recorded, not raised),
``bnlab.evaluation``'s :class:`Evaluator` (test loss and accuracy every ``eval_every`` steps) and the probes of
``bnlab.measure`` (ICS, landscape, activations, ...).
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import data as data_mod
from .config import RunConfig
from .device import describe, dtype_of, set_tf32, strict_fp32
from .compiling import use_cache_in
from .engine import Stepper
from .measure import make_probes
from .models import build
from .norms import ActivationNoise
from .plan import RunPlan
from .records import Run
from .checkpoint import Checkpointer, check_fits, restore_noise
from .evaluation import Evaluator


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


class _Session:
    """One run's collaborators, built from its config on the plan's device, and the steps of :func:`train`."""

    def __init__(self, cfg: RunConfig, plan: RunPlan, data, checkpoint, extra_probes, checkpoint_every: int,
                 sync_every: int):
        self.cfg, self.plan, tc = cfg, plan, cfg.train
        self.dev, self.dtype = torch.device(plan.device), dtype_of(tc.precision)
        self.data = data if data is not None else data_mod.load(cfg.data, tc.seed, self.dev, plan.data_dir)
        self.model = build(cfg.model, tc.seed, self.dev, self.dtype)
        self.model.train()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=tc.lr, momentum=tc.momentum,
                                   weight_decay=tc.weight_decay)
        if plan.engine.compile is not False:
            use_cache_in(plan.store.home)           # compiled kernels are kept in the run store, paid for once
        self.stepper = Stepper(self.model, self.opt, plan.engine, tc.steps)
        self.probes = make_probes(cfg, self.model, plan.engine.landscape_for(cfg.model.arch))
        self.probes += [make(self.model) if callable(make) else make for make in extra_probes]
        self.classifier = self.model.kind == "classifier"
        self.tf32_between = tc.precision == "tf32"
        self.monitor = DivergenceMonitor(tc.steps, self.dev, sync_every)
        self.evaluator = Evaluator(self.model, self.data, self.dtype, tc.eval_every, tc.steps, self.tf32_between,
                                   tc.seed) if self.classifier else None
        self.ckpt = Checkpointer(checkpoint, checkpoint_every, cfg.hash, tc.steps)
        # every random stream is the run's own and travels in its checkpoint: data order (``data.batches``), the
        # initialisation (``build``), and here the noise of noisy BatchNorm, on the run's device
        self.noise = torch.Generator(device=self.dev).manual_seed(tc.seed)
        for m in self.model.modules():
            if isinstance(m, ActivationNoise):
                m.generator = self.noise
        self.start, self.wall_before, self.diverged_before, self.state = 0, 0.0, None, None

    def resume(self) -> bool:
        """Continue from the checkpoint if there is one; False when it does not fit (set aside: build afresh)."""
        state = self.state = self.ckpt.load(self.dev)
        if state is None:
            return True
        try:
            check_fits(state, self.probes)
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["opt"])
            self.start, self.wall_before = state["step"], state["wall_s"]
            self.diverged_before = self.monitor.load_state(state, self.start)
            for p, s in zip(self.probes, state["probes"]):
                p.load_state(s)
            if "noise" in state:
                restore_noise(self.noise, state["noise"], self.cfg.train.seed, self.start)
            elif self.dev.type == "cpu":
                self.noise.set_state(state["rng"])       # a checkpoint from bnlab before 0.2.0: the CPU's global stream
            if self.evaluator is not None:
                self.evaluator.resume(state["evals"], self.start)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            # another network's state, or a foreign file: half applied, so start again from a fresh build
            self.ckpt.reject(f"does not fit this run ({type(err).__name__}: {str(err)[:300]})")
            return False
        return True

    def snapshot(self, step: int) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), **self.monitor.state(),
                "evals": self.evaluator.records if self.evaluator is not None else {},
                "probes": [p.state() for p in self.probes], "noise": self.noise.get_state(), "step": step,
                "wall_s": self.wall_before + time.perf_counter() - self.t0, "config_hash": self.cfg.hash}

    def step(self, step: int, batches) -> bool:
        """One step and its measurements, as one unit: an interrupt (Ctrl-C, a cluster job's preemption) that
        arrives inside it takes effect once the step is done and measured, never half-way. False: it diverged."""
        tc, monitor = self.cfg.train, self.monitor
        with _signals_deferred():
            x, y = next(batches)
            active = [p for p in self.probes if p.due(step, tc.steps)]
            if self.tf32_between:
                set_tf32(not active)        # measured steps (and what the probes compute) in strict fp32
            out, loss = self.stepper.step(step, x, y, active)
            monitor.record(step, loss, (out.argmax(1) == y).double().mean() if self.classifier else None)
            if active and not bool(finite(loss)):
                monitor.done = step + 1
                return False                # diverged here: nothing is measured on a non-finite loss
            for p in active:
                p.after_step(step, self.model, x, y)
            monitor.done = step + 1
        return True

    def loop(self) -> None:
        """Every step from where the run stands, with syncs, evaluations and checkpoints between them."""
        tc, monitor, evaluator = self.cfg.train, self.monitor, self.evaluator
        self.t0 = time.perf_counter()
        batches = self.data.batches(tc.batch_size, tc.seed, self.dtype, start=self.start)
        self.bar = progress_bar(tc.steps, f"{self.cfg.name} (seed {tc.seed})", self.plan.progress, initial=self.start)
        try:
            for step in range(self.start, tc.steps if self.diverged_before is None else self.start):
                if not self.step(step, batches):
                    break
                done, last = monitor.done, monitor.done == tc.steps
                evaluating = evaluator is not None and evaluator.due(done)
                if monitor.sync_due(last, evaluating):
                    if monitor.first_bad() is not None:
                        break
                    if self.bar is not None:
                        self.bar.update(done - monitor.synced)
                    monitor.synced = done
                if evaluating:
                    evaluator.record(done)
                if self.ckpt.due(done, last):
                    self.ckpt.save(self.snapshot(done))
        except (KeyboardInterrupt, SystemExit):    # Ctrl-C, or a cluster job's preemption / time-out (bnlab.launch)
            for p in self.probes:
                p.truncate(monitor.done)
            self.ckpt.save(self.snapshot(monitor.done))
            if self.bar is not None:
                self.bar.close()
            raise
        finally:
            strict_fp32()

    def finish(self, keep_checkpoint: bool) -> Run:
        """The run's record; a divergence is recorded at the step it happened, nothing measured on it or after."""
        tc, monitor, evaluator = self.cfg.train, self.monitor, self.evaluator
        diverged = self.diverged_before if self.diverged_before is not None else monitor.first_bad()
        if diverged is not None:
            monitor.forget_from(diverged)
            for p in self.probes:
                p.truncate(diverged)
            if evaluator is not None:
                evaluator.truncate(diverged)
        if self.bar is not None:
            self.bar.close()
        wall = self.wall_before + time.perf_counter() - self.t0
        steps_done = max(0, (diverged if diverged is not None else tc.steps) - self.start)
        steps_per_s = round(steps_done / max(wall - self.wall_before, 1e-9), 2) if steps_done or self.state is None \
            else self.state.get("steps_per_s", 0.0)
        if keep_checkpoint and monitor.done > self.start:
            with _signals_deferred():               # the finished state, kept until the caller has stored the result
                self.ckpt.save({**self.snapshot(monitor.done), "steps_per_s": steps_per_s})
        keep = np.arange(0, tc.steps, tc.log_every)
        arrays = {"step": keep, "train_loss": monitor.losses.cpu().numpy()[keep].astype(np.float32)}
        if self.classifier:
            arrays["train_acc"] = monitor.accs.cpu().numpy()[keep].astype(np.float32)
            arrays.update(evaluator.arrays())
        for p in self.probes:
            arrays.update(p.arrays())
        if not keep_checkpoint:
            self.ckpt.remove()
        meta = {"wall_s": round(wall, 2), "steps_per_s": steps_per_s,
                "engine": self.stepper.describe(self.cfg.model.arch), "resumed_at_step": self.start,
                "device": str(self.dev), "device_name": describe(self.dev)["device_name"]}
        return Run(self.cfg.to_dict(), "ok" if diverged is None else "diverged", diverged, arrays, meta)


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
    strict_fp32()
    session = _Session(cfg, plan, data, checkpoint, extra_probes, checkpoint_every, sync_every)
    if not session.resume():                   # a checkpoint that did not fit was set aside: build afresh
        return train(cfg, plan, data, checkpoint, extra_probes, checkpoint_every, sync_every, keep_checkpoint)
    session.loop()
    return session.finish(keep_checkpoint)
