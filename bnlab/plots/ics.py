"""Gradient-based ICS over training (Fig. 3): ||G - G'|| (log) and cos(G, G') per layer."""
import matplotlib.pyplot as plt
import numpy as np

from ..statistics import stack
from .common import band
from . import style
from .style import colour, label
from .training import curves


def ics_figure(result, metric="train_acc", lrs=None):
    """For each learning rate: the training metric (with the legend beside it), then one row per measured layer
    with ||G-G'|| and cos(G,G')."""
    lrs = lrs or sorted({r.lr for r in result.runs}, reverse=True)
    layers = list(result.runs[0].arrays["ics_layers"])
    rows = len(lrs) * (1 + len(layers))
    fig, grid = plt.subplots(rows, 2, figsize=(style.COLUMN_WIDTH, 2.2 * rows), squeeze=False)
    for i, lr in enumerate(lrs):
        top = i * (1 + len(layers))
        curves(grid[top][0], result, metric, lrs=[lr])
        grid[top][0].set_title(f"lr = {lr:g}")
        handles, labels = grid[top][0].get_legend_handles_labels()
        grid[top][1].set_axis_off()
        grid[top][1].legend(handles, labels, loc="center", frameon=True, title=f"lr = {lr:g}")
        for j, layer in enumerate(layers):
            ax_l2, ax_cos = grid[top + 1 + j]
            for norm in dict.fromkeys(r.norm for r in result.runs):
                runs = result.select(norm=norm, lr=lr)
                if not runs:
                    continue
                x = runs[0].arrays["ics_step"]
                l2, cos = stack(runs, "ics_l2")[:, :, j], stack(runs, "ics_cos")[:, :, j]
                band(ax_l2, x[:l2.shape[1]], l2, colour(norm), label(norm), log=True)
                band(ax_cos, x[:cos.shape[1]], cos, colour(norm), label(norm))
            ax_l2.set_yscale("log")
            ax_l2.set_title(f"lr = {lr:g}, layer #{layer}: l2 difference")
            ax_cos.set_title(f"lr = {lr:g}, layer #{layer}: cosine")
            ax_l2.set_ylabel(r"$\|G - G'\|_2$")
            ax_cos.set_ylabel(r"$\cos(G, G')$")
            reversed_ = any(float(np.nanmin(line.get_ydata())) < 0 for line in ax_cos.lines)
            ax_cos.set_ylim(-1.05 if reversed_ else -0.05, 1.05)     # a reversed G' (cosine < 0) stays in view
            for ax in (ax_l2, ax_cos):
                ax.set_xlabel("training step")
    fig.tight_layout()
    return fig
