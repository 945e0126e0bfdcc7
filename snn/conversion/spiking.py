"""The spiking layers of a converted network.

Inside :class:`~snn.conversion.converter.ConvertedSNN` every stateless ANN layer runs on
the time-merged batch ``[T·B, ...]`` (so the ANN's own graph, including ``x.view(x.size(0), -1)``,
works unchanged), and the stateful layers below receive that tensor plus ``T`` and restore
the time axis ``[T, B, ...]`` for their dynamics.
"""
from __future__ import annotations

import numbers
from typing import Optional

import torch
from torch import Tensor, nn

from snn.neurons import IF
from snn.state import StatefulModule

__all__ = ["IFActivation", "SpikingMaxPool"]


def _split_time(x: Tensor, T: int, name: str) -> Tensor:
    if x.shape[0] % T:
        raise ValueError(f"{name}: the merged batch has {x.shape[0]} rows, not a multiple of T={T}")
    return x.reshape(T, x.shape[0] // T, *x.shape[1:])


class IFActivation(nn.Module):
    r"""An ANN activation replaced by integrate-and-fire neurons with soft reset, emitting
    spikes weighted by their threshold.

    .. math::
        v[t] = v[t-1] + z[t] - \theta\, s[t], \quad s[t] = \Theta(v[t-1] + z[t] - \theta), \quad
        v[0] = \varphi\,\theta, \quad \text{output } = \theta\, s[t]

    With a constant input ``z`` the membrane stays in ``[0, θ)`` while ``0 ≤ z ≤ θ``, so after
    ``T`` steps the neuron has fired exactly ``clip(⌊zT/θ + φ⌋, 0, T)`` spikes: with ``φ = 1/2``
    the mean output ``θ·(Σ s)/T`` equals the activation ``clip(z, 0, θ)`` up to ``θ/(2T)``
    (soft reset: Rueckauer et al., "Conversion of Continuous-Valued Deep Networks to Efficient
    Event-Driven Networks for Image Classification", Front. Neurosci. 11:682, 2017, Eq. 4-6;
    initial membrane θ/2: Bu et al., ICLR 2022, Theorem 2), and at ``T = L`` it equals the
    QCFS activation with shift ``φ`` and ``L`` levels (:class:`snn.conversion.QCFS`, Bu et al.
    Eq. 19) exactly, for any ``φ``. Emitting ``θ·s`` instead of ``s`` keeps every downstream layer,
    residual addition and concatenation in the ANN's units, so no weight rescaling is needed
    (it is equivalent to multiplying the next layer's weights by θ, Rueckauer et al. Eq. 9).

    Args:
        threshold: θ > 0, a scalar or one value per channel (``[C]``, channel = dim 1 of the
            ANN activation ``[B, C, ...]``).
        backend: neuron backend of the wrapped :class:`snn.IF` (``"auto"``, ``"torch"``, ...).
        shift: φ in ``[0, 1)``, the initial membrane as a fraction of θ (``v_init = φ·θ``): 0.5
            for ReLU-type activations, the QCFS activation's own shift for :class:`QCFS`.

    Shape:
        ``forward(x, T)``: ``x`` is ``[T·B, *feature]`` (time-major merge of ``[T, B, *feature]``),
        output the same shape; values in ``{0, θ}``.

    Attributes:
        neuron: the :class:`snn.IF` layer (``v_threshold = θ``, ``v_reset=None``, ``v_init = φ·θ``).

    Raises:
        ValueError: a non-positive threshold; ``shift`` outside ``[0, 1)``; an input whose first
            dim is not a multiple of ``T``.
    """

    def __init__(self, threshold: Tensor | float, backend: str = "auto", shift: float = 0.5) -> None:
        super().__init__()
        th = torch.as_tensor(threshold, dtype=torch.float32).detach().clone()
        if th.dim() > 1 or not bool((th > 0).all()) or not bool(torch.isfinite(th).all()):
            raise ValueError(f"threshold must be a positive finite scalar or [C] tensor, got {threshold!r}")
        if isinstance(shift, bool) or not isinstance(shift, numbers.Real) or not 0.0 <= shift < 1.0:
            raise ValueError(f"shift must be a number in [0, 1) (initial membrane / threshold), got {shift!r}")
        channels = int(th.shape[0]) if th.dim() == 1 else None
        self.neuron = IF(v_threshold=1.0, v_reset=None, num_channels=channels, backend=backend)
        self.neuron.v_threshold.copy_(th)
        self.neuron.v_init.copy_(th * float(shift))

    @property
    def threshold(self) -> Tensor:
        """θ, ``[]`` or ``[C]`` (the IF neuron's ``v_threshold``)."""
        return self.neuron.v_threshold

    def forward(self, x: Tensor, T: int) -> Tensor:
        s = self.neuron(_split_time(x, T, "IFActivation"))
        th = self.neuron.v_threshold
        if th.dim() == 1:
            th = th.view(-1, *([1] * (s.dim() - 3)))
        return (s * th).reshape(x.shape)


class SpikingMaxPool(StatefulModule):
    r"""Max pooling for spike trains: the pooled spike count is the largest input spike count.

    .. math::
        A_i[t] = \sum_{\tau \le t} x_i[\tau], \qquad
        y[t] = \max_{i \in \text{window}} A_i[t] - \max_{i \in \text{window}} A_i[t-1]

    so :math:`\sum_{\tau \le t} y[\tau] = \max_i A_i[t]` at every step: the output rate is the
    maximum of the input rates as soon as the counts are, with no extra error. For inputs
    that are spikes of one threshold (``θ·s``, the output of an :class:`IFActivation`) each
    ``y[t]`` is 0 or θ, i.e. again a spike train; for analog inputs (max pooling before the
    activation) it is a current whose running sum is the max of the running input sums.
    This follows the idea of Rueckauer et al. (Front. Neurosci. 2017, Sec. 2.2.6) to let the
    pooling be driven by accumulated activity rather than by the binary spikes of one step (a
    plain max of spikes would pass the union of all spikes); taking the difference of the
    running maximum, rather than gating spikes of the current leader, avoids passing extra
    spikes when two inputs of near-equal rate swap the lead.

    Args:
        pool: the ANN's ``nn.MaxPool{1,2,3}d`` or ``nn.AdaptiveMaxPool{1,2,3}d`` (its parameters are reused).

    Shape:
        ``forward(x, T)``: ``[T·B, C, *spatial] → [T·B, C, *pooled]`` (``x``'s dtype; the running
        sums are float64).

    Attributes:
        acc: accumulated input ``[B, C, *spatial]`` (float64) carried in stateful/streaming mode (else ``None``).

    Raises:
        ValueError: (forward) the first dim of ``x`` is not a multiple of ``T``, or the carried
            ``acc`` has another shape than one input step (call :func:`snn.reset`).
    """

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool
        self.acc: Optional[Tensor] = None

    def forward(self, x: Tensor, T: int) -> Tensor:
        seq = _split_time(x, T, "SpikingMaxPool")
        carried = self._stateful and self.acc is not None
        if carried and self.acc.shape != seq[0].shape:  # type: ignore[union-attr]
            raise ValueError(f"carried state has shape {tuple(self.acc.shape)} but the input step has shape "  # type: ignore
                             f"{tuple(seq[0].shape)}; call snn.reset(model) before a new stream")
        # float64 running sums: sums of θ-spikes are exact, so y is exactly 0 or θ and a run cut
        # into chunks (stateful) gives the same result as one whole run
        sums = torch.cumsum(seq, 0, dtype=torch.float64)
        prev = self.acc if carried else None
        if prev is not None:
            sums += prev
        if self._stateful:
            self.acc = sums[-1]
        B = seq.shape[1]
        running_max = self.pool(sums.reshape(x.shape))  # max_i A_i[t], [T·B, C, *pooled]
        y = running_max.clone()
        y[B:] -= running_max[:-B]
        if prev is not None:
            y[:B] -= self.pool(prev)
        return y.to(x.dtype)

    def reset_state(self) -> None:
        self.acc = None

    def detach_state(self) -> None:
        if self.acc is not None:
            self.acc = self.acc.detach()

    def extra_repr(self) -> str:
        return repr(self.pool)
