"""Import NIR graphs as snn modules (inverse of :mod:`snn.nir.export`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import nir
import numpy as np
import torch
from torch import Tensor, nn

from snn.layers import TimeDistributed
from snn.neurons import IF, LIF, LeakyIntegrator
from snn.nir.params import input_gain, nir_tau_to_beta
from snn.state import InputHistoryModule

__all__ = ["from_nir", "import_nir", "load_nir", "NIRGraphModule", "IntegerDelay", "ChannelLeakyIntegrator"]


class IntegerDelay(InputHistoryModule):
    """Per-feature integer delay ``y[t, b, i] = x[t − d_i, b, i]`` (zeros before the start).

    A NIR ``Delay`` node imports to this. Like :class:`snn.delays.DelayLinear`, it carries the
    last ``max(d)`` timesteps of its input as state: :meth:`step` and multi-step calls inside
    :func:`snn.stateful` continue the delay line, so a stream fed in chunks (or one timestep at
    a time) gives the same output as the whole sequence; :func:`snn.reset` empties it.

    Args:
        delays: ``[N]`` delays in timesteps (≥ 0; stored as int64, so float values are truncated).

    Shape:
        forward: ``[T, B, N] → [T, B, N]``; step: ``[B, N] → [B, N]`` (the input's dtype).

    Raises:
        ValueError: ``delays`` not 1-d or negative; an input that is not ``[T, B, N]`` (``[B, N]``
            for :meth:`step`); a carried history whose batch size differs from the input's (call
            ``snn.reset``).
    """

    def __init__(self, delays: Tensor) -> None:
        super().__init__()
        if delays.dim() != 1 or (delays < 0).any():
            raise ValueError(f"delays must be a 1-d tensor of non-negative ints, got {delays}")
        self.register_buffer("delays", delays.long())
        self.max_delay = int(delays.max()) if delays.numel() else 0

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[2] != self.delays.numel():
            raise ValueError(f"x must be [T, B, N={self.delays.numel()}], got {tuple(x.shape)}")
        return self._run(x, carry=self._stateful)

    def step(self, x_t: Tensor) -> Tensor:
        """One timestep ``[B, N] → [B, N]``; the last ``max(d)`` inputs stay on the module."""
        if x_t.dim() != 2 or x_t.shape[1] != self.delays.numel():
            raise ValueError(f"x_t must be [B, N={self.delays.numel()}], got {tuple(x_t.shape)}")
        return self._run(x_t.unsqueeze(0), carry=True)[0]

    def _run(self, x: Tensor, carry: bool) -> Tensor:
        T, B, N = x.shape
        D = self.max_delay
        h = self._carried(x) if carry else None
        if h is None:
            h = x.new_zeros(D, B, N)
        full = torch.cat([h.to(x.dtype), x], 0)                                        # [D + T, B, N]
        idx = D + torch.arange(T, device=x.device).view(T, 1) - self.delays.view(1, -1)  # [T, N], ≥ 0
        y = full.gather(0, idx.unsqueeze(1).expand(T, B, N))
        if carry:
            self._history = full[full.shape[0] - D:]
        return y

    def extra_repr(self) -> str:
        return f"N={self.delays.numel()}, max_delay={self.max_delay}"


class ChannelLeakyIntegrator(LeakyIntegrator):
    r""":class:`snn.LeakyIntegrator` with one decay factor per channel: what a NIR ``LI`` node
    whose τ differs between channels (dim 0 of the node's shape) imports to.

    .. math::
        v[t, b, c, \dots] = \beta_c\, v[t-1, b, c, \dots] + g_c\, x[t, b, c, \dots],\quad
        g_c = 1 \text{ or } 1 - \beta_c \ (\texttt{decay\_input})

    Args:
        beta: ``[C]`` decay factors per timestep, in (0, 1).
        feature_ndim: number of feature dims of the input (1 for ``[T, B, C]``, 3 for
            ``[T, B, C, H, W]``).
        decay_input: scale the input by ``1 − β_c``.

    Shape:
        forward: ``[T, B, C, *spatial] → [T, B, C, *spatial]`` (membrane after each step);
        step: ``[B, C, *spatial] → [B, C, *spatial]``.

    Attributes:
        beta: buffer ``[C, 1, …, 1]`` (``feature_ndim`` dims), broadcast over ``[B, C, …]``.
        tau: ``[C]`` float64 time constants ``−1 / ln β_c`` in timesteps.

    Raises:
        ValueError: ``beta`` not 1-d or outside (0, 1), ``feature_ndim < 1``.
    """

    def __init__(self, beta: Tensor, feature_ndim: int = 1, decay_input: bool = False) -> None:
        super().__init__(tau=5.0, decay_input=decay_input)
        beta = torch.as_tensor(beta)
        if beta.dim() != 1 or not bool(((beta > 0) & (beta < 1)).all()):
            raise ValueError(f"beta must be a 1-d tensor of decay factors in (0, 1), got {beta}")
        if not (isinstance(feature_ndim, int) and feature_ndim >= 1):
            raise ValueError(f"feature_ndim must be an int >= 1, got {feature_ndim!r}")
        del self.beta  # the parent's float, replaced by a per-channel buffer
        self.register_buffer("beta", beta.to(torch.get_default_dtype()).reshape(-1, *([1] * (feature_ndim - 1))))
        self.tau = -1.0 / torch.log(beta.double())  # type: ignore[assignment]
        self.decay_input = decay_input

    def extra_repr(self) -> str:
        return f"channels={self.beta.shape[0]}, tau={[round(float(t), 4) for t in self.tau]}, " \
               f"decay_input={self.decay_input}"


class _Scale(nn.Module):
    def __init__(self, scale: Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class NIRGraphModule(nn.Module):
    """Runs an imported NIR graph that is not a plain chain: nodes in topological order, the
    edges entering a node summed (NIR semantics), every node on whole sequences ``[T, B, ...]``.

    Args:
        modules: ``{node name: module}`` of every node but the input and output.
        edges: ``(source, target)`` node names.
        inp, out: names of the input and output nodes.

    Shape:
        ``[T, B, *in_feature] → [T, B, *out_feature]``.

    Raises:
        ValueError: a recurrent (cyclic) graph (construction); a node without incoming edge
            (forward). An edge naming an unknown node raises ``KeyError``. (A graph with
            not exactly one input and one output node is rejected by :func:`from_nir`.)
    """

    def __init__(self, modules: dict[str, nn.Module], edges: list[tuple[str, str]], inp: str, out: str) -> None:
        super().__init__()
        self.nodes = nn.ModuleDict(modules)
        self.edges = [tuple(e) for e in edges]
        self.inp, self.out = inp, out
        preds: dict[str, list[str]] = {n: [] for n in [inp, out, *modules]}
        for a, b in self.edges:
            preds[b].append(a)
        self.preds = preds
        order, done = [], {inp}
        pending = [n for n in preds if n != inp]
        while pending:
            ready = [n for n in pending if all(p in done for p in preds[n])]
            if not ready:
                raise ValueError(f"NIR graph has a cycle through {pending}: recurrent graphs are not supported")
            for n in ready:
                order.append(n)
                done.add(n)
            pending = [n for n in pending if n not in done]
        self.order = order

    def forward(self, x: Tensor) -> Tensor:
        vals = {self.inp: x}
        for n in self.order:
            ins = [vals[p] for p in self.preds[n]]
            if not ins:
                raise ValueError(f"NIR node {n!r} has no input")
            h = ins[0]
            for extra in ins[1:]:
                h = h + extra
            vals[n] = h if n == self.out else self.nodes[n](h)
        return vals[self.out]


def _t(a) -> Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.get_default_dtype())


def _uniform(a: np.ndarray, what: str, node: str) -> tuple[Optional[int], np.ndarray]:
    """``(None, scalar)`` if all equal, ``(C, [C])`` if constant within each channel (dim 0)."""
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0 or np.all(a == a.flat[0]):
        return None, np.asarray(a.flat[0] if a.size else 0.0)
    c = a.reshape(a.shape[0], -1)
    if np.all(c == c[:, :1]):
        return a.shape[0], c[:, 0]
    raise ValueError(f"NIR node {node!r}: {what} varies within a channel; snn neurons take one value per "
                     "layer or per channel (dim 0)")


def _gain_mode(beta: np.ndarray, r: np.ndarray, node: str) -> bool:
    """``decay_input`` for the input gain ``g = (1 − β)R``: False if g = 1, True if g = 1 − β."""
    g = input_gain(beta, r)
    if np.allclose(g, 1.0, rtol=1e-6, atol=0):
        return False
    if np.allclose(g, 1.0 - np.asarray(beta, dtype=np.float64), rtol=1e-6, atol=0):
        return True
    raise ValueError(f"NIR node {node!r}: input gain (1-beta)*r = {g} is neither 1 nor 1-beta; "
                     "scale the preceding weights to export such a node")


def _neuron(node: nir.NIRNode, name: str, dt: float, disc: str) -> nn.Module:
    meta = node.metadata or {}
    if isinstance(node, (nir.LI, nir.LIF)) and np.any(np.asarray(node.v_leak) != 0):
        raise ValueError(f"NIR node {name!r}: v_leak must be 0 (snn neurons leak towards 0), got {node.v_leak}")
    if isinstance(node, (nir.I, nir.IF)):
        g = dt * np.asarray(node.r, dtype=np.float64)
        if not np.allclose(g, 1.0, rtol=1e-6, atol=0):
            raise ValueError(f"NIR node {name!r}: dt*r = {g} must be 1 for an snn IF/integrator (dt={dt} s)")
        if isinstance(node, nir.I):
            return LeakyIntegrator(tau=float("inf"))
        beta = None
    else:
        beta = nir_tau_to_beta(node.tau, dt, disc)
    if isinstance(node, nir.LI):
        c_b, b = _uniform(beta, "tau", name)
        decay_input = _gain_mode(beta, node.r, name)
        if c_b is not None:  # one τ per channel
            return ChannelLeakyIntegrator(torch.as_tensor(b), feature_ndim=max(np.ndim(beta), 1),
                                          decay_input=decay_input)
        li = LeakyIntegrator(tau=5.0, decay_input=decay_input)
        li.beta = float(b)
        li.tau = float(-1.0 / np.log(b))
        return li
    c_th, th = _uniform(node.v_threshold, "v_threshold", name)
    soft = meta.get("snn_reset") == "subtract"
    c_r, vr = _uniform(node.v_reset, "v_reset", name)
    if c_r is not None and not soft:
        raise ValueError(f"NIR node {name!r}: per-channel v_reset is not supported")
    kw = dict(v_threshold=1.0, v_reset=None if soft else float(vr), backend="auto")
    if beta is None:
        m: nn.Module = IF(num_channels=c_th, **kw)
    else:
        c_b, b = _uniform(beta, "tau", name)
        channels = c_th or c_b
        m = LIF(beta=0.5, decay_input=_gain_mode(beta, node.r, name), num_channels=channels, **kw)
        m.beta.copy_(torch.as_tensor(b).expand_as(m.beta))
    m.v_threshold.copy_(torch.as_tensor(th).expand_as(m.v_threshold))
    return m


def _pair(a) -> tuple[int, ...]:
    return tuple(int(v) for v in np.atleast_1d(np.asarray(a)).tolist())


def _node(node: nir.NIRNode, name: str, dt: float, disc: str) -> nn.Module:
    if isinstance(node, nir.NIRGraph):
        return _subgraph(node, name, dt, disc)
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = _t(node.weight)
        bias = getattr(node, "bias", None)
        lin = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
        with torch.no_grad():
            lin.weight.copy_(w)
            if bias is not None:
                lin.bias.copy_(_t(bias).reshape(-1))
        return lin
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        w = _t(node.weight)
        cls = nn.Conv1d if isinstance(node, nir.Conv1d) else nn.Conv2d
        pad = node.padding if isinstance(node.padding, str) else _pair(node.padding)
        conv = cls(w.shape[1] * node.groups, w.shape[0], tuple(w.shape[2:]), stride=_pair(node.stride),
                   padding=pad, dilation=_pair(node.dilation), groups=int(node.groups), bias=True)
        with torch.no_grad():
            conv.weight.copy_(w)
            conv.bias.copy_(_t(node.bias).reshape(-1) if node.bias is not None else 0.0)
        return TimeDistributed(conv)
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        return TimeDistributed(nn.AvgPool2d(_pair(node.kernel_size), _pair(node.stride), _pair(node.padding),
                                            divisor_override=1 if isinstance(node, nir.SumPool2d) else None))
    if isinstance(node, nir.Flatten):
        end = node.end_dim + 2 if node.end_dim >= 0 else node.end_dim
        return nn.Flatten(int(node.start_dim) + 2, int(end))
    if isinstance(node, nir.Scale):
        return _Scale(_t(node.scale))
    if isinstance(node, nir.Delay):
        steps = np.asarray(node.delay, dtype=np.float64).reshape(-1) / dt
        if not np.allclose(steps, np.round(steps), atol=1e-6) or np.any(steps < -1e-9):
            raise ValueError(f"NIR node {name!r}: delays {node.delay} s are not non-negative multiples of dt={dt} s")
        return IntegerDelay(torch.as_tensor(np.round(steps), dtype=torch.long))
    if isinstance(node, (nir.LIF, nir.IF, nir.LI, nir.I)):
        return _neuron(node, name, dt, disc)
    raise ValueError(f"NIR node {name!r} of type {type(node).__name__} is not supported by snn "
                     "(supported: Affine, Linear, Conv1d, Conv2d, AvgPool2d, SumPool2d, Flatten, Scale, "
                     "Delay, LIF, IF, LI, I, and sub-graphs of these)")


def _delay_linear(g: nir.NIRGraph, name: str, dt: float) -> nn.Module:
    from snn.delays import DelayLinear
    ws, bias = [], None
    for k, n in g.nodes.items():
        if k.startswith("weight_"):
            d = int(k.split("_", 1)[1])
            ws.append((d, _t(n.weight)))
            if isinstance(n, nir.Affine):
                bias = _t(n.bias).reshape(-1)
    out_f, in_f = ws[0][1].shape
    layer = DelayLinear(in_f, out_f, int(g.metadata["snn_max_delay"]), delays="fixed", bias=bias is not None)
    with torch.no_grad():
        w = torch.zeros(out_f, in_f)
        delay = torch.zeros(out_f, in_f)
        for d, wk in ws:
            w += wk
            delay[wk != 0] = float(d)
        layer.weight.copy_(w)
        layer.delay.copy_(delay)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _subgraph(g: nir.NIRGraph, name: str, dt: float, disc: str) -> nn.Module:
    if (g.metadata or {}).get("snn_module") == "DelayLinear":
        return _delay_linear(g, name, dt)
    return _build(g, dt, disc)


def _build(graph: nir.NIRGraph, dt: float, disc: str) -> nn.Module:
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"NIR graph must have exactly one Input and one Output node, got {inputs} and {outputs}")
    base = lambda e: e.split(".")[0] if e.split(".")[0] in graph.nodes else e  # "sub.input" → "sub"
    edges = [(base(a), base(b)) for a, b in graph.edges]
    mods = {k: _node(n, k, dt, disc) for k, n in graph.nodes.items() if k not in (inputs[0], outputs[0])}
    # a chain input → n1 → … → output becomes an nn.Sequential
    nxt = {}
    for a, b in edges:
        nxt.setdefault(a, []).append(b)
    chain, cur = [], inputs[0]
    while len(nxt.get(cur, [])) == 1 and cur != outputs[0]:
        cur = nxt[cur][0]
        chain.append(cur)
    if chain and chain[-1] == outputs[0] and len(chain) - 1 == len(mods) and len(edges) == len(chain):
        return nn.Sequential(*[mods[k] for k in chain[:-1]])
    safe = {k: k.replace(".", "_") for k in mods}
    return NIRGraphModule({safe[k]: m for k, m in mods.items()},
                          [(safe.get(a, a), safe.get(b, b)) for a, b in edges], inputs[0], outputs[0])


def from_nir(graph: nir.NIRGraph, dt: Optional[float] = None, discretization: Optional[str] = None) -> nn.Module:
    """Build an snn model from a NIR graph (the inverse of :func:`snn.nir.to_nir`).

    Node mapping: ``Affine/Linear → nn.Linear``, ``Conv1d/2d → TimeDistributed(ConvNd)``,
    ``AvgPool2d``/``SumPool2d`` → ``TimeDistributed(AvgPool2d)`` (sum: ``divisor_override=1``),
    ``Flatten → nn.Flatten`` (+2 for the time and batch dims), ``LIF → snn.LIF``,
    ``IF → snn.IF``, ``LI``/``I`` → :class:`snn.LeakyIntegrator` (an ``LI`` with one τ per
    channel: :class:`ChannelLeakyIntegrator`), ``Delay`` → :class:`IntegerDelay` (streams
    under :func:`snn.stateful`, like ``DelayLinear``), ``Scale`` → elementwise scale; snn's
    own ``DelayLinear`` sub-graphs come back as ``DelayLinear``. Time constants, resistances
    and thresholds are converted as in
    :mod:`snn.nir.params`; a neuron with node metadata ``snn_reset="subtract"`` gets a soft reset,
    others a hard reset to ``v_reset``. A chain becomes an ``nn.Sequential``, any other acyclic
    graph a :class:`NIRGraphModule`. The result takes ``[T, B, *feature]``.

    Args:
        graph: the NIR graph.
        dt: seconds per timestep; default: the graph's ``snn_dt`` metadata (graphs from other
            tools need it: snnTorch exports with 1e-4 s, Norse with 1e-3 s).
        discretization: ``"euler"`` or ``"exact"``; default the graph's metadata, else Euler.

    Returns:
        An ``nn.Module`` in training mode (call ``.eval()`` for inference).

    Raises:
        TypeError: ``graph`` is not a ``nir.NIRGraph``.
        ValueError: no ``dt``; a bad ``dt``/``discretization``; not exactly one ``Input`` and
            one ``Output`` node; unsupported node types (e.g. ``CubaLIF``); parameters snn cannot
            express (``v_leak ≠ 0``, per-neuron instead of per-channel values, input gains other
            than 1 or ``1 − β``, ``β`` outside (0, 1), non-integer delays); recurrent graphs.
    """
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"graph must be a nir.NIRGraph, got {type(graph).__name__}")
    meta = graph.metadata or {}
    dt = dt if dt is not None else meta.get("snn_dt")
    if dt is None:
        raise ValueError("dt (seconds per timestep) is needed: this graph has no snn_dt metadata")
    disc = discretization or meta.get("snn_discretization", "euler")
    if isinstance(disc, bytes):
        disc = disc.decode()
    return _build(graph, float(dt), str(disc))


def load_nir(path: str | os.PathLike) -> nir.NIRGraph:
    """Read a NIR file (HDF5 through h5py: arrays and strings only, no code is executed).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable NIR graph (message names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"NIR file not found: {p}")
    try:
        return nir.read(p)
    except Exception as e:  # h5py/nir raise OSError, KeyError, AssertionError... on bad files
        raise ValueError(f"{p}: not a readable NIR graph ({type(e).__name__}: {e})") from e


def import_nir(path: str | os.PathLike, dt: Optional[float] = None, discretization: Optional[str] = None) -> nn.Module:
    """:func:`load_nir` then :func:`from_nir`.

    Raises:
        FileNotFoundError, ValueError, TypeError: as :func:`load_nir` and :func:`from_nir`.
    """
    return from_nir(load_nir(path), dt=dt, discretization=discretization)
