import pytest
import torch

from bnlab import data as data_mod
from bnlab.config import DataConfig
from conftest import needs_fashion


@needs_fashion
def test_fashion_mnist_real_shapes_and_classes():
    d = data_mod.load_images(DataConfig("fashion_mnist"), device="cpu")
    assert d.x_train.shape == (60000, 1, 32, 32) and d.x_train.dtype == torch.uint8
    assert d.x_test.shape == (10000, 1, 32, 32)
    assert torch.equal(torch.bincount(d.y_train), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(d.y_test), torch.full((10,), 1000))
    assert d.x_train[:, :, :2].max() == 0 and d.x_train[:, :, 2:30, 2:30].max() == 255   # centred padding
    assert len(d.classes) == 10 and d.classes[9] == "Ankle boot"
    x, y = next(d.batches(128, seed=0))
    assert x.shape == (128, 1, 32, 32) and x.dtype == torch.float32 and y.shape == (128,)
    assert abs(float(d.normalise(d.x_train[:5000]).mean())) < 0.05


@needs_fashion
def test_batches_resume_where_they_left_off():
    d = data_mod.load_images(DataConfig("fashion_mnist", train_subset=1000, test_subset=100), device="cpu")
    full = d.batches(128, seed=3)
    seq = [next(full)[1] for _ in range(12)]          # crosses an epoch boundary (7 batches per epoch)
    resumed = d.batches(128, seed=3, start=9)
    for k in range(9, 12):
        assert torch.equal(next(resumed)[1], seq[k])
    other = next(d.batches(128, seed=4))[1]
    assert not torch.equal(other, seq[0])


def test_missing_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_DIR", tmp_path / "nowhere")
    with pytest.raises(data_mod.DatasetNotFound, match="apt-get install -y dataset-fashion-mnist"):
        data_mod.load_images(DataConfig("fashion_mnist"), device="cpu", root=tmp_path / "empty", download=False)


def test_missing_cifar_points_to_download_or_fashion(tmp_path):
    pytest.importorskip("torchvision")
    with pytest.raises(data_mod.DatasetNotFound, match="download=True"):
        data_mod.load_images(DataConfig("cifar10"), device="cpu", root=tmp_path, download=False)


def test_dln_data_is_a_linear_map():
    d = data_mod.load_regression(DataConfig("dln_synthetic"), seed=1, device="cpu")
    assert d.x.shape == (1000, 10) and d.A.shape == (10, 10) and d.x.dtype == torch.float64
    torch.testing.assert_close(d.y, d.x @ d.A.T)
    again = data_mod.load_regression(DataConfig("dln_synthetic"), seed=1, device="cpu")
    assert torch.equal(again.A, d.A)
    assert not torch.equal(data_mod.load_regression(DataConfig("dln_synthetic"), seed=2, device="cpu").A, d.A)


def test_channel_statistics_are_computed_once_per_data_set_and_equal_the_direct_computation(tmp_path, monkeypatch):
    """A run used to recompute the training images' mean and std in float64 (seconds per run at cpu scale); now once
    per data set and subset, kept in the process and in the data folder, bit for bit the direct computation."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8, generator=g)
    monkeypatch.setattr(data_mod, "_STATS", {})
    mean, std = data_mod.channel_stats("cifar10", x, tmp_path)
    direct = data_mod._direct_stats(x)
    assert torch.equal(mean, direct[0]) and torch.equal(std, direct[1]) and mean.shape == (1, 3, 1, 1)
    assert (tmp_path / "cifar10-stats.json").exists()

    def boom(_):
        raise AssertionError("recomputed")
    monkeypatch.setattr(data_mod, "_direct_stats", boom)
    assert data_mod.channel_stats("cifar10", x, tmp_path)[0] is mean           # this process: kept
    monkeypatch.setattr(data_mod, "_STATS", {})                                 # another process: read back
    again = data_mod.channel_stats("cifar10", x, tmp_path)
    assert torch.equal(again[0], mean) and torch.equal(again[1], std)
    with pytest.raises(AssertionError, match="recomputed"):                     # another subset is another key
        data_mod.channel_stats("cifar10", x[:100], tmp_path)
