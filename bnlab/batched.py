"""Several runs of one small network (seeds, learning rates) stepped as one batched model.

On a CPU a small network's step is mostly per-operation overhead; ``torch.func.vmap`` over the runs' stacked
parameters turns K small operations into one batched one (a batched matmul, a grouped convolution). Each run keeps
its own parameters, buffers, batches and learning rate, and its step is the one a separate run takes, up to
floating-point reordering (a test: float64, 1e-12 relative). ``python -m bnlab.bench`` times it against K
separate steps for every network the suite trains; runs are batched only where that measurement pays.
Plain SGD only (no momentum, no weight decay: how every batched experiment trains), and no normalisation that
draws random numbers (noisy BatchNorm: vmap would have to share or split its random stream).
"""
from __future__ import annotations

import copy

import torch
from torch.func import functional_call, stack_module_state, vmap

from .models import loss_fn
from .norms import ActivationNoise, FixedRescaling

UNBATCHABLE = (ActivationNoise, FixedRescaling)   # random draws in the forward; a data-dependent initialisation


def batchable(model: torch.nn.Module) -> bool:
    """Whether ``model`` can be stepped inside a batch (no random draws, no data-dependent set-up)."""
    return not any(isinstance(m, UNBATCHABLE) for m in model.modules())


class SeedBatch:
    """K models of one architecture (any seeds), each with its own SGD learning rate, stepped as one."""

    def __init__(self, models: list, lrs):
        if not models or not all(batchable(m) for m in models):
            raise ValueError("a seed batch needs models without random or data-dependent layers (see UNBATCHABLE)")
        if len(lrs) != len(models):
            raise ValueError(f"{len(models)} models but {len(lrs)} learning rates")
        params, buffers = stack_module_state(models)
        self.params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        self.buffers = buffers
        ref = next(iter(self.params.values()))
        self.lrs = torch.tensor(list(lrs), dtype=ref.dtype, device=ref.device)
        self.template = copy.deepcopy(models[0]).to("meta")
        self.template.train()

        def loss_and_output(p, b, x, y):
            out = functional_call(self.template, (p, b), (x,))
            return loss_fn(self.template, out, y), out
        self._batched = vmap(loss_and_output, randomness="error")

    def __len__(self) -> int:
        return len(self.lrs)

    def step(self, xs: torch.Tensor, ys: torch.Tensor) -> tuple:
        """One SGD step of every run on its own batch (``xs[k], ys[k]``): (outputs, losses), stacked over runs."""
        losses, outs = self._batched(self.params, self.buffers, xs, ys)
        grads = torch.autograd.grad(losses.sum(), list(self.params.values()))
        with torch.no_grad():
            for p, g in zip(self.params.values(), grads):
                p.add_(g * -self.lrs.view([-1] + [1] * (g.dim() - 1)))
        return outs.detach(), losses.detach()

    def write_to(self, models: list) -> None:
        """Copy every run's parameters and buffers back into its own module (for probes, evaluation, saving)."""
        with torch.no_grad():
            for k, model in enumerate(models):
                for name, t in list(model.named_parameters()) + list(model.named_buffers()):
                    t.copy_((self.params if name in self.params else self.buffers)[name][k])


__all__ = ["SeedBatch", "batchable", "UNBATCHABLE"]
