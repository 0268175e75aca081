"""Figures of signal propagation at initialisation (the chapter on later work): rank collapse per block, BN's gradient
explosion per layer and after a few steps, plain BN networks by depth, and the residual branch against the skip."""
import numpy as np
from matplotlib import ticker

from . import style
from .common import band
from .style import colour, label

RANK_NETS = (("vgg", "VGG"), ("resnet", "ResNet"), ("dln", "deep linear network"))


def _norms(a, net) -> list:
    return [n for n in ("none", "batch", "layer", "group", "rescaled") if f"{net}/{n}/srank" in a]


def rank_figure(res):
    """Per network, the stable rank of a batch's centred representations and the mean |cos| between two examples'
    representations, block by block (mean over seeds, band: min to max)."""
    a = res.arrays
    fig, axes = style.panels(6, height=2.5)
    for row, (net, title) in enumerate(RANK_NETS):
        ax_rank, ax_cos = axes[2 * row], axes[2 * row + 1]
        for n in _norms(a, net):
            blocks = np.arange(1, a[f"{net}/{n}/srank"].shape[1] + 1)
            band(ax_rank, blocks, a[f"{net}/{n}/srank"], colour(n), label(n), log=True)
            band(ax_cos, blocks, a[f"{net}/{n}/cos"], colour(n), label(n))
        ax_rank.set_yscale("log")
        ax_rank.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax_rank.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax_rank.set_ylabel("stable rank\n(centred batch)")
        ax_cos.set_ylabel("mean |cos| between\ntwo examples")
        ax_cos.set_ylim(0, 1.02)
        for ax in (ax_rank, ax_cos):
            ax.set_title(f"{title} ({a[f'{net}/none/srank'].shape[1]} blocks)")
            ax.set_xlabel("block (input side to output side)")
    style.legend_below(fig, ncol=3)
    return fig


def explosion_figure(res):
    """(a) The squared gradient of the loss at each layer's pre-activation, at initialisation, BN and standard MLP,
    with the slope Yang et al.'s theory predicts; (b) BN's gradient range D_t over the first steps at each rate."""
    a = res.arrays
    fig, axes = style.panels(2, height=3.0)
    for n in ("batch", "none"):
        g = a[f"{n}/grad_sq"]
        layers = np.arange(1, g.shape[1] + 1)
        band(axes[0], layers, g, colour(n), label(n), log=True)
    theory, g_bn = float(a["theory_rate"]), a["batch/grad_sq"]
    last = np.exp(np.nanmean(np.log(g_bn[:, -3])))
    layers = np.arange(1, g_bn.shape[1] + 1)
    axes[0].plot(layers, last * theory ** (g_bn.shape[1] - 2 - layers), "k:", lw=1,
                 label=rf"theory: $\times\,\pi/(\pi-1)$ = {theory:.3f} per layer")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("layer $l$ (input side to output side)")
    axes[0].set_ylabel(r"$\|\partial L/\partial h_l\|^2$ at initialisation")
    axes[0].set_title("gradient at each layer, MLP")
    for k, lr in enumerate(np.atleast_1d(a["dyn_lrs"])):
        D = a["dyn/D"][:, k]
        band(axes[1], np.arange(D.shape[1]), D, colour("batch"), f"{label('batch')}, lr {float(lr):g}",
             style=style.LR_STYLES[k])
    axes[1].set_xscale("symlog", linthresh=1)
    axes[1].set_xlabel("training step $t$")
    axes[1].set_ylabel("$D_t$ = log10 of the gradient\nrange, layer 2 over $L-2$")
    axes[1].set_title("the explosion after a few steps")
    style.legend_below(fig, ncol=2)
    return fig


def trainability_figure(res):
    """Final training accuracy of plain BN MLPs against depth, one line per learning rate, seeds as dots."""
    a = res.arrays
    fig, axes = style.panels(1, height=2.9)
    ax = axes[0]
    depths = np.asarray(a["depths"], dtype=float)
    for k, lr in enumerate(np.atleast_1d(a["lrs"])):
        acc = a["acc"][:, :, k]
        ax.plot(depths, np.nanmean(acc, 0), style.LR_STYLES[k], color=colour("batch"), marker="o",
                label=f"{label('batch')} MLP, lr {float(lr):g}")
        for s in range(acc.shape[0]):
            ax.plot(depths, acc[s], ".", color=colour("batch"), alpha=0.5)
    ax.axhline(0.1, color="#555555", lw=0.8, ls="--", label="chance (0.1)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(depths, [f"{int(d)}" for d in depths])
    ax.set_xlabel("depth (layers, no skip connections)")
    ax.set_ylabel("final training accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def residual_figure(res):
    """(a) The skip connection's mean square per residual block in the first stage; (b) the branch's rms over the
    skip's, against the block's index, with De & Smith's 1/sqrt(k)."""
    a = res.arrays
    fig, axes = style.panels(2, height=2.9)
    n_stage = int(a["stage_blocks"])
    k = np.arange(1, n_stage + 1)
    for n in ("none", "batch"):
        band(axes[0], k, a[f"{n}/skip_sq"][:, :n_stage], colour(n), label(n), log=True)
        band(axes[1], k, a[f"{n}/ratio"][:, :n_stage], colour(n), label(n), log=True)
    first = np.exp(np.nanmean(np.log(a["batch/ratio"][:, 0])))
    axes[1].plot(k, first / np.sqrt(k), "k:", lw=1, label=r"$\propto 1/\sqrt{k}$ (De & Smith)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("residual block $k$ in the first stage")
    axes[0].set_ylabel(r"skip input $E[x^2]$")
    axes[1].set_ylabel("rms(branch) / rms(skip)")
    axes[0].set_title("the signal through the skips")
    axes[1].set_title("branch against skip")
    style.legend_below(fig, ncol=3)
    return fig


__all__ = ["rank_figure", "explosion_figure", "trainability_figure", "residual_figure"]
