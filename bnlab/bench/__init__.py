"""Benchmark of the experiment engine: ratios against baselines measured in the same run, on one device.

``python -m bnlab.bench [--device cpu|cuda] [--arch vgg16] [--width W] [--steps N] [--compile] [--out FILE]``

Four sections (every ratio is taken within this one run):

1. engine vs a plain baseline on the same VGG steps: torchvision-style ``Dataset`` of PIL images +
   ``ToTensor`` + ``Normalize`` + ``DataLoader`` (num_workers=0, shuffle) + ``loss.item()`` every step, against
   the engine's path (uint8 data on the device, normalised per batch, no per-step host sync); steps/s, ratio,
   and model FLOP utilisation (analytic FLOPs; peak from a table on CUDA, a measured fp32 matmul on CPU); the
   engine's options (``bnlab.engine``: channels_last, and torch.compile with ``--compile``) as further rows;
2. cost of a training step with the measurements, as a ratio to a plain step: gradient ICS (shared prefix +
   restricted backward, ``bnlab.measure.gradient_ics``) against the naive one-full-pass-per-layer ICS (and a check
   that both give the same G'), the activation probe, and landscape probes with K = 4, 8, 16 (loop back-end);
3. landscape probe back-ends, K = 8: in-place loop vs ``torch.func.vmap``, agreement and speed, for the VGG
   with BatchNorm and the 25-layer deep linear network (float64);
4. a *projection* of the paper-scale suite's time on this device from the measured per-step costs;
5. every network the suite trains (VGG, ResNet-56 and -20, the DLN; with and without BatchNorm) under each engine
   lever: eager, ``channels_last``, ``torch.compile`` (and its compile time), K runs batched into one model
   (``bnlab.batched``), the same step in a process per core at once (how a live chapter trains on a CPU), the step
   with every measurement due, the profiler's top operators, and each chapter's training runs projected eager, at the
   defaults, with the lever that paid most, and in the process pool (``bnlab.bench.levers``).

Timing: warm-up calls excluded, then the median over ``repeats`` blocks of calls; ``time.perf_counter`` on the
CPU, CUDA events + synchronize on a GPU. ``benchmarks/README.md`` says how to run it and where results go.
"""
from __future__ import annotations

from ..data import load_regression
from ..estimate import suite_flops
from ..flops import block_flops, flop_ratios, model_flops, times_due, vgg_flops
from .baselines import synthetic_images
from .report import format_report, run_all, write
from .baselines import ics_agreement
from .sections import minutes_at_peak, project_suite, registry_norms
from .timing import BenchConfig, defaults_for, time_calls

__all__ = ["BenchConfig", "defaults_for", "time_calls", "synthetic_images", "ics_agreement", "registry_norms",
           "minutes_at_peak", "project_suite", "run_all", "format_report", "write", "load_regression", "block_flops",
           "flop_ratios", "model_flops", "suite_flops", "times_due", "vgg_flops"]
