"""Cross-check with NeuroBench 2.x (Yik et al., "The neurobench framework for benchmarking
neuromorphic computing algorithms and systems", Nature Communications 16, 2025).

:func:`neurobench_metrics` runs NeuroBench's own ``SynapticOperations`` and
``ActivationSparsity`` workload metrics on an snn model and data, so that they can be put
beside :func:`snn.energy.profile`'s figures. Definitions, and how ours relate:

* ``Effective_ACs`` (NeuroBench) = our ``sops`` summed over synaptic layers: for every
  Linear/Conv call whose input lies in {−1, 0, 1}, ``Σ_out Σ_in [W ≠ 0]·[x ≠ 0]``, which is
  ``Σ_i [x_i ≠ 0]·fanout_i``. Equal when no weight is exactly zero; NeuroBench never counts a
  zero weight, ours counts it unless ``skip_zero_weights=True``.
* ``Effective_MACs`` = our ``macs`` of synaptic layers (graded inputs, same formula). Our
  ``macs`` also holds unfolded batch-norm MACs (``fold_batchnorm=False``), which NeuroBench
  does not count; and with ``graded_inputs="events"`` integer event frames are our ``sops``.
* ``Dense`` = our ``dense_ops`` with the default ``skip_zero_weights=False``: every input and
  every weight taken as nonzero (NeuroBench counts zero weights here, though not in its
  effective counts; with ``skip_zero_weights=True`` our ``dense_ops`` leave them out).
* ``ActivationSparsity`` = our ``activation_sparsity``: zero outputs / outputs over all
  spiking layers (our neurons are registered with NeuroBench as activation modules).
* NeuroBench does not count pooling (our ``acs``), membrane updates (its ``MembraneUpdates``
  needs snnTorch neurons) or energy.

NeuroBench is optional: ``pip install --no-deps neurobench snntorch`` (its declared
dependencies would pull torchaudio and a different torch build; it only needs snnTorch,
numpy, tqdm and tonic at import).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from snn.neurons import BaseNeuron
from snn.state import reset

__all__ = ["neurobench_metrics"]

INSTALL = "pip install --no-deps neurobench snntorch"


class _BatchFirst(nn.Module):
    """NeuroBench feeds ``[B, T, ...]``; our models are time-first."""

    def __init__(self, net: nn.Module, time_first: bool) -> None:
        super().__init__()
        self.net, self.time_first = net, time_first

    def forward(self, x: Tensor) -> Tensor:
        reset(self.net)
        out = self.net(x.transpose(0, 1).contiguous() if self.time_first else x)
        reset(self.net)
        return out


def neurobench_metrics(model: nn.Module, data: Any, *, batch_size: int = 64, max_samples: Optional[int] = None,
                       time_first: bool = True) -> dict[str, float]:
    """NeuroBench's ``SynapticOperations`` and ``ActivationSparsity`` on ``model`` and ``data``.

    Args:
        model, data, batch_size, max_samples, time_first: as :func:`snn.energy.profile`.

    Returns:
        ``{"Effective_ACs", "Effective_MACs", "Dense", "ActivationSparsity", "samples"}``, the
        operation counts per sample.

    Raises:
        ImportError: NeuroBench (or snnTorch) is not installed; the message gives the command.
        RuntimeError: a NeuroBench metric failed (NeuroBench itself reports failures as 0.0).
    """
    try:
        from neurobench.benchmarks import Benchmark
        from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
        from neurobench.models import TorchModel
    except ImportError as e:
        raise ImportError(f"neurobench_metrics needs NeuroBench 2.x and snnTorch ({e}); install them with "
                          f"`{INSTALL}`") from e
    from snn.energy.measure import _batches

    samples = []
    for x, y in _batches(data, batch_size, time_first, max_samples):
        bdim = 1 if time_first else 0
        ys = torch.zeros(x.shape[bdim], dtype=torch.long) if y is None else torch.as_tensor(y).reshape(-1)
        for b in range(x.shape[bdim]):
            samples.append((x.select(bdim, b), ys[b]))
    if not samples:
        raise ValueError("neurobench_metrics: data yielded no samples")
    loader = DataLoader(samples, batch_size=batch_size)  # default collate: [B, T, ...], batch first
    was_training = model.training
    nb = TorchModel(_BatchFirst(model, time_first))
    nb.add_activation_module(BaseNeuron)
    bench = Benchmark(nb, loader, [], [], [[], [SynapticOperations, ActivationSparsity]])
    try:
        with torch.no_grad():
            res = bench.run(quiet=True)
    finally:
        bench.workload_metric_manager.cleanup_hooks(nb)
        model.train(was_training)
    syn = res.get("SynapticOperations")
    if not isinstance(syn, dict):
        raise RuntimeError(f"NeuroBench's SynapticOperations failed on this model (returned {syn!r})")
    return {"Effective_ACs": float(syn["Effective_ACs"]), "Effective_MACs": float(syn["Effective_MACs"]),
            "Dense": float(syn["Dense"]), "ActivationSparsity": float(res["ActivationSparsity"]),
            "samples": len(samples)}
