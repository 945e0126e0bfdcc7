"""Direct (analog) encoding: present the same static input at every timestep."""
from __future__ import annotations

import torch
from torch import nn

from ._checks import check_steps, check_tensor

__all__ = ["direct", "DirectEncoder"]


def direct(x: torch.Tensor, T: int) -> torch.Tensor:
    r"""Repeat a static input over ``T`` timesteps (direct / analog input coding).

    .. math::
        s[t] = x \qquad t = 0, \dots, T - 1

    The first layer of the network then acts as the encoder, receiving the analog
    value as an input current at every step (Rueckauer et al. 2017, "Conversion of
    continuous-valued deep networks to efficient event-driven networks", Front.
    Neurosci. 11:682; Wu et al. 2019, "Direct training for spiking neural networks:
    faster, larger, better", AAAI).

    The result is a new contiguous tensor (``x.unsqueeze(0).expand(T, ...).contiguous()``),
    not a view: writing into one step never changes another step or ``x``.

    Args:
        x: static input, any real dtype (kept as is); values are not range-checked.
        T: number of timesteps, a positive integer.

    Shape:
        - x: ``[B, *]``
        - output: ``[T, B, *]``

    Returns:
        ``x`` repeated along a new leading time axis, same dtype and device as ``x``.

    Raises:
        ValueError: if ``T`` is not a positive integer, ``x`` is 0-d or contains NaN.
        TypeError: if ``x`` is not a real-valued tensor.

    Examples:
        >>> x = torch.rand(4, 1, 28, 28)
        >>> direct(x, 8).shape
        torch.Size([8, 4, 1, 28, 28])
    """
    T = check_steps(T)
    x = check_tensor(x)
    return x.unsqueeze(0).expand(T, *x.shape).contiguous()


class DirectEncoder(nn.Module):
    r"""Module form of :func:`direct`: repeat a static input over ``T`` timesteps.

    Args:
        T: number of timesteps, a positive integer.

    Shape:
        - input: ``[B, *]``
        - output: ``[T, B, *]``, same dtype as the input.

    Raises:
        ValueError: if ``T`` is not a positive integer (at construction); in forward, as
            :func:`direct` (0-d or NaN input; ``TypeError`` for a non-real tensor).

    Examples:
        >>> enc = DirectEncoder(T=4)
        >>> enc(torch.ones(2, 3)).shape
        torch.Size([4, 2, 3])
    """

    def __init__(self, T: int) -> None:
        super().__init__()
        self.T = check_steps(T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return direct(x, self.T)

    def extra_repr(self) -> str:
        return f"T={self.T}"
