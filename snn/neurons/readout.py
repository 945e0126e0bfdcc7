"""Non-spiking leaky-integrator readout for classification heads."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from snn.neurons.base import as_real_float, check_no_nan_membrane, check_sequence
from snn.neurons.functional import charge
from snn.neurons.lif import tau_to_beta
from snn.state import StatefulModule

__all__ = ["LeakyIntegrator"]


class LeakyIntegrator(StatefulModule):
    r"""Leaky integrator without spikes: outputs its membrane potential.

    .. math::
        v[t] = \beta v[t-1] + g\, x[t], \quad \beta = e^{-1/\tau}\ (\beta = 1 \text{ if } \tau = \infty)

    Used as the output layer of classification SNNs: the class scores are read from the
    membrane (e.g. its mean over time), as in the LIF readouts of Cramer et al. (SHD,
    IEEE TNNLS 2020) and Hammouamri et al. (ICLR 2024).

    Args:
        tau: time constant in timesteps (> 0), or ``float("inf")`` for a perfect integrator.
        decay_input: scale the input by ``1 − β`` (ignored, i.e. off, when ``tau`` is infinite).

    Shape:
        forward: ``[T, B, *feature] → [T, B, *feature]`` (membrane after each step, the
        input's floating dtype, float32 for integer or bool input (complex input is a
        ``TypeError``); starts from 0, or from the carried state inside
        :func:`snn.stateful`).
        step: ``[B, *feature] → [B, *feature]``.

    Raises:
        ValueError: ``tau`` not > 0 (or finite yet so large that ``β`` rounds to 1); in
            ``forward``/``step``: an input that is not time-first ``[T, B, ...]`` (``[B, ...]``
            for ``step``), has ``T = 0``, a NaN membrane (on CPU), or a carried state whose
            shape differs from the input step. ``TypeError`` if the input is not a tensor.
    """

    def __init__(self, tau: float = 5.0, decay_input: bool = False) -> None:
        super().__init__()
        self.tau = float(tau)
        self.beta: Optional[float] = None if self.tau == float("inf") else tau_to_beta(self.tau)
        self.decay_input = decay_input and self.beta is not None
        self.v: Optional[Tensor] = None

    def _start(self, like: Tensor, carry: bool) -> Tensor:
        if carry and self.v is not None:
            if self.v.shape != like.shape:
                raise ValueError(f"carried state has shape {tuple(self.v.shape)} but the input step has shape "
                                 f"{tuple(like.shape)}; call snn.reset(model) before a new stream")
            return self.v
        return torch.zeros_like(like)

    def forward(self, x: Tensor) -> Tensor:
        check_sequence(x, "x", min_dim=2, check_nan=False)
        x = as_real_float(x, "x", torch.float32)
        v = self._start(x[0].detach(), self._stateful)
        out = []
        for x_t in x.unbind(0):
            v = charge(v, x_t, self.beta, self.decay_input)
            out.append(v)
        check_no_nan_membrane(v)
        if self._stateful:
            self.v = v
        return torch.stack(out)

    def step(self, x_t: Tensor) -> Tensor:
        """One timestep; the membrane ``[B, *feature]`` stays on the module."""
        check_sequence(x_t, "x_t", min_dim=1, time_first=False)
        x_t = as_real_float(x_t, "x_t", torch.float32)
        self.v = charge(self._start(x_t, True), x_t, self.beta, self.decay_input)
        return self.v

    def reset_state(self) -> None:
        self.v = None

    def detach_state(self) -> None:
        if self.v is not None:
            self.v = self.v.detach()

    def extra_repr(self) -> str:
        return f"tau={self.tau:g}, decay_input={self.decay_input}"
