"""ANN graph preparation: trace, check, remove dropout, fold batch norm, give every activation
and max-pool call its own module. The result computes the same function as the ANN (up to
float rounding) and is what calibration and SNN construction work on."""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from snn.conversion.activations import ClipReLU
from snn.conversion.ops import (ACTIVATION_MODULES, BATCHNORM_MODULES, MAXPOOL_MODULES, ConversionError,
                                check_supported, classify, trace)

__all__ = ["prepare_ann", "activation_sites", "maxpool_sites", "MAX_POOL_MODES"]

MAX_POOL_MODES = ("spiking", "avg")


def _arg(node: fx.Node, i: int, name: str, default: Any) -> Any:
    return node.kwargs.get(name, node.args[i] if len(node.args) > i else default)


def _unique_name(gm: fx.GraphModule, base: str) -> str:
    """A free submodule name next to ``base`` (same parent): ``base``, ``base_1``, ``base_2``, ..."""
    parent_name, _, leaf = base.rpartition(".")
    parent = gm.get_submodule(parent_name) if parent_name else gm
    name, k = leaf, 1
    while hasattr(parent, name):
        name, k = f"{leaf}_{k}", k + 1
    return f"{parent_name}.{name}" if parent_name else name


def _replace_with_module(gm: fx.GraphModule, node: fx.Node, module: nn.Module) -> None:
    """Turn a call_function/call_method node into a call_module of a new submodule."""
    target = _unique_name(gm, node.name)
    gm.add_submodule(target, module)
    with gm.graph.inserting_before(node):
        new = gm.graph.call_module(target, (node.args[0],))
    node.replace_all_uses_with(new)
    gm.graph.erase_node(node)


def _activation_module(node: fx.Node) -> nn.Module:
    tgt = node.target
    if tgt in (F.relu, torch.relu, torch.relu_, "relu", "relu_"):
        return nn.ReLU()
    if tgt is F.relu6:
        return nn.ReLU6()
    if tgt is F.hardtanh:
        return nn.Hardtanh(0.0, float(_arg(node, 2, "max_val", 1.0)))
    if tgt in ("clamp_min", "clamp_min_"):
        return nn.ReLU()
    hi = _arg(node, 2, "max", None)  # clamp / clip with min=0
    return nn.ReLU() if hi is None else ClipReLU(float(hi))


def _maxpool_module(node: fx.Node) -> nn.Module:
    tgt = node.target
    dims = {F.max_pool1d: 1, F.max_pool2d: 2, F.max_pool3d: 3,
            F.adaptive_max_pool1d: 1, F.adaptive_max_pool2d: 2, F.adaptive_max_pool3d: 3}[tgt]
    if tgt in (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d):
        if _arg(node, 2, "return_indices", False):
            raise ConversionError(f"{node.name}: adaptive max pooling with return_indices=True is not supported")
        return getattr(nn, f"AdaptiveMaxPool{dims}d")(_arg(node, 1, "output_size", None))
    if _arg(node, 6, "return_indices", False):
        raise ConversionError(f"{node.name}: max pooling with return_indices=True is not supported")
    cls = getattr(nn, f"MaxPool{dims}d")
    return cls(_arg(node, 1, "kernel_size", None), _arg(node, 2, "stride", None), _arg(node, 3, "padding", 0),
               _arg(node, 4, "dilation", 1), ceil_mode=_arg(node, 5, "ceil_mode", False))


def _avg_for(m: nn.Module) -> nn.Module:
    """The average pooling that replaces max pooling ``m`` (``max_pool="avg"``)."""
    name = type(m).__name__
    if name.startswith("Adaptive"):
        return getattr(nn, name.replace("Max", "Avg"))(m.output_size)
    if m.dilation not in (1, (1,), (1, 1), (1, 1, 1)):
        raise ConversionError(f"max_pool='avg' cannot replace dilated {m}")
    return getattr(nn, name.replace("Max", "Avg"))(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode,
                                                   count_include_pad=False)


def _fold_batchnorm(gm: fx.GraphModule) -> None:
    """Fold every batch norm that directly follows a conv/linear used only there
    (W' = W·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β; Ioffe & Szegedy 2015 in eval mode)."""
    calls: dict[str, int] = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            calls[n.target] = calls.get(n.target, 0) + 1
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(gm.get_submodule(node.target), BATCHNORM_MODULES):
            continue
        prev = node.args[0]
        if not (isinstance(prev, fx.Node) and prev.op == "call_module" and len(prev.users) == 1
                and calls.get(prev.target) == 1):
            continue
        layer, bn = gm.get_submodule(prev.target), gm.get_submodule(node.target)
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and layer.out_channels == bn.num_features:
            fused = fuse_conv_bn_eval(layer, bn)
        elif isinstance(layer, nn.Linear) and layer.out_features == bn.num_features:
            fused = fuse_linear_bn_eval(layer, bn)
        else:
            continue
        gm.add_submodule(prev.target, fused)
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)


def prepare_ann(model: nn.Module, max_pool: str = "spiking") -> fx.GraphModule:
    """Return a traced, simplified copy of ``model`` ready for calibration and conversion.

    Steps (the user's model is deep-copied and never modified):

    1. trace with torch.fx (:func:`snn.conversion.ops.trace`) and reject unsupported layers
       (:class:`~snn.conversion.ops.ConversionError` naming each one and listing what is supported);
    2. drop dropout and identity layers;
    3. fold batch norm into the preceding conv/linear (``torch.nn.utils.fusion``); a batch
       norm elsewhere stays as its eval-mode per-channel affine map, which is linear and
       therefore exact on spike rates;
    4. turn functional activations (``F.relu``, ``x.clamp(min=0)``, ...) and functional max
       pooling into modules, and give every call site its own module (torchvision-style
       blocks reuse one ``nn.ReLU`` twice; an IF neuron has state, so it cannot be shared);
    5. ``max_pool="avg"`` replaces max pooling by average pooling with the same window
       (only faithful for ANNs trained that way); ``"spiking"`` keeps it for
       :class:`~snn.conversion.spiking.SpikingMaxPool`.

    Args:
        model: the ANN (any ``nn.Module`` that torch.fx can trace, one tensor input).
        max_pool: ``"spiking"`` or ``"avg"``.

    Returns:
        an ``fx.GraphModule`` in eval mode; its activation modules are listed by
        :func:`activation_sites` under the names the converted SNN uses for its neurons.

    Raises:
        ConversionError: untraceable model, unsupported layer, several inputs, batch norm
            without running statistics.
        ValueError: unknown ``max_pool``.
    """
    if max_pool not in MAX_POOL_MODES:
        raise ValueError(f"max_pool must be one of {MAX_POOL_MODES}, got {max_pool!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    gm = trace(copy.deepcopy(model).eval())
    check_supported(gm)
    graph = gm.graph
    for node in list(graph.nodes):
        role = classify(node, gm)
        if role == "drop":
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
        elif role == "activation" and node.op != "call_module":
            _replace_with_module(gm, node, _activation_module(node))
        elif role == "maxpool" and node.op != "call_module":
            _replace_with_module(gm, node, _maxpool_module(node))
    _fold_batchnorm(gm)
    seen: set[str] = set()
    for node in list(graph.nodes):
        if node.op != "call_module":
            continue
        m = gm.get_submodule(node.target)
        if not isinstance(m, ACTIVATION_MODULES + MAXPOOL_MODULES):
            continue
        if node.target in seen:  # a reused module: this call gets its own copy
            target = _unique_name(gm, node.target)
            gm.add_submodule(target, copy.deepcopy(m))
            node.target = target
        seen.add(node.target)
        if max_pool == "avg" and isinstance(m, MAXPOOL_MODULES):
            gm.add_submodule(node.target, _avg_for(m))
    graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm.eval()


def activation_sites(gm: fx.GraphModule) -> dict[str, nn.Module]:
    """Activation modules of a prepared ANN, by module name, in graph order."""
    return {n.target: gm.get_submodule(n.target) for n in gm.graph.nodes
            if n.op == "call_module" and isinstance(gm.get_submodule(n.target), ACTIVATION_MODULES)}


def maxpool_sites(gm: fx.GraphModule) -> dict[str, nn.Module]:
    """Max-pooling modules of a prepared ANN, by module name, in graph order."""
    return {n.target: gm.get_submodule(n.target) for n in gm.graph.nodes
            if n.op == "call_module" and isinstance(gm.get_submodule(n.target), MAXPOOL_MODULES)}
