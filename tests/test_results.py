import json

import numpy as np
import pytest

from bnlab import results, runner
from bnlab.config import config_hash, from_dict
from bnlab.experiments import get


def fake_result(experiment="ics_dln", scale="smoke", mutate=None):
    runs = []
    for cfg in get(experiment).runs(scale):
        d = cfg.to_dict()
        if mutate:
            mutate(d)
        runs.append(results.Run(d, "ok", None, {"step": np.arange(3), "train_loss": np.array([3., 2., 1.])},
                                {"wall_s": 1.0}))
    prov = results.provenance(experiment, scale, "dln_synthetic", {"device": "cpu", "device_name": "CPU (test)",
                                                                   "torch": "x", "tf32": False}, 12.0)
    return results.Result(experiment, scale, prov, runs, {"extra": np.ones(2)})


def test_round_trip_keeps_arrays_configs_and_provenance(tmp_path):
    res = fake_result()
    js, npz = results.save(res, tmp_path)
    assert js.name == "smoke.json" and npz.exists()
    assert not list(tmp_path.rglob("*.tmp"))                       # atomic: no temporary files left
    back = results.load_file(js)
    assert back.experiment == "ics_dln" and len(back.runs) == len(res.runs)
    assert from_dict(back.runs[0].config) == from_dict(res.runs[0].config)   # tuples come back as lists
    np.testing.assert_array_equal(back.runs[1]["train_loss"], [3., 2., 1.])
    np.testing.assert_array_equal(back.arrays["extra"], [1., 1.])
    meta = json.loads(js.read_text())
    assert meta["runs"][0]["config_hash"] == config_hash(res.runs[0].config)
    for field in ("experiment", "scale", "dataset", "device", "device_name", "precision", "torch", "bnlab",
                  "git_commit", "source_hash", "date", "wall_s"):
        assert field in back.provenance
    results.check_config(back)                                     # matches the registry


def test_mismatched_config_names_the_fields(tmp_path):
    res = fake_result(mutate=lambda d: d["train"].__setitem__("lr", 0.123))
    js, _ = results.save(res, tmp_path)
    with pytest.raises(results.CachedResultMismatch, match=r"train\.lr.*python -m bnlab reproduce ics_dln"):
        results.check_config(results.load_file(js))


def test_banner_is_deterministic_and_says_what_it_shows():
    res = fake_result()
    res.source = "cached"
    text = res.banner()
    assert text == res.banner()
    assert text.startswith("Cached result: ics_dln, smoke scale, synthetic regression, seed 0;")
    assert "CPU (test)" in text and "BNLAB_MODE=live" in text and "total run time 0.2 min" in text


def test_mode_resolution(monkeypatch):
    assert runner.resolve_mode("live")[0] == "live"
    monkeypatch.setattr(runner, "has_gpu", lambda: False)
    assert runner.resolve_mode() == ("cached", "no GPU is present")
    monkeypatch.setattr(runner, "has_gpu", lambda: True)
    assert runner.resolve_mode() == ("live", "a GPU is present")
    # bnlab.run is the notebooks' edge: it reads $BNLAB_MODE there, and an explicit argument wins
    monkeypatch.setenv("BNLAB_MODE", "cached")
    assert runner.run("ics_dln", quiet=True).source == "cached"
    monkeypatch.setattr(runner, "reproduce", lambda experiment, plan: ("live", plan.scale.name, plan.device))
    assert runner.run("ics_dln", mode="live", scale="smoke", quiet=True) == ("live", "smoke", "cpu")
    with pytest.raises(ValueError, match="cached"):
        runner.resolve_mode("sometimes")


def test_missing_cached_scale_says_how_to_make_it():
    with pytest.raises(results.CachedResultMissing, match="python -m bnlab reproduce landscape_vgg --scale smoke"):
        results.load("landscape_vgg", "smoke")


def test_shipped_cache_matches_manifest_and_registry():
    manifest = json.loads(results.MANIFEST.read_text())
    assert results.verify_manifest() == []
    total = sum(e["bytes"] for e in manifest.values())
    # 35 MB: the chapter on later work ships per-step, per-layer arrays of scale invariance (6.9 MB, float64); the
    # regeneration of issue 23 should store them as float32
    assert total < 35e6, f"shipped caches are {total / 1e6:.1f} MB; keep them under 35 MB"
    assert manifest, "no cached results ship"
    for rel, entry in manifest.items():
        if rel.endswith(".json"):
            experiment, scale = rel[:-5].split("/")
            res = results.load(experiment, scale)             # raises if the registry changed since
            assert entry["provenance"]["scale"] == scale
            assert res.provenance["git_commit"] is None or len(res.provenance["git_commit"]) == 40
            assert all(r.status in ("ok", "diverged") for r in res.runs)


def test_verify_detects_a_tampered_file(tmp_path):
    res = fake_result()
    results.save(res, tmp_path)
    results.write_manifest(tmp_path)
    assert results.verify_manifest(tmp_path) == []
    npz = tmp_path / "ics_dln" / "smoke.npz"
    npz.write_bytes(npz.read_bytes() + b"x")
    assert results.verify_manifest(tmp_path) == ["ics_dln/smoke.npz: sha256 differs"]
