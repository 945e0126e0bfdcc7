"""Exact fan-out maps: how many synapses (or pooling windows) each input element feeds.

The fan-out of input element ``i`` of a linear operator ``y = W x`` is the number of outputs
it reaches, ``fanout_i = Σ_j [W_ji is a synapse]``. Summed over all inputs it is the number
of connections, which is also the MAC count of the same layer in an ANN. For convolutions
it depends on the position: with zero padding, an input near the border is seen by fewer
kernel placements; with stride ``s`` only every ``s``-th placement exists; dilation spreads
the taps; groups split the output channels. Instead of case-by-case formulas we compute it
exactly as the gradient of the summed output of the same convolution with the weights
replaced by their connectivity mask (1 = synapse): ``fanout = ∂ Σ_j y_j / ∂x`` — exact in
float64 for every padding mode, stride, dilation and group count.

Pooling windows are separable: along each spatial dim the number of windows covering index
``i`` is counted from the window starts (``o·stride − padding``, or PyTorch's adaptive bins
``[⌊o·L/O⌋, ⌈(o+1)·L/O⌉)``), and the map is their outer product.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["linear_fanout", "conv_fanout", "pool_fanout", "window_counts", "adaptive_window_counts"]


def linear_fanout(weight: Tensor, skip_zero_weights: bool = False) -> Tensor:
    """Fan-out of each input of a dense layer with ``weight`` of shape ``[out, in]``.

    Returns:
        float64 tensor ``[in]``: ``out`` everywhere, or the number of nonzero weights in
        each column with ``skip_zero_weights``.
    """
    if skip_zero_weights:
        return (weight.detach() != 0).sum(0).to(torch.float64).cpu()
    return torch.full((weight.shape[1],), float(weight.shape[0]), dtype=torch.float64)


def _mask(weight: Tensor, skip_zero_weights: bool) -> Tensor:
    w = weight.detach()
    m = (w != 0) if skip_zero_weights else torch.ones_like(w, dtype=torch.bool)
    return m.to(torch.float64).cpu()


def conv_fanout(module: nn.modules.conv._ConvNd, feature_shape: Sequence[int], output_spatial: Sequence[int],
                skip_zero_weights: bool = False) -> Tensor:
    """Fan-out of each input element ``[C_in, *spatial]`` of a (transposed) convolution.

    Args:
        module: an ``nn.Conv{1,2,3}d`` or ``nn.ConvTranspose{1,2,3}d``.
        feature_shape: ``[C_in, *spatial]`` of one input sample.
        output_spatial: spatial size of the output (fixes a transposed conv's output padding).
        skip_zero_weights: zero weights are no synapses.

    Returns:
        float64 tensor of shape ``feature_shape`` (CPU), integer-valued.
    """
    mask = _mask(module.weight, skip_zero_weights)
    x = torch.zeros((1, *feature_shape), dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            n = len(feature_shape) - 1
            fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[n - 1]
            natural = [(feature_shape[1 + d] - 1) * module.stride[d] - 2 * module.padding[d]
                       + module.dilation[d] * (module.kernel_size[d] - 1) + 1 for d in range(n)]
            out_pad = [int(o) - nat for o, nat in zip(output_spatial, natural)]
            y = fn(x, mask, None, module.stride, module.padding, out_pad, module.groups, module.dilation)
        else:
            y = module._conv_forward(x, mask, None)
        (g,) = torch.autograd.grad(y.sum(), x)
    return g[0].detach().round()


def window_counts(length: int, out_length: int, kernel: int, stride: int, padding: int,
                  dilation: int = 1) -> Tensor:
    """How many of the ``out_length`` windows ``{o·stride − padding + k·dilation : k < kernel}``
    cover each index ``0 ≤ i < length`` (float64 ``[length]``)."""
    counts = torch.zeros(length, dtype=torch.float64)
    for o in range(out_length):
        for k in range(kernel):
            i = o * stride - padding + k * dilation
            if 0 <= i < length:
                counts[i] += 1
    return counts


def adaptive_window_counts(length: int, out_length: int) -> Tensor:
    """Coverage counts of PyTorch's adaptive pooling bins ``[⌊o·L/O⌋, ⌈(o+1)·L/O⌉)`` (float64 ``[length]``)."""
    counts = torch.zeros(length, dtype=torch.float64)
    for o in range(out_length):
        start, end = (o * length) // out_length, math.ceil((o + 1) * length / out_length)
        counts[start:end] += 1
    return counts


def _tuple(v, n: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def pool_fanout(module: nn.Module, in_spatial: Sequence[int], out_spatial: Sequence[int]) -> Tensor:
    """Number of pooling windows each input position falls in, ``[*in_spatial]`` (float64).

    Supports ``nn.{Avg,Max}Pool{1,2,3}d`` and ``nn.Adaptive{Avg,Max}Pool{1,2,3}d``; the
    output size (from the actual output) settles ``ceil_mode``.
    """
    n = len(in_spatial)
    per_dim: list[Tensor] = []
    pooling = nn.modules.pooling
    adaptive = isinstance(module, (pooling._AdaptiveAvgPoolNd, pooling._AdaptiveMaxPoolNd))
    if adaptive:
        per_dim = [adaptive_window_counts(n_in, n_out) for n_in, n_out in zip(in_spatial, out_spatial)]
    else:
        k = _tuple(module.kernel_size, n)
        s = _tuple(module.stride if module.stride is not None else module.kernel_size, n)
        p = _tuple(module.padding, n)
        d = _tuple(getattr(module, "dilation", 1), n)
        per_dim = [window_counts(n_in, n_out, k[i], s[i], p[i], d[i])
                   for i, (n_in, n_out) in enumerate(zip(in_spatial, out_spatial))]
    out = per_dim[0]
    for c in per_dim[1:]:
        out = out[..., None] * c
    return out
