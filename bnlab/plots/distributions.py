"""Layer-input distributions over training (Fig. 1c, 2, 6, 8, 9): quantile bands, histograms, moments."""
import matplotlib.pyplot as plt
import numpy as np

from ..statistics import layer_index as _layer_index, moment_changes
from .style import colour, label


def quantile_panel(ax, run, layer, unit=0):
    """Median and the 15-85 / 2-98 percentile bands of one unit's input over training."""
    li = _layer_index(run, layer)
    q = run.arrays["act_quantiles"][:, li, unit, :]           # [T, 5]
    x = run.arrays["act_step"]
    c = colour(run.norm)
    ax.fill_between(x, q[:, 0], q[:, 4], color=c, alpha=0.15, lw=0, label="2-98th pct")
    ax.fill_between(x, q[:, 1], q[:, 3], color=c, alpha=0.35, lw=0, label="15-85th pct")
    ax.plot(x, q[:, 2], color=c, lw=1.5, label="median")
    ax.set_xlabel("training step")
    ax.set_ylabel("layer input (pre-ReLU)")


def distribution_figure(result, layers, norms, lr=None, seed=None, unit=0):
    """Rows: networks; columns: layers. One randomly chosen unit per layer, as the paper shows."""
    fig, axes = plt.subplots(len(norms), len(layers), figsize=(3.4 * len(layers), 2.4 * len(norms)),
                             squeeze=False, sharex=True)
    for i, norm in enumerate(norms):
        run = result.select(norm=norm, lr=lr, seed=seed)[0]
        for j, layer in enumerate(layers):
            ax = axes[i][j]
            quantile_panel(ax, run, layer, unit)
            ax.set_title(f"{label(norm)}\nlayer #{layer}", fontsize=9)
            if i < len(norms) - 1:
                ax.set_xlabel("")
            if j:
                ax.set_ylabel("")
    axes[0][-1].legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    return fig


def histogram_figure(result, layer, norms, lr=None, seed=None):
    """Histograms of one unit's input at a few training steps (colour = step), one panel per network."""
    fig, axes = plt.subplots(1, len(norms), figsize=(3.2 * len(norms), 2.8), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, norm in zip(axes[0], norms):
        run = result.select(norm=norm, lr=lr, seed=seed)[0]
        li = _layer_index(run, layer)
        steps, samples = run.arrays["act_sample_step"], run.arrays["act_samples"][:, li, :]
        lo, hi = np.nanpercentile(samples, [0.5, 99.5])
        bins = np.linspace(lo, hi, 40)
        for k, (s, v) in enumerate(zip(steps, samples)):
            ax.hist(v, bins=bins, density=True, histtype="step", lw=1.3,
                    color=cmap(k / max(len(steps) - 1, 1)), label=f"step {s}")
        ax.set_title(f"{label(norm)}, layer #{layer}", fontsize=9)
        ax.set_xlabel("layer input (pre-ReLU)")
    axes[0][0].set_ylabel("density")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def moments_figure(result, layers, norms, lr=None):
    """Fig. 8: how much the first two moments of layer inputs move, step to step and from the start."""
    from .common import band
    keys = (("d_mean", "|change of mean| per interval"), ("d_var", "|change of variance| per interval"),
            ("drift_mean", "|mean - mean at step 0|"), ("drift_var", "|variance - variance at step 0|"))
    fig, axes = plt.subplots(len(keys), len(layers), figsize=(3.4 * len(layers), 2.3 * len(keys)),
                             squeeze=False, sharex=True)
    for j, layer in enumerate(layers):
        for norm in norms:
            runs = result.select(norm=norm, lr=lr)
            m = moment_changes(runs, layer)
            steps = runs[0].arrays["act_step"]
            for i, (k, name) in enumerate(keys):
                x = steps[1:] if k.startswith("d_") else steps
                band(axes[i][j], x[:m[k].shape[1]], m[k], colour(norm), label(norm), log=True)
                axes[i][j].set_yscale("log")
                axes[i][0].set_ylabel(name, fontsize=8)
        axes[0][j].set_title(f"layer #{layer}")
        axes[-1][j].set_xlabel("training step")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig
