"""Conversion from the ``dcls`` package's ``Dcls1d`` (Khalfaoui-Hassani et al.) used as a delay
layer the way Hammouamri et al. (ICLR 2024) use it.

There, a delay layer is ``Dcls1d(N_in, N_out, kernel_count=1, dilated_kernel_size=K,
version="gauss")`` applied to the input left-padded by ``K − 1`` steps, with ``[B, N, T]``
tensors. Its kernel index of synapse ``(j, i)`` is ``P + K // 2`` and ``conv1d`` is a
cross-correlation, so the delay is ``d = K − 1 − K // 2 − P`` timesteps, ``max_delay = K − 1``,
and its Gaussian has ``σ = |SIG| + 0.27``. ``Dcls1d.clamp_parameters()`` keeps
``P ∈ [−(K // 2), K // 2]``: for an odd ``K`` that is exactly ``d ∈ [0, K − 1]``, for an even
``K`` the top end ``P > K // 2 − 1`` gives ``−1 ≤ d < 0``, a centre outside the kernel that a
:class:`DelayLinear` (positions in ``[0, max_delay]``) cannot represent.
"""
from __future__ import annotations

from typing import Any

import torch

from snn.delays.layer import DelayLinear

__all__ = ["from_dcls1d", "dcls_sigma", "DCLS_SIGMA_OFFSET"]

DCLS_SIGMA_OFFSET = 0.27
"""DCLS's "gauss" construction uses ``σ = |SIG| + 0.27``."""


def dcls_sigma(SIG: float) -> float:
    """σ in timesteps of a DCLS Gaussian with parameter ``SIG``."""
    if isinstance(SIG, torch.Tensor):
        SIG = SIG.detach().item()
    return abs(float(SIG)) + DCLS_SIGMA_OFFSET


def from_dcls1d(module: Any, **kwargs: Any) -> DelayLinear:
    """A :class:`DelayLinear` computing what ``module`` (a ``DCLS.construct.modules.Dcls1d``
    with ``kernel_count=1``, ``groups=1``, stride 1, used on inputs left-padded by ``K − 1``)
    computes, with the same weights, positions and σ (one shared σ: the first entry of ``SIG``).

    Args:
        module: the ``Dcls1d`` layer (version ``"gauss"`` or ``"v1"``).
        **kwargs: passed to :class:`DelayLinear` (``truncate``, ``backend``, ...).

    Raises:
        ValueError: a ``Dcls1d`` configuration with no delay-layer equivalent, or a position
            ``P`` outside ``[−(K // 2), K − 1 − K // 2]`` (a delay outside ``[0, K − 1]``; with an
            even ``K`` this includes the top of ``Dcls1d``'s own clamping range, ``P > K // 2 − 1``).
    """
    K = int(module.dilated_kernel_size[0])
    if module.kernel_count != 1 or module.groups != 1 or tuple(module.stride) != (1,):
        raise ValueError("from_dcls1d needs kernel_count=1, groups=1 and stride=1; got "
                         f"kernel_count={module.kernel_count}, groups={module.groups}, stride={module.stride}")
    if module.version not in ("gauss", "v1"):
        raise ValueError(f"from_dcls1d supports versions 'gauss' and 'v1', got {module.version!r}")
    interp = "gaussian" if module.version == "gauss" else "linear"
    delay = (K - 1 - K // 2) - module.P.detach()[0, :, :, 0]
    lo, hi = float(delay.min()), float(delay.max())
    if lo < 0 or hi > K - 1:
        P = module.P.detach()
        raise ValueError(
            f"from_dcls1d: Dcls1d positions P must lie in [{-(K // 2)}, {K - 1 - K // 2}] (delays "
            f"d = {K - 1 - K // 2} - P in [0, max_delay={K - 1}]) for dilated_kernel_size K={K}; got P in "
            f"[{float(P.min()):g}, {float(P.max()):g}] (d in [{lo:g}, {hi:g}])"
            + (". With an even K, Dcls1d's clamp range reaches P = K // 2, whose Gaussian centre lies one step "
               "outside the kernel: clamp P to <= K // 2 - 1 or use an odd K" if K % 2 == 0 and lo < 0 else ""))
    sigma = dcls_sigma(module.SIG.reshape(-1)[0]) if module.SIG is not None else None
    w = module.weight.detach()
    layer = DelayLinear(module.in_channels, module.out_channels, K - 1, interpolation=interp, sigma=sigma,
                        bias=module.bias is not None, device=w.device, dtype=w.dtype, **kwargs)
    with torch.no_grad():
        layer.weight.copy_(w[:, :, 0])
        layer.delay.copy_(delay)
        if module.bias is not None:
            layer.bias.copy_(module.bias.detach())
    return layer
