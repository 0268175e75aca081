"""Layer-input distributions over training [S Fig. 1c, 2, 6, 8, 9]: quantiles and moments of a few units.

A "layer input" is the output of block k's normalisation (what the nonlinearity sees), over the batch
for linear layers and over batch x height x width for convolutions [S App. A.2.1].
"""
import numpy as np
import torch

from .base import Probe

QUANTILES = (0.02, 0.15, 0.5, 0.85, 0.98)
SNAPSHOTS = 6          # steps at which raw samples are kept for histograms
SAMPLES = 512          # raw values kept per snapshot and layer (unit 0)


def _width(block) -> int:
    layer = block.layer
    return layer.out_channels if hasattr(layer, "out_channels") else layer.out_features


class ActivationProbe(Probe):
    """Records quantiles, mean and variance of ``units`` random units of each of ``layers`` (the normalisation's
    output), and the mean and standard deviation of the same units at the normalisation's input (the paper's
    sigma_j, Fig. 9: how large and uncontrolled the scale is that BatchNorm divides by)."""

    def __init__(self, model, layers, units, every, seed, total_steps):
        self.layers, self.every = tuple(layers), every
        gen = torch.Generator().manual_seed(1_000 + seed)
        self.units = []
        for k in self.layers:
            c = _width(model.blocks[k - 1])
            self.units.append(torch.randperm(c, generator=gen)[:min(units, c)].sort().values)
        self.n_units = min(len(u) for u in self.units)
        targets = np.linspace(0, total_steps - 1, SNAPSHOTS).astype(int)
        self.snapshot_steps = sorted({min((t // every) * every, total_steps - 1) for t in targets} | {total_steps - 1})
        self.seed = seed
        self.records = {"step": [], "q": [], "mean": [], "var": [], "pre_mean": [], "pre_std": [], "sample_step": [],
                        "samples": []}
        self._captured, self._hooks = {}, []

    def before_forward(self, step, model):
        for k in self.layers:
            norm = model.blocks[k - 1].norm
            self._hooks.append(norm.register_forward_hook(
                lambda mod, inp, out, k=k: self._captured.__setitem__(k, (inp[0].detach(), out.detach()))))

    def after_backward(self, step, model, x, y, loss):
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        q = torch.tensor(QUANTILES, dtype=torch.float64)
        qs, means, vars_, pre_means, pre_stds, samples = [], [], [], [], [], []
        for k, units in zip(self.layers, self.units):
            inp, out = self._captured.pop(k)
            pick = lambda t: t.transpose(0, 1)[units[:self.n_units].to(t.device)].reshape(self.n_units, -1).double()  # noqa: E731
            vals, pre = pick(out), pick(inp)
            qs.append(torch.quantile(vals, q.to(vals.device), dim=1).T)
            means.append(vals.mean(1)), vars_.append(vals.var(1, unbiased=False))
            pre_means.append(pre.mean(1)), pre_stds.append(pre.std(1, unbiased=False))
            if step in self.snapshot_steps:      # which values are kept depends on (seed, step) only
                gen = torch.Generator().manual_seed(2_000_003 * (self.seed + 1) + step)
                n = vals.shape[1]        # fewer values than SAMPLES (small batch, deep layer): draw with replacement
                idx = (torch.randperm(n, generator=gen)[:SAMPLES] if n >= SAMPLES else
                       torch.randint(n, (SAMPLES,), generator=gen)).to(vals.device)
                samples.append(vals[0, idx].float())
        r = self.records
        r["step"].append(step), r["q"].append(torch.stack(qs)), r["mean"].append(torch.stack(means))
        r["var"].append(torch.stack(vars_))
        r["pre_mean"].append(torch.stack(pre_means)), r["pre_std"].append(torch.stack(pre_stds))
        if samples:
            r["sample_step"].append(step), r["samples"].append(torch.stack(samples))

    def arrays(self) -> dict:
        r = self.records
        cpu = lambda xs: torch.stack(xs).cpu().numpy().astype(np.float32) if xs else np.zeros(0, np.float32)  # noqa: E731
        return {"act_layers": np.array(self.layers), "act_quantile_levels": np.array(QUANTILES),
                "act_step": np.array(r["step"]), "act_quantiles": cpu(r["q"]),   # [T, layer, unit, q]
                "act_mean": cpu(r["mean"]), "act_var": cpu(r["var"]),            # [T, layer, unit]
                "act_pre_mean": cpu(r["pre_mean"]), "act_pre_std": cpu(r["pre_std"]),  # [T, layer, unit]
                "act_sample_step": np.array(r["sample_step"]), "act_samples": cpu(r["samples"])}  # [S, layer, n]
