"""One palette and one style for every chapter: a network keeps its colour across the book."""
import matplotlib

from ..norms import NORM_COLOURS, NORM_LABELS
LR_STYLES = {0: "-", 1: "--", 2: ":", 3: "-."}


def setup() -> None:
    """Seaborn's white grid, PNG output (nbval skips images), sizes readable in the built book."""
    import seaborn as sns
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.95)
    matplotlib.rcParams.update({"figure.dpi": 90, "savefig.dpi": 110, "axes.titlesize": 11,
                                "legend.fontsize": 8.5, "figure.autolayout": False})
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        set_matplotlib_formats("png")
    except ImportError:
        pass


def colour(norm: str) -> str:
    return NORM_COLOURS.get(norm, "#333333")


def label(norm: str, lr=None) -> str:
    text = NORM_LABELS.get(norm, norm)
    return text if lr is None else f"{text}, lr {lr:g}"
