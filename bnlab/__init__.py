"""bnlab: reproduce "How Does Batch Normalization Help Optimization?" (Santurkar et al., 2018).

``bnlab.run("bn_vs_standard")`` returns a result (cached or recomputed, see :func:`bnlab.runner.run`);
``bnlab.plots`` draws it. From Python, ``bnlab.reproduce("ics_vgg", bnlab.RunPlan.from_env(scale="cpu"))`` computes
and saves one (the plan says where and how). Nothing runs at import time.
"""
__version__ = "0.2.0"

from .results import Result, load  # noqa: E402
from .plan import RunPlan  # noqa: E402
from .runner import reproduce, run  # noqa: E402

__all__ = ["__version__", "EXPERIMENTS", "Result", "RunPlan", "load", "reproduce", "run"]


def __getattr__(name):
    if name == "EXPERIMENTS":             # every chapter module's experiments, collected on first use
        from .experiments import registry
        return registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
