"""Chapter: BatchNorm, the algorithm (Ioffe & Szegedy 2015): its checks against torch's, and the VGG trained with
and without it, the runs the rest of the book reads."""
from __future__ import annotations

import numpy as np

from .. import norm_checks, tables
from ..exercises import exercise_configs, exercise_cost, exercise_runs  # noqa: F401  (the exercises train through them)
from ..passages import passage
from ..statistics import final
from . import Chapter, View


def batch_dependence() -> dict:
    """How far one example's output moves when the rest of its batch changes, in training and in inference mode."""
    dep = norm_checks.batch_dependence()
    return {"dep_train": (dep["train"], ".3f"), "dep_eval": (dep["eval"], ".1f")}


@passage
def final_accuracy(res, lr=0.1) -> dict:
    """Mean final training accuracy of each network at ``lr``, and how many seeds it is the mean of."""
    acc = {n: [final(r, "train_acc") for r in res.select(norm=n, lr=lr)] for n in ("none", "batch")}
    return {**{f"acc_{n}": (np.mean(values), ".3f") for n, values in acc.items()},
            f"seeds_lr{lr:g}": (str(len(acc["batch"])), "")}


CHAPTER = Chapter(
    "batchnorm",
    computes=("bn_vs_standard",),
    views={"bn_vs_standard": View((tables.training_table,), (final_accuracy,), claims=False)},
)

show = CHAPTER.show
