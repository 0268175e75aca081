"""The helpers behind the chapters' exercises: the cost line printed before a run, the configs they train, and the
readings of cached results they compute."""
import numpy as np

from bnlab.chapters import batchnorm, noisy_bn


class _Run:
    def __init__(self, norm, acc):
        self.config = {"model": {"norm": norm}, "train": {"lr": 0.1}}
        self.arrays = {"train_acc": np.asarray(acc, float), "step": np.arange(len(acc))}


class _Result:
    def __init__(self, runs):
        self.runs = runs

    def select(self, norm=None, lr=None):
        return [r for r in self.runs if r.config["model"]["norm"] == norm]


def test_exercise_configs_drop_the_probes_and_keep_the_grid():
    cfgs = batchnorm.exercise_configs(["none", "batch"], [0.1, 1.0])
    assert [(c.model.norm, c.train.lr) for c in cfgs] == [("none", 0.1), ("none", 1.0), ("batch", 0.1), ("batch", 1.0)]
    assert all(c.probe.every == 0 and c.train.steps == 12 for c in cfgs)
    assert batchnorm.exercise_configs("batch", 0.1, probes=True)[0].probe.every > 0
    short = batchnorm.exercise_configs("none", 0.1, network="resnet20", steps=4)[0]
    assert short.model.arch == "resnet" and short.model.depth == 20 and short.train.steps == 4


def test_exercise_cost_counts_runs_steps_and_flops():
    from bnlab.flops import run_flops
    cfgs = batchnorm.exercise_configs(["none", "batch"], 0.1)
    line = batchnorm.exercise_cost(cfgs)
    gflop = sum(run_flops(c)["total"] for c in cfgs) / 1e9
    assert line.startswith("cost: 2 run(s), 24 training steps") and f"{gflop:.0f} GFLOP" in line


def test_steps_to_finds_the_first_step_of_the_running_mean_and_nan_when_never():
    acc = [0.1] * 10 + [0.9] * 10
    res = _Result([_Run("batch", acc), _Run("none", [0.1] * 20)])
    assert noisy_bn.steps_to(res, "batch", 0.5, window=4) == [11.0]      # mean of steps 8..11 is 0.5
    assert np.isnan(noisy_bn.steps_to(res, "none", 0.5, window=4)[0])
