"""bnlab: reproduce "How Does Batch Normalization Help Optimization?" (Santurkar et al., 2018).

``bnlab.run("bn_vs_standard")`` returns a result (cached or recomputed, see :func:`bnlab.runner.run`);
``bnlab.plots`` draws it. Nothing runs at import time.
"""
__version__ = "0.2.0"

from .experiments import EXPERIMENTS  # noqa: E402
from .results import Result, load  # noqa: E402
from .runner import reproduce, run  # noqa: E402

__all__ = ["__version__", "EXPERIMENTS", "Result", "load", "reproduce", "run"]
