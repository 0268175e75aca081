"""Layer-input distributions over training (Fig. 1c, 2, 6, 8, 9): quantile bands, histograms, moments."""
import matplotlib.pyplot as plt
import numpy as np

from ..statistics import layer_index as _layer_index, moment_changes
from .common import band
from . import style
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
    """One panel per (layer, network), layer by layer, two panels a row. One randomly chosen unit per layer, as
    the paper shows."""
    fig, axes = style.panels(len(layers) * len(norms), height=2.3, sharex=True)
    pairs = [(layer, norm) for layer in layers for norm in norms]
    for k, (ax, (layer, norm)) in enumerate(zip(axes, pairs)):
        run = result.select(norm=norm, lr=lr, seed=seed)[0]
        quantile_panel(ax, run, layer, unit)
        ax.set_title(f"{label(norm)}, layer #{layer}")
        if k < len(axes) - 2:
            ax.set_xlabel("")
        if k % 2:
            ax.set_ylabel("")
    axes[0].legend(loc="upper left")
    fig.tight_layout()
    return fig


def histogram_figure(result, layer, norms, lr=None, seed=None):
    """Histograms of one unit's input at a few training steps (colour = step), one panel per network."""
    fig, axes = style.panels(len(norms), height=2.5)
    cmap = plt.get_cmap("viridis")
    for k, (ax, norm) in enumerate(zip(axes, norms)):
        run = result.select(norm=norm, lr=lr, seed=seed)[0]
        li = _layer_index(run, layer)
        steps, samples = run.arrays["act_sample_step"], run.arrays["act_samples"][:, li, :]
        lo, hi = np.nanpercentile(samples, [0.5, 99.5])
        bins = np.linspace(lo, hi, 40)
        for j, (s, v) in enumerate(zip(steps, samples)):
            ax.hist(v, bins=bins, density=True, histtype="step", lw=1.3,
                    color=cmap(j / max(len(steps) - 1, 1)), label=f"step {s}")
        ax.set_title(f"{label(norm)}, layer #{layer}")
        ax.set_xlabel("layer input (pre-ReLU)")
        if k % 2 == 0:
            ax.set_ylabel("density")
    if fig.spare is not None:
        style.legend(fig, None, spare=fig.spare, ncol=2)
        fig.tight_layout()
    else:
        style.legend_below(fig, ncol=min(len(steps), 4))
    return fig


ABSOLUTE_MOMENTS = (("d_mean", "|change of mean|\nper interval"), ("d_var", "|change of variance|\nper interval"),
                    ("drift_mean", "|mean - mean\nat step 0|"), ("drift_var", "|variance - variance\nat step 0|"))
RELATIVE_MOMENTS = (("rel_d_mean", "|change of mean| / std\nper interval"),
                    ("rel_d_std", "|change of std| / std\nper interval"))


def moments_figure(result, layers, norms, lr=None, relative=False):
    """Fig. 8: how much the first two moments of layer inputs move, step to step and from the start: four panels
    per layer (two rows), the networks as lines. ``relative``: the step-to-step changes in units of each unit's own
    standard deviation instead (two panels per layer), which compares networks whose activations differ in size."""
    keys = RELATIVE_MOMENTS if relative else ABSOLUTE_MOMENTS
    fig, axes = style.panels(len(keys) * len(layers), height=2.1, sharex=True)
    for j, layer in enumerate(layers):
        for norm in norms:
            runs = result.select(norm=norm, lr=lr)
            m = moment_changes(runs, layer)
            steps = runs[0].arrays["act_step"]
            for i, (k, name) in enumerate(keys):
                ax = axes[len(keys) * j + i]
                x = steps[1:] if "d_" in k else steps
                band(ax, x[:m[k].shape[1]], m[k], colour(norm), label(norm), log=True)
                ax.set_yscale("log")
                ax.set_ylabel(name)
                ax.set_title(f"layer #{layer}")
    for ax in axes[-2:]:
        ax.set_xlabel("training step")
    style.legend_below(fig, ncol=min(len(norms), 3))
    return fig


def scale_figure(result, layers, norms, lr=None):
    """Fig. 9: the standard deviation sigma_j of a layer's input to its normalisation (what BatchNorm divides by)
    over training, median over the recorded units, band over seeds; one panel per network, a line per layer."""
    fig, axes = style.panels(len(norms), height=2.6, sharey=True)
    shades = ("-", "--", ":", "-.")
    for ax, norm in zip(axes, norms):
        runs = result.select(norm=norm, lr=lr)
        steps = runs[0].arrays["act_step"]
        for j, layer in enumerate(layers):
            li = _layer_index(runs[0], layer)
            sig = np.stack([np.median(r.arrays["act_pre_std"][:, li, :], axis=-1) for r in runs])
            band(ax, steps[:sig.shape[1]], sig, colour(norm), f"layer #{layer}", log=True, style=shades[j % 4])
        ax.set_yscale("log")
        ax.set_title(label(norm))
        ax.set_xlabel("training step")
    axes[0].set_ylabel(r"$\sigma_j$ of the input to the" + "\nnormalisation (median of units)")
    style.legend_below(fig, ncol=len(layers), title="line: mean over seeds; band: their range")
    return fig
