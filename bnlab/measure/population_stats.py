"""Which statistics a BatchNorm network normalises with at inference (Wu & Johnson 2021, "Rethinking 'Batch' in
BatchNorm").

The running (EMA) statistics average batches seen under weights that kept changing, so they lag the current
network; PreciseBN recomputes them with the weights frozen, as the plain average of per-batch means and (unbiased)
variances over N training batches (fvcore's ``update_bn_stats``: momentum 1, then a cumulative mean). Normalising
each test batch with its own statistics instead (train-mode BN at test time) makes the prediction of an image
depend on its batch, the more so the smaller the batch.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..norms import BatchNorm

BN_TYPES = (BatchNorm, nn.modules.batchnorm._BatchNorm)


def bn_layers(model) -> list:
    """The model's batch-normalisation layers that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, BN_TYPES) and m.running_mean is not None]


@torch.no_grad()
def precise_bn(model, batches, n_batches: int):
    """A copy of ``model`` (left untouched) whose BN running statistics are the mean over ``n_batches`` batches
    (``batches`` yields (x, y)) of each batch's mean and unbiased variance, computed with the weights frozen, in
    eval mode. Other state (parameters, non-BN buffers) is the model's."""
    twin = copy.deepcopy(model)
    layers = bn_layers(twin)
    sums = [(torch.zeros_like(m.running_mean), torch.zeros_like(m.running_var)) for m in layers]
    saved = [m.momentum for m in layers]
    twin.train()
    try:
        for m in layers:
            m.momentum = 1.0            # running_* := this batch's mean and unbiased variance
        for i in range(n_batches):
            x, _ = next(batches)
            twin(x)
            for m, (s_mean, s_var) in zip(layers, sums):
                s_mean += m.running_mean
                s_var += m.running_var
    finally:
        for m, mom in zip(layers, saved):
            m.momentum = mom
    for m, (s_mean, s_var) in zip(layers, sums):
        m.running_mean.copy_(s_mean / n_batches)
        m.running_var.copy_(s_var / n_batches)
    return twin.eval()


@torch.no_grad()
def accuracy_population(model, x, y, chunk: int = 1000) -> float:
    """Accuracy in inference mode (the running statistics the model holds)."""
    was = model.training
    model.eval()
    try:
        correct = sum(int((model(x[i:i + chunk]).argmax(1) == y[i:i + chunk]).sum()) for i in range(0, len(x), chunk))
    finally:
        model.train(was)
    return correct / len(x)


@torch.no_grad()
def accuracy_batch_stats(model, x, y, batch_size: int) -> float:
    """Accuracy when every test batch of ``batch_size`` images is normalised with its own statistics (BN in
    training mode; the running statistics restored afterwards). Images after the last full batch are left out."""
    layers = bn_layers(model)
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in layers]
    was = model.training
    model.train()
    n = (len(x) // batch_size) * batch_size
    try:
        correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                      for i in range(0, n, batch_size))
    finally:
        model.train(was)
        for m, (mean, var, nbt) in zip(layers, saved):
            m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(nbt)
    return correct / n


__all__ = ["bn_layers", "precise_bn", "accuracy_population", "accuracy_batch_stats"]
