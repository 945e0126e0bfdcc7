"""Stateless layers on time-first tensors."""
from __future__ import annotations

from torch import Tensor, nn

from snn.state import StatefulModule

__all__ = ["TimeDistributed"]


class TimeDistributed(nn.Sequential):
    """Apply ordinary (stateless) layers to every timestep at once by merging T and B.

    ``[T, B, *in] → [T·B, *in] → layers → [T·B, *out] → [T, B, *out]``: one call per
    sequence, so convolutions and batch norm see a ``T·B`` batch (batch-norm statistics are
    shared over time, as in SpikingJelly's ``SeqToANNContainer`` and Zheng et al.'s tdBN).

    Args:
        *layers: modules taking a batch-first tensor.

    Shape:
        ``[T, B, *in] → [T, B, *out]`` (dtype as the wrapped layers give it).

    Raises:
        ValueError: a stateful layer (a neuron, readout, delay line:
            :class:`snn.state.StatefulModule`) among the layers, at construction or in forward
            (merging T into the batch would make it integrate across samples); (forward) the
            input has fewer than 3 dimensions. Put stateful layers after the
            ``TimeDistributed`` block instead.

    Examples:
        >>> import torch, snn
        >>> conv = snn.TimeDistributed(torch.nn.Conv2d(2, 8, 3), torch.nn.BatchNorm2d(8))
        >>> conv(torch.rand(5, 4, 2, 34, 34)).shape
        torch.Size([5, 4, 8, 32, 32])
    """

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__(*layers)
        self._check_stateless()

    def _check_stateless(self) -> None:
        for name, m in self.named_modules():
            if isinstance(m, StatefulModule):
                raise ValueError(f"TimeDistributed got a stateful layer {name} ({type(m).__name__}): merging T into "
                                 "the batch would make it integrate across samples; put it after the "
                                 "TimeDistributed block, which returns [T, B, ...]")

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        self._check_stateless()  # layers may have been added since construction
        if x.dim() < 3:
            raise ValueError(f"TimeDistributed expects [T, B, ...] with at least 3 dims, got {tuple(x.shape)}")
        T, B = x.shape[:2]
        y = super().forward(x.reshape(T * B, *x.shape[2:]))
        return y.reshape(T, B, *y.shape[1:])
