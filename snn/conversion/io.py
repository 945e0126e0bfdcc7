"""Loading ANNs from checkpoints by factory, and saving / reloading converted SNNs."""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Callable, Optional

import torch
from torch import nn

from snn.conversion.converter import ConvertedSNN, build_snn
from snn.conversion.prepare import prepare_ann

__all__ = ["resolve_factory", "load_ann", "save_converted", "load_converted"]


def resolve_factory(spec: str) -> Callable[..., nn.Module]:
    """``"package.module:function"`` → the callable (e.g. ``"snn.models:vgg16_bn"``). The module
    is looked up on ``sys.path`` and then in the current directory, so a user's own
    ``mypkg/nets.py`` works from the folder it is in (as under ``python -m``).

    Raises:
        ValueError: not of the form ``module:name``, or the module/attribute does not exist.
    """
    mod, sep, name = spec.partition(":")
    if not sep or not mod or not name:
        raise ValueError(f"--model must look like 'package.module:factory', got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:  # the `snn` script's path does not have it
        sys.path.append(cwd)                        # after the installed packages: none is shadowed
    try:
        obj = importlib.import_module(mod)
    except ImportError as e:
        raise ValueError(f"cannot import module {mod!r} of --model {spec!r}: {e}") from e
    for part in name.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module {mod!r} has no attribute {name!r} (from --model {spec!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{spec!r} is not callable")
    return obj  # type: ignore[return-value]


def _state_dict_of(ck: Any, path: str) -> dict[str, torch.Tensor]:
    from snn.train.checkpoint import CheckpointError
    if isinstance(ck, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(ck.get(key), dict):
                return ck[key]
        if ck and all(isinstance(v, torch.Tensor) for v in ck.values()):
            return ck
    raise CheckpointError(f"{path}: expected a state dict, or a dict with a 'model' / 'state_dict' entry")


def load_ann(path: str | os.PathLike, factory: Optional[str] = None,
             factory_kwargs: Optional[dict[str, Any]] = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build an ANN with ``factory(**factory_kwargs)`` and load the weights of ``path``.

    The file is read with ``torch.load(weights_only=True)``; it may be a plain state dict
    (e.g. a torchvision/timm checkpoint for :func:`snn.models.resnet18`) or a dict holding one
    under ``"model"``/``"state_dict"``. A dict may also name its own ``"factory"`` and
    ``"factory_kwargs"`` (as :mod:`snn.conversion.experiment` writes), used when ``factory``
    is not given.

    Returns:
        ``(model in eval mode, {"factory": ..., "factory_kwargs": ...})``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable file, or no state dict in it.
        ValueError: no factory given or stored, bad factory, or weights that do not fit the model
            (the message lists missing and unexpected keys).
    """
    from snn.train.checkpoint import CheckpointError
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise FileNotFoundError(f"checkpoint not found: {p}")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{p}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    stored = ck if isinstance(ck, dict) else {}
    factory = factory or stored.get("factory")
    if not factory:
        raise ValueError(f"{p} does not name its model: pass --model package.module:factory")
    if factory_kwargs is None:  # the stored arguments belong to the stored factory only
        factory_kwargs = stored.get("factory_kwargs") if factory == stored.get("factory") else None
    kwargs = dict(factory_kwargs or {})
    try:
        model = resolve_factory(factory)(**kwargs)
    except TypeError as e:
        raise ValueError(f"cannot build {factory}(**{kwargs}): {e}") from e
    try:
        model.load_state_dict(_state_dict_of(ck, p))
    except RuntimeError as e:
        raise ValueError(f"the weights in {p} do not fit {factory}(**{kwargs}): {e}") from e
    return model.eval(), {"factory": factory, "factory_kwargs": kwargs}


def save_converted(snn_model: ConvertedSNN, path: str | os.PathLike, factory: str,
                   factory_kwargs: Optional[dict[str, Any]] = None) -> None:
    """Save a converted SNN atomically (``weights_only``-loadable): its state dict, thresholds,
    conversion settings and how to rebuild the source ANN (``factory`` as ``module:function``,
    called with ``factory_kwargs`` by :func:`load_converted`; not checked here)."""
    from snn.train.checkpoint import save_checkpoint
    config = {**snn_model.config, "factory": factory, "factory_kwargs": dict(factory_kwargs or {})}
    save_checkpoint({"model": snn_model.state_dict(), "thresholds": snn_model.thresholds(), "config": config}, path)


def load_converted(path: str | os.PathLike) -> ConvertedSNN:
    """Rebuild a :class:`ConvertedSNN` written by :func:`save_converted` (the ANN architecture
    from its factory, then the SNN's folded weights and thresholds from the file).

    Raises:
        FileNotFoundError, CheckpointError: missing or unreadable file.
        ValueError: the file does not describe a converted SNN.
    """
    from snn.train.checkpoint import load_checkpoint
    ck = load_checkpoint(path)
    cfg = ck.get("config") or {}
    if "factory" not in cfg or "thresholds" not in ck:
        raise ValueError(f"{path} is not a converted SNN (no factory / thresholds)")
    ann = resolve_factory(cfg["factory"])(**cfg.get("factory_kwargs", {}))
    prepared = prepare_ann(ann, max_pool=cfg.get("max_pool", "spiking"))
    net = build_snn(prepared, ck["thresholds"], backend=cfg.get("backend", "auto"), config=cfg)
    net.load_state_dict(ck["model"])
    return net
