"""Figures beyond the paper: Bjorck et al.'s step-size test, sharpness during training, Li et al.'s
2-D loss surface. The confounder experiment reuses :func:`training_figure` and :func:`landscape_figure`."""
import warnings

import matplotlib.pyplot as plt
from matplotlib.colors import LogNorm
import numpy as np

from . import style
from ..statistics import analysis_seeds, net_prefix
from .common import smooth
from .style import colour, label

NETS = ("none", "batch")
SHOW_CAP = 1e8       # relative losses above this (or overflowed) are drawn at the cap with a cross


def _step_panel(ax, eta, rel, nonfinite, lr, cmap_name):
    cmap = plt.get_cmap(cmap_name)
    for t in range(len(rel)):
        r = np.where(nonfinite[t] | (rel[t] > SHOW_CAP), SHOW_CAP, rel[t])
        ax.plot(eta, r, "-", color=cmap(0.25 + 0.7 * t / max(len(rel) - 1, 1)), lw=1.0, alpha=0.85)
        capped = nonfinite[t] | (rel[t] > SHOW_CAP)
        ax.plot(eta[capped], np.full(capped.sum(), SHOW_CAP), "x", color="k", ms=4)
    ax.axvline(lr, color="k", ls=":", lw=1, label=f"its learning rate ({lr:g})")


def step_size_figure(res):
    """Relative loss L(w - eta g)/L(w) against eta: one line per mini-batch for each network (darker = later),
    then both networks against the relative distance moved, eta |g| / |w|, one line per mini-batch."""
    a = res.arrays
    eta, thr = a["eta"], float(a["threshold"])
    fig, axes = style.panels(3, height=2.9, sharey=True)
    for ax, net, cmap in zip(axes[:2], NETS, ("Blues", "Oranges")):
        _step_panel(ax, eta, a[f"{net}/rel_loss"], a[f"{net}/nonfinite"], float(a[f"{net}/lr"]), cmap)
        ax.set_title(f"{label(net)}\n(one line per mini-batch)")
        ax.get_lines()[-1].set_label(f"{label(net)}'s learning rate ({float(a[f'{net}/lr']):g})")
    for net in NETS:
        rel = np.where(a[f"{net}/nonfinite"], SHOW_CAP, np.minimum(a[f"{net}/rel_loss"], SHOW_CAP))
        dist = eta[None, :] * (a[f"{net}/gnorm"] / a[f"{net}/wnorm"])[:, None]
        for t in range(len(rel)):
            axes[2].plot(dist[t], rel[t], color=colour(net), lw=0.8, alpha=0.6, label=label(net) if t == 0 else None)
    axes[2].set_title("both networks against\nthe distance moved")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(thr, color="#c44e52", ls="--", lw=1, label=f"divergence ({thr:g}, Bjorck et al.)")
        ax.axhline(1.0, color="#555555", ls="-", lw=0.8)
        ax.set_xlabel(r"step size $\eta$ along $-g$")
        ax.set_ylim(top=SHOW_CAP * 5)
    axes[2].set_xlabel(r"relative distance moved $\eta\,\|g\| / \|w\|$")
    axes[2].yaxis.set_tick_params(labelleft=True)
    for ax in axes[::2]:
        ax.set_ylabel("relative loss\n" r"$L(w-\eta g)\,/\,L(w)$ (same batch)")
    style.legend(fig, None, spare=fig.spare)
    fig.tight_layout()
    return fig


def depth_profile_figure(res):
    """Scale (rms) of each block's output at initialisation against depth, both networks, log scale."""
    fig, ax = plt.subplots(figsize=(style.COLUMN_WIDTH * 0.9, 3.2))
    for net in NETS:
        rms = res.arrays[f"{net}/block_rms"]
        ax.plot(np.arange(1, len(rms) + 1), rms, "o-", ms=3, color=colour(net), label=label(net))
    ax.set_yscale("log")
    ax.set_xlabel("block (1 = first convolution, last = classifier output)")
    ax.set_ylabel("rms of the block's output at init")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def _later_seeds(res, net) -> list:
    """The array prefixes of ``net``'s later seeds in an analysis that trains per seed (the first is ``net/``)."""
    seeds = analysis_seeds(res)
    return [net_prefix(net, s, seeds) for s in seeds[1:]]


def _first_seed_title(res, net) -> str:
    seeds = analysis_seeds(res)
    return label(net) + (f" (seed {seeds[0]})" if len(seeds) > 1 else "")


def sharpness_figure(res, window: int = 20):
    """Training loss; lambda_max of the Hessian with 2/lr (later seeds as thin lines); effective beta (landscape
    probe) and |Hg|/|g| of the first seed."""
    a = res.arrays
    lr = float(a["lr"])
    fig, axes = style.panels(3, height=2.8)
    for net in NETS:
        c = colour(net)
        for p in _later_seeds(res, net):
            axes[0].plot(a[f"{p}/step"], smooth(a[f"{p}/train_loss"], window), color=c, lw=0.6, alpha=0.45)
            axes[1].plot(a[f"{p}/sharp_step"], np.maximum(a[f"{p}/sharp_max"], 1e-3), color=c, lw=0.6, alpha=0.45)
        axes[0].plot(a[f"{net}/step"], smooth(a[f"{net}/train_loss"], window), color=c, lw=1.4, label=label(net))
        s = a[f"{net}/sharp_step"]
        axes[1].plot(s, np.maximum(a[f"{net}/sharp_max"], 1e-3), "o-", color=c, ms=3, lw=1.4,
                     label=rf"{label(net)}: $\lambda_{{max}}$")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            beta = np.nanmax(a[f"{net}/land_beta"], axis=1)
        axes[2].plot(a[f"{net}/land_step"], beta, "o-", color=c, ms=3, lw=1.4,
                     label=rf"{label(net)}: effective $\beta$ ($\eta\in$ probe range)")
        axes[2].plot(s, a[f"{net}/sharp_hg_ratio"], "s--", color=c, ms=3, lw=1.0,
                     label=rf"{label(net)}: $\|Hg\|/\|g\|$ ($\eta\to 0$)")
    axes[1].axhline(2 / lr, color=style.EDGE_COLOUR, ls="--", lw=1, label=rf"$2/\mathrm{{lr}}$ = {2 / lr:g}")
    if len(analysis_seeds(res)) > 1:
        axes[1].plot([], [], color="grey", lw=0.6, alpha=0.6, label="thin lines: the other seeds")
    axes[0].set_ylabel("training loss (batch, smoothed)")
    axes[0].set_yscale("log")
    axes[1].set_ylabel("top Hessian eigenvalue\n" r"$\lambda_{max}$ (log)")
    axes[2].set_ylabel("gradient change per\nunit distance (log)")
    axes[0].set_title("training loss")
    axes[1].set_title("sharpness on the step's batch")
    axes[2].set_title(r"effective $\beta$-smoothness" "\n" r"vs. local $\|Hg\|/\|g\|$")
    for ax in axes:
        ax.set_xlabel("training step")
    for ax in axes[1:]:
        ax.set_yscale("log")
    style.edge_of_stability(axes[2], lr)
    style.legend(fig, None, spare=fig.spare)
    fig.tight_layout()
    return fig


def _levels(res):
    a = res.arrays
    lo = min(float(np.min(a[f"{n}/loss"])) for n in NETS)
    hi = max(float(np.max(a[f"{n}/loss"])) for n in NETS)
    return np.geomspace(max(lo, 1e-3), max(hi, lo * 1.01), 25)


def surface_contour_figure(res):
    """Filled contours of the loss on the plane w + a d1 + b d2 (log-spaced levels shared by both networks)."""
    a = res.arrays
    c = a["coords"]
    levels = _levels(res)
    fig, axes = plt.subplots(1, 2, figsize=(style.COLUMN_WIDTH, 3.3), constrained_layout=True)
    for ax, net in zip(axes, NETS):
        cs = ax.contourf(c, c, a[f"{net}/loss"].T, levels=levels, norm=LogNorm(levels[0], levels[-1]),
                         cmap="viridis", extend="both")
        ax.contour(c, c, a[f"{net}/loss"].T, levels=levels[::3], colors="w", linewidths=0.4)
        ax.plot(0, 0, "r*", ms=9, label="trained weights")
        ax.set_title(_first_seed_title(res, net))
        ax.set_xlabel(r"$a$ (along filter-norm. $d_1$)")
        ax.set_ylabel(r"$b$ (along filter-norm. $d_2$)")
        ax.set_aspect("equal")
    axes[1].legend(loc="upper right")
    fig.colorbar(cs, ax=axes, label="training loss\n(BN in inference mode)", ticks=[0.1, 0.3, 1, 3, 10, 30, 100, 300],
                 fraction=0.05, pad=0.02)
    return fig


def surface_3d_figure(res):
    """The same grids as 3-D surfaces of log10(loss), on one vertical scale for both networks."""
    a = res.arrays
    c = a["coords"]
    A, B = np.meshgrid(c, c, indexing="ij")
    zs = {net: np.log10(a[f"{net}/loss"]) for net in NETS}
    lo, hi = min(float(z.min()) for z in zs.values()), max(float(z.max()) for z in zs.values())
    fig = plt.figure(figsize=(style.COLUMN_WIDTH, 3.4))
    for k, net in enumerate(NETS):
        ax = fig.add_subplot(1, 2, k + 1, projection="3d")
        ax.plot_surface(A, B, zs[net], cmap="viridis", vmin=lo, vmax=hi, linewidth=0, antialiased=True)
        ax.set_zlim(lo, hi)
        ax.set_title(_first_seed_title(res, net))
        ax.set_xlabel(r"$a$")
        ax.set_ylabel(r"$b$")
        ax.set_zlabel(r"$\log_{10}$ training loss")
        ax.view_init(elev=30, azim=-60)
    fig.tight_layout()
    return fig


def surface_slice_figure(res):
    """The line b = 0 through the trained weights: inference mode (running statistics) for both networks (later
    seeds, each with its own directions, as thin lines), and the BN network with batch statistics (training mode)."""
    a = res.arrays
    c = a["coords"]
    mid = len(c) // 2
    fig, ax = plt.subplots(figsize=(style.COLUMN_WIDTH * 0.9, 3.2))
    for net in NETS:
        ax.plot(c, a[f"{net}/loss"][:, mid], "o-", color=colour(net), ms=3, label=f"{label(net)}, inference mode")
        for k, p in enumerate(_later_seeds(res, net)):
            ax.plot(c, a[f"{p}/loss"][:, mid], color=colour(net), lw=0.6, alpha=0.5,
                    label=f"{label(net)}, other seeds (own directions)" if k == 0 else None)
    ax.plot(c, a["batch/slice_train_mode"], "s--", color=colour("batch"), ms=3,
            label=f"{label('batch')}, training mode (batch statistics)")
    ax.set_yscale("log")
    ax.set_xlabel(r"$a$ (along filter-normalised $d_1$, $b = 0$)")
    ax.set_ylabel("training loss (fixed image set)")
    ax.legend()
    fig.tight_layout()
    return fig


__all__ = ["step_size_figure", "sharpness_figure", "surface_contour_figure", "surface_3d_figure",
           "surface_slice_figure"]
