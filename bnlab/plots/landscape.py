"""Loss landscape along the gradient (Fig. 4, 10, 11, 12, 13): ranges over the probed distances."""
import warnings

import matplotlib.pyplot as plt
import numpy as np

from ..statistics import stack
from . import style
from .common import band
from .style import colour, label

PANELS = (("land_loss", "loss landscape", "loss along the gradient"),
          ("land_grad_change", "gradient predictiveness", r"$\|\nabla L(w) - \nabla L(w - \eta g)\|_2$"),
          ("land_beta", r"effective $\beta$-smoothness", r"max$_\eta$ of grad change / $\|\eta g\|$"))


def ranges(runs, key):
    """Per probed step: min and max over eta (and over seeds) of a probe quantity; max for beta."""
    a = stack(runs, key)                                   # [seed, T, K]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmin(a, axis=(0, 2)), np.nanmax(a, axis=(0, 2)), np.nanmax(a, axis=2)


def landscape_figure(result, norms=None, lr=None, log_all=False, plateau=None):
    """Three panels: loss range, gradient-change range (bands over eta and seeds), max beta (per seed); the
    legend in the fourth cell of the 2 x 2 grid. ``plateau`` = (first, last) step: a grey span marks the standard
    network's initial plateau, where every network's landscape is flat."""
    norms = norms or list(dict.fromkeys(r.norm for r in result.runs))
    fig, axes = style.panels(3, height=2.6)
    for norm in norms:
        runs = result.select(norm=norm, lr=lr)
        if not runs:
            continue
        x = runs[0].arrays["land_step"]
        for ax, (key, title, ylabel) in zip(axes, PANELS):
            lo, hi, per_seed = ranges(runs, key)
            n = len(lo)
            if key == "land_beta":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    ax.plot(x[:n], np.nanmean(per_seed, 0)[:n], color=colour(norm), lw=1.4, label=label(norm))
            else:
                ax.fill_between(x[:n], lo, hi, color=colour(norm), alpha=0.35, lw=0, label=label(norm))
                ax.plot(x[:n], lo, color=colour(norm), lw=0.6)
                ax.plot(x[:n], hi, color=colour(norm), lw=0.6)
            ax.set_title(title)
            ax.set_ylabel(ylabel)
            ax.set_xlabel("training step")
            if key == "land_loss" or log_all:
                ax.set_yscale("log")
    for lr_ in sorted({r.lr for n in norms for r in result.select(norm=n, lr=lr)}):
        style.edge_of_stability(axes[2], lr_)
    last = max(r.arrays["land_step"][-1] for n in norms for r in result.select(norm=n, lr=lr) if len(r.arrays["land_step"]))
    if plateau is not None and plateau[1] < last:
        for ax in axes:
            ax.axvspan(*plateau, color="#999999", alpha=0.2, lw=0, label="standard network's initial plateau")
    eta = next(r for n in norms for r in result.select(norm=n, lr=lr)).arrays["land_eta"]   # the runs shown
    handles, labels = axes[0].get_legend_handles_labels()
    h2, l2 = axes[2].get_legend_handles_labels()
    extra = [(h, t) for h, t in zip(h2, l2) if "lr" in t or "plateau" in t and t not in labels]
    handles, labels = handles + [h for h, _ in extra], labels + [t for _, t in extra]
    fig.spare.legend(handles, labels, loc="center", frameon=True,
                     title=f"probed step sizes $\\eta$ in\n[{eta[0]:.3g}, {eta[-1]:.3g}] ({len(eta)} values)")
    fig.tight_layout()
    return fig


def predictiveness_vs_distance(result, norms, lr=None, seed=None, log=False):
    """Fig. 11: gradient change against distance moved, one curve per probed step (colour = step)."""
    fig, axes = style.panels(len(norms), height=3.0, sharey=True)
    cmap = plt.get_cmap("plasma")
    for k, (ax, norm) in enumerate(zip(axes, norms)):
        run = result.select(norm=norm, lr=lr, seed=seed)[0]
        eta, steps, change = run.arrays["land_eta"], run.arrays["land_step"], run.arrays["land_grad_change"]
        for k in range(len(steps)):
            ax.plot(eta, change[k], color=cmap(k / max(len(steps) - 1, 1)), lw=0.9, alpha=0.8)
        if eta[-1] / eta[0] > 20:          # the DLN's range spans 3.5 decades, the VGG's less than one
            ax.set_xscale("log")
        if log:
            ax.set_yscale("log")
        ax.set_title(label(norm))
        ax.set_xlabel(r"step size $\eta$ along the gradient")
        if k % 2 == 0:
            ax.set_ylabel(r"$\|\nabla L(w) - \nabla L(w - \eta g)\|_2$")
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(steps[0], steps[-1]))
        fig.colorbar(sm, ax=ax, label="training step", fraction=0.08, pad=0.03)
    fig.tight_layout()
    return fig


def rescaling_figure(result, norms, lr=None):
    """What rescaling the weights cannot fake: the weights' norm ||w|| (all blocks) over training, and the effective
    beta (max over eta) times ||w||^2, which is the same for w and c w when the loss is scale-invariant (a BN
    network); mean over seeds as a line, their range as a band."""
    fig, axes = style.panels(2, height=2.6)
    for norm in norms:
        runs = result.select(norm=norm, lr=lr)
        if not runs:
            continue
        x = runs[0].arrays["land_step"]
        w2 = stack(runs, "land_wnorm") ** 2                     # [seed, T, blocks]
        w2 = np.nansum(w2, axis=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            beta = np.nanmax(stack(runs, "land_beta"), axis=2)  # [seed, T]
        n = min(len(x), w2.shape[1])
        band(axes[0], x[:n], np.sqrt(w2[:, :n]), colour(norm), label(norm))
        band(axes[1], x[:n], (beta * w2)[:, :n], colour(norm), label(norm), log=True)
    axes[0].set_ylabel(r"$\|w\|_2$ (all weight layers)")
    axes[1].set_ylabel(r"effective $\beta \times \|w\|_2^2$")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("training step")
    style.legend_below(fig, ncol=len(norms))
    return fig
