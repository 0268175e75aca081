"""Figures of the theory chapter: each theorem's two sides plotted against each other, unit by unit."""
import matplotlib.pyplot as plt
import numpy as np

from . import style

PHASES = ("at initialisation", "after training")


def _diag(ax, a, b, colour, label):
    a, b = np.ravel(a), np.ravel(b)
    ok = (a > 0) & (b > 0)
    ax.loglog(a[ok], b[ok], "o", ms=3, alpha=0.6, color=colour, label=label)


def _identity_line(ax):
    lo, hi = ax.get_xlim()
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="y = x")
    ax.set_xlim(lo, hi)


def _by_batch_size(arrays):
    """(index, batch size m, colour) for each checked batch size, one viridis colour per m."""
    ms = arrays["batch_sizes"]
    cmap = plt.get_cmap("viridis")
    return [(i, m, cmap(i / max(len(ms) - 1, 1))) for i, m in enumerate(ms)]


def theorem41_figure(res):
    """LHS against the corrected and the printed RHS of Thm 4.1; BN's gradient shrink by batch size."""
    a = res.arrays
    fig, axes = style.panels(3, height=3.0)
    for i, m, c in _by_batch_size(a):
        _diag(axes[0], a["thm41_rhs"][1, i], a["thm41_lhs"][1, i], c, f"m = {m}")
        rhs_p = a["thm41_rhs_printed"][1, i]
        axes[1].semilogx(a["thm41_lhs"][1, i].ravel(), (rhs_p / a["thm41_lhs"][1, i]).ravel(), "o", ms=3,
                         alpha=0.6, color=c, label=f"m = {m}")
        axes[2].hist(a["thm41_projection"][:, i].ravel(), bins=30, histtype="step", lw=1.5, color=c,
                     label=f"m = {m}, (m-2)/m = {(m - 2) / m:.2f}")
    _identity_line(axes[0])
    axes[0].set_xlabel("corrected RHS\n" r"$\frac{\gamma^2}{\sigma^2}(\|g\|^2 - \frac{1}{m}\langle 1,g\rangle^2"
                       r" - \frac{1}{m}\langle g,\hat y\rangle^2)$")
    axes[0].set_ylabel(r"LHS $\|\nabla_{y_j}\hat L\|^2$")
    axes[0].set_title("Thm 4.1 with the 1/m correction:\nequality")
    axes[1].axhline(1.0, color="k", ls="--", lw=0.8, label="RHS = LHS")
    axes[1].set_xlabel(r"LHS $\|\nabla_{y_j}\hat L\|^2$")
    axes[1].set_ylabel("printed RHS / LHS")
    axes[1].set_title("Thm 4.1 as printed " r"($1/\sqrt{m}$):" "\nbelow 1 = bound violated")
    axes[2].set_xlabel(r"$\|\nabla_{y_j}\hat L\|^2 / (\frac{\gamma^2}{\sigma^2}\|g\|^2)$")
    axes[2].set_ylabel("units")
    axes[2].set_title("the additive reduction, all units")
    handles, labels = axes[2].get_legend_handles_labels()
    fig.spare.legend(handles + axes[0].get_legend_handles_labels()[0][-1:] + axes[1].get_legend_handles_labels()[0][-1:],
                     labels + ["y = x (left)", "RHS = LHS (right)"], loc="center", frameon=True)
    fig.tight_layout()
    return fig


def theorem42_figure(res):
    """Thm 4.2: the quadratic form against its closed form, and how often it comes out negative."""
    a = res.arrays
    fig, axes = style.panels(2, height=3.2)
    for i, m, c in _by_batch_size(a):
        axes[0].plot(a["thm42_rhs"][:, i].ravel(), a["thm42_lhs"][:, i].ravel(), "o", ms=3, alpha=0.6, color=c,
                     label=f"m = {m}")
    axes[0].set_xscale("symlog", linthresh=1e-8)
    axes[0].set_yscale("symlog", linthresh=1e-8)
    _identity_line(axes[0])
    axes[0].set_xlabel("RHS of eq. (50):\nHessian term - separation term")
    axes[0].set_ylabel(r"LHS $v^\top \nabla^2_{y_j}\hat L\, v$")
    axes[0].set_title("Thm 4.2 (eq. 50):\nequality, both signs")
    frac = (a["thm42_lhs"] < 0).mean(axis=2)                   # [P, M]
    pos = (a["g_yhat"] > 0).mean(axis=2)
    ms = a["batch_sizes"]
    x = np.arange(len(ms))
    for p, phase in enumerate(PHASES):
        axes[1].bar(x + 0.2 * (2 * p - 1) - 0.1, frac[p], width=0.2, label=f"quadratic form < 0, {phase}")
        axes[1].bar(x + 0.2 * (2 * p - 1) + 0.1, pos[p], width=0.2, alpha=0.6,
                    label=rf"$\langle g,\hat y\rangle > 0$, {phase}")
    axes[1].set_xticks(x, [f"m = {m}" for m in ms])
    axes[1].set_ylabel("fraction of units")
    axes[1].set_ylim(0, 1)
    axes[1].set_title("signs, by batch size")
    axes[0].legend()
    handles, labels = axes[1].get_legend_handles_labels()
    fig.tight_layout()
    leg = fig.legend(handles, labels, loc="lower center", ncol=2, frameon=True)
    fig.canvas.draw()
    fig.tight_layout(rect=(0, leg.get_window_extent().height / fig.bbox.height + 0.01, 1, 1))
    return fig


def lemma45_figure(res):
    """Lemma 4.5: distance from the initial weights to W* and to the rescaled optimum k W*, unit by unit."""
    a = res.arrays
    fig, axes = style.panels(2, height=3.2)
    axes[0].loglog(a["lemma45_unit_dist"], a["lemma45_unit_dist_k"], "o", ms=3, color="#dd8452",
                   label="one unit (row of W)")
    _identity_line(axes[0])
    axes[0].set_xlabel(r"$\|W_0 - W^*\|^2$")
    axes[0].set_ylabel(r"$\|W_0 - kW^*\|^2$")
    axes[0].set_title("Lemma 4.5: the rescaled\noptimum is closer")
    axes[0].legend()
    axes[1].semilogx(a["lemma45_scales"], a["lemma45_z_relerr"], "o-", label="BN output")
    axes[1].semilogx(a["lemma45_scales"], a["lemma45_loss_relerr"], "s-", label="loss")
    axes[1].semilogx(a["lemma45_scales"], a["lemma45_grad_relerr"], "^-", label=r"$a\,\nabla_W$ at $aW$ vs $\nabla_W$")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("scale factor a")
    axes[1].set_ylabel("relative difference")
    axes[1].set_title("scale invariance of BN\n(float64 round-off level)")
    axes[1].legend()
    fig.tight_layout()
    return fig
