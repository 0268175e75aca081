"""The training loop: plain SGD at the paper's settings, measurement probes every n steps.

No host sync per step: losses and accuracies go into device tensors that are read every
``sync_every`` steps, where divergence (a non-finite loss) is detected and recorded, not raised.
An interrupted run keeps a checkpoint and resumes from it.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import data as data_mod
from .config import RunConfig
from .device import dtype_of, pick, set_tf32, strict_fp32
from .measure import make_probes
from .engine import EngineOptions, Stepper
from .models import build
from .norms import ActivationNoise
from . import store
from .store import atomic_write


@dataclass
class RunResult:
    """One run's curves and measurements (numpy arrays) with its status."""

    config: RunConfig
    arrays: dict
    status: str = "ok"               # "ok" | "diverged"
    diverged_step: int | None = None
    wall_s: float = 0.0
    meta: dict = field(default_factory=dict)

    def __getitem__(self, key):
        return self.arrays[key]

    @property
    def final_test_acc(self) -> float:
        acc = self.arrays.get("test_acc")
        return float(acc[-1]) if acc is not None and len(acc) and np.isfinite(acc[-1]) else float("nan")


def progress_bar(total: int, desc: str, enabled=None, leave: bool = False, initial: int = 0):
    """A tqdm bar on stderr, or None when ``enabled`` is False (None: unless ``$BNLAB_PROGRESS`` is "0")."""
    if enabled is None:
        enabled = os.environ.get("BNLAB_PROGRESS", "1") != "0"
    if not enabled:
        return None
    from tqdm import tqdm
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


def _load_checkpoint(path, device):
    """The state saved at ``path``, or None when there is none; a checkpoint that cannot be read is moved aside
    (``<name>.corrupt``, named in a warning) and the run starts over rather than failing."""
    if path is None or not Path(path).exists():
        return None
    try:
        return torch.load(path, weights_only=False, map_location=device)
    except Exception as err:  # noqa: BLE001  (truncated zip, pickle or EOF errors: all mean "unreadable")
        aside = store.quarantine(Path(path))
        warnings.warn(f"checkpoint {path} could not be read ({type(err).__name__}: {err}); moved to {aside}, "
                      f"the run starts from step 0", stacklevel=3)
        return None


@torch.no_grad()
def evaluate(model, data, dtype, train: bool = False) -> tuple[float, float]:
    """(loss, accuracy) on the test set (or the training set) in inference mode."""
    was_training = model.training
    model.eval()
    total_loss, correct, n = 0.0, 0, 0
    for x, y in data.test_batches(1000, dtype, train=train):
        out = model(x)
        total_loss += float(torch.nn.functional.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        n += y.shape[0]
    model.train(was_training)
    return total_loss / n, correct / n


def train(cfg: RunConfig, data=None, device=None, progress=None, checkpoint: Path | None = None,
          checkpoint_every: int = 250, sync_every: int = 50, extra_probes=(), engine=None) -> RunResult:
    """Train one run as ``cfg`` says and return its curves and probe measurements.

    ``checkpoint``: a file that holds the latest state; if it exists the run resumes from it,
    and it is rewritten every ``checkpoint_every`` steps and on interruption. ``extra_probes``: measurement
    objects beyond those ``cfg.probe`` asks for (see ``bnlab.measure.Probe``), given the built model.
    ``engine``: :class:`bnlab.engine.EngineOptions` (default: from the environment; all off).
    """
    dev = pick(device)
    strict_fp32()
    tc = cfg.train
    dtype = dtype_of(tc.precision)
    data = data if data is not None else data_mod.load(cfg.data, tc.seed, dev)
    model = build(cfg.model, tc.seed, dev, dtype)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=tc.lr, momentum=tc.momentum,
                          weight_decay=tc.weight_decay)
    stepper = Stepper(model, opt, engine if engine is not None else EngineOptions.from_env())
    probes = make_probes(cfg, model, stepper.options.landscape_for(cfg.model.arch))
    probes += [make(model) if callable(make) else make for make in extra_probes]
    classifier = model.kind == "classifier"

    losses = torch.full((tc.steps,), float("nan"), device=dev, dtype=torch.float64)
    accs = torch.full((tc.steps,), float("nan"), device=dev, dtype=torch.float64)
    evals = {"eval_step": [], "test_loss": [], "test_acc": []}
    start, status, diverged_step, wall_before = 0, "ok", None, 0.0
    # every random stream is the run's own and travels in its checkpoint: data order (``data.batches``), the
    # initialisation (``build``), and here the noise of noisy BatchNorm, on the run's device
    noise = torch.Generator(device=dev).manual_seed(tc.seed)
    for m in model.modules():
        if isinstance(m, ActivationNoise):
            m.generator = noise
    state = _load_checkpoint(checkpoint, dev)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        losses.copy_(state["losses"]), accs.copy_(state["accs"])
        evals = state["evals"]
        for p, s in zip(probes, state["probes"]):
            p.load_state(s)
        if "noise" in state:
            noise.set_state(state["noise"].cpu())
        elif dev.type == "cpu":
            noise.set_state(state["rng"])       # a checkpoint from bnlab before 0.2.0: the CPU's global stream
        start, wall_before = state["step"], state["wall_s"]

    def save_checkpoint(step):
        if checkpoint is None:
            return
        state = {"model": model.state_dict(), "opt": opt.state_dict(), "losses": losses, "accs": accs,
                 "evals": evals, "probes": [p.state() for p in probes], "noise": noise.get_state(),
                 "step": step, "wall_s": wall_before + time.perf_counter() - t0}
        atomic_write(Path(checkpoint), lambda tmp: torch.save(state, tmp))   # a temp name of its own: never shared

    tf32_between = tc.precision == "tf32"

    def record_evaluation(at_step):
        set_tf32(tf32_between)      # test loss and accuracy are not differences of gradients
        tl, ta = evaluate(model, data, dtype)
        strict_fp32()
        evals["eval_step"].append(at_step), evals["test_loss"].append(tl), evals["test_acc"].append(ta)

    if classifier and start and start % tc.eval_every == 0 and evals["eval_step"][-1:] != [start]:
        record_evaluation(start)                        # interrupted during that evaluation
    batches = data.batches(tc.batch_size, tc.seed, dtype, start=start)
    bar = progress_bar(tc.steps, f"{cfg.name} (seed {tc.seed})", progress)
    if bar is not None:
        bar.update(start)
    t0 = time.perf_counter()
    step, synced, done = start, start, start

    def diverged_at() -> int | None:
        """The first step whose loss is not finite (one host sync: only where a probe or evaluation syncs anyway)."""
        bad = (~torch.isfinite(losses[synced:done])).nonzero()
        return synced + int(bad[0]) if len(bad) else None
    try:
        for step in range(start, tc.steps):
            # A step and its measurements are one unit: an interrupt (Ctrl-C, a cluster job's preemption) that
            # arrives inside it takes effect once the step is done and measured, never half-way.
            with _signals_deferred():
                x, y = next(batches)
                active = [p for p in probes if p.due(step, tc.steps)]
                if tf32_between:
                    set_tf32(not active)        # measured steps (and what the probes compute) in strict fp32
                out, loss = stepper.step(step, x, y, active)
                losses[step] = loss.detach()
                if classifier:
                    accs[step] = (out.argmax(1) == y).double().mean()
                if active and not bool(torch.isfinite(loss)):
                    done = step + 1
                    break                       # diverged here: nothing is measured on a non-finite loss
                for p in active:
                    p.after_step(step, model, x, y)
                done = step + 1
            last = done == tc.steps
            evaluating = classifier and (done % tc.eval_every == 0 or last)
            if done % sync_every == 0 or last or evaluating:
                if diverged_at() is not None:
                    break
                if bar is not None:
                    bar.update(done - synced)
                synced = done
            if evaluating:
                record_evaluation(done)
            if checkpoint is not None and done % checkpoint_every == 0 and not last:
                save_checkpoint(done)
    except (KeyboardInterrupt, SystemExit):    # Ctrl-C, or a cluster job's preemption / time-out (bnlab.launch)
        for p in probes:
            p.truncate(done)
        save_checkpoint(done)
        if bar is not None:
            bar.close()
        raise
    finally:
        strict_fp32()
    first_bad = diverged_at()
    if first_bad is not None:
        # recorded at the step it happened; nothing measured on it or after it is kept
        status, diverged_step = "diverged", first_bad
        for p in probes:
            p.truncate(first_bad)
        keep = [i for i, e in enumerate(evals["eval_step"]) if e <= first_bad]
        evals = {k: [v[i] for i in keep] for k, v in evals.items()}
    if bar is not None:
        bar.close()
    wall = wall_before + time.perf_counter() - t0

    keep = np.arange(0, tc.steps, tc.log_every)
    arrays = {"step": keep, "train_loss": losses.cpu().numpy()[keep].astype(np.float32)}
    if classifier:
        arrays["train_acc"] = accs.cpu().numpy()[keep].astype(np.float32)
        arrays.update({k: np.asarray(v, dtype=np.float32 if k != "eval_step" else np.int64)
                       for k, v in evals.items()})
    for p in probes:
        arrays.update(p.arrays())
    if checkpoint is not None and Path(checkpoint).exists():
        Path(checkpoint).unlink()
    steps_done = (diverged_step if diverged_step is not None else tc.steps) - start
    return RunResult(cfg, arrays, status, diverged_step, wall,
                     {"steps_per_s": steps_done / max(wall - wall_before, 1e-9),
                      "engine": stepper.options.describe(cfg.model.arch), "resumed_at_step": start})

