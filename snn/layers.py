"""Stateless layers on time-first tensors."""
from __future__ import annotations

from torch import Tensor, nn

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
        ValueError: (forward) the input has fewer than 3 dimensions.

    Examples:
        >>> import torch, snn
        >>> conv = snn.TimeDistributed(torch.nn.Conv2d(2, 8, 3), torch.nn.BatchNorm2d(8))
        >>> conv(torch.rand(5, 4, 2, 34, 34)).shape
        torch.Size([5, 4, 8, 32, 32])
    """

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if x.dim() < 3:
            raise ValueError(f"TimeDistributed expects [T, B, ...] with at least 3 dims, got {tuple(x.shape)}")
        T, B = x.shape[:2]
        y = super().forward(x.reshape(T * B, *x.shape[2:]))
        return y.reshape(T, B, *y.shape[1:])
