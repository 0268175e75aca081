"""Every registered experiment runs end to end at smoke scale on the CPU, through the same path as the CLI."""
import subprocess
import sys

import numpy as np
import pytest

from bnlab import results, runner
from bnlab.config import config_hash
from bnlab.experiments import EXPERIMENTS
from conftest import cpu_plan, needs_fashion


@needs_fashion
@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_runs_at_smoke_scale(name, tmp_path, shared_home):
    res = runner.reproduce(name, cpu_plan(home=shared_home), out=tmp_path)     # runs shared by experiments: once
    back = results.load_file(tmp_path / name / "smoke.json", "live")
    assert back.provenance["scale"] == "smoke" and back.provenance["device"] == "cpu"
    if EXPERIMENTS[name].analysis is not None:
        numeric = [v for v in back.arrays.values() if v.dtype.kind in "fiuc"]
        # finite, or all NaN where an arm does not measure a quantity (scale_invariance's population arms)
        assert numeric and all(np.all(np.isfinite(v)) or np.all(np.isnan(v)) for v in numeric)
        return
    assert len(back.runs) == len(EXPERIMENTS[name].runs("smoke"))
    for run in back.runs:
        assert run.status in ("ok", "diverged")
        probe = run.config["probe"]
        wanted = {"train_loss"} | ({"ics_l2"} if probe["ics_layers"] else set()) | \
            ({"land_beta"} if probe["landscape"] else set()) | ({"act_quantiles"} if probe["activation_layers"] else set())
        assert wanted <= set(run.arrays) and len(wanted) >= 2     # every run records at least one probe
    results.check_config(back)
    assert "Live result" in res.banner()


@needs_fashion
def test_an_analysis_result_records_its_sized_config_and_a_changed_size_is_caught(tmp_path, shared_home):
    res = runner.reproduce("theory", cpu_plan(home=shared_home), out=tmp_path)
    assert config_hash(res.provenance["config"]) == EXPERIMENTS["theory"].config_hash("smoke")
    back = results.load_file(tmp_path / "theory" / "smoke.json", "live")
    results.check_config(back)
    back.provenance["config"] = {**back.provenance["config"], "sizes": {**back.provenance["config"]["sizes"], "hidden": 64}}
    with pytest.raises(results.CachedResultMismatch, match="sizes.hidden"):
        results.check_config(back)


def test_live_runs_go_to_the_readers_store_not_the_package(monkeypatch, tmp_path):
    before = {p: p.stat().st_mtime for p in results.CACHED_DIR.rglob("*")}
    res = runner.run("theory", mode="live", scale="smoke", quiet=True)
    assert res.source == "live"
    assert (tmp_path / "bnlab_home" / "runs" / "experiments" / "theory" / "smoke.json").exists()
    assert {p: p.stat().st_mtime for p in results.CACHED_DIR.rglob("*")} == before


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "bnlab", *args], capture_output=True, text=True, timeout=600)


def test_cli_list_and_errors(capsys):
    from bnlab.__main__ import main
    out = run_cli("list")                                   # the real entry point, once
    assert out.returncode == 0 and "bn_vs_standard" in out.stdout and "Fig. 3a" in out.stdout
    for argv, why in ((["reproduce", "fig99", "--scale", "smoke"], "unknown experiment"),
                      (["reproduce", "theory", "--scale", "huge"], "invalid choice")):
        with pytest.raises(SystemExit) as bad:
            main(argv)
        assert bad.value.code == 2 and why in capsys.readouterr().err
    assert main(["verify"]) == 0


def test_cli_reproduce_writes_result_with_provenance(tmp_path, capsys):
    from bnlab.__main__ import main
    assert main(["reproduce", "theory", "--scale", "smoke", "--out", str(tmp_path)]) == 0    # the CLI, in this process
    assert "Live result: theory, smoke scale" in capsys.readouterr().out
    assert (tmp_path / "theory" / "smoke.npz").exists()


def test_an_analysis_names_the_data_it_read_at_a_cifar_scale(tmp_path):
    """At colab and paper scale the step-size, sharpness and surface analyses train on CIFAR-10: their provenance and
    banner must say so (they said Fashion-MNIST). Run on a fake CIFAR-10 folder (a tensor cache of random images) at
    smoke sizes with the colab scale's data set; the theory checks read Fashion-MNIST at every scale."""
    import dataclasses
    import torch
    from bnlab.scales import COLAB, SMOKE
    from bnlab.experiments import get
    fake = tmp_path / "data"
    fake.mkdir()
    g = torch.Generator().manual_seed(0)
    torch.save({"x_train": torch.randint(0, 256, (600, 3, 32, 32), dtype=torch.uint8, generator=g),
                "y_train": torch.randint(0, 10, (600,), generator=g),
                "x_test": torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8, generator=g),
                "y_test": torch.randint(0, 10, (300,), generator=g)}, fake / "cifar10.pt")
    cifar_smoke = dataclasses.replace(SMOKE, dataset=COLAB.dataset)
    res = runner.compute("bjorck_step_size", cpu_plan(scale=cifar_smoke, data_dir=fake, home=tmp_path / "home"))
    assert res.provenance["dataset"] == "cifar10" and "CIFAR-10" in res.banner()
    for name in ("bjorck_step_size", "bjorck_step_size_resnet", "sharpness", "loss_surface"):
        assert get(name).dataset_at("colab") == "cifar10" and get(name).dataset_at("paper") == "cifar10"
        assert get(name).dataset_at("cpu") == "fashion_mnist"
    assert get("theory").dataset_at("paper") == "fashion_mnist"
