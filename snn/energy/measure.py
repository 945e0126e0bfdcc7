"""``snn.energy.profile``: run a model on real inputs and report its operations and energy."""
from __future__ import annotations

import time
from typing import Iterable, Iterator, Optional, Union

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from snn.datasets.batches import iter_batches
from snn.energy.hardware import EnergyModelLike, get_energy_model
from snn.energy.profiler import Profiler
from snn.energy.registry import CountOptions
from snn.energy.report import EnergyReport
from snn.latency.rule import check_readout, readout_scores
from snn.state import reset

__all__ = ["profile"]

DataLike = Union[Tensor, tuple, Dataset, DataLoader, Iterable]


def _batches(data: DataLike, batch_size: int, time_first: bool, max_samples: Optional[int]
             ) -> Iterator[tuple[Tensor, Optional[Tensor]]]:
    """:func:`snn.datasets.batches.iter_batches`, with a tensor or an ``(x, y)`` / ``(x, None)``
    pair taken as one batch (``batch_size`` applies to Datasets)."""
    if isinstance(data, Tensor):
        data = [data]
    elif isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Tensor) \
            and (data[1] is None or isinstance(data[1], Tensor)):
        data = [data[0] if data[1] is None else tuple(data)]
    return iter_batches(data, batch_size, time_first=time_first, max_samples=max_samples, name="data")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def profile(model: nn.Module, data: DataLike, *, energy_model: EnergyModelLike = "cmos45",
            ann_energy_model: EnergyModelLike = "cmos45", batch_size: int = 64, max_samples: Optional[int] = None,
            device: Optional[Union[str, torch.device]] = None, time_first: bool = True,
            fold_batchnorm: bool = True, skip_zero_weights: bool = False, graded_inputs: str = "macs",
            measure_time: bool = True, label: Optional[str] = None, readout: str = "auto") -> EnergyReport:
    """Measure a model's operations, firing rates, energy and latency on real inputs.

    Every layer is matched to a counting rule by type (:mod:`snn.energy.rules`; add your own
    with :func:`snn.energy.register_rule`). Synaptic operations (SOPs) are counted as
    ``Σ_i s_i · fanout_i`` over input spikes ``s_i`` and the exact fan-out of each input
    (conv borders, stride, dilation, groups), MACs as ``Σ_i [x_i ≠ 0] · fanout_i`` for graded
    inputs; energy is ``e_sop·SOPs + e_mac·MACs + e_ac·ACs + e_neuron_update·updates +
    e_spike·spikes`` under ``energy_model`` (:mod:`snn.energy.hardware`).

    Args:
        model: the network; run in eval mode without gradients, reset before every batch.
        data: ``x`` ``[T, B, ...]``, an ``(x, y)`` pair, a Dataset of ``([T, ...], label)``
            samples (batched with :func:`snn.datasets.collate_time_first`), a DataLoader, or
            an iterable of ``x`` / ``(x, y)`` batches.
        energy_model: name (``"cmos45"``, ``"cmos45-synaptic"``, ``"loihi"``), an
            :class:`snn.energy.EnergyModel`, a mapping or a JSON file.
        ann_energy_model: energy model of the equivalent ANN.
        batch_size: for Datasets.
        max_samples: stop after this many samples.
        device: move the model and inputs there (default: the model's device).
        time_first: inputs are ``[T, B, ...]``; ``False`` for ANNs (``[B, ...]``, T = 1).
        fold_batchnorm, skip_zero_weights, graded_inputs: counting definitions, see
            :class:`snn.energy.CountOptions`.
        measure_time: time a second, hook-free forward of every batch (wall time per sample).
        label: name of the report.
        readout: how a time-first output ``[T, B, C]`` is scored for ``accuracy``, as in
            :func:`snn.latency.readout_scores`: ``"sum"`` (per-step outputs: argmax of their
            mean over time, e.g. a leaky-integrator or spike-count readout), ``"cumulative"``
            (the output already is the running sum ``V[t]``, e.g. a converted network: argmax
            ``V[T]``) or ``"auto"`` (:func:`snn.latency.detect_readout`: ``"cumulative"`` for a
            non-leaky integrator readout such as :class:`snn.conversion.ConvertedSNN`'s).

    Shape:
        inputs ``[T, B, *feature]`` (float32; spikes 0./1., or graded values/event counts),
        ``[B, *feature]`` with ``time_first=False``. The report's time-resolved grids are
        ``[T, N]`` over all ``N`` samples.

    Returns:
        An :class:`snn.energy.EnergyReport` (counts per sample; energy in pJ).

    Raises:
        TypeError: ``model`` is not a module or ``data`` of an unsupported type.
        ValueError: inputs of the wrong rank, no samples, unknown energy model, option or ``readout``.

    Examples:
        >>> report = snn.energy.profile(model, test_set, energy_model="loihi", max_samples=100)
        >>> print(report.table()); report.save_json("energy.json"); report.plot("figures/")
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    get_energy_model(energy_model), get_energy_model(ann_energy_model)  # fail before running anything
    readout = check_readout(readout, model)
    options = CountOptions(fold_batchnorm=fold_batchnorm, skip_zero_weights=skip_zero_weights,
                           graded_inputs=graded_inputs)
    if device is not None:
        model = model.to(device)
    dev = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    wall, correct, labelled, seen_bs = 0.0, 0, 0, 0
    prof = Profiler(model, options, time_first=time_first)
    try:
        for x, y in _batches(data, batch_size, time_first, max_samples):
            x = x.to(dev)
            seen_bs = max(seen_bs, x.shape[1 if time_first else 0])
            with prof:  # hooks only for the counted run; the timed run below has none
                reset(model)
                out = model(x)
                prof.end_batch()
                reset(model)
            if y is not None and isinstance(out, Tensor):
                s = readout_scores(out, readout) if time_first and out.dim() >= 3 else out
                correct += int((s.argmax(-1).cpu() == torch.as_tensor(y).reshape(-1)).sum())
                labelled += s.shape[0]
            if measure_time:
                _sync(dev)
                t0 = time.perf_counter()
                model(x)
                _sync(dev)
                wall += time.perf_counter() - t0
                reset(model)
    finally:
        model.train(was_training)
    counts = prof.counts()
    if counts.samples == 0:
        raise ValueError("profile: data yielded no samples")
    return EnergyReport(counts, energy_model, ann_energy_model=ann_energy_model,
                        wall_time_s=wall if measure_time else None, batch_size=seen_bs,
                        accuracy=correct / labelled if labelled else None, label=label)
