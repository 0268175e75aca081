"""Gradient-based ICS over training (Fig. 3): ||G - G'|| (log) and cos(G, G') per layer."""
import matplotlib.pyplot as plt

from ..statistics import stack
from .common import band
from .style import colour, label
from .training import curves


def ics_figure(result, metric="train_acc", lrs=None):
    """Columns: training metric, then ||G-G'|| and cos(G,G') for each measured layer; rows: learning rates."""
    lrs = lrs or sorted({r.lr for r in result.runs}, reverse=True)
    layers = list(result.runs[0].arrays["ics_layers"])
    fig, axes = plt.subplots(len(lrs), 1 + 2 * len(layers), figsize=(3.3 * (1 + 2 * len(layers)), 2.8 * len(lrs)),
                             squeeze=False)
    for i, lr in enumerate(lrs):
        curves(axes[i][0], result, metric, lrs=[lr])
        axes[i][0].set_title(f"lr = {lr:g}")
        for j, layer in enumerate(layers):
            for norm in dict.fromkeys(r.norm for r in result.runs):
                runs = result.select(norm=norm, lr=lr)
                if not runs:
                    continue
                x = runs[0].arrays["ics_step"]
                l2, cos = stack(runs, "ics_l2")[:, :, j], stack(runs, "ics_cos")[:, :, j]
                band(axes[i][1 + 2 * j], x[:l2.shape[1]], l2, colour(norm), label(norm), log=True)
                band(axes[i][2 + 2 * j], x[:cos.shape[1]], cos, colour(norm), label(norm))
            ax_l2, ax_cos = axes[i][1 + 2 * j], axes[i][2 + 2 * j]
            ax_l2.set_yscale("log")
            ax_l2.set_title(f"layer #{layer}: l2 difference")
            ax_cos.set_title(f"layer #{layer}: cosine")
            ax_l2.set_ylabel(r"$\|G - G'\|_2$")
            ax_cos.set_ylabel(r"$\cos(G, G')$")
            ax_cos.set_ylim(-0.05, 1.05)
            for ax in (ax_l2, ax_cos):
                ax.set_xlabel("training step")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
