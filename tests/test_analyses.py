"""The analyses beyond the paper (chapters 8 and 9): sharpness, Bjorck et al.'s step-size test, Li et al.'s surface, the new
normalisations; each checked against an obviously correct reference on tiny networks."""
import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from bnlab import claims, statistics, tables
from bnlab.statistics import divergence_onset, largest_decreasing
from bnlab.config import DataConfig, ModelConfig, ProbeConfig, RunConfig, TrainConfig
from bnlab.measure.sharpness import SharpnessProbe, hessian_top, lanczos_extremes
from bnlab.measure.step_size import relative_loss
from bnlab.measure.surface import ModelHandle, filter_normalised_direction, loss_on, loss_surface
from bnlab.models import Block, Blockwise, build, loss_fn
from bnlab.norms import BatchNorm, FixedRescaling, frozen_state, group_count, make_norm
from bnlab.experiments import get
from bnlab.results import Result
from conftest import cpu_plan, needs_fashion

F64 = torch.float64


def tiny_mlp(norm: bool, seed=0):
    torch.manual_seed(seed)
    blocks = [Block(nn.Linear(6, 5), BatchNorm(5) if norm else nn.Identity(), act=True),
              Block(nn.Linear(5, 4), BatchNorm(4) if norm else nn.Identity(), act=True),
              Block(nn.Linear(4, 3), nn.Identity(), act=False)]
    model = Blockwise(blocks, "classifier").double()
    x = torch.randn(16, 6, dtype=F64)
    y = torch.randint(0, 3, (16,))
    return model, x, y


def explicit_hessian(model, x, y):
    """Obviously correct: the full Hessian of the loss w.r.t. the flattened parameters (BN in training mode)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    ref = copy.deepcopy(model)

    def f(flat):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            params[n] = flat[i:i + s.numel()].view(s)
            i += s.numel()
        return loss_fn(ref, functional_call(ref, params, (x,)), y)

    flat = torch.cat([p.detach().flatten() for p in model.parameters()]).requires_grad_()
    H = torch.autograd.functional.hessian(f, flat)
    g, = torch.autograd.grad(f(flat), flat)
    return H, g.detach()


def snapshot(model):
    return ({n: p.detach().clone() for n, p in model.named_parameters()},
            {n: b.clone() for n, b in model.named_buffers()})


def assert_unchanged(model, snap):
    params, buffers = snap
    for n, p in model.named_parameters():
        assert torch.equal(p, params[n])
    for n, b in model.named_buffers():
        assert torch.equal(b, buffers[n])


# ---- sharpness ----------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", [False, True])
def test_top_hessian_eigenvalue_matches_explicit_hessian(norm):
    model, x, y = tiny_mlp(norm)
    H, g = explicit_hessian(model, x, y)
    eig = torch.linalg.eigvalsh(H)
    snap = snapshot(model)
    res = hessian_top(model, x, y, iters=60, tol=1e-12, generator=torch.Generator().manual_seed(0))
    assert_unchanged(model, snap)
    assert res["max"] == pytest.approx(float(eig[-1]), rel=1e-7)
    assert res["min"] == pytest.approx(float(eig[0]), rel=1e-4)
    assert res["residual"] < 1e-5 * abs(float(eig[-1]))
    assert res["grad_curvature"] == pytest.approx(float(g @ H @ g / (g @ g)), rel=1e-9)
    assert res["hg_ratio"] == pytest.approx(float((H @ g).norm() / g.norm()), rel=1e-9)


def test_lanczos_finds_the_largest_eigenvalue_not_the_largest_magnitude():
    gen = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=F64))
    A = Q @ torch.diag(torch.tensor([-50.0, 2.0, 1.5, 1.0, -1.0, 0.5], dtype=F64)) @ Q.T
    res = lanczos_extremes(lambda v: [A @ v[0]], [torch.randn(6, generator=gen, dtype=F64)], iters=6, tol=0)
    assert res["max"] == pytest.approx(2.0, rel=1e-10)
    assert res["min"] == pytest.approx(-50.0, rel=1e-10)
    assert res["dominant"] == pytest.approx(-50.0, rel=1e-10)
    v = res["vector"][0]
    torch.testing.assert_close(A @ v, 2.0 * v, rtol=0, atol=1e-8)


def tiny_run(norm="batch", steps=6, every=3, **probe):
    return RunConfig(name="tiny", model=ModelConfig(arch="vgg11", norm=norm, width=0.0625, in_channels=1),
                     data=DataConfig("fashion_mnist", train_subset=256, test_subset=64),
                     train=TrainConfig(lr=0.1, steps=steps, batch_size=32, eval_every=steps),
                     probe=ProbeConfig(every=every, **probe))


@needs_fashion
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_sharpness_probe_leaves_training_unchanged(norm):
    from bnlab.train import train
    cfg = tiny_run(norm, steps=4, every=2)
    plain = train(cfg, cpu_plan())
    probed = train(cfg, cpu_plan(), extra_probes=[lambda m: SharpnessProbe(2, iters=4)])
    np.testing.assert_array_equal(plain["train_loss"], probed["train_loss"])
    np.testing.assert_array_equal(probed["sharp_step"], [0, 2, 3])
    assert np.all(probed["sharp_max"] >= probed["sharp_min"])
    assert np.all(probed["sharp_products"] >= 1) and np.all(probed["sharp_products"] <= 4)
    assert np.all(np.isfinite(probed["sharp_hg_ratio"]))


# ---- Bjorck et al.'s relative loss --------------------------------------------------------------
@pytest.mark.parametrize("norm", [False, True])
def test_relative_loss_matches_reference_and_restores(norm):
    model, x, y = tiny_mlp(norm, seed=1)
    loss_fn(model, model(x), y).backward()
    snap = snapshot(model)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    etas = torch.tensor([0.0, 1e-3, 0.1, 10.0], dtype=F64)
    rel = relative_loss(model, x, y, etas)
    assert_unchanged(model, snap)
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())
    for k, eta in enumerate(etas.tolist()):
        with torch.no_grad():
            ref = copy.deepcopy(model)
            base = loss_fn(ref, ref(x), y)
            ref = copy.deepcopy(model)
            for n, p in ref.named_parameters():
                p -= eta * grads[n]
            assert float(rel[k]) == pytest.approx(float(loss_fn(ref, ref(x), y) / base), rel=1e-12)
    assert float(rel[0]) == 1.0


def test_divergence_onset_and_decreasing_range():
    eta = np.array([1e-3, 1e-2, 1e-1, 1.0, 10.0])
    rel = np.array([[0.9, 0.8, 1.2, 5e3, np.inf],      # lowers the loss up to 1e-2, diverges from 1
                    [0.99, 0.9, 0.7, 0.5, 0.4],        # never diverges
                    [1.5, 2e3, 1e4, 1e5, 1e6]])        # never lowers the loss, diverges from 1e-2
    np.testing.assert_array_equal(divergence_onset(eta, rel, 1e3), [1.0, np.inf, 1e-2])
    np.testing.assert_array_equal(largest_decreasing(eta, rel), [1e-2, 10.0, 0.0])


def test_step_size_summary_on_a_known_result():
    eta = np.logspace(-5, 3, 9)
    std = np.where(eta[None] > 1e-3, 1e5, 0.99).repeat(3, 0)      # diverges above 1e-3
    bn = np.where(eta[None] > 10, 1e4, 0.5).repeat(3, 0)          # lowers the loss up to 10
    arrays = {"eta": eta, "threshold": np.asarray(1e3), "none/rel_loss": std, "batch/rel_loss": bn,
              "none/nonfinite": np.zeros_like(std, bool), "batch/nonfinite": np.zeros_like(bn, bool),
              "none/lr": np.asarray(1e-4), "batch/lr": np.asarray(0.1), "none/gnorm": np.full(3, 2.0),
              "batch/gnorm": np.full(3, 0.5), "none/wnorm": np.full(3, 10.0), "batch/wnorm": np.full(3, 10.0)}
    res = Result("bjorck_step_size", "smoke", {}, [], arrays)
    s = statistics.step_size_stats(res, "none")
    assert s["onset"] == 1e-2 and s["decreasing"] == 1e-3 and s["at_lr"] == 0.99
    assert s["onset_dist"] == pytest.approx(1e-2 * 2.0 / 10.0) and s["gnorm"] == 2.0
    found = [claims.judge(spec, res) for spec in claims.specs("bjorck_step_size")]
    assert len(found) == 4 and all(v.holds == [True] for v in found)
    assert all(v.verdict == "not meaningful" and "smoke" in v.why for v in found)     # a smoke result never counts
    found = [claims.judge(spec, Result("bjorck_step_size", "cpu", {}, [], arrays)) for spec in claims.specs("bjorck_step_size")]
    assert [v.verdict for v in found] == ["reproduced"] * 4
    assert "batches > 1000" in tables.step_size_table(res)
    # a network that diverges early only at initialisation (as the ResNet without BN): the first-batch view
    # reproduces the claim, the median view does not
    late = np.where(eta[None] > 10, 1e5, 0.99).repeat(2, 0)
    arrays["none/rel_loss"] = np.concatenate([std[:1], late])
    judged = {spec.id: claims.judge(spec, Result("bjorck_step_size", "cpu", {}, [], arrays))
              for spec in claims.specs("bjorck_step_size")}
    assert judged["step_size_onset_init"].verdict == "reproduced"
    assert judged["step_size_onset_median"].verdict == "not reproduced"
    assert statistics.step_size_stats(res, "none", first=1)["batches"] == 1


# ---- Li et al.'s surface ------------------------------------------------------------------------
def test_filter_normalised_directions():
    model = build(ModelConfig(arch="vgg11", norm="none", width=0.0625, in_channels=1), 0, "cpu", F64)
    d = filter_normalised_direction(model, torch.Generator().manual_seed(0))
    for p, u in zip(model.parameters(), d):
        assert u.shape == p.shape
        if p.dim() == 1:
            assert torch.equal(u, torch.zeros_like(p))            # biases: no direction (Li et al.)
        else:
            torch.testing.assert_close(u.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1))


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_loss_surface_matches_reference_and_restores(norm):
    model = build(ModelConfig(arch="vgg11", norm=norm, width=0.0625, in_channels=1), 0, "cpu", F64)
    x, y = torch.randn(40, 1, 32, 32, dtype=F64), torch.randint(0, 10, (40,))
    model.train()
    with torch.no_grad():
        for _ in range(3):                    # give BN running statistics that differ from the defaults
            model(x * 2 + 1)
    gen = torch.Generator().manual_seed(1)
    d1, d2 = filter_normalised_direction(model, gen), filter_normalised_direction(model, gen)
    snap = snapshot(model)
    coords = [-0.5, 0.0, 0.25]
    grid = loss_surface(model, x, y, d1, d2, coords, coords, batch_size=16)
    assert_unchanged(model, snap)
    assert model.training
    for i, a in enumerate(coords):
        for j, b in enumerate(coords):
            ref = copy.deepcopy(model).eval()
            with torch.no_grad():
                for p, u, v in zip(ref.parameters(), d1, d2):
                    p += a * u + b * v
                out = ref(x)
            assert float(grid["loss"][i, j]) == pytest.approx(float(loss_fn(ref, out, y)), rel=1e-10)
            assert float(grid["acc"][i, j]) == float((out.argmax(1) == y).double().mean())
    assert float(grid["loss"][1, 1]) == pytest.approx(loss_on(model, x, y)[0], rel=1e-12)
    if norm == "batch":                       # training mode: batch statistics, running statistics restored
        train_mode = loss_on(model, x, y, batch_size=40, train_mode=True)[0]
        assert_unchanged(model, snap)
        with torch.no_grad():
            ref = copy.deepcopy(model).train()
            assert train_mode == pytest.approx(float(loss_fn(ref, ref(x), y)), rel=1e-12)


@needs_fashion
def test_model_handle_returns_the_trained_network():
    from bnlab.evaluation import evaluate
    from bnlab.train import train
    from bnlab import data as data_mod
    cfg = tiny_run("batch", every=0)
    handle = ModelHandle()
    res = train(cfg, cpu_plan(), extra_probes=[handle])
    data = data_mod.load(cfg.data, 0, "cpu")
    assert evaluate(handle.model, data, torch.float32)[1] == pytest.approx(res.final_test_acc)
    assert not handle.arrays()


# ---- the new normalisations -----------------------------------------------------------------------
def rescaled_block(seed=0):
    torch.manual_seed(seed)
    return Block(nn.Conv2d(3, 4, 3, padding=1, bias=False), FixedRescaling(4), act=False).double()


def test_fixed_rescaling_equals_bn_on_the_first_batch_then_stays_fixed():
    block = rescaled_block()
    bn_block = copy.deepcopy(block)
    bn_block.norm = BatchNorm(4).double()
    w0 = block.layer.weight.detach().clone()
    x1 = torch.randn(8, 3, 6, 6, dtype=F64) * 3 + 1
    torch.testing.assert_close(block(x1), bn_block(x1))          # BN's output on the first batch
    y0 = nn.functional.conv2d(x1, w0, padding=1)
    scale = torch.sqrt(y0.var((0, 2, 3), unbiased=False) + 1e-5)
    torch.testing.assert_close(block.layer.weight, w0 / scale.view(-1, 1, 1, 1))   # folded into the weights
    x2 = torch.randn(8, 3, 6, 6, dtype=F64) * 0.5 - 2            # later batches: the same fixed map
    expected = (nn.functional.conv2d(x2, w0, padding=1) - y0.mean((0, 2, 3)).view(1, 4, 1, 1)) / scale.view(1, 4, 1, 1)
    torch.testing.assert_close(block(x2), expected)
    torch.testing.assert_close(block.eval()(x2), expected)
    assert not torch.allclose(bn_block(x2), expected)
    block.train()
    with frozen_state(block):                   # measurement passes change nothing
        block(x1 * 5)
    torch.testing.assert_close(block(x2), expected)


def test_fixed_rescaling_has_the_gradient_of_a_plain_layer_with_rescaled_weights():
    block = rescaled_block(1)
    x1, x2 = torch.randn(8, 3, 6, 6, dtype=F64), torch.randn(8, 3, 6, 6, dtype=F64)
    block(x1)
    w = block.layer.weight.detach().clone().requires_grad_()
    ref = (nn.functional.conv2d(x2, w, padding=1) - block.norm.shift.view(1, 4, 1, 1)).pow(2).sum()
    ref.backward()
    block(x2).pow(2).sum().backward()
    torch.testing.assert_close(block.layer.weight.grad, w.grad)   # no 1/sigma factor on the weights' gradient


def test_fixed_rescaling_before_training_is_the_identity():
    x = torch.randn(4, 2, dtype=F64)
    layer = FixedRescaling(2).double().eval()
    torch.testing.assert_close(layer(x), x)
    assert layer.pending_init


@pytest.mark.parametrize("shape", [(4, 8, 5, 5), (6, 12)])
def test_layer_and_group_norm(shape):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=F64) * 4 + 3
    c = shape[1]
    layer = make_norm("layer", c, spatial=len(shape) == 4).double()
    out = layer(x).flatten(1)               # gamma = 1, beta = 0: each example standardised over all its units
    torch.testing.assert_close(out.mean(1), torch.zeros(shape[0], dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(out.var(1, unbiased=False), torch.ones(shape[0], dtype=F64), rtol=1e-4, atol=0)
    group = make_norm("group", c, spatial=len(shape) == 4).double()
    assert group.num_groups == group_count(c)
    per_group = group(x).reshape(shape[0], group.num_groups, -1)
    torch.testing.assert_close(per_group.mean(2), torch.zeros_like(per_group.mean(2)), rtol=0, atol=1e-12)
    assert not hasattr(layer, "running_mean") and not hasattr(group, "running_mean")


def test_group_count_rule():
    assert [group_count(c) for c in (1, 4, 6, 32, 64, 512)] == [1, 2, 3, 16, 32, 32]


@pytest.mark.parametrize("norm", ["layer", "group", "rescaled"])
def test_new_norms_build_a_vgg_without_conv_bias(norm):
    model = build(ModelConfig(arch="vgg16", norm=norm, width=0.0625, in_channels=1), 0, "cpu")
    assert model.blocks[0].layer.bias is None
    out = model(torch.randn(4, 1, 32, 32))
    assert out.shape == (4, 10)


def test_sharpness_probe_state_round_trip():
    model, x, y = tiny_mlp(True)
    probe = SharpnessProbe(1, iters=5)
    loss_fn(model, model(x), y).backward()
    probe.after_backward(0, model, x, y, None)
    fresh = SharpnessProbe(1, iters=5)
    fresh.load_state(probe.state())
    assert fresh.records == probe.records
    assert all(torch.equal(a, b) for a, b in zip(fresh._v, probe._v))
    probe.truncate(0)
    assert not probe.records["step"] and not probe.records["max"]


def test_lr_sweep_claims_on_a_known_result():
    from bnlab.experiments import get
    from bnlab.results import Run

    def run(cfg, acc, diverged=False):
        arrays = {"train_acc": np.full(50, acc), "test_acc": np.array([acc]), "train_loss": np.ones(50)}
        return Run(cfg.to_dict(), "diverged" if diverged else "ok", 3 if diverged else None, arrays)
    outcome = {("none", 1e-4): (0.6, False), ("none", 3e-3): (0.0, True), ("none", 0.1): (0.0, True),
               ("batch", 1e-4): (0.61, False), ("batch", 3e-3): (0.8, False), ("batch", 0.1): (0.9, False)}
    def holds():
        runs = [run(c, *outcome[c.model.norm, c.train.lr]) for c in get("bjorck_lr_sweep").runs("smoke")]
        return [claims.judge(spec, Result("bjorck_lr_sweep", "smoke", {}, runs, {})).holds[0]
                for spec in claims.specs("bjorck_lr_sweep")]
    assert holds() == [True, True, True]
    outcome[("batch", 1e-4)] = (0.1, False)        # BN has not learned at the smallest rate: the precondition fails,
    assert holds() == [True, None, True]           # so "about the same" is not judged (None: not meaningful)
    outcome[("none", 0.1)] = (0.895, False)       # a shallow network without BN that trains at 0.1 as well as BN
    assert holds() == [False, None, False]        # 0.9 vs 0.895 is within the margin


def test_paper_fmnist_takes_the_papers_sizes_and_unknown_scales_fail_clearly():
    from bnlab.scales import PAPER, PAPER_FMNIST
    for sizes in ("resnet", "step_size", "sharpness", "surface", "theory"):
        assert getattr(PAPER_FMNIST, sizes) == getattr(PAPER, sizes)
    assert get("sharpness").config_hash("paper_fmnist") != get("sharpness").config_hash("paper")   # other data
    with pytest.raises(ValueError, match="unknown scale"):
        cpu_plan(scale="huge")


@needs_fashion
def test_sharpness_and_surface_train_once_per_seed_and_are_judged_per_seed(shared_home):
    """Each seed is its own training run (and, for the surface, its own directions); the first keeps the keys the
    figures draw, the claims judge every seed, the tables show one row per network and seed."""
    from bnlab import analyses
    from bnlab.scales import SMOKE, SharpnessSizes, SurfaceSizes
    scale = replace(SMOKE, sharpness=replace(SMOKE.sharpness, seeds=(0, 2)),
                    surface=replace(SMOKE.surface, seeds=(0, 2)))
    plan = cpu_plan(home=shared_home)
    for fn, name, key, table in ((analyses.sharpness, "sharpness", "sharp_max", tables.sharpness_table),
                                 (analyses.surface, "loss_surface", "loss", tables.surface_table)):
        a = fn(scale, plan)
        assert list(a["seeds"]) == [0, 2] and not any("seed0" in k for k in a)
        for net in ("none", "batch"):
            assert a[f"{net}/{key}"].shape == a[f"{net}/seed2/{key}"].shape
            assert not np.array_equal(a[f"{net}/train_loss"], a[f"{net}/seed2/train_loss"])   # other runs
        res = Result(name, "cpu", {}, [], a)
        assert statistics.analysis_seeds(res) == [0, 2]
        rows = table(res).values.tolist()
        assert [r[1] for r in rows] == ["0", "2", "0", "2"] and rows[0][2:] != rows[1][2:]
        for spec in claims.specs(experiment=name):
            v = claims.judge(spec, res)
            assert v.seeds == [0, 2] and len(v.effects) == 2 and v.seed_count == "2"
            assert v.verdict == "not meaningful" and "2 seeds" in v.why          # three are needed
    assert analyses._sharpness_runs(scale)[2].train.seed == 2 and len(analyses._surface_runs(scale)) == 4
    with pytest.raises(ValueError, match="distinct non-negative ints"):
        SharpnessSizes(steps=12, every=6, iters=4, lr=0.1, seeds=(0, 0))
    with pytest.raises(ValueError, match="distinct non-negative ints"):
        SurfaceSizes(steps=12, points=5, images=128, lr=0.1, seeds=())


def test_training_figure_draws_an_arm_whose_first_seed_diverged_early():
    """A sweep arm where seed 0 diverged at step 2 (no evaluation) and seed 1 trained: the curves take their steps
    from the longest run, so the survivor's test accuracy is drawn (the ResNet-56 at lr 0.003 is such an arm)."""
    import matplotlib
    matplotlib.use("Agg")
    from bnlab import plots
    from bnlab.experiments import get
    from bnlab.results import Run
    cfg = get("bjorck_lr_sweep").runs("smoke")[0]
    early = {"step": np.arange(2), "train_loss": np.array([5.0, np.nan]), "train_acc": np.array([0.1, np.nan]),
             "eval_step": np.array([], dtype=int), "test_acc": np.array([])}
    full = {"step": np.arange(12), "train_loss": np.linspace(3, 2, 12), "train_acc": np.linspace(0.1, 0.5, 12),
            "eval_step": np.array([6, 12]), "test_acc": np.array([0.3, 0.4])}
    runs = [Run({**cfg.to_dict(), "train": {**cfg.to_dict()["train"], "seed": s}}, status, step, arrays)
            for s, status, step, arrays in ((0, "diverged", 2, early), (1, "ok", None, full))]
    fig = plots.training_figure(Result("bjorck_lr_sweep", "smoke", {}, runs, {}),
                                metrics=("train_loss", "train_acc", "test_acc"))
    test_panel = fig.axes[2]
    assert list(test_panel.lines[0].get_xdata()) == [6, 12] and list(test_panel.lines[0].get_ydata()) == [0.3, 0.4]
    assert len(fig.axes[0].lines[0].get_xdata()) == 12
