"""Export snn models to NIR graphs (see :mod:`snn.nir.params` for the parameter conventions)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

import nir
import numpy as np
import torch
from torch import Tensor, nn

from snn.layers import TimeDistributed
from snn.models.shd import DelaySNN, TimeSharedDropout, sum_channel_bins
from snn.neurons import IF, LIF, LeakyIntegrator, ParametricLIF
from snn.nir.params import beta_to_nir_tau, resistance
from snn.state import reset

__all__ = ["to_nir", "export_nir", "flatten_chain"]

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
            TimeSharedDropout)
_SKIP = (*_DROPOUT, nn.Identity)
"""Leaves that are the identity at inference (dropout in eval mode) and are left out of the graph."""


class _ChannelBins(nn.Module):
    """``[T, B, C] → [T, B, ⌈C / k⌉]``: adjacent channels summed in groups of ``k`` (the last group
    zero-padded), exactly as :class:`snn.models.shd.DelaySNN` bins its input; exported as a
    ``Linear`` node with a 0/1 weight matrix."""

    def __init__(self, in_features: int, k: int) -> None:
        super().__init__()
        self.in_features, self.k = in_features, k

    def forward(self, x: Tensor) -> Tensor:
        return sum_channel_bins(x, self.k)

    def matrix(self) -> np.ndarray:
        """``[⌈C / k⌉, C]`` float32 with ``M[j, i] = 1`` iff ``i // k == j``."""
        i = np.arange(self.in_features)
        m = np.zeros((-(-self.in_features // self.k), self.in_features), dtype=np.float32)
        m[i // self.k, i] = 1.0
        return m


def _input_stages(model: nn.Module, sample: Tensor) -> list[tuple[str, nn.Module, int]]:
    """What a model's ``forward`` does to its input before its first child module, as leaves:
    :class:`snn.models.shd.DelaySNN` flattens the features (``[T, B, *feature] → [T, B, C]``)
    and sums its channels in bins (``channel_bins``)."""
    if not isinstance(model, DelaySNN):
        return []
    stages: list[tuple[str, nn.Module, int]] = []
    if sample.dim() > 3:
        stages.append(("input_flatten", nn.Flatten(2), 2))
    if model.bin > 1:
        stages.append(("input_bins", _ChannelBins(model.in_features, model.bin), 2))
    return stages


def flatten_chain(model: nn.Module, batch_ndim: int = 2) -> list[tuple[str, nn.Module, int]]:
    """Leaves of ``model`` in call order as ``(name, module, batch_ndim)``; ``batch_ndim`` is 1
    inside :class:`snn.TimeDistributed` (T and B merged) and 2 elsewhere. Containers other than
    ``nn.Sequential`` are read as chains of their children; :func:`to_nir` checks that the chain
    reproduces the model's output and raises otherwise."""
    out: list[tuple[str, nn.Module, int]] = []

    def walk(prefix: str, m: nn.Module, bnd: int) -> None:
        children = list(m.named_children())
        if not children or isinstance(m, (LIF, IF, LeakyIntegrator)) or _is_delay(m):
            out.append((prefix or "layer", m, bnd))
            return
        inner = 1 if isinstance(m, TimeDistributed) else bnd
        for n, c in children:
            walk(f"{prefix}_{n}" if prefix else n, c, inner)

    walk("", model, batch_ndim)
    return [(n, m, b) for n, m, b in out if not isinstance(m, _SKIP)]


def _is_delay(m: nn.Module) -> bool:
    return type(m).__name__ == "DelayLinear"


def _run_chain(chain, x: Tensor) -> tuple[Tensor, list[tuple[int, ...]]]:
    shapes = []
    for _, m, bnd in chain:
        shapes.append(tuple(x.shape[2:]))
        if bnd == 1:
            T, B = x.shape[:2]
            y = m(x.reshape(T * B, *x.shape[2:]))
            x = y.reshape(T, B, *y.shape[1:])
        else:
            x = m(x)
    return x, shapes


def _fold_bn(w: Tensor, b: Optional[Tensor], bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Fold eval-mode batch norm into the preceding layer's weight ``[out, ...]`` and bias."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1.0 / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else 0.0) - bn.running_mean * scale
    b0 = b if b is not None else torch.zeros_like(bn.running_mean)
    return w * scale.view(-1, *([1] * (w.dim() - 1))), b0 * scale + shift


def _arr(t: Tensor | float, shape: tuple[int, ...]) -> np.ndarray:
    """Neuron parameter (0-d, per-channel ``[C]`` or float) broadcast to the neuron shape, float64."""
    a = np.asarray(t.detach().cpu().double().numpy() if isinstance(t, Tensor) else t, dtype=np.float64)
    if a.ndim == 1:
        a = a.reshape(a.shape[0], *([1] * (len(shape) - 1)))
    return np.broadcast_to(a, shape).copy()


def _neuron(m: nn.Module, shape: tuple[int, ...], dt: float, disc: str) -> nir.NIRNode:
    if isinstance(m, LeakyIntegrator):
        if m.beta is None:
            return nir.I(r=np.full(shape, 1.0 / dt))
        beta = _arr(m.beta, shape)
        return nir.LI(tau=beta_to_nir_tau(beta, dt, disc), r=resistance(beta, m.decay_input),
                      v_leak=np.zeros(shape))
    meta = {"snn_reset": "subtract" if m.v_reset is None else "hard"}
    if torch.any(m.v_init != 0):
        raise ValueError(f"{type(m).__name__} with a non-zero v_init cannot be expressed in NIR "
                         f"(neurons start at rest v=0); got v_init={m.v_init.tolist()}")
    th = _arr(m.v_threshold, shape)
    v_reset = np.full(shape, 0.0 if m.v_reset is None else m.v_reset)
    decay = m.decay()
    if decay is None:
        return nir.IF(r=np.full(shape, 1.0 / dt), v_threshold=th, v_reset=v_reset, metadata=meta)
    beta = _arr(decay, shape)
    return nir.LIF(tau=beta_to_nir_tau(beta, dt, disc), r=resistance(beta, m.decay_input),
                   v_leak=np.zeros(shape), v_threshold=th, v_reset=v_reset, metadata=meta)


def _np(t: Optional[Tensor]) -> Optional[np.ndarray]:
    return None if t is None else t.detach().cpu().numpy().copy()


def _delay_graph(m: nn.Module, dt: float) -> nir.NIRGraph:
    """Integer-delay synapses as parallel ``Delay → Linear`` branches, one per delay value,
    summed at the output (NIR sums the edges entering a node)."""
    if not m.integer:
        raise ValueError("DelayLinear must use integer delays to be exported to NIR: call round_delays_() first")
    d = m.integer_delays().cpu()
    w = m.weight.detach().cpu()
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array([m.in_features])}),
                                     "output": nir.Output(output_type={"output": np.array([m.out_features])})}
    edges = []
    values = sorted(set(d.flatten().tolist())) or [0]
    for k, v in enumerate(values):
        wk = torch.where(d == v, w, torch.zeros_like(w)).numpy()
        nodes[f"delay_{v}"] = nir.Delay(delay=np.full(m.in_features, v * dt))
        if k == 0 and m.bias is not None:
            nodes[f"weight_{v}"] = nir.Affine(weight=wk, bias=_np(m.bias))
        else:
            nodes[f"weight_{v}"] = nir.Linear(weight=wk)
        edges += [("input", f"delay_{v}"), (f"delay_{v}", f"weight_{v}"), (f"weight_{v}", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False,
                        metadata={"snn_module": "DelayLinear", "snn_max_delay": int(m.max_delay)})


def _fold_bn_into(prev: nir.NIRNode, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> Optional[nir.NIRNode]:
    """``prev`` with eval-mode ``bn`` folded in (``Affine``/``Linear``/``Conv``, or the ``Delay →
    Linear`` sub-graph of an integer-delay ``DelayLinear``: every branch's weight rows scaled, the
    shift added to the bias of the first branch), or None if ``prev`` cannot absorb it."""
    def bias_of(node: nir.NIRNode) -> Optional[Tensor]:
        b = getattr(node, "bias", None)
        return None if b is None else torch.as_tensor(b)

    if isinstance(prev, (nir.Affine, nir.Linear)):
        w, b = _fold_bn(torch.as_tensor(prev.weight), bias_of(prev), bn)
        return nir.Affine(weight=w.numpy(), bias=b.numpy())
    if isinstance(prev, (nir.Conv1d, nir.Conv2d)):
        w, b = _fold_bn(torch.as_tensor(prev.weight), bias_of(prev), bn)
        prev.weight, prev.bias = w.numpy(), b.numpy()
        return prev
    if isinstance(prev, nir.NIRGraph) and (prev.metadata or {}).get("snn_module") == "DelayLinear":
        branches = sorted((k for k in prev.nodes if k.startswith("weight_")), key=lambda k: int(k.split("_", 1)[1]))
        bias = next((bias_of(prev.nodes[k]) for k in branches if bias_of(prev.nodes[k]) is not None), None)
        for j, k in enumerate(branches):
            w, b = _fold_bn(torch.as_tensor(prev.nodes[k].weight), bias if j == 0 else None, bn)
            prev.nodes[k] = nir.Affine(weight=w.numpy(), bias=b.numpy()) if j == 0 else nir.Linear(weight=w.numpy())
        return prev
    return None


def _stateless(m: nn.Module, shape: tuple[int, ...]) -> nir.NIRNode:
    if isinstance(m, _ChannelBins):
        return nir.Linear(weight=m.matrix())
    if isinstance(m, nn.Linear):
        w, b = _np(m.weight), _np(m.bias)
        return nir.Linear(weight=w) if b is None else nir.Affine(weight=w, bias=b)
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):
        if m.padding_mode != "zeros":
            raise ValueError(f"{type(m).__name__}: only padding_mode='zeros' exists in NIR, got {m.padding_mode!r}")
        bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, dtype=np.float32)
        if isinstance(m, nn.Conv1d):
            return nir.Conv1d(input_shape=shape[1], weight=_np(m.weight), stride=m.stride[0],
                              padding=m.padding if isinstance(m.padding, str) else m.padding[0],
                              dilation=m.dilation[0], groups=m.groups, bias=bias)
        return nir.Conv2d(input_shape=tuple(shape[1:]), weight=_np(m.weight), stride=m.stride,
                          padding=m.padding, dilation=m.dilation, groups=m.groups, bias=bias)
    if isinstance(m, nn.AvgPool2d):
        if m.ceil_mode or (not m.count_include_pad and m.padding) or m.divisor_override not in (None, 1):
            raise ValueError("AvgPool2d: NIR pooling needs ceil_mode=False, count_include_pad=True and "
                             f"divisor_override None (average) or 1 (sum); got {m}")
        k, s, p = (np.array(nn.modules.utils._pair(v)) for v in (m.kernel_size, m.stride, m.padding))
        cls = nir.SumPool2d if m.divisor_override == 1 else nir.AvgPool2d
        return cls(kernel_size=k, stride=s, padding=p)
    raise ValueError(f"cannot export {type(m).__name__} to NIR: supported layers are LIF, PLIF, IF, "
                     "LeakyIntegrator, Linear, Conv1d, Conv2d, AvgPool2d (and sum pooling), Flatten, "
                     "DelayLinear (integer delays), BatchNorm after Linear/Conv/DelayLinear (folded), "
                     "Dropout/TimeSharedDropout/Identity (skipped); MaxPool2d has no NIR equivalent (use AvgPool2d)")


@torch.no_grad()
def to_nir(model: nn.Module, sample: Tensor, dt: float = 1e-3, discretization: str = "euler",
           check: bool = True) -> nir.NIRGraph:
    """Convert a chain-structured snn model to a :class:`nir.NIRGraph`.

    The model's leaves (inside ``nn.Sequential``/:class:`snn.TimeDistributed` or other
    containers read in child order) become one NIR node each, named by their module path
    with ``_`` for ``.``: ``Linear → Affine``/``Linear``, ``Conv1d/2d → Conv1d/2d`` (spatial
    ``input_shape`` from ``sample``), ``AvgPool2d → AvgPool2d`` (``divisor_override=1`` →
    ``SumPool2d``), ``Flatten → Flatten`` (dims without the time/batch dims), ``LIF``/``PLIF``
    → ``LIF``, ``IF → IF``, ``LeakyIntegrator → LI`` (``τ = ∞``: ``I``), integer-delay
    ``DelayLinear`` → sub-graph of ``Delay → Linear`` branches; eval-mode ``BatchNorm`` is
    folded into the Linear/Conv/DelayLinear before it, eval-mode dropout (``nn.Dropout*``,
    :class:`snn.models.shd.TimeSharedDropout`) and ``Identity`` are dropped. The input stages of
    :class:`snn.models.shd.DelaySNN` (the ``shd-delays`` preset) that are not modules become
    nodes too: its feature flattening (``Flatten``) and channel binning (a ``Linear`` node with
    0/1 weights, e.g. 700 → 140). Time constants
    follow :mod:`snn.nir.params` (``dt`` seconds per timestep, stored with the discretization
    in the graph metadata). NIR 1.0 only knows hard reset: a soft-reset neuron is written with
    ``v_reset = 0`` and node metadata ``snn_reset="subtract"``, which :func:`snn.nir.from_nir`
    honours (other tools will reset to 0). NIR fires on ``v > v_threshold``, snn on ``≥``.

    Args:
        model: the network; put it in eval mode first if it has batch norm or dropout.
        sample: an input ``[T, B, *feature]`` used to infer shapes and to check the chain.
        dt: seconds per timestep (> 0).
        discretization: ``"euler"`` (default; snnTorch/Norse) or ``"exact"``.
        check: verify that running the leaves in order reproduces ``model(sample)`` exactly.

    Returns:
        The graph, nodes ``input → … → output``, ``metadata = {"snn_dt", "snn_discretization"}``.

    Raises:
        ValueError: ``sample`` not a tensor with ≥ 3 dims, an unsupported layer (or a conv with
            ``padding_mode`` other than ``"zeros"``), batch norm or dropout in training mode, batch
            norm not after a Linear/Conv/DelayLinear, a model that is not a chain (only detected
            with ``check=True``), a Flatten merging the time/batch dims, neurons inside
            ``TimeDistributed``, a neuron with ``v_init ≠ 0``, a ``DelayLinear`` without integer
            delays, bad ``dt``/``discretization``.

    Examples:
        >>> import torch, snn
        >>> from snn.nir import to_nir
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), snn.LIF(tau=2.0))
        >>> graph = to_nir(net, torch.rand(5, 1, 4))
        >>> sorted(graph.nodes)
        ['0', '1', 'input', 'output']
    """
    if not (isinstance(sample, Tensor) and sample.dim() >= 3):
        raise ValueError(f"sample must be a [T, B, *feature] tensor, got "
                         f"{tuple(sample.shape) if isinstance(sample, Tensor) else type(sample).__name__}")
    for name, m in model.named_modules():
        if isinstance(m, _DROPOUT) and m.training and m.p > 0:
            raise ValueError(f"{name}: dropout must be in eval mode to be left out of the graph (call model.eval())")
    chain = _input_stages(model, sample) + flatten_chain(model)
    reset(model)
    if check:
        expected = model(sample)
        reset(model)
    got, shapes = _run_chain(chain, sample)
    reset(model)
    if check and (got.shape != expected.shape or not torch.equal(got, expected)):
        raise ValueError("the model is not a chain of its leaf modules (running them in order does not "
                         "reproduce model(sample)); NIR export supports chains of the supported layers")
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(sample.shape[2:])})}
    names: list[str] = []
    for i, (name, m, bnd) in enumerate(chain):
        shape = tuple(int(v) for v in shapes[i])  # [*feature] of this leaf's input (neurons: = output)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if m.training:
                raise ValueError(f"{name}: batch norm must be in eval mode to be folded (call model.eval())")
            prev = nodes.get(names[-1]) if names else None
            folded = None if prev is None else _fold_bn_into(prev, m)
            if folded is None:
                raise ValueError(f"{name}: batch norm can only be folded into a directly preceding "
                                 "Linear/Conv/DelayLinear")
            nodes[names[-1]] = folded
            continue
        if isinstance(m, nn.Flatten):
            s, e = m.start_dim - bnd, (m.end_dim - bnd if m.end_dim >= 0 else m.end_dim)
            if s < 0:
                raise ValueError(f"{name}: Flatten must keep the time and batch dims (start_dim >= {bnd})")
            node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=s, end_dim=e)
        elif isinstance(m, (LIF, IF, LeakyIntegrator, ParametricLIF)):
            if bnd != 2:
                raise ValueError(f"{name}: neurons inside TimeDistributed cannot be exported")
            node = _neuron(m, shape, dt, discretization)
        elif _is_delay(m):
            node = _delay_graph(m, dt)
        else:
            node = _stateless(m, shape)
        nodes[name] = node
        names.append(name)
    nodes["output"] = nir.Output(output_type={"output": np.array(got.shape[2:])})
    order = ["input", *names, "output"]
    edges = list(zip(order[:-1], order[1:]))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False,
                        metadata={"snn_dt": float(dt), "snn_discretization": discretization})


def export_nir(model: nn.Module, sample: Tensor, path: str | os.PathLike, **kwargs) -> nir.NIRGraph:
    """:func:`to_nir`, then write the graph to ``path`` (HDF5, NIR's file format) atomically:
    a temp file in the same folder, then rename. ``kwargs`` go to :func:`to_nir`.

    Returns:
        The exported graph.

    Raises:
        ValueError: as :func:`to_nir` (nothing is written then); ``OSError`` if writing fails.
    """
    graph = to_nir(model, sample, **kwargs)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        nir.write(tmp, graph)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return graph
