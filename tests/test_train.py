import os
import signal

import numpy as np
import pytest
import torch

import bnlab.engine as engine_mod
from bnlab.config import DataConfig, ModelConfig, ProbeConfig, RunConfig, TrainConfig
from bnlab.train import train
from conftest import cpu_plan, needs_fashion


def small_vgg(norm="batch", steps=20, every=5, seed=0, lr=0.1):
    return RunConfig("t", ModelConfig(arch="vgg16", norm=norm, width=0.0625, in_channels=1),
                     DataConfig("fashion_mnist", train_subset=1024, test_subset=200),
                     TrainConfig(lr=lr, steps=steps, seed=seed, eval_every=10),
                     ProbeConfig(every=every, activation_layers=(2, 13), ics_layers=(5, 10), landscape=True,
                                 landscape_points=3))


def dln(norm="none", lr=1e-6, steps=40, every=10):
    return RunConfig("d", ModelConfig(arch="dln", norm=norm), DataConfig("dln_synthetic"),
                     TrainConfig(lr=lr, steps=steps, batch_size=1000, precision="fp64", eval_every=steps),
                     ProbeConfig(every=every, ics_layers=(9, 17), landscape=True, landscape_points=3,
                                 landscape_range=(0.01, 30.0)))


def test_divergence_is_recorded_not_raised():
    res = train(dln(lr=0.5, steps=120, every=0 or 200), cpu_plan())
    assert res.status == "diverged"
    assert 0 <= res.diverged_step < 120
    loss = res.arrays["train_loss"]
    assert np.isfinite(loss[:res.diverged_step]).all() and not np.isfinite(loss[res.diverged_step])


def test_dln_trains_at_the_papers_learning_rate():
    res = train(dln(norm="batch", steps=60), cpu_plan())
    assert res.status == "ok"
    loss = res.arrays["train_loss"]
    assert loss[-1] < loss[0]
    assert res.arrays["ics_l2"].shape == (len(res.arrays["ics_step"]), 2)


@needs_fashion
def test_vgg_learns_fashion_mnist_and_records_everything():
    res = train(small_vgg(steps=60, every=20), cpu_plan())
    a = res.arrays
    assert res.status == "ok"
    assert a["train_loss"][-10:].mean() < a["train_loss"][:5].mean()
    assert list(a["eval_step"]) == [10, 20, 30, 40, 50, 60] and a["test_acc"][-1] > 0.3
    assert list(a["act_step"]) == [0, 20, 40, 59] and a["act_quantiles"].shape == (4, 2, 4, 5)
    assert (np.diff(a["act_quantiles"], axis=-1) >= 0).all()      # quantiles are ordered
    assert a["land_loss"].shape == (4, 3) and np.isfinite(a["land_beta"]).all()


@needs_fashion
@pytest.mark.parametrize("norm", ["batch", "noisy_batch"])
def test_probes_do_not_disturb_training(norm):
    with_probes = train(small_vgg(norm, steps=12, every=3), cpu_plan())
    without = train(small_vgg(norm, steps=12, every=0), cpu_plan())
    np.testing.assert_array_equal(with_probes.arrays["train_loss"], without.arrays["train_loss"])
    np.testing.assert_array_equal(with_probes.arrays["test_acc"], without.arrays["test_acc"])


@needs_fashion
def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch, ctrl_c):
    cfg = small_vgg("noisy_batch", steps=12, every=4)
    reference = train(cfg, cpu_plan())
    calls = {"n": 0}
    real_loss = engine_mod.loss_fn         # the training step's loss (probes compute theirs separately)

    def interrupting(model, out, y):
        calls["n"] += 1
        if calls["n"] == 7:                           # after the probes of step 4, before those of step 8
            os.kill(os.getpid(), signal.SIGINT)      # Ctrl-C in the middle of a step
        return real_loss(model, out, y)

    ckpt = tmp_path / "run.ckpt"
    monkeypatch.setattr(engine_mod, "loss_fn", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, cpu_plan(), checkpoint=ckpt)
    assert ckpt.exists()
    monkeypatch.setattr(engine_mod, "loss_fn", real_loss)
    resumed = train(cfg, cpu_plan(), checkpoint=ckpt)
    assert not ckpt.exists()
    assert set(resumed.arrays) == set(reference.arrays)
    for k, v in reference.arrays.items():
        np.testing.assert_allclose(resumed.arrays[k], v, rtol=1e-6, atol=1e-7, err_msg=k)


@needs_fashion
def test_activation_probe_handles_batches_smaller_than_its_sample():
    from bnlab.measure.activations import SAMPLES
    cfg = RunConfig("s", ModelConfig(arch="vgg16", norm="batch", width=0.0625, in_channels=1),
                    DataConfig("fashion_mnist", train_subset=256, test_subset=64),
                    TrainConfig(lr=0.1, steps=3, batch_size=16, eval_every=3),
                    ProbeConfig(every=1, activation_layers=(2, 13)))
    res = train(cfg, cpu_plan())        # layer 13 holds 16 x 2 x 2 = 64 values per channel
    assert res.arrays["act_samples"].shape[-1] == SAMPLES
