"""The helpers behind the chapters' exercises: the cost line printed before a run, the configs they train, and the
readings of cached results they compute."""
import numpy as np

from bnlab import exercises
from bnlab.chapters import batchnorm, bjorck, landscape, noisy_bn, smoothness, theory


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
    cfgs = exercises.exercise_configs(["none", "batch"], [0.1, 1.0])
    assert [(c.model.norm, c.train.lr) for c in cfgs] == [("none", 0.1), ("none", 1.0), ("batch", 0.1), ("batch", 1.0)]
    assert all(c.probe.every == 0 and c.train.steps == 12 for c in cfgs)
    assert exercises.exercise_configs("batch", 0.1, probes=True)[0].probe.every > 0
    short = exercises.exercise_configs("none", 0.1, network="resnet20", steps=4)[0]
    assert short.model.arch == "resnet" and short.model.depth == 20 and short.train.steps == 4


def test_exercise_cost_counts_runs_steps_and_flops():
    from bnlab.flops import run_flops
    cfgs = exercises.exercise_configs(["none", "batch"], 0.1)
    line = exercises.exercise_cost(cfgs)
    gflop = sum(run_flops(c)["total"] for c in cfgs) / 1e9
    assert line.startswith("cost: 2 run(s), 24 training steps") and f"{gflop:.0f} GFLOP" in line


def test_steps_to_finds_the_first_step_of_the_running_mean_and_nan_when_never():
    acc = [0.1] * 10 + [0.9] * 10
    res = _Result([_Run("batch", acc), _Run("none", [0.1] * 20)])
    assert noisy_bn.steps_to(res, "batch", 0.5, window=4) == [11.0]      # mean of steps 8..11 is 0.5
    assert np.isnan(noisy_bn.steps_to(res, "none", 0.5, window=4)[0])


def test_the_chapters_that_train_share_the_exercise_helpers():
    for chapter in (batchnorm, landscape, bjorck):
        assert chapter.exercise_runs is exercises.exercise_runs
    assert batchnorm.exercise_configs is bjorck.exercise_configs is exercises.exercise_configs


def test_exercise_batch_is_a_float64_batch_on_which_theorem_41_holds():
    from bnlab import theory as th
    x, labels = theory.exercise_batch(5)
    assert x.shape == (5, 1024) and x.dtype == th.F64 and labels.shape == (5,)
    check = th.unit_checks(th.init_params(hidden=4), x, labels, range(4))
    assert float(check["thm41_relerr"].max()) < 1e-10


def _analysis(**arrays):
    from bnlab.results import Result
    return Result("x", "cpu", {}, arrays={k: np.asarray(v, float) for k, v in arrays.items()})


def test_basin_share_counts_the_square_below_a_multiple_of_the_centre_per_seed():
    grid = np.full((3, 3), 10.0)
    grid[1, 1], grid[0, 1] = 1.0, 1.5
    res = _analysis(seeds=[0, 1], **{"batch/loss": grid, "batch/seed1/loss": 2 * grid})
    assert smoothness.basin_share(res, "batch", 2) == [2 / 9, 2 / 9]
    assert smoothness.basin_share(res, "batch", 1.2) == [1 / 9, 1 / 9]
    assert smoothness.basin_share(res, "batch", 20) == [1.0, 1.0]


def test_above_edge_splits_the_measurements_into_halves_per_seed():
    res = _analysis(lr=0.1, seeds=[0, 1], **{"none/sharp_max": [30, 10, 25, 25], "none/seed1/sharp_max": [1, 1, 1, 30]})
    assert smoothness.above_edge(res, "none") == {"early": [0.5, 0.0], "late": [1.0, 0.5]}
    one = _analysis(lr=0.1, **{"none/sharp_max": [30]})
    out = smoothness.above_edge(one, "none")
    assert np.isnan(out["early"][0]) and out["late"] == [1.0]
