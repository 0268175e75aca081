"""Analyses of the loss landscape's stability: Bjorck et al.'s
step-size test, Hessian sharpness during training, and Li et al.'s 2-D loss surface, each for a network of a scale
with and without BatchNorm.

Each compute function takes ``(scale, plan)`` and returns a flat dict of numpy arrays (keys prefixed ``none/`` and
``batch/`` per network); :data:`STEP_SIZE`, :data:`STEP_SIZE_RESNET`, :data:`SHARPNESS` and :data:`SURFACE` register
them (``bnlab.recipes.Analysis``) with the sizes they read from the scale (``Scale.step_size``, ``.sharpness``,
``.surface``: ours, the papers give none that fit a CPU; the chapters state them) and the runs they train.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from . import data as data_mod
from .config import PAPER_SETTINGS, ProbeConfig, n_layers
from .scales import Scale
from .device import strict_fp32
from .norms import frozen_state
from .recipes import Analysis, resnet_run, vgg_run
from .statistics import net_prefix
from .flops import model_flops, run_flops, times_due
from .measure.sharpness import SharpnessProbe
from .measure.step_size import DIVERGENCE, relative_loss
from .measure.surface import ModelHandle, filter_normalised_direction, loss_surface
from .models import build, loss_fn
from .train import progress_bar, train

PRECISION = "strict fp32 (TF32 off)"
REL_CAP = 1e30          # stored in place of a relative loss that overflowed (mask: <net>/nonfinite)

# Bjorck et al.'s "normal" learning rate of each network (Bjorck et al. 2018, as secondary accounts of their Fig. 1 give it)
NORMAL_LR = {"none": 1e-4, "batch": 0.1}

# ---- Bjorck et al.: relative loss vs step size in the first mini-batches ---------------------------
def step_size(scale: Scale, plan) -> dict:
    """Bjorck et al.'s step-size test on the VGG of ``scale``: see :func:`step_size_for`."""
    return step_size_for(scale, vgg_run, plan)


def step_size_resnet(scale: Scale, plan) -> dict:
    """Bjorck et al.'s step-size test on the ResNet of ``scale`` (the network of their learning-rate sweep)."""
    return step_size_for(scale, resnet_run, plan)


def step_size_for(scale: Scale, make_run, plan) -> dict:
    """For each network (``make_run(scale, norm, lr, seed)``) at its normal lr: train on the first mini-batches;
    before each step, record L(w - eta g) / L(w) on that batch for eta on a log grid (BN in training mode, parameters restored).

    Keys: ``eta`` [K], ``threshold`` (10^3), and per network n: ``n/rel_loss`` [T, K] (overflow stored as
    REL_CAP, flagged in ``n/nonfinite``), ``n/loss`` [T] the batch loss before the step, ``n/gnorm`` and
    ``n/wnorm`` [T] the norms of g and w over all parameters (so eta |g| / |w| is the relative distance moved),
    ``n/lr``, and ``n/block_rms`` [blocks] the scale of each block's output at initialisation (:func:`block_rms`).
    """
    cfg_s, dev = scale.step_size, plan.device
    strict_fp32()
    etas = torch.logspace(*cfg_s.log_eta, cfg_s.etas, dtype=torch.float64)
    out = {"eta": etas.numpy(), "threshold": np.asarray(DIVERGENCE), "precision": PRECISION}
    data = None
    bar = progress_bar(len(NORMAL_LR) * cfg_s.batches, "step sizes: mini-batches", plan.progress)
    for norm, lr in NORMAL_LR.items():
        cfg = make_run(scale, norm, lr, seed=0)
        data = data if data is not None else data_mod.load(cfg.data, 0, dev, plan.data_dir)
        model = build(cfg.model, 0, dev)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        batches = data.batches(cfg.train.batch_size, 0)
        rel, losses, gnorm, wnorm = [], [], [], []
        for t in range(cfg_s.batches):
            x, y = next(batches)
            if t == 0:
                out[f"{norm}/block_rms"] = block_rms(model, x).cpu().numpy()
            loss = loss_fn(model, model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            rel.append(relative_loss(model, x, y, etas).cpu())
            losses.append(float(loss.detach()))
            gnorm.append(float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters()))))
            wnorm.append(float(torch.sqrt(sum((p.detach().double() ** 2).sum() for p in model.parameters()))))
            opt.step()
            if bar is not None:
                bar.update(1)
        r = torch.stack(rel).numpy()
        bad = ~np.isfinite(r)
        out[f"{norm}/rel_loss"] = np.where(bad, REL_CAP, r)
        out[f"{norm}/nonfinite"] = bad
        out[f"{norm}/loss"] = np.asarray(losses)
        out[f"{norm}/gnorm"], out[f"{norm}/wnorm"] = np.asarray(gnorm), np.asarray(wnorm)
        out[f"{norm}/lr"] = np.asarray(lr)
    if bar is not None:
        bar.close()
    return out


@torch.no_grad()
def block_rms(model, x) -> torch.Tensor:
    """Root mean square of each block's output on the batch ``x`` (training mode, running statistics restored):
    how the signal's scale grows or stays put with depth (Bjorck et al.'s activation growth without BN)."""
    rms, h = [], x
    with frozen_state(model):
        for block in model.blocks:
            h = block(h)
            rms.append(h.double().pow(2).mean().sqrt())
    return torch.stack(rms)


# ---- the training runs the analyses make, and what they cost -------------------------------------------
# [ours] a Hessian-vector product by double backward costs about 5 forwards (gradient with its graph, then the
# backward of <grad, v>)
HVP_FORWARDS = 5


def sharpness_run(scale: Scale, norm: str, seed: int = 0):
    """The VGG run that :func:`sharpness` trains for ``norm`` at ``scale``: the landscape probe every ``every`` steps."""
    cfg_s = scale.sharpness
    base = vgg_run(scale, norm, cfg_s.lr, seed=seed)
    return replace(base, name=f"{base.name}_sharpness", train=replace(base.train, steps=cfg_s.steps or scale.vgg_steps),
                   probe=ProbeConfig(every=cfg_s.every, landscape=True, landscape_points=scale.landscape_points,
                                     landscape_range=PAPER_SETTINGS["vgg"]["probe_range_x_lr"]))


def surface_run(scale: Scale, norm: str, seed: int = 0):
    """The VGG run that :func:`surface` trains for ``norm`` at ``scale`` (no probes, one evaluation at the end)."""
    base = vgg_run(scale, norm, scale.surface.lr, seed=seed)
    steps = scale.surface.steps or scale.vgg_steps
    return replace(base, name=f"{base.name}_surface", train=replace(base.train, steps=steps, eval_every=steps),
                   probe=ProbeConfig())


def step_size_runs(scale: Scale, make_run=vgg_run) -> list:
    """The networks the step-size test builds and steps (each at its normal learning rate)."""
    return [make_run(scale, norm, lr, seed=0) for norm, lr in NORMAL_LR.items()]


def step_size_flops(scale: Scale, make_run=vgg_run) -> float:
    """FLOPs of :func:`step_size_for`: per network, one forward for the block scales, then per mini-batch a step
    (3 forwards), the loss at w and one forward per step size."""
    cfg_s = scale.step_size
    return sum(model_flops(run.model) * run.train.batch_size * (1 + cfg_s.batches * (4 + cfg_s.etas))
               for run in step_size_runs(scale, make_run))


def step_size_block_steps(scale: Scale, make_run=vgg_run) -> int:
    """The launch floor of :func:`step_size_for` in block-steps: per network, a step and 2 + K forwards a batch."""
    cfg_s = scale.step_size
    return sum(n_layers(run.model) * cfg_s.batches * (2 + cfg_s.etas) for run in step_size_runs(scale, make_run))


def sharpness_flops(scale: Scale) -> float:
    """FLOPs of :func:`sharpness`: both training runs with their landscape probes and evaluations, and at each
    probe up to ``iters`` + 1 Hessian-vector products on the step's batch."""
    cfg_s = scale.sharpness
    total = 0.0
    for run in _sharpness_runs(scale):
        hvps = times_due(cfg_s.every, run.train.steps) * (cfg_s.iters + 1)
        total += run_flops(run)["total"] + hvps * HVP_FORWARDS * model_flops(run.model) * run.train.batch_size
    return total


def surface_flops(scale: Scale) -> float:
    """FLOPs of :func:`surface`: both training runs, then one forward of the fixed images per grid point and per
    point of the training-mode slice."""
    cfg_s = scale.surface
    return sum(run_flops(run)["total"] + model_flops(run.model) * cfg_s.images * (cfg_s.points ** 2 + cfg_s.points)
               for run in _surface_runs(scale))


# ---- sharpness next to effective beta-smoothness ---------------------------------------------------
def sharpness(scale: Scale, plan) -> dict:
    """Train the VGG with and without BN at lr 0.1 with the landscape probe and :class:`SharpnessProbe`, once per
    seed of ``scale.sharpness.seeds``.

    Keys ``seeds``, and per network n (the first seed; a later seed s under ``n/seed<s>/``, see
    :func:`bnlab.statistics.net_prefix`): ``n/step`` [S] and ``n/train_loss`` [S] (up to divergence), ``n/sharp_step`` [P],
    ``n/sharp_max`` (lambda_max), ``n/sharp_dominant``, ``n/sharp_grad_curvature`` (g^T H g/|g|^2),
    ``n/sharp_hg_ratio`` (|Hg|/|g|), ``n/sharp_products``, ``n/land_step`` [P], ``n/land_eta`` [K],
    ``n/land_beta`` [P, K], ``n/eval_step``, ``n/test_acc``, ``n/diverged_step`` (-1 = ok); and ``lr``,
    ``steps``, ``every``.
    """
    cfg_s, dev = scale.sharpness, plan.device
    steps = cfg_s.steps or scale.vgg_steps
    out = {"lr": np.asarray(cfg_s.lr), "steps": np.asarray(steps), "every": np.asarray(cfg_s.every),
           "precision": PRECISION, "seeds": np.asarray(cfg_s.seeds)}
    data = None
    for cfg in _sharpness_runs(scale):                 # the runs its config registers, in that order
        seed, p = cfg.train.seed, net_prefix(cfg.model.norm, cfg.train.seed, cfg_s.seeds)
        data = data if data is not None else data_mod.load(cfg.data, 0, dev, plan.data_dir)
        res = train(cfg, plan, data=data, checkpoint=plan.store.checkpoint_path(cfg.hash),
                    extra_probes=[lambda model, seed=seed: SharpnessProbe(cfg_s.every, cfg_s.iters, seed=seed)])
        n_ok = res.diverged_step if res.diverged_step is not None else steps
        out[f"{p}/step"] = res["step"][:n_ok]
        out[f"{p}/train_loss"] = res["train_loss"][:n_ok]
        for k in ("sharp_step", "sharp_max", "sharp_min", "sharp_dominant", "sharp_residual",
                  "sharp_grad_curvature", "sharp_hg_ratio", "sharp_products", "land_step", "land_eta", "land_beta",
                  "eval_step", "test_acc"):
            out[f"{p}/{k}"] = res[k]
        out[f"{p}/diverged_step"] = np.asarray(-1 if res.diverged_step is None else res.diverged_step)
    return out


# ---- Li et al.'s 2-D loss surface ------------------------------------------------------------------
def surface(scale: Scale, plan) -> dict:
    """Train each VGG briefly at lr 0.1, then the loss on a fixed image set at w + a d1 + b d2 on a grid
    (filter-normalised d1, d2; BN in inference mode), plus the a-axis slice with BN in training mode; once per seed
    of ``scale.surface.seeds`` (its own training run and its own random directions).

    Keys: ``coords`` [P] (a and b values), ``steps``, ``images``, ``seeds``; per network n (the first seed; a later
    seed s under ``n/seed<s>/``, see :func:`bnlab.statistics.net_prefix`): ``n/loss`` and ``n/acc``
    [P, P] (index [i, j] = (a_i, b_j)), ``n/slice_train_mode`` [P] (b = 0, batch statistics of chunks of 128),
    ``n/train_loss`` [steps], ``n/test_acc`` (final), ``n/cos_d1_d2``.
    """
    cfg_s, dev = scale.surface, plan.device
    steps = cfg_s.steps or scale.vgg_steps
    coords = torch.linspace(-1.0, 1.0, cfg_s.points, dtype=torch.float64)
    out = {"coords": coords.numpy(), "steps": np.asarray(steps), "images": np.asarray(cfg_s.images),
           "precision": PRECISION, "seeds": np.asarray(cfg_s.seeds)}
    data = None
    for cfg in _surface_runs(scale):                   # the runs its config registers, in that order
        seed, p = cfg.train.seed, net_prefix(cfg.model.norm, cfg.train.seed, cfg_s.seeds)
        data = data if data is not None else data_mod.load(cfg.data, 0, dev, plan.data_dir)
        handle = ModelHandle()
        res = train(cfg, plan, data=data, checkpoint=plan.store.checkpoint_path(cfg.hash), extra_probes=[handle])
        model = handle.model
        n = min(cfg_s.images, data.x_train.shape[0])
        x, y = data.normalise(data.x_train[:n]), data.y_train[:n]
        gen = torch.Generator().manual_seed(seed)
        d1, d2 = filter_normalised_direction(model, gen), filter_normalised_direction(model, gen)
        grid = loss_surface(model, x, y, d1, d2, coords, coords)
        line = loss_surface(model, x, y, d1, d2, coords, [0.0], batch_size=128, train_mode=True)
        cos = sum((a * b).sum() for a, b in zip(d1, d2)) / torch.sqrt(
            sum((a ** 2).sum() for a in d1) * sum((b ** 2).sum() for b in d2))
        out[f"{p}/loss"], out[f"{p}/acc"] = grid["loss"].numpy(), grid["acc"].numpy()
        out[f"{p}/slice_train_mode"] = line["loss"][:, 0].numpy()
        out[f"{p}/train_loss"] = res["train_loss"]
        out[f"{p}/test_acc"] = np.asarray(res.final_test_acc)
        out[f"{p}/cos_d1_d2"] = np.asarray(float(cos))
    return out


# ---- the registered analyses -------------------------------------------------------------------------
def _sharpness_runs(scale: Scale) -> list:
    return [sharpness_run(scale, norm, seed) for seed in scale.sharpness.seeds for norm in ("none", "batch")]


def _surface_runs(scale: Scale) -> list:
    return [surface_run(scale, norm, seed) for seed in scale.surface.seeds for norm in ("none", "batch")]


def _training_block_steps(runs) -> int:
    """The launch floor of training ``runs``, in block-steps."""
    return sum(n_layers(run.model) * run.train.steps for run in runs)


STEP_SIZE = Analysis(step_size, sizes=lambda scale: scale.step_size, runs=step_size_runs, flops=step_size_flops,
                     block_steps=step_size_block_steps)
STEP_SIZE_RESNET = Analysis(step_size_resnet, sizes=lambda scale: scale.step_size,
                            runs=lambda scale: step_size_runs(scale, resnet_run),
                            flops=lambda scale: step_size_flops(scale, resnet_run),
                            block_steps=lambda scale: step_size_block_steps(scale, resnet_run))
SHARPNESS = Analysis(sharpness, sizes=lambda scale: scale.sharpness, runs=_sharpness_runs, flops=sharpness_flops,
                     block_steps=lambda scale: _training_block_steps(_sharpness_runs(scale)))
SURFACE = Analysis(surface, sizes=lambda scale: scale.surface, runs=_surface_runs, flops=surface_flops,
                   block_steps=lambda scale: _training_block_steps(_surface_runs(scale)))


__all__ = ["NORMAL_LR", "STEP_SIZE", "STEP_SIZE_RESNET", "SHARPNESS", "SURFACE", "step_size", "step_size_resnet",
           "step_size_for", "block_rms", "sharpness", "surface", "sharpness_run", "surface_run"]
