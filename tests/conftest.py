"""CPU-only, small shapes, fixed seeds, and a temporary BNLAB_HOME so tests never touch a reader's cache."""
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("BNLAB_PROGRESS", "0")
# two cores: one torch thread per pytest-xdist worker (scripts/test.sh runs two), both threads otherwise
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory):
    """One run store for the tests that only compute smoke results, so each unique smoke config trains once per
    session. ``scripts/test.sh`` names it (``$BNLAB_TEST_STORE``) and runs the live nbval pass on it afterwards, so
    the chapters reuse these runs instead of training them again."""
    named = os.environ.get("BNLAB_TEST_STORE")
    return Path(named) if named else tmp_path_factory.mktemp("shared_store")


@pytest.fixture(scope="session")
def _data_dir(shared_home):
    """One data folder per test session (the shared store's), so the .pt tensor cache is built once."""
    return shared_home / "data"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch, _data_dir):
    monkeypatch.setenv("BNLAB_HOME", str(tmp_path / "bnlab_home"))
    monkeypatch.setenv("BNLAB_DATA", str(_data_dir))
    monkeypatch.delenv("BNLAB_MODE", raising=False)
    monkeypatch.delenv("BNLAB_SCALE", raising=False)
    monkeypatch.setenv("BNLAB_DEVICE", "cpu")
    yield


def cpu_plan(**changes):
    """The run plan a test runs with: the test's own run store and the session's data folder (the environment
    ``_isolated_home`` sets, read at the edge as ``python -m bnlab`` reads it), smoke scale, the CPU, no bars."""
    from bnlab.plan import RunPlan
    return RunPlan.from_env(scale="smoke", device="cpu", progress=False).with_(**changes)


@pytest.fixture
def plan():
    return cpu_plan()


def fashion_available() -> bool:
    from bnlab.data import DEBIAN_FASHION_DIR
    return (DEBIAN_FASHION_DIR / "train-images-idx3-ubyte.gz").exists()


needs_fashion = pytest.mark.skipif(not fashion_available(),
                                   reason="Fashion-MNIST not installed: apt-get install -y dataset-fashion-mnist")


@pytest.fixture
def ctrl_c():
    """Ctrl-C as in an interactive session: SIGINT raises KeyboardInterrupt in the main thread. (A process started
    in the background by a non-interactive shell, as CI may be, inherits SIGINT ignored.)"""
    import signal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
