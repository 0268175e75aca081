"""One palette and one style for every chapter: a network keeps its colour across the book."""
import matplotlib

NORM_COLOURS = {"none": "#4c72b0", "batch": "#dd8452", "torch_batch": "#c44e52", "noisy_batch": "#55a868",
                "noise": "#8172b3", "l1": "#937860", "l2": "#da8bc3", "linf": "#8c8c8c",
                "layer": "#64b5cd", "group": "#ccb974", "rescaled": "#222222"}
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
    from ..experiments import NORM_LABELS
    text = NORM_LABELS.get(norm, norm)
    return text if lr is None else f"{text}, lr {lr:g}"
