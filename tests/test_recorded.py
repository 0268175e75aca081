"""What every run records beyond the paper's measurements, checked against direct computations: the weight and
gradient norms at the landscape probes, sigma_j at the normalisation's input, noisy BN evaluated with its noise on,
and the noise-only control scaled to the activations."""
import numpy as np
import pytest
import torch

from bnlab.scales import SMOKE
from bnlab.models import build
from bnlab.norms import ActivationNoise
from bnlab.recipes import dln_run, vgg_run
from bnlab.evaluation import evaluate, evaluate_with_noise
from bnlab.runner import run_one
from conftest import cpu_plan, needs_fashion


def test_the_noise_only_control_scales_with_the_activations():
    """Relative noise: multiplying the input by 100 multiplies the output by 100 (same draws), so the control's
    noise is as large, relative to each channel, whatever the scale of the standard network's activations."""
    x = torch.randn(64, 6, 5, 5, dtype=torch.float64)
    outs = []
    for scale in (1.0, 100.0):
        noise = ActivationNoise(6, relative=True)
        noise.generator = torch.Generator().manual_seed(3)
        outs.append(noise(scale * x))
    torch.testing.assert_close(outs[1], 100 * outs[0], rtol=1e-12, atol=1e-12)
    plain = ActivationNoise(6)                             # noisy BN's own noise: additive part in absolute units
    plain.generator = torch.Generator().manual_seed(3)
    assert not torch.allclose(plain(100 * x), 100 * outs[0])


def test_dln_runs_record_sigma_at_the_normalisations_input_and_the_weight_norms(shared_home):
    plan = cpu_plan(home=shared_home)       # the smoke runs of dln_summed_loss: trained once in the session's store
    for norm in ("none", "batch"):
        cfg = dln_run(SMOKE, norm, 1e-3, 0)
        run, _ = run_one(cfg.to_dict(), plan)
        a = run.arrays
        assert a["act_pre_std"].shape == a["act_var"].shape and a["land_wnorm"].shape == (len(a["land_step"]), 25)
        if norm == "none":                                 # no normalisation: its input is its output
            np.testing.assert_allclose(a["act_pre_std"] ** 2, a["act_var"], rtol=1e-5)
            np.testing.assert_allclose(a["act_pre_mean"], a["act_mean"], rtol=1e-5, atol=1e-6)
        else:              # at initialisation (gamma 1, beta 0) BN's output has unit variance; its input does not
            np.testing.assert_allclose(a["act_var"][0], 1.0, rtol=1e-3)
            assert np.abs(a["act_pre_std"][0] - 1).max() > 0.05
        # the first probe sees the initial weights: their norms, block by block
        model = build(cfg.model, 0, dtype=torch.float64)
        np.testing.assert_allclose(a["land_wnorm"][0], [b.weight.norm().item() for b in model.blocks], rtol=1e-12)
        assert np.all(a["land_gnorm"] > 0)


@needs_fashion
def test_noisy_bn_is_evaluated_with_its_noise_on_without_disturbing_training(shared_home):
    plan = cpu_plan(home=shared_home)       # noisy_bn's smoke run: trained once in the session's store
    cfg = vgg_run(SMOKE, "noisy_batch", 0.1, 0)
    run, _ = run_one(cfg.to_dict(), plan)
    on, off = run.arrays["test_acc_noise_on"], run.arrays["test_acc"]
    assert on.shape == off.shape and np.all((0 <= on) & (on <= 1))
    from bnlab import data as data_mod
    model = build(cfg.model, 0)
    data = data_mod.load(cfg.data, 0, torch.device("cpu"), plan.data_dir)
    gen = torch.Generator().manual_seed(11)
    for m in model.modules():
        if isinstance(m, ActivationNoise):
            m.generator = gen
    before = gen.get_state()
    noisy, clean = evaluate_with_noise(model, data, torch.float32, 0, 0), evaluate(model, data, torch.float32)
    assert torch.equal(gen.get_state(), before)            # the run's own noise stream is untouched
    assert noisy != clean                                  # and the noise does change the predictions
    assert evaluate_with_noise(model, data, torch.float32, 0, 0) == noisy    # its own stream: reproducible


@pytest.mark.parametrize("network", ["vgg", "dln", "resnet", "resnet20"])
def test_the_cpu_scale_gives_every_arm_all_seeds(network):
    from bnlab.experiments import EXPERIMENTS
    for exp in EXPERIMENTS.values():
        if exp.network == network:
            for norm, lr, _ in exp.grid:
                seeds = {r.train.seed for r in exp.runs("cpu") if r.model.norm == norm and r.train.lr == lr}
                assert len(seeds) >= (5 if network == "dln" else 3), (exp.name, norm, lr)


def test_the_cpu_analyses_that_train_do_so_with_three_seeds_per_network():
    """Sharpness and the 2-D surface train their own VGGs: three seeds each at cpu scale, like every other arm."""
    from bnlab.scales import get_scale
    from bnlab.experiments import EXPERIMENTS
    for name in ("sharpness", "loss_surface"):
        runs = EXPERIMENTS[name].analysis.runs(get_scale("cpu"))
        for norm in ("none", "batch"):
            assert sorted(r.train.seed for r in runs if r.model.norm == norm) == [0, 1, 2], name
