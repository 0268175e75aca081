"""Training and test curves (Fig. 1a-b, 2, 3 left column, 5): seeds as bands, one colour per network."""
import numpy as np

from ..statistics import stack
from .common import band, smooth
from . import style
from .style import LR_STYLES, colour, label

METRICS = {"train_acc": ("training accuracy (batch, smoothed)", False),
           "test_acc": ("test accuracy", False),
           "train_loss": ("training loss", True)}


def _groups(result, norms=None, lrs=None):
    norms = norms or list(dict.fromkeys(r.norm for r in result.runs))
    lrs = lrs or sorted({r.lr for r in result.runs}, reverse=True)
    for norm in norms:
        for i, lr in enumerate(lrs):
            runs = result.select(norm=norm, lr=lr)
            if runs:
                yield norm, lr, i, runs


def curves(ax, result, metric="train_acc", norms=None, lrs=None, window=None):
    """One line (mean over seeds) and band (range over seeds) per (network, learning rate)."""
    ylabel, log = METRICS[metric]
    x_key = "eval_step" if metric == "test_acc" else "step"
    for norm, lr, i, runs in _groups(result, norms, lrs):
        ys = stack(runs, metric)
        if metric != "test_acc":
            w = window or max(1, ys.shape[1] // 40)
            ys = np.stack([smooth(y, w) for y in ys])
        x = max((r.arrays[x_key] for r in runs), key=len)[:ys.shape[1]]   # a seed that diverged early has fewer
        n_lrs = len({r.lr for r in result.runs if r.norm == norm}) if lrs is None else len(lrs)
        band(ax, x, ys, colour(norm), label(norm, lr if n_lrs > 1 else None), log=log,
             style=LR_STYLES.get(i, "-"))
        for r in runs:
            if r.status == "diverged":
                ax.axvline(r.diverged_step, color=colour(norm), lw=0.8, ls=":", alpha=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    return ax


def training_figure(result, metrics=("train_acc", "test_acc"), norms=None, lrs=None, title=None, ylims=None,
                    legend_below=False):
    """Panels of the given metrics, two side by side, more stacked in rows; returns the figure. ``ylims``:
    {metric: (bottom, top)}, e.g. to keep a diverged run's last finite loss (10^30 and more) from flattening the
    others. The legend goes into the grid cell left over by an odd number of panels, else inside the last panel,
    or (``legend_below``) under the panels."""
    fig, axes = style.panels(len(metrics))
    for ax, m in zip(axes, metrics):
        curves(ax, result, m, norms, lrs)
        if ylims and m in ylims:
            ax.set_ylim(*ylims[m])
    if title:
        fig.suptitle(title)
    if fig.spare is not None:
        style.legend(fig, None, spare=fig.spare)
        fig.tight_layout()
    elif legend_below:
        style.legend_below(fig)
    else:
        style.legend(fig, axes[-1], loc="best")
        fig.tight_layout()
    return fig
