"""Threshold balancing from calibration data: max and robust-percentile norms, layer- or channel-wise."""
from __future__ import annotations

import logging
import numbers
import warnings
from typing import Optional

import torch
from torch import Tensor, fx, nn

from snn.conversion.activations import ClipReLU, QCFS
from snn.conversion.data import DataLike, check_batching, iter_batches
from snn.conversion.prepare import activation_sites

__all__ = ["calibrate", "NORMS", "activation_bound"]

log = logging.getLogger("snn")

NORMS = ("max", "percentile")
_BINS = 4096  # histogram bins per channel on [0, max] (fewer for very wide layers)
_MAX_CELLS = 2 ** 22


def activation_bound(m: nn.Module) -> Optional[float]:
    """Upper bound of a clipped activation (ReLU6: 6, Hardtanh: max_val, ClipReLU/QCFS: λ), else None."""
    if isinstance(m, (QCFS, ClipReLU)):
        return float(m.clip.detach())
    if isinstance(m, nn.ReLU6):
        return 6.0
    if isinstance(m, nn.Hardtanh):
        return float(m.max_val)
    return None


class _Stats:
    """Per-channel maxima (pass 1) and per-channel histograms on [0, max] (pass 2) of positive values."""

    def __init__(self) -> None:
        self.max: Optional[Tensor] = None
        self.hist: Optional[Tensor] = None
        self.bins = _BINS

    @staticmethod
    def _by_channel(a: Tensor) -> Tensor:
        """``[B, C, ...] → [C, B·...]`` (``[B] → [1, B]``)."""
        a = a.detach().float()
        if a.dim() < 2:
            return a.reshape(1, -1)
        return a.transpose(0, 1).reshape(a.shape[1], -1)

    def add_max(self, a: Tensor) -> None:
        m = self._by_channel(a).amax(1).clamp_min(0)
        self.max = m if self.max is None else torch.maximum(self.max, m)

    def add_hist(self, a: Tensor) -> None:
        v = self._by_channel(a)
        C = v.shape[0]
        self.bins = max(256, min(_BINS, _MAX_CELLS // C))
        top = self.max.to(v.device).clamp_min(1e-30)[:, None]  # type: ignore[union-attr]
        pos = v > 0
        nb = self.bins
        bins = torch.clamp((v / top * nb).long(), 0, nb - 1)
        chan = torch.arange(C, device=v.device)[:, None].expand_as(v)
        idx = (chan * nb + bins)[pos]
        h = torch.bincount(idx, minlength=C * nb).view(C, nb).cpu()
        self.hist = h if self.hist is None else self.hist + h


def _percentile(s: "_Stats", p: float) -> Tensor:
    """Per channel: upper edge of the first bin where the cumulative count reaches ``p`` %; 0 if empty."""
    cum = s.hist.cumsum(1).double()  # type: ignore[union-attr]
    total = cum[:, -1:]
    k = (cum < total * (p / 100.0)).sum(1).clamp(max=s.bins - 1)
    val = (k.double() + 1) / s.bins * s.max.double().cpu()  # type: ignore[union-attr]
    return torch.where(total[:, 0] > 0, val, torch.zeros_like(val)).float()


@torch.no_grad()
def calibrate(ann: fx.GraphModule, data: Optional[DataLike], norm: str = "max", percentile: float = 99.99,
              channel_wise: bool = False, max_samples: Optional[int] = 1024, batch_size: int = 64,
              device: str | torch.device = "cpu") -> dict[str, Tensor]:
    r"""Firing thresholds θ for every activation of a prepared ANN.

    For each ReLU-like activation ``a = f(z)`` the threshold is a statistic of its positive
    outputs over the calibration inputs, per layer (``[]``) or per channel (``[C]``, dim 1):

    * ``norm="max"``: :math:`\theta = \max a` — "data-based normalisation", Diehl et al.,
      "Fast-classifying, high-accuracy spiking deep networks through weight and threshold
      balancing", IJCNN 2015 (Algorithm 2), which no SNN rate can exceed;
    * ``norm="percentile"``: θ = the ``percentile``-th percentile of the positive activations
      (e.g. 99.9 or 99.99) — "robust normalisation", Rueckauer et al., Front. Neurosci. 2017,
      Sec. 2.3.1, trading rare clipped outliers for higher firing rates elsewhere. It is the
      smallest value with ``percentile`` % of the positive activations at or below it
      (inverted-CDF definition), read from a histogram of up to 4,096 bins on ``[0, max]`` per
      channel (rounded up to a bin edge: at most ``max/4096`` above the exact value);
    * channel-wise: the same statistic per output channel (Kim et al., "Spiking-YOLO",
      AAAI 2020, channel-wise normalisation).

    Clipped activations (ReLU6, Hardtanh(0, b), :class:`ClipReLU`) get ``min(bound, statistic)``;
    :class:`QCFS` gets θ = λ exactly (Bu et al., ICLR 2022), without looking at the data. A
    channel that never fires falls back to the layer's value, a layer that never fires to 1
    (with a warning naming it).

    Args:
        ann: the result of :func:`snn.conversion.prepare_ann`.
        data: ANN inputs ``[B, ...]`` (see :func:`snn.conversion.data.iter_batches`; labels are
            ignored). May be ``None`` when every activation is QCFS.
        norm: ``"max"`` or ``"percentile"``.
        percentile: in (0, 100], used by ``norm="percentile"``.
        channel_wise: one threshold per channel instead of per layer.
        max_samples: calibration samples to use at most, a positive int (``None``: all).
        batch_size: for tensor / Dataset inputs, a positive int.
        device: where the ANN runs.

    Returns:
        ``{activation module name: θ}``, float32 tensors ``[]`` or ``[C]`` (on the CPU).

    Raises:
        ValueError: unknown ``norm``, bad ``percentile``, ``batch_size`` not a positive int,
            ``max_samples`` neither a positive int nor None, ``data`` missing while an
            activation needs it, empty data.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    batch_size, max_samples = check_batching(batch_size, max_samples)
    if not (isinstance(percentile, numbers.Real) and 0 < percentile <= 100):
        raise ValueError(f"percentile must lie in (0, 100], got {percentile!r}")
    sites = activation_sites(ann)
    thresholds = {name: m.clip.detach().abs().float().cpu().clone() for name, m in sites.items()
                  if isinstance(m, QCFS)}
    todo = {name: m for name, m in sites.items() if name not in thresholds}
    if not todo:
        return thresholds
    if data is None:
        raise ValueError(f"calibration data is required for the activations {list(todo)} (only QCFS "
                         "activations convert without it)")
    dev = torch.device(device)
    ann = ann.to(dev).eval()
    batches = [x for x, _ in iter_batches(data, batch_size, max_samples=max_samples, name="calibration_data")]
    stats = {name: _Stats() for name in todo}
    passes = ["add_max"] + (["add_hist"] if norm == "percentile" else [])
    for method in passes:
        hooks = [m.register_forward_hook(lambda mod, inp, out, s=stats[n], f=method: getattr(s, f)(out))
                 for n, m in todo.items()]
        try:
            for x in batches:
                ann(x.to(dev))
        finally:
            for h in hooks:
                h.remove()
    for name, m in todo.items():
        s = stats[name]
        if norm == "max":
            per_channel, layer = s.max, s.max.max()  # type: ignore[union-attr]
        else:
            per_channel, layer = _percentile(s, percentile), _layer_percentile(s, percentile)
        if float(layer) <= 0:
            warnings.warn(f"activation {name!r} was never positive on the calibration data; threshold set to 1",
                          stacklevel=2)
            layer = torch.tensor(1.0)
        th = torch.where(per_channel > 0, per_channel, layer) if channel_wise else layer.reshape(())
        bound = activation_bound(m)
        if bound is not None:
            th = th.clamp(max=bound)
        thresholds[name] = th.float().cpu()
    return {name: thresholds[name] for name in sites}


def _layer_percentile(s: _Stats, p: float) -> Tensor:
    """Layer-wise percentile from per-channel histograms with different ranges: pool the bins
    onto the layer range (each channel bin's upper edge is mapped to its value)."""
    edges = (torch.arange(1, s.bins + 1, dtype=torch.float64)[None, :] / s.bins) * s.max.double().cpu()[:, None]
    counts = s.hist.double().flatten()  # type: ignore[union-attr]
    order = torch.argsort(edges.flatten())
    cum = counts[order].cumsum(0)
    total = cum[-1]
    if total <= 0:
        return torch.tensor(0.0)
    k = int((cum < total * (p / 100.0)).sum().clamp(max=len(cum) - 1))
    return edges.flatten()[order][k].float()
