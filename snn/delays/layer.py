"""``DelayLinear``: a fully connected synapse layer with one learnable delay per synapse."""
from __future__ import annotations

import logging
import math
import numbers
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snn.delays.backends import resolve_delay_backend
from snn.delays.taps import Taps, gaussian_taps, gaussian_width, integer_taps, linear_taps, taps_to_dense
from snn.neurons.base import check_sequence, nan_checks_enabled
from snn.state import InputHistoryModule

__all__ = ["DelayLinear", "DELAY_MODES", "INTERPOLATIONS"]

log = logging.getLogger("snn")

DELAY_MODES = ("learned", "fixed", "none")
INTERPOLATIONS = ("gaussian", "linear")


def _non_finite(t: Tensor) -> bool:
    """Whether ``t`` holds NaN or ±inf: one sum first (finite unless it does, or unless finite
    values overflow it), element-wise only when the sum is not finite."""
    t = t.detach()
    return t.numel() > 0 and not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all())


def _check_finite(x: Tensor, name: str) -> None:
    """``ValueError`` if ``x`` holds NaN or ±inf (an infinite input has no defined output: the
    dense reference multiplies it by the kernel's zero taps, giving NaN, where the fused kernels
    skip those taps). Where :func:`snn.neurons.base.nan_checks_enabled` says (CPU, or CUDA under
    anomaly detection; never while ``torch.compile`` traces or under a ``torch.func`` transform)."""
    if x.is_floating_point() and nan_checks_enabled(x) and _non_finite(x):
        raise ValueError(f"{name} contains non-finite values (NaN or ±inf)")


def _check_delays(delay: Tensor) -> None:
    if _non_finite(delay):
        raise ValueError("delay holds non-finite positions (NaN or ±inf), e.g. after a diverging optimizer "
                         "step: a NaN position silently zeroes its synapse and gets no gradient")


def _refresh_mode(module: "DelayLinear", incompatible_keys) -> None:
    module._mode()  # load_state_dict may have changed the buffers


class DelayLinear(InputHistoryModule):
    r"""Linear synapses with a weight and a delay per synapse (learnable delays with DCLS).

    .. math::
        y[t, b, j] = \text{bias}_j + \sum_i \sum_{\tau=0}^{D} k_{ij}(\tau)\, x[t - \tau, b, i]

    with ``k_ij`` the Gaussian (default) or linear interpolation of ``w_ij`` at the real
    position ``d_ij ∈ [0, D]`` (:mod:`snn.delays.taps`), after Hammouamri, Khalfaoui-Hassani &
    Masquelier, "Learning Delays in Spiking Neural Networks using Dilated Convolutions with
    Learnable Spacings", ICLR 2024 (eq. 3–4). Training recipe of the paper: positions start
    uniform in ``[0, D]``, learn with a larger learning rate
    (:func:`snn.delays.delay_param_groups`), stay clamped to ``[0, D]``
    (:meth:`clamp_delays_`), ``σ`` decays from ``D/2`` (:class:`snn.delays.SigmaSchedule`),
    and at the end positions are rounded (:meth:`round_delays_`): the layer then applies exact
    integer delays ``y[t, j] = Σ_i w_ij x[t − d_ij, i]`` with a gather/shift-accumulate kernel.

    Args:
        in_features, out_features: synapse matrix size.
        max_delay: ``D``, the largest delay in timesteps (≥ 0); the kernel spans ``D + 1`` taps.
        delays: ``"learned"`` (positions are a parameter), ``"fixed"`` (random integer delays
            drawn once, not trained: the paper's baseline) or ``"none"`` (a plain linear layer).
        interpolation: ``"gaussian"`` (DCLS "gauss") or ``"linear"`` (DCLS "v1", 2 taps).
        sigma: initial Gaussian standard deviation in timesteps (default ``D / 2``).
        truncate: Gaussian window half-width in units of σ: 3 (default) keeps 99.7 % of the
            Gaussian (renormalised), 6 equals the untruncated kernel to float32 precision,
            None keeps all ``D + 1`` taps (DCLS). Cost grows with the window. The two integers
            around each position are always kept, so as σ decays the kernel tends to the
            nearest-integer delay that :meth:`round_delays_` applies.
        bias: add a learnable bias.
        generator: ``torch.Generator`` for the initial weights and delays.
        backend: ``"auto"``, ``"torch"`` (dense reference) or ``"numba"`` (fused kernels).
            Under a ``torch.func`` transform (``grad``, ``vmap``, ...) every name runs the
            ``"torch"`` reference (:func:`snn.delays.resolve_delay_backend`).
        device, dtype: factory arguments.

    Shape:
        forward: ``[T, B, in_features] → [T, B, out_features]`` (time-first; causal, from rest,
        or continuing the carried input history under :func:`snn.stateful`). The output has the
        input's floating dtype; integer or bool input (e.g. ``uint8`` spike frames) is first
        converted to the layer's dtype (that of ``weight``), as the neuron layers do.
        step: ``[B, in_features] → [B, out_features]``, same dtypes.

    Attributes:
        weight: ``[out, in]`` parameter (Kaiming-uniform init, as ``nn.Linear``).
        delay: ``[out, in]`` positions in timesteps — a parameter for ``"learned"``, else a buffer.
        bias: ``[out]`` parameter or None.
        sigma: 0-d buffer, the current σ (timesteps).
        rounded: 0-d bool buffer; True once delays are integers (after :meth:`round_delays_`,
            and always for ``"fixed"``/``"none"``). Saved in the ``state_dict``.
        backend_used: backend of the last forward (``"torch"`` for one under a ``torch.func``
            transform, ``"linear"`` when ``max_delay`` is 0).

    Raises:
        ValueError: bad sizes, ``max_delay`` not an int ≥ 0, unknown ``delays``/``interpolation``,
            ``sigma`` not finite and > 0 (when ``max_delay > 0``), ``truncate ≤ 0``; in forward,
            an input that is not ``[T, B, in_features]`` (or has ``T = 0``), an input or delay
            position that holds NaN or ±inf (tested where
            :func:`snn.neurons.base.nan_checks_enabled` says), or does not match the
            carried history's batch; an unknown ``backend`` or one not for this device
            (``RuntimeError`` when its package is missing). ``TypeError``: input not a tensor.

    Examples:
        >>> import torch
        >>> from snn.delays import DelayLinear
        >>> layer = DelayLinear(140, 256, max_delay=25)
        >>> y = layer(torch.rand(100, 8, 140))        # [T, B, N_in] → [T, B, N_out]
        >>> layer.round_delays_()                      # integer delays for inference
    """

    def __init__(self, in_features: int, out_features: int, max_delay: int, *, delays: str = "learned",
                 interpolation: str = "gaussian", sigma: Optional[float] = None, truncate: Optional[float] = 3.0,
                 bias: bool = True, generator: Optional[torch.Generator] = None, backend: str = "auto",
                 device: Optional[torch.device | str] = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not (isinstance(v, int) and v > 0):
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not (isinstance(max_delay, int) and not isinstance(max_delay, bool) and max_delay >= 0):
            raise ValueError(f"max_delay must be an int >= 0 (timesteps), got {max_delay!r}")
        if delays not in DELAY_MODES:
            raise ValueError(f"delays must be one of {DELAY_MODES}, got {delays!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
        if truncate is not None and not truncate > 0:
            raise ValueError(f"truncate must be > 0 (units of sigma) or None, got {truncate!r}")
        self.in_features, self.out_features = in_features, out_features
        self.delays, self.interpolation, self.truncate = delays, interpolation, truncate
        self.max_delay = 0 if delays == "none" else max_delay
        self.backend = backend
        fk = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **fk))
        self.bias = nn.Parameter(torch.empty(out_features, **fk)) if bias else None
        if delays == "learned":
            self.delay = nn.Parameter(torch.empty(out_features, in_features, **fk))
        else:
            self.register_buffer("delay", torch.zeros(out_features, in_features, **fk))
        s0 = self.max_delay / 2 if sigma is None else sigma
        if not (isinstance(s0, numbers.Real) and math.isfinite(s0) and s0 > 0) and self.max_delay > 0:
            raise ValueError(f"sigma must be a positive number of timesteps, got {sigma!r}")
        self.register_buffer("sigma", torch.tensor(float(s0) if s0 > 0 else 1.0, device=device))
        self.register_buffer("rounded", torch.tensor(delays != "learned", device=device))
        # (rounded, σ) as Python values, for code being compiled (see _mode)
        self._mode_cache = (delays != "learned", float(self.sigma))
        self.register_load_state_dict_post_hook(_refresh_mode)
        self.backend_used: Optional[str] = None
        self.reset_parameters(generator)

    # -- parameters ---------------------------------------------------------------------
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """Kaiming-uniform weights and bias (as ``nn.Linear``); delays uniform in ``[0, D]``
        (real for ``"learned"``, integers for ``"fixed"``, zeros for ``"none"``)."""
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            # kaiming_uniform_(a=√5) on a [out, in] matrix draws from U(−1/√in, 1/√in)
            self.weight.uniform_(-bound, bound, generator=generator)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound, generator=generator)
            D = self.max_delay
            if self.delays == "learned":
                self.delay.uniform_(0.0, float(D), generator=generator)
            elif self.delays == "fixed":
                g = torch.randint(0, D + 1, self.delay.shape, generator=generator, device=self.delay.device)
                self.delay.copy_(g.to(self.delay.dtype))
            else:
                self.delay.zero_()

    def _mode(self) -> tuple[bool, float]:
        """``(rounded, σ)`` as Python values. Eager calls read the buffers (and keep a copy);
        code being compiled reads the copy, which Dynamo guards on (reading a buffer's value
        would break the graph), so the buffers must change through :meth:`set_sigma`,
        :meth:`round_delays_`, ``load_state_dict`` or an eager call."""
        if not torch.compiler.is_compiling():
            self._mode_cache = (bool(self.rounded), float(self.sigma))
        return self._mode_cache

    @property
    def integer(self) -> bool:
        """True when the layer applies exact integer delays."""
        return self._mode()[0]

    def set_sigma(self, sigma: float) -> None:
        """Set the Gaussian σ (timesteps, > 0). Raises ``ValueError`` otherwise."""
        if not (isinstance(sigma, numbers.Real) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive number of timesteps, got {sigma!r}")
        self.sigma.fill_(float(sigma))
        self._mode()

    @torch.no_grad()
    def clamp_delays_(self) -> "DelayLinear":
        """Clamp the positions to ``[0, max_delay]`` in place (after each optimizer step).

        Raises:
            ValueError: a position is NaN or ±inf (clamping would hide a diverged optimizer).
        """
        _check_delays(self.delay)
        self.delay.clamp_(0.0, float(self.max_delay))
        return self

    @torch.no_grad()
    def round_delays_(self) -> "DelayLinear":
        """Round the positions to integers in ``[0, max_delay]`` and switch to exact integer delays.

        Raises:
            ValueError: a position is NaN or ±inf.
        """
        _check_delays(self.delay)
        self.delay.copy_(self.delay.clamp(0.0, float(self.max_delay)).round())
        self.rounded.fill_(True)
        self._mode()
        return self

    def integer_delays(self) -> Tensor:
        """``[out, in]`` int64 delays ``round(clamp(d, 0, D))`` (what the integer mode applies)."""
        return self.delay.detach().clamp(0.0, float(self.max_delay)).round().long()

    def window(self) -> int:
        """Taps per synapse ``W`` in the current mode (1 for integer delays)."""
        rounded, sigma = self._mode()  # one read of the buffers
        if rounded:
            return 1
        if self.interpolation == "linear":
            return min(2, self.max_delay + 1)
        return gaussian_width(sigma, self.max_delay, self.truncate)

    def taps(self) -> Taps:
        """The current per-synapse kernels as :class:`snn.delays.taps.Taps` (differentiable)."""
        D = self.max_delay
        rounded, sigma = self._mode()  # one read of the buffers
        if rounded:
            return integer_taps(self.weight, self.delay, D)
        d = self.delay.clamp(0.0, float(D))
        if self.interpolation == "linear":
            return linear_taps(self.weight, d, D)
        return gaussian_taps(self.weight, d, sigma, D, self.truncate)

    def dense_kernel(self) -> Tensor:
        """``[out, in, D + 1]`` kernel (index = delay in timesteps), for inspection and export."""
        return taps_to_dense(self.taps())

    # -- execution ----------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """``[T, B, in_features] → [T, B, out_features]``; raises as listed in the class docstring."""
        check_sequence(x, "x", min_dim=3, check_nan=False)
        if x.dim() != 3 or x.shape[2] != self.in_features:
            raise ValueError(f"x must be [T, B, in_features={self.in_features}], got {tuple(x.shape)}")
        _check_finite(x, "x")
        return self._run(x, carry=self._stateful)

    def step(self, x_t: Tensor) -> Tensor:
        """One timestep ``[B, in_features] → [B, out_features]``; the input history stays on the module.

        Raises:
            TypeError: ``x_t`` is not a tensor.
            ValueError: ``x_t`` is not ``[B, in_features]``, holds NaN or ±inf (where checked), or
                its batch differs from the carried history's.
        """
        check_sequence(x_t, "x_t", min_dim=2, check_nan=False, time_first=False)
        if x_t.dim() != 2 or x_t.shape[1] != self.in_features:
            raise ValueError(f"x_t must be [B, in_features={self.in_features}], got {tuple(x_t.shape)}")
        _check_finite(x_t, "x_t")
        return self._run(x_t.unsqueeze(0), carry=True)[0]

    def _run(self, x: Tensor, carry: bool) -> Tensor:
        if not (x.is_floating_point() or x.is_complex()):
            x = x.to(self.weight.dtype)  # uint8/bool spikes: the weights' dtype, never the weights cast to ints
        D = self.max_delay
        if D == 0:
            self.backend_used = "linear"
            return F.linear(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))
        hist = self._carried(x) if carry else None
        if nan_checks_enabled(x):
            _check_delays(self.delay)
        taps = self.taps()
        be = resolve_delay_backend(self.backend, x, taps.width, D)
        if not torch.compiler.is_compiling() and be.name != self.backend_used:  # no logging (nor guard) in a graph
            log.debug("DelayLinear: running delay backend %r (W=%d taps, D=%d) on %s", be.name, taps.width, D,
                      x.device.type)
        self.backend_used = be.name
        # the backend's run, without delay_conv's checks of taps built valid here (its range
        # check of the starts reads tensor values: a graph break under torch.compile)
        y = be.run(x, taps, hist)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        if carry:
            full = x if hist is None else torch.cat([hist, x], 0)
            if full.shape[0] < D:
                full = torch.cat([x.new_zeros(D - full.shape[0], *x.shape[1:]), full], 0)
            self._history = full[-D:]
        return y

    def extra_repr(self) -> str:
        parts = [f"{self.in_features}, {self.out_features}", f"max_delay={self.max_delay}",
                 f"delays={self.delays!r}"]
        if self.delays == "learned":
            parts.append(f"interpolation={self.interpolation!r}")
            if self.interpolation == "gaussian":
                parts.append(f"sigma={float(self.sigma):.3g}, truncate={self.truncate}")
        if self.integer and self.delays == "learned":
            parts.append("rounded=True")
        parts += [f"bias={self.bias is not None}", f"backend={self.backend!r}"]
        return ", ".join(parts)
