"""The verdicts of the whole book at a glance: one row per step of the argument, one mark per claim, its colour the
verdict and its shape the kind of claim."""
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from ..findings import KIND_ORDER, by_step
from .style import COLUMN_WIDTH, wrap

VERDICT_COLOURS = {"reproduced": "#2a9d55", "not reproduced": "#d1495b", "mixed": "#edae49",
                   "not meaningful": "#9e9e9e", "holds": "#30638e", "confirmed": "#30638e",
                   "fails": "#d1495b", "not confirmed": "#d1495b"}
KIND_MARKERS = {"paper": "o", "extension": "s", "prediction": "D", "identity": "^", "erratum": "v"}
KIND_LABELS = {"paper": "a paper's claim", "extension": "our extension", "prediction": "our prediction",
               "identity": "identity check", "erratum": "erratum"}


def verdict_map(found):
    """Each claim a mark in the row of its step (the papers' claims first): colour = verdict, shape = kind."""
    steps = by_step(found)
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 0.42 * len(steps) + 1.9))
    width = max(len(chosen) for _, _, chosen in steps)
    for row, (_, title, chosen) in enumerate(steps):
        ordered = sorted(chosen, key=lambda v: (KIND_ORDER.index(v.spec.kind), list(VERDICT_COLOURS).index(v.verdict)))
        for x, v in enumerate(ordered):
            ax.scatter(x, row, s=70, marker=KIND_MARKERS[v.spec.kind], color=VERDICT_COLOURS[v.verdict],
                       edgecolor="black", linewidth=0.5, zorder=3)
    ax.set_yticks(range(len(steps)), [wrap(title, 34) for _, title, _ in steps])
    ax.invert_yaxis()
    ax.set_xlim(-0.7, width - 0.3)
    ax.set_xlabel("claims of the step (the papers' own first)")
    ax.set_xticks([])
    ax.grid(axis="x", visible=False)
    shown = {v.verdict for v in found}
    names = {"reproduced": "reproduced", "not reproduced": "not reproduced", "mixed": "mixed",
             "not meaningful": "not meaningful", "holds": "holds / confirmed"}
    colours = [Line2D([], [], marker="o", ls="", color=VERDICT_COLOURS[k], markeredgecolor="black", label=label)
               for k, label in names.items() if k in shown or (k == "holds" and "confirmed" in shown)]
    kinds = [Line2D([], [], marker=m, ls="", color="white", markeredgecolor="black", label=KIND_LABELS[k])
             for k, m in KIND_MARKERS.items() if any(v.spec.kind == k for v in found)]
    height = fig.get_figheight()
    fig.legend(handles=colours, loc="lower center", bbox_to_anchor=(0.5, 0.32 / height), ncol=5, frameon=False,
               handletextpad=0.2, columnspacing=0.9)
    fig.legend(handles=kinds, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=5, frameon=False,
               handletextpad=0.2, columnspacing=0.9)
    fig.tight_layout(rect=(0, 0.75 / height, 1, 1))
    return fig
