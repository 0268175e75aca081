import pytest

from bnlab.config import (DataConfig, ModelConfig, ProbeConfig, RunConfig, TrainConfig, config_hash, diff_configs,
                          from_dict, replace)
from bnlab.scales import get_scale
from bnlab.experiments import EXPERIMENTS, get


def test_bad_learning_rate_says_what_the_paper_uses():
    with pytest.raises(ValueError, match="the paper uses 0.1 and 0.5"):
        TrainConfig(lr=-0.1)
    with pytest.raises(ValueError, match="lr must be"):
        TrainConfig(lr=float("inf"))


@pytest.mark.parametrize("make, match", [
    (lambda: ModelConfig(norm="weird"), "unknown norm"),
    (lambda: ModelConfig(arch="resnet999"), "unknown arch"),
    (lambda: DataConfig("mnist"), "unknown dataset"),
    (lambda: TrainConfig(batch_size=1), "BatchNorm needs a batch"),
    (lambda: ProbeConfig(landscape_range=(2.0, 1.0)), "landscape_range"),
    (lambda: RunConfig("x", ModelConfig(arch="dln"), DataConfig("cifar10")), "dln_synthetic"),
    (lambda: RunConfig("x", probe=ProbeConfig(every=1, ics_layers=(15,))), "do not exist"),
    (lambda: get_scale("huge"), "unknown scale"),
    (lambda: ModelConfig(arch="resnet", depth=21), "6n"),
    (lambda: ModelConfig(arch="vgg16", depth=20), "ResNet setting"),
    (lambda: RunConfig("x", ModelConfig(arch="resnet", depth=8), probe=ProbeConfig(every=1, activation_layers=(6,))),
     "resnet has 5 layers"),
])
def test_invalid_configs_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_hash_is_stable_and_sensitive():
    a = RunConfig("r", train=TrainConfig(lr=0.1))
    b = RunConfig("r", train=TrainConfig(lr=0.1))
    c = replace(a, train=replace(a.train, lr=0.5))
    assert config_hash(a) == config_hash(b) == a.hash
    assert config_hash(a) != config_hash(c)
    assert len(a.hash) == 16


def test_round_trip_and_diff():
    cfg = RunConfig("r", probe=ProbeConfig(every=5, ics_layers=(5, 10), landscape=True))
    back = from_dict(cfg.to_dict())
    assert back == cfg and back.hash == cfg.hash
    other = replace(cfg, model=replace(cfg.model, width=0.5), train=replace(cfg.train, seed=3))
    assert diff_configs(cfg.to_dict(), other.to_dict()) == ["model.width", "train.seed"]


def test_registry_runs_match_scale_settings():
    for scale in ("paper", "paper_fmnist", "cpu", "smoke"):
        s = get_scale(scale)
        for exp in EXPERIMENTS.values():
            for cfg in exp.runs(scale):
                if cfg.model.arch == "dln":
                    assert cfg.train.steps == s.dln_steps and cfg.train.precision == "fp64"
                    assert cfg.model.dln_depth == 25 and cfg.data.dln_samples == 1000
                else:
                    steps = (s.resnet.steps or s.vgg_steps) if cfg.model.arch == "resnet" else s.vgg_steps
                    if exp.network == "vgg_long":       # the longer reading (the same runs where the scale sets none)
                        steps = s.vgg_long_steps or s.vgg_steps
                    assert cfg.train.steps == steps and cfg.train.batch_size == 128
                    assert cfg.data.dataset == s.dataset
    # the longer VGG reading: six times the cpu length, and at the paper's sizes the very runs of landscape_vgg
    assert {c.train.steps for c in get("landscape_vgg_long").runs("cpu")} == {6_000}
    assert {c.hash for c in get("landscape_vgg_long").runs("paper")} <= {c.hash for c in get("landscape_vgg").runs("paper")}
    full = {c.hash for c in get("bn_vs_standard").runs("paper_fmnist")}
    assert all(c.model.width == 1.0 and c.train.steps == 15_000 and c.data.dataset == "fashion_mnist"
               for c in get("bn_vs_standard").runs("paper_fmnist"))
    assert not full & {c.hash for c in get("bn_vs_standard").runs("paper")}     # its own cache entries
    sweep = {s: get("bjorck_lr_sweep").runs(s) for s in ("paper", "paper_fmnist", "cpu")}
    assert {c.model.depth for c in sweep["paper_fmnist"]} == {110}
    shallow = get("bjorck_lr_sweep_resnet20")
    assert {c.model.depth for s in ("paper", "cpu", "smoke") for c in shallow.runs(s)} == {20}
    assert {c.model.width for c in shallow.runs("cpu")} == {c.model.width for c in sweep["cpu"]}
    # both cpu sweeps train the same, shortened length, every arm with three seeds
    assert {c.train.steps for c in shallow.runs("cpu") + sweep["cpu"]} == {500}
    assert {c.train.steps for c in sweep["paper"]} == {15_000}
    for runs in (sweep["cpu"], shallow.runs("cpu")):
        arms = {(c.model.norm, c.train.lr) for c in runs}
        assert len(arms) == 6 and all(sorted(c.train.seed for c in runs if (c.model.norm, c.train.lr) == a)
                                      == [0, 1, 2] for a in arms)
    assert {c.model.depth for c in sweep["paper"]} == {110} and {c.model.depth for c in sweep["cpu"]} == {56}
    assert sorted({c.train.lr for c in sweep["paper"]}) == [1e-4, 3e-3, 0.1]      # Bjorck et al.'s rates
    paper = get("bn_vs_standard").runs("paper")
    assert {c.train.lr for c in paper} == {0.01, 0.1, 0.5}
    assert all(c.model.width == 1.0 and c.data.dataset == "cifar10" for c in paper)


def test_unknown_experiment():
    with pytest.raises(KeyError, match="python -m bnlab list"):
        get("fig99")
