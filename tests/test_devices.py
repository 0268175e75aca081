"""Devices: a checkpoint moves between device types, and the tests run where they are told on a GPU host."""
import os
import signal

import pytest
import torch

from bnlab import engine as engine_mod
from bnlab.train import train
from conftest import cpu_plan, needs_fashion
from test_train import small_vgg


@needs_fashion
def test_a_checkpoint_written_on_the_other_device_type_resumes_where_it_stopped(tmp_path, monkeypatch, ctrl_c):
    """A run store on Google Drive moves between a CPU and a GPU runtime: noisy BN's noise generator state differs in
    size between the two (a CPU's Mersenne Twister, a GPU's Philox seed and offset), which used to make the checkpoint
    unusable and the run start again from step 0."""
    cfg = small_vgg("noisy_batch", steps=24, every=4)
    calls, real_loss = {"n": 0}, engine_mod.loss_fn

    def interrupting(model, out, y):
        calls["n"] += 1
        if calls["n"] == 15:
            os.kill(os.getpid(), signal.SIGINT)
        return real_loss(model, out, y)

    ckpt = tmp_path / "run.ckpt"
    monkeypatch.setattr(engine_mod, "loss_fn", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, cpu_plan(), checkpoint=ckpt)
    monkeypatch.setattr(engine_mod, "loss_fn", real_loss)
    state = torch.load(ckpt, weights_only=False)
    stopped = state["step"]
    assert 0 < stopped < 24 and state["noise"].numel() == torch.Generator().get_state().numel()
    state["noise"] = torch.cuda.default_generators[0].get_state() if torch.cuda.is_available() else \
        torch.zeros(16, dtype=torch.uint8)          # what a GPU's generator saves: 16 bytes
    torch.save(state, ckpt)
    with pytest.warns(UserWarning, match="another device type"):
        resumed = train(cfg, cpu_plan(), checkpoint=ckpt)
    assert resumed.meta["resumed_at_step"] == stopped and resumed.status == "ok"
    assert len(resumed.arrays["train_loss"]) == 24


def test_on_a_default_cuda_host_the_test_setting_decides_the_device(monkeypatch):
    """On a machine with a GPU, a network built without a device went to the GPU while the tests' inputs stayed on
    the CPU. With the test setting (BNLAB_DEVICE=cpu, conftest), model and data land on the same device."""
    from bnlab.config import DataConfig, ModelConfig
    from bnlab.data import load
    from bnlab.device import pick
    from bnlab.models import build
    assert os.environ.get("BNLAB_DEVICE") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)        # a default-CUDA host, simulated
    assert pick().type == "cpu"
    model = build(ModelConfig(arch="dln", norm="batch", dln_depth=3, dln_dim=4), 0, dtype=torch.float64)
    data = load(DataConfig("dln_synthetic", dln_samples=8, dln_dim=4), 0)
    assert next(model.parameters()).device.type == data.x.device.type == "cpu"
    model(data.x)                                                        # no device mix-up
    monkeypatch.delenv("BNLAB_DEVICE")
    assert pick().type == "cuda"                                          # without the setting, the GPU
