"""Figures of BN's scale invariance in training and of its population statistics at inference (the chapter on later
work): the effective learning rate eta/||W||^2 at two nominal rates, the angle a step turns the weights under weight
decay against its equilibrium, and test accuracy with running averages, PreciseBN and batch statistics."""
import numpy as np

from . import style
from .common import band, smooth

ARM_LABELS = {"k1": "conv lr 0.1", "k100": "conv lr 10 (x100)", "wd0.02": "lr 0.1, weight decay 0.02",
              "wd0.08": "lr 0.1, weight decay 0.08", "lr0.5": "lr 0.5"}
ARM_COLOURS = {"k1": "#dd8452", "k100": "#8172b3", "wd0.02": "#55a868", "wd0.08": "#c44e52", "lr0.5": "#937860"}


def _per_step(a, arm, key):
    """[seeds, steps]: the median over conv layers of ``key`` per step."""
    return np.nanmedian(a[f"{arm}/{key}"], axis=-1)


def dynamics_figure(res):
    """(a) Effective rate eta/||W||^2 per step at nominal conv rates 0.1 and 10; (b) their training accuracy;
    (c) the angle between W_t and W_t+1 per step with weight decay, and the equilibrium angle Delta* (dashed)."""
    a = res.arrays
    fig, axes = style.panels(3, height=2.7)
    for arm in ("k1", "k100"):
        eff = float(a[f"{arm}/conv_lr"]) / a[f"{arm}/w_sq"]           # [seeds, steps, layers]
        steps = np.arange(1, eff.shape[1] + 1)
        band(axes[0], steps, np.nanmedian(eff, -1), ARM_COLOURS[arm], ARM_LABELS[arm], log=True)
        acc = np.stack([smooth(x, 25) for x in a[f"{arm}/train_acc"]])
        band(axes[1], steps, acc, ARM_COLOURS[arm], ARM_LABELS[arm])
    axes[0].set_yscale("log")
    axes[0].set_ylabel(r"effective rate $\eta/\|W\|^2$" "\n(median over conv layers)")
    axes[1].set_ylabel("training accuracy\n(smoothed over 25 steps)")
    for arm in ("wd0.02", "wd0.08"):
        ang = _per_step(a, arm, "angle")
        band(axes[2], np.arange(1, ang.shape[1] + 1), ang, ARM_COLOURS[arm], ARM_LABELS[arm], log=True)
        axes[2].axhline(float(a[f"{arm}/delta_star"]), color=ARM_COLOURS[arm], ls="--", lw=1)
    axes[2].set_yscale("log")
    axes[2].set_ylabel("angle turned per step (rad)\n(median over conv layers)")
    axes[2].set_title(r"dashed: equilibrium $\Delta^*$")
    for ax in axes:
        ax.set_xlabel("training step")
    style.legend(fig, None, spare=fig.spare)
    fig.tight_layout()
    return fig


def population_figure(res):
    """Test accuracy at the evaluation steps with running averages (EMA), PreciseBN and each test batch's own
    statistics, at lr 0.1 and 0.5; and accuracy with batch statistics against the test batch's size."""
    a = res.arrays
    fig, axes = style.panels(3, height=2.7)
    steps = np.asarray(a["eval_step"])
    ways = (("acc_ema", "running averages (EMA)", "#4c72b0", "-"), ("acc_precise", "PreciseBN", "#dd8452", "--"),
            ("acc_batch", f"batch statistics ({int(a['batch'])} per batch)", "#55a868", ":"))
    for ax, arm in zip(axes, ("k1", "lr0.5")):
        for key, name, c, ls in ways:
            band(ax, steps, a[f"{arm}/{key}"], c, name, style=ls)
        ax.set_title(ARM_LABELS[arm].replace("conv ", ""))
        ax.set_xlabel("training step")
        ax.set_ylabel("test accuracy")
    sizes = np.asarray(a["small_batches"], dtype=float)
    for arm in ("k1", "lr0.5"):
        band(axes[2], sizes, a[f"{arm}/acc_small_batches"], ARM_COLOURS[arm], ARM_LABELS[arm].replace("conv ", ""))
    axes[2].set_xscale("log", base=2)
    axes[2].set_xticks(sizes, [f"{int(s)}" for s in sizes])
    axes[2].set_xlabel("test batch size (batch statistics)")
    axes[2].set_ylabel("final test accuracy")
    axes[2].set_title("small test batches")
    style.legend(fig, None, spare=fig.spare)
    fig.tight_layout()
    return fig


__all__ = ["dynamics_figure", "population_figure"]
