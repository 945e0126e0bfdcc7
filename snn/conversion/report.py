"""Accuracy against T of a converted SNN (one run of T_max steps), per-layer firing rates and
rate-coding errors, saved as JSON and a PNG plot."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from snn.conversion.converter import ConvertedSNN
from snn.conversion.data import DataLike, iter_batches
from snn.conversion.prepare import activation_sites, prepare_ann
from snn.state import reset, stateful

__all__ = ["conversion_report", "default_checkpoints", "save_report", "plot_report"]

log = logging.getLogger("snn")


def default_checkpoints(T_max: int) -> list[int]:
    """``[1, 2, 4, …, 2^k ≤ T_max]`` plus ``T_max`` itself (timesteps, ascending).

    Raises:
        ValueError: ``T_max`` is not a positive int.
    """
    if isinstance(T_max, bool) or not isinstance(T_max, int) or T_max < 1:
        raise ValueError(f"T_max must be a positive int, got {T_max!r}")
    ts = [1 << k for k in range(T_max.bit_length()) if (1 << k) <= T_max]
    return ts + ([T_max] if ts[-1] != T_max else [])


class _Probe:
    """Spike counts of one IF layer during the SNN run; rate-coding error at the checkpoints."""

    def __init__(self, theta: Tensor, checkpoints: Sequence[int]) -> None:
        self.theta, self.checkpoints = theta, list(checkpoints)
        self.count: Optional[Tensor] = None
        self.ref: Optional[Tensor] = None  # the ANN activation [B, ...] of the current batch
        self.t0 = 0
        self.err = torch.zeros(len(self.checkpoints), dtype=torch.float64)
        self.spikes = 0.0
        self.neuron_steps = 0

    def start(self, ref: Optional[Tensor]) -> None:
        self.count, self.ref, self.t0 = None, ref, 0

    def hook(self, module: nn.Module, inputs: Any, s: Tensor) -> None:
        Tc = s.shape[0]
        self.spikes += float(s.sum())
        self.neuron_steps += s.numel()
        if self.ref is not None:
            th = self.theta.view(-1, *([1] * (s.dim() - 3))) if self.theta.dim() == 1 else self.theta
            th = th.to(s.device)
            cum = torch.cumsum(s, 0) + (self.count if self.count is not None else 0)
            for k, t in enumerate(self.checkpoints):
                if self.t0 < t <= self.t0 + Tc:
                    rate = cum[t - self.t0 - 1] / t
                    self.err[k] += float(((rate * th - self.ref).abs() / th).flatten(1).mean(1).sum())
            self.count = cum[-1]
        self.t0 += Tc


def _classes(out: Tensor) -> Tensor:
    return out.argmax(1) if out.dim() >= 2 else out


@torch.no_grad()
def conversion_report(snn_model: ConvertedSNN, data: DataLike, ann: Optional[nn.Module] = None, *, T_max: int = 256,
                      checkpoints: Optional[Sequence[int]] = None, batch_size: int = 64, chunk: int = 32,
                      layer_errors: bool = True, max_samples: Optional[int] = None,
                      device: str | torch.device = "cpu") -> dict[str, Any]:
    r"""Accuracy of a converted SNN against the number of timesteps, in one run of ``T_max`` steps.

    Each test input is presented for ``T_max`` steps (direct encoding, fed in chunks of
    ``chunk`` steps with the state carried, so memory does not grow with ``T_max``), and the
    prediction ``argmax V[t]`` of the accumulated output is read at every checkpoint ``t``.
    Also measured, over the same run:

    * ``agreement[k]``: fraction of inputs where the SNN at ``T = checkpoints[k]`` predicts the
      ANN's class (needs ``ann``);
    * ``firing_rate[layer]``: spikes per neuron per timestep over ``T_max``;
    * ``activation_error[layer][k]``: mean over neurons and inputs of
      :math:`|r_i(t)\,\theta_i - a_i| / \theta_i`, the rate-coding error of the layer in units
      of its threshold (:math:`r_i(t)` = spikes / t, :math:`a_i` = the ANN activation; Rueckauer
      et al. 2017, Eq. 5: it falls as ``1/t`` in the first layer); needs ``ann``.

    Args:
        snn_model: from :func:`snn.convert`.
        data: labelled test data: ``(inputs [N, ...], labels [N])``, a Dataset of ``(x, y)`` or
            a DataLoader.
        ann: the source ANN (for its accuracy, agreement and per-layer errors), or ``None``.
        T_max: timesteps of the run.
        checkpoints: where to read out (default :func:`default_checkpoints`); each in ``[1, T_max]``.
        batch_size, chunk: samples per batch, timesteps per SNN call.
        layer_errors: compute ``activation_error`` (costs one ANN pass with hooks per batch).
        max_samples: evaluate at most this many samples.
        device: where both networks run.

    Returns:
        a JSON-able dict: ``T``, ``snn_accuracy`` (list, per checkpoint), ``ann_accuracy``
        (or ``None``), ``agreement`` (list or ``None``), ``firing_rate`` (per layer),
        ``mean_firing_rate``, ``spikes_per_sample`` (over ``T_max``), ``activation_error``
        (per layer, lists; empty without ``ann``), ``thresholds`` (mean θ per layer),
        ``n_samples``, ``T_max``, ``config`` (the conversion settings), ``seconds``.

    Raises:
        ValueError: bad ``T_max``/``checkpoints``/``chunk``; ``batch_size`` not a positive int or
            ``max_samples`` neither a positive int nor None; unlabelled or empty data.
    """
    from snn.encoders import direct  # lazy: the encoders package imports tonic
    ts = sorted(set(checkpoints)) if checkpoints is not None else default_checkpoints(T_max)
    if not ts or ts[0] < 1 or ts[-1] > T_max:
        raise ValueError(f"checkpoints must lie in [1, T_max={T_max}], got {list(checkpoints or [])}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    dev = torch.device(device)
    start = time.perf_counter()
    snn_model = snn_model.to(dev).eval()
    neurons = snn_model.neurons()
    probes = {name: _Probe(m.threshold.detach().to(dev), ts) for name, m in neurons.items()}
    ref_sites: dict[str, nn.Module] = {}
    ref_net: Optional[nn.Module] = None
    if ann is not None:
        ann = ann.to(dev).eval()
        if layer_errors:
            ref_net = prepare_ann(ann, max_pool=snn_model.config.get("max_pool", "spiking")).to(dev)
            ref_sites = activation_sites(ref_net)
            if set(ref_sites) != set(neurons):
                log.warning("conversion_report: the ANN's activations %s do not match the SNN's layers %s; "
                            "no per-layer errors", sorted(ref_sites), sorted(neurons))
                ref_net, ref_sites = None, {}
    handles = [m.neuron.register_forward_hook(probes[name].hook) for name, m in neurons.items()]
    correct = torch.zeros(len(ts), dtype=torch.long)
    agree = torch.zeros(len(ts), dtype=torch.long)
    ann_correct = n = 0
    try:
        for x, y in iter_batches(data, batch_size, need_labels=True, max_samples=max_samples, name="data"):
            x, y = x.to(dev), y.to(dev)
            refs: dict[str, Tensor] = {}
            ann_pred = None
            if ann is not None:
                ann_pred = _classes(ann(x))
                ann_correct += int((ann_pred == y).sum())
            if ref_net is not None:
                hs = [m.register_forward_hook(lambda mod, i, o, k=k: refs.__setitem__(k, o))
                      for k, m in ref_sites.items()]
                ref_net(x)
                for h in hs:
                    h.remove()
            for name, p in probes.items():
                p.start(refs.get(name))
            reset(snn_model)
            with stateful(snn_model):
                t0 = 0
                while t0 < T_max:
                    Tc = min(chunk, T_max - t0)
                    out = snn_model(direct(x, Tc))
                    for k, t in enumerate(ts):
                        if t0 < t <= t0 + Tc:
                            pred = _classes(out[t - t0 - 1])
                            correct[k] += int((pred == y).sum())
                            if ann_pred is not None:
                                agree[k] += int((pred == ann_pred).sum())
                    t0 += Tc
            n += len(y)
    finally:
        for h in handles:
            h.remove()
        reset(snn_model)
    rates = {name: (p.spikes / p.neuron_steps if p.neuron_steps else 0.0) for name, p in probes.items()}
    total_spikes = sum(p.spikes for p in probes.values())
    total_steps = sum(p.neuron_steps for p in probes.values())
    return {
        "T": ts,
        "snn_accuracy": (correct.double() / n).tolist(),
        "ann_accuracy": ann_correct / n if ann is not None else None,
        "agreement": (agree.double() / n).tolist() if ann is not None else None,
        "firing_rate": rates,
        "mean_firing_rate": total_spikes / total_steps if total_steps else 0.0,
        "spikes_per_sample": total_spikes / n,
        "activation_error": {name: (p.err / n).tolist() for name, p in probes.items() if ref_net is not None},
        "thresholds": {name: float(m.threshold.float().mean()) for name, m in neurons.items()},
        "n_samples": n,
        "T_max": T_max,
        "config": dict(snn_model.config),
        "seconds": round(time.perf_counter() - start, 3),
    }


def plot_report(report: dict[str, Any], path: str | os.PathLike, title: str = "") -> None:
    """Accuracy (and ANN agreement) against T, per-layer rate-coding error against T, and
    firing rate per layer, as one PNG written atomically (matplotlib, Agg backend)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = report["T"]
    errs = report.get("activation_error") or {}
    fig, ax = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    ax[0].plot(ts, [100 * a for a in report["snn_accuracy"]], "o-", label="SNN")
    if report.get("agreement") is not None:
        ax[0].plot(ts, [100 * a for a in report["agreement"]], "s--", ms=4, label="agreement with ANN")
    if report.get("ann_accuracy") is not None:
        ax[0].axhline(100 * report["ann_accuracy"], color="k", ls=":", label=f"ANN {100 * report['ann_accuracy']:.1f}%")
    ax[0].set(xscale="log", xlabel="timesteps T", ylabel="%", title=title or "accuracy vs T")
    ax[0].set_xscale("log", base=2)
    ax[0].legend(fontsize=8)
    for name, e in errs.items():
        ax[1].plot(ts, e, ".-", label=name)
    ax[1].set(xlabel="timesteps T", ylabel="mean |rate·θ − a| / θ", title="rate-coding error per layer")
    ax[1].set_xscale("log", base=2)
    if errs:
        ax[1].set_yscale("log")
        if len(errs) <= 12:
            ax[1].legend(fontsize=7)
    names = list(report["firing_rate"])
    ax[2].bar(range(len(names)), [report["firing_rate"][k] for k in names], color="C2")
    ax[2].set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax[2].set(ylabel="spikes / neuron / step", title=f"firing rate (T = {report['T_max']})")
    for a in ax:
        a.grid(alpha=0.3)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, p)
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()


def save_report(report: dict[str, Any], out_dir: str | os.PathLike, name: str = "conversion",
                title: str = "") -> dict[str, Path]:
    """Write ``<name>.json`` and ``<name>.png`` (accuracy vs T) into ``out_dir``, atomically.

    Returns:
        ``{"json": path, "png": path}``.

    Raises:
        KeyError: ``report`` lacks the entries :func:`conversion_report` writes (plot).
    """
    from snn.train.checkpoint import write_json  # lazy: snn.train pulls in the training stack
    out = Path(out_dir)
    paths = {"json": out / f"{name}.json", "png": out / f"{name}.png"}
    write_json(report, paths["json"])
    plot_report(report, paths["png"], title=title)
    return paths
