"""ANN → SNN: the converted network and :func:`convert`."""
from __future__ import annotations

import copy
from typing import Any, Optional

import torch
from torch import Tensor, fx, nn

from snn.conversion.activations import QCFS
from snn.conversion.calibrate import calibrate
from snn.conversion.data import DataLike, check_batching, iter_batches
from snn.conversion.ops import ACTIVATION_MODULES, MAXPOOL_MODULES, ConversionError
from snn.conversion.prepare import activation_sites, prepare_ann
from snn.conversion.spiking import IFActivation, SpikingMaxPool
from snn.neurons import LeakyIntegrator, check_sequence
from snn.state import StatefulModule

__all__ = ["ConvertedSNN", "build_snn", "convert"]


class ConvertedSNN(nn.Module):
    r"""A converted network: the ANN's graph with IF neurons, fed ``[T, B, ...]``, read out
    from a non-spiking accumulator.

    The stateless layers (folded conv/linear, pooling, additions, concatenations, reshapes)
    run once on the time-merged batch ``[T·B, ...]``; :class:`IFActivation` and
    :class:`SpikingMaxPool` restore the time axis for their dynamics. The output layer does
    not spike: its input current ``z[t]`` (the ANN's logits computed from spikes) is summed,

    .. math::
        V[t] = \sum_{\tau \le t} z[\tau], \qquad \hat y[t] = \arg\max V[t],
        \qquad V[t] / (t + 1) \approx \text{ANN logits}

    (Rueckauer et al., Front. Neurosci. 2017, Sec. 2.2.2: the output layer integrates without
    firing). Use :func:`snn.encoders.direct` to present a static input at every step.

    Args:
        net: the rewritten ``fx.GraphModule``; it is called ``net(x [T·B, ...], T)``.
        config: JSON-able description of the conversion (norm, percentile, ...); its
            ``"input_shape"`` (one sample, e.g. ``[2, 34, 34]``), if set, is checked on every input.

    Shape:
        forward: ``[T, B, *input] → [T, B, *output]`` accumulated output membrane ``V[t]``.
        step: ``[B, *input] → [B, *output]`` (state kept until :func:`snn.reset`).

    Attributes:
        net, readout (:class:`snn.LeakyIntegrator` with τ = ∞), config.

    Raises:
        TypeError: (forward/step) the input is not a tensor.
        ValueError: (forward/step) fewer than 2 dims, ``T = 0`` or NaN (on CPU), a per-sample
            shape other than ``config["input_shape"]``, or a carried state of another shape.
        ConversionError: the rewritten graph does not return one batch-first tensor.
    """

    def __init__(self, net: fx.GraphModule, config: Optional[dict[str, Any]] = None) -> None:
        super().__init__()
        self.net = net
        self.readout = LeakyIntegrator(tau=float("inf"))
        self.config: dict[str, Any] = dict(config or {})

    def forward(self, x: Tensor) -> Tensor:
        check_sequence(x, "x", min_dim=2)
        shape = self.config.get("input_shape")
        if shape is not None and list(x.shape[2:]) != list(shape):
            raise ValueError(f"x must be time-first [T, B, {', '.join(map(str, shape))}] (the ANN's input "
                             f"{list(shape)} per sample and step), got shape {tuple(x.shape)}")
        T, B = x.shape[:2]
        z = self.net(x.reshape(T * B, *x.shape[2:]), T)
        if not isinstance(z, Tensor) or z.dim() < 1 or z.shape[0] != T * B:
            raise ConversionError("the converted network must return one tensor with the batch first; got "
                                  f"{type(z).__name__} {tuple(z.shape) if isinstance(z, Tensor) else ''}")
        return self.readout(z.reshape(T, B, *z.shape[1:]))

    def step(self, x_t: Tensor) -> Tensor:
        """One timestep ``[B, *input] → [B, *output]`` (the membrane ``V[t]``); the state of every
        neuron, max-pool and the readout stays on the modules until :func:`snn.reset`."""
        mods = [m for m in self.modules() if isinstance(m, StatefulModule)]
        flags = [m._stateful for m in mods]
        for m in mods:
            m._stateful = True
        try:
            return self.forward(x_t.unsqueeze(0))[0]
        finally:
            for m, f in zip(mods, flags):
                m._stateful = f

    def neurons(self) -> dict[str, IFActivation]:
        """The spiking layers by module name (the ANN activation they replace), in graph order."""
        return {n.target: self.net.get_submodule(n.target) for n in self.net.graph.nodes
                if n.op == "call_module" and isinstance(self.net.get_submodule(n.target), IFActivation)}

    def thresholds(self) -> dict[str, Tensor]:
        """θ of every spiking layer (``[]`` or ``[C]``)."""
        return {name: m.threshold.detach().clone() for name, m in self.neurons().items()}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items() if k in ("norm", "percentile", "channel_wise",
                                                                               "max_pool"))


def build_snn(ann: fx.GraphModule, thresholds: dict[str, Tensor], backend: str = "auto",
              config: Optional[dict[str, Any]] = None) -> ConvertedSNN:
    """Rewrite a prepared ANN into a :class:`ConvertedSNN`: each activation module becomes an
    :class:`IFActivation` with its threshold (initial membrane θ/2, or φ·θ for a :class:`QCFS`
    with shift φ), each max pooling a :class:`SpikingMaxPool`, and the graph gets a second
    input ``T`` that those layers receive.

    Args:
        ann: from :func:`snn.conversion.prepare_ann` (not modified).
        thresholds: ``{activation name: θ}`` for every activation (:func:`snn.conversion.calibrate`).
        backend: neuron backend for the IF layers.
        config: stored on the result.

    Returns:
        The :class:`ConvertedSNN` in eval mode.

    Raises:
        ConversionError: a threshold is missing for an activation.
        ValueError: a threshold that is not a positive finite scalar or ``[C]`` tensor
            (:class:`IFActivation`).
    """
    gm = copy.deepcopy(ann)
    missing = [n for n in activation_sites(gm) if n not in thresholds]
    if missing:
        raise ConversionError(f"no threshold given for the activations {missing}")
    graph = gm.graph
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    with graph.inserting_after(inputs[-1]):
        steps = graph.placeholder("T")
    for node in list(graph.nodes):
        if node.op != "call_module":
            continue
        m = gm.get_submodule(node.target)
        if isinstance(m, ACTIVATION_MODULES):
            shift = m.shift if isinstance(m, QCFS) else 0.5  # v_init = φ·θ (Bu et al., ICLR 2022)
            gm.add_submodule(node.target, IFActivation(thresholds[node.target], backend=backend, shift=shift))
        elif isinstance(m, MAXPOOL_MODULES):
            gm.add_submodule(node.target, SpikingMaxPool(m))
        else:
            continue
        node.args = (node.args[0], steps)
        node.kwargs = {}
    graph.lint()
    gm.recompile()
    return ConvertedSNN(gm, config).eval()


def convert(model: nn.Module, calibration_data: Optional[DataLike], *, norm: str = "max",
            percentile: float = 99.99, channel_wise: bool = False, max_pool: str = "spiking",
            backend: str = "auto", max_samples: Optional[int] = 1024, batch_size: int = 64,
            device: str | torch.device = "cpu") -> ConvertedSNN:
    r"""Convert a trained ANN (a CNN or MLP that torch.fx can trace) into an SNN of IF neurons.

    Pipeline (each step is public, for finer control):

    1. :func:`prepare_ann`: torch.fx trace; batch norm folded into the preceding conv/linear;
       dropout removed; unsupported layers rejected with a :class:`ConversionError` that names
       them and lists what is supported;
    2. :func:`calibrate`: one threshold θ per activation (or per channel) from the activations
       on ``calibration_data`` (``norm="max"``: Diehl et al. 2015; ``"percentile"``:
       Rueckauer et al. 2017); QCFS activations use their λ (Bu et al., ICLR 2022);
    3. :func:`build_snn`: ReLU/clipped/QCFS activations → ``snn.IF(v_threshold=θ, v_reset=None,
       v_init=θ/2)`` (``v_init=φ·θ`` for a QCFS with shift φ) emitting ``θ·spike``; max
       pooling → :class:`SpikingMaxPool` (or average pooling with ``max_pool="avg"``); the
       output layer accumulates its input without spiking.

    Weights are unchanged (thresholds carry the scale), so the SNN's rates times θ approximate
    the ANN's activations, with an error that falls as ``1/T``.

    Args:
        model: the trained ANN, taking one tensor ``[B, ...]``; not modified.
        calibration_data: ANN inputs (tensor ``[N, ...]``, ``(x, y)`` pair, Dataset or
            DataLoader); a few hundred training samples suffice. ``None`` only if every
            activation is :class:`QCFS`.
        norm: ``"max"`` or ``"percentile"``.
        percentile: e.g. 99.9 or 99.99 (``norm="percentile"``).
        channel_wise: per-channel thresholds instead of per-layer.
        max_pool: ``"spiking"`` (:class:`SpikingMaxPool`) or ``"avg"`` (replace by average pooling).
        backend: neuron backend of the IF layers.
        max_samples, batch_size, device: calibration reading (at most ``max_samples``
            samples, a positive int or None for all, in batches of ``batch_size``, a positive
            int) and where the ANN runs.

    Returns:
        a :class:`ConvertedSNN` (eval mode, on the CPU; it checks inputs against the calibration
        samples' shape) mapping ``[T, B, ...]`` to the
        accumulated output ``[T, B, num_classes]``.

    Raises:
        ConversionError: untraceable model or unsupported layer (named).
        ValueError: bad ``norm``/``percentile``/``max_pool``; ``batch_size`` not a positive int;
            ``max_samples`` neither a positive int nor None; missing or empty calibration data.

    Examples:
        >>> import torch, snn
        >>> from snn.encoders import direct
        >>> ann = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
        ...                           torch.nn.Linear(32, 10))
        >>> net = snn.convert(ann, torch.rand(256, 8, 8))
        >>> out = net(direct(torch.rand(4, 8, 8), T=64))   # accumulated output [64, 4, 10]
        >>> pred_at_T = out[-1].argmax(1)
    """
    batch_size, max_samples = check_batching(batch_size, max_samples)
    ann = prepare_ann(model, max_pool=max_pool)
    th = calibrate(ann, calibration_data, norm=norm, percentile=percentile, channel_wise=channel_wise,
                   max_samples=max_samples, batch_size=batch_size, device=device)
    config = {"norm": norm, "percentile": percentile if norm == "percentile" else None,
              "channel_wise": bool(channel_wise), "max_pool": max_pool, "backend": backend,
              "input_shape": None}
    if calibration_data is not None:
        x, _ = next(iter_batches(calibration_data, 1, max_samples=1, name="calibration_data"))
        config["input_shape"] = list(x.shape[1:])
    return build_snn(ann.cpu(), th, backend=backend, config=config)
