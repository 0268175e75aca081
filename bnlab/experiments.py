"""An experiment (a figure of the paper, or a check) and what produces it: either a grid of training runs of one
network (built by ``bnlab.recipes``) or an analysis function (``bnlab.recipes.Analysis``). Each chapter module
(``bnlab/chapters/<slug>.py``) introduces its own; :func:`registry` collects them.
"""
from __future__ import annotations

from dataclasses import dataclass

from .scales import Scale, get_scale
from .recipes import RUN_BUILDERS, Analysis


@dataclass(frozen=True)
class Experiment:
    name: str
    figures: str
    description: str
    network: str = ""             # a key of RUN_BUILDERS for a grid of training runs; "" for an analysis
    grid: tuple = ()              # (norm, lr, all_seeds): all_seeds False = first seed only, unless the scale gives
    #                               every arm of this network all seeds (``Scale.all_seeds_for``, the cpu scale) [ours, for cost]
    analysis: Analysis | None = None

    def __post_init__(self):
        if (self.analysis is None) == (self.network == ""):
            raise ValueError(f"experiment {self.name!r}: give a network and a grid, or an analysis")
        if self.network and self.network not in RUN_BUILDERS:
            raise ValueError(f"experiment {self.name!r}: unknown network {self.network!r}; one of {list(RUN_BUILDERS)}")

    def dataset_at(self, scale: Scale | str) -> str:
        """The data an analysis reads at ``scale`` (a grid's runs name their own)."""
        return self.analysis.data_set(get_scale(scale)) if self.analysis is not None else ""

    def runs(self, scale: Scale | str) -> list:
        """The training runs of a grid at ``scale`` (none for an analysis: it trains its own, see its config)."""
        scale = get_scale(scale)
        if self.analysis is not None:
            return []
        make, seeds = RUN_BUILDERS[self.network], scale.seeds_for(self.network)
        return [make(scale, norm, lr, seed) for norm, lr, all_seeds in self.grid
                for seed in (seeds if all_seeds or self.network in scale.all_seeds_for else seeds[:1])]

    def config_hash(self, scale: Scale | str) -> str:
        """An analysis's sized config hash at ``scale`` (what its stored and cached results are checked against)."""
        return self.analysis.config_hash(get_scale(scale))


def get(name: str) -> Experiment:
    found = registry()
    if name not in found:
        raise KeyError(f"unknown experiment {name!r}; `python -m bnlab list` shows them: {sorted(found)}")
    return found[name]


def registry() -> dict:
    """Every experiment, in the book's order (each chapter module introduces its own)."""
    from . import chapters
    return chapters.experiments()


def __getattr__(name):
    if name == "EXPERIMENTS":
        return registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
