"""What the converter accepts: the tables of supported modules, functions and methods, and
the torch.fx tracer that keeps the conversion-relevant modules as leaves."""
from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from snn.conversion.activations import ClipReLU, QCFS

__all__ = ["ConversionError", "trace", "check_supported", "ACTIVATION_MODULES", "MAXPOOL_MODULES",
           "LINEAR_MODULES", "DROP_MODULES", "BATCHNORM_MODULES", "supported_summary"]


class ConversionError(ValueError):
    """The model cannot be converted (untraceable, or an unsupported layer); the message names it."""


#: ANN activations that become IF neurons.
ACTIVATION_MODULES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.Hardtanh, ClipReLU, QCFS)
#: Max pooling, made spiking (or replaced by average pooling) in the SNN.
MAXPOOL_MODULES: tuple[type[nn.Module], ...] = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
                                                nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
#: Batch norm: folded into the preceding conv/linear, else kept as its (eval-mode) affine map.
BATCHNORM_MODULES: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: Removed (identity at inference).
DROP_MODULES: tuple[type[nn.Module], ...] = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                                             nn.AlphaDropout, nn.Identity)
#: Linear in their input, applied to spike trains unchanged.
LINEAR_MODULES: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.Flatten, nn.Unflatten,
    nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d)

_ACT_FUNCTIONS = {F.relu, torch.relu, torch.relu_, F.relu6, F.hardtanh, torch.clamp, torch.clip}
_MAXPOOL_FUNCTIONS = {F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_max_pool1d,
                      F.adaptive_max_pool2d, F.adaptive_max_pool3d}
_DROP_FUNCTIONS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout}
_LINEAR_FUNCTIONS = {
    operator.add, operator.iadd, operator.sub, operator.isub, operator.neg, operator.pos, operator.getitem,
    getattr, torch.add, torch.sub, torch.cat, torch.concat, torch.stack, torch.flatten, torch.reshape,
    torch.squeeze, torch.unsqueeze, torch.mean, torch.sum, torch.permute, torch.transpose,
    F.linear, F.conv1d, F.conv2d, F.conv3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.pad}
_SCALAR_FUNCTIONS = {operator.mul, operator.imul, operator.truediv, operator.itruediv, torch.mul, torch.div}
_ACT_METHODS = {"relu", "relu_", "clamp", "clamp_", "clip", "clamp_min", "clamp_min_"}
_LINEAR_METHODS = {"size", "dim", "view", "reshape", "flatten", "contiguous", "mean", "sum", "add", "add_",
                   "sub", "squeeze", "unsqueeze", "permute", "transpose", "chunk", "split", "view_as",
                   "reshape_as", "expand_as", "float", "to", "type_as"}
_SCALAR_METHODS = {"mul", "mul_", "div", "div_"}


def supported_summary() -> str:
    """One paragraph listing what :func:`check_supported` accepts (used in error messages)."""
    names = lambda ts: ", ".join(t.__name__ for t in ts)  # noqa: E731
    return (f"activations ({names(ACTIVATION_MODULES)}, F.relu, torch.relu, F.relu6, F.hardtanh(min_val=0), "
            f"clamp(min=0)); linear layers ({names(LINEAR_MODULES)}, F.linear/conv/avg-pool/pad); "
            f"batch norm ({names(BATCHNORM_MODULES)}, eval mode); max pooling ({names(MAXPOOL_MODULES)}, "
            f"F.max_pool*); removed at inference ({names(DROP_MODULES)}, F.dropout*); residual additions, "
            "subtraction, torch.cat/stack, flatten/view/reshape/permute, mean/sum over non-batch dims, "
            "multiplication or division by constants (numbers, buffers, parameters)")


class _Tracer(fx.Tracer):
    """Keeps our activations (QCFS, ClipReLU) as leaves, like torch.nn's own modules."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (QCFS, ClipReLU)) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model`` with torch.fx (Reed et al., "torch.fx: Practical Program
    Capture and Transformation for Deep Learning in Python", MLSys 2022).

    Raises:
        ConversionError: fx cannot trace the model (data-dependent control flow, ...).
    """
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # fx raises TraceError, TypeError, NotImplementedError, ...
        raise ConversionError(f"torch.fx could not trace {type(model).__name__} ({type(e).__name__}: {e}); "
                              "the converter needs a model without data-dependent control flow") from e
    name = model.__class__.__name__
    return fx.GraphModule(model, graph, name)


def _is_number(a: Any) -> bool:
    return isinstance(a, (int, float)) and not isinstance(a, bool)


def _is_constant(a: Any) -> bool:
    """A Python number, or a graph value that does not depend on the model's input: a buffer or
    parameter (``get_attr``, fixed once the ANN is trained) or an expression of such values
    (``self.std.view(1, -1, 1, 1)``)."""
    if _is_number(a):
        return True
    if not isinstance(a, fx.Node):
        return False
    seen: set[fx.Node] = set()
    stack = [a]
    while stack:
        n = stack.pop()
        if n.op == "placeholder":
            return False
        if n not in seen:
            seen.add(n)
            stack.extend(n.all_input_nodes)
    return True


def _scaling_ok(node: fx.Node) -> bool:
    """``x * c``, ``c * x``, ``x / c`` (and the ``mul``/``div`` methods) with a constant ``c``
    (:func:`_is_constant`): an element-wise scaling, linear in ``x`` and hence exact on spike
    rates. ``c / x``, ``x * y`` of two inputs and rounding division are not."""
    a = node.args[0] if node.args else node.kwargs.get("input")
    b = node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
    tgt = node.target
    if tgt in (operator.truediv, operator.itruediv, torch.div, "div", "div_"):
        return node.kwargs.get("rounding_mode") is None and _is_constant(b)
    return _is_constant(a) or _is_constant(b)


def _activation_call_ok(node: fx.Node) -> bool:
    """Functional clamp/hardtanh count as activations only with a lower bound of 0."""
    tgt = node.target
    if tgt in (F.hardtanh,):
        lo = node.kwargs.get("min_val", node.args[1] if len(node.args) > 1 else -1.0)
        return lo == 0
    if tgt in (torch.clamp, torch.clip, "clamp", "clamp_", "clip"):
        lo = node.kwargs.get("min", node.args[1] if len(node.args) > 1 else None)
        hi = node.kwargs.get("max", node.args[2] if len(node.args) > 2 else None)
        return lo == 0 and (hi is None or (_is_number(hi) and hi > 0))
    if tgt in ("clamp_min", "clamp_min_"):
        return (node.kwargs.get("min", node.args[1] if len(node.args) > 1 else None)) == 0
    return True


def classify(node: fx.Node, gm: fx.GraphModule) -> str:
    """Role of a node: ``"activation"``, ``"maxpool"``, ``"batchnorm"``, ``"drop"``, ``"linear"``,
    ``"io"`` (placeholder/output/get_attr), or ``"unsupported"``."""
    if node.op in ("placeholder", "output", "get_attr"):
        return "io"
    if node.op == "call_module":
        m = gm.get_submodule(node.target)
        if isinstance(m, nn.Hardtanh) and not isinstance(m, nn.ReLU6):
            return "activation" if m.min_val == 0 and m.max_val > 0 else "unsupported"
        if isinstance(m, MAXPOOL_MODULES) and m.return_indices:
            return "unsupported"
        for role, types in (("activation", ACTIVATION_MODULES), ("maxpool", MAXPOOL_MODULES),
                            ("batchnorm", BATCHNORM_MODULES), ("drop", DROP_MODULES), ("linear", LINEAR_MODULES)):
            if isinstance(m, types):
                return role
        return "unsupported"
    if node.op == "call_function":
        tgt = node.target
        if tgt in _ACT_FUNCTIONS:
            return "activation" if _activation_call_ok(node) else "unsupported"
        if tgt in _MAXPOOL_FUNCTIONS:
            return "maxpool"
        if tgt in _DROP_FUNCTIONS:
            return "drop"
        if tgt in _LINEAR_FUNCTIONS:
            return "linear"
        if tgt in _SCALAR_FUNCTIONS:
            return "linear" if _scaling_ok(node) else "unsupported"
        return "unsupported"
    if node.op == "call_method":
        if node.target in _ACT_METHODS:
            return "activation" if _activation_call_ok(node) else "unsupported"
        if node.target in _LINEAR_METHODS:
            return "linear"
        if node.target in _SCALAR_METHODS:
            return "linear" if _scaling_ok(node) else "unsupported"
    return "unsupported"


def _describe(node: fx.Node, gm: fx.GraphModule) -> str:
    if node.op == "call_module":
        return f"module {node.target!r} ({type(gm.get_submodule(node.target)).__name__})"
    if node.op == "call_function":
        return f"function {getattr(node.target, '__name__', node.target)!s} (node {node.name!r})"
    return f"method .{node.target}() (node {node.name!r})"


def check_supported(gm: fx.GraphModule) -> None:
    """Raise :class:`ConversionError` naming every unsupported layer of the traced model.

    Also rejects models with more than one input and batch norms without running statistics.
    """
    bad = [_describe(n, gm) for n in gm.graph.nodes if classify(n, gm) == "unsupported"]
    if bad:
        raise ConversionError(f"cannot convert {len(bad)} layer(s) of {type(gm).__name__}: {'; '.join(bad)}. "
                              f"Supported: {supported_summary()}")
    inputs = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise ConversionError(f"the model must take exactly one input tensor, its forward takes {inputs}")
    for n in gm.graph.nodes:
        if n.op == "call_module" and isinstance(gm.get_submodule(n.target), BATCHNORM_MODULES):
            if gm.get_submodule(n.target).running_mean is None:
                raise ConversionError(f"batch norm {n.target!r} has no running statistics "
                                      "(track_running_stats=False); it cannot be converted")
