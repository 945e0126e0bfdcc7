"""The profiler: attaches the registered rules to a model through forward hooks (and wraps
``step``) and accumulates their counts per layer, timestep and sample.

Counts are kept on a ``[timestep, sample]`` grid per layer and counter, so that a report can
answer "what did sample *n* cost if it stopped after *t* timesteps" (Dynamic Confidence,
early exit) as well as per-layer totals. How a call's counts land on the grid:

* inside a multi-step call of the root model with input ``[T, B, ...]`` (or ``[B, ...]`` with
  ``time_first=False``, an ANN: ``T = 1``), a layer whose leading dims hold ``T·B`` positions
  (``[T, B]``, or ``[T·B]`` inside :class:`snn.TimeDistributed`) maps them onto rows
  ``t0 … t0+T−1``; a call with ``B`` positions (a per-timestep call such as
  ``neuron.step(x_t)``, or a layer after pooling over time) is one timestep at the layer's
  own clock, which advances with each such call;
* outside a root call (streaming with ``step``), every call is one timestep at the layer's clock;
* anything else (a count over positions that match neither) is spread evenly over the
  call's cells and flagged in :attr:`Profiler.spread`.

Consecutive root calls without :meth:`Profiler.end_batch` continue in time (chunked streams
under :func:`snn.stateful`); a new batch size starts a new batch.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Union

import torch
from torch import Tensor, nn

import snn.energy.rules  # noqa: F401  (registers the built-in rules)
from snn.energy.registry import CONTAINER, COUNTERS, STATICS, CountOptions, Rule, counts_children, get_rule
from snn.energy.spike_flow import SpikeFlow

if TYPE_CHECKING:
    from snn.energy.hardware import EnergyModel
    from snn.energy.report import EnergyReport

log = logging.getLogger("snn")

__all__ = ["Profiler", "RawCounts", "LayerInfo"]


@dataclass
class LayerInfo:
    """A counted layer: qualified name, type, parameter count and memory."""

    name: str
    type: str
    params: int
    memory_bytes: int
    state_itemsize: int = 4
    statics: dict[str, float] = field(default_factory=dict)


@dataclass
class RawCounts:
    """Everything a profiling run counted.

    Attributes:
        layers: the counted layers, in model order.
        grids: ``grids[layer][counter]`` float64 ``[T, N]``: counts per timestep and sample.
        samples: ``N``.
        timesteps: ``T`` (the longest sequence seen; shorter ones are zero-padded).
        uncounted: modules without a rule (their operations are missing from the counts).
        spread: some counts could not be attributed to a timestep/sample and were spread evenly.
        model_params: parameters of the whole model; ``model_memory_bytes``: parameters + buffers.
    """

    layers: list[LayerInfo]
    grids: dict[str, dict[str, Tensor]]
    samples: int
    timesteps: int
    uncounted: list[str]
    spread: bool
    model_params: int
    model_memory_bytes: int
    options: CountOptions


class _Ctx:
    """The :class:`snn.energy.registry.RuleContext` handed to a rule for one call."""

    __slots__ = ("prof", "layer", "single_step", "options", "cache", "row_mode")

    def __init__(self, prof: "Profiler", layer: str, single_step: bool) -> None:
        self.prof, self.layer, self.single_step = prof, layer, single_step
        self.options, self.cache = prof.options, prof.cache
        self.row_mode: Optional[str] = None

    def add(self, counter: str, values: Union[Tensor, float]) -> None:
        if counter not in COUNTERS:
            raise ValueError(f"unknown counter {counter!r}; counters: {list(COUNTERS)}")
        self.prof._add(self, counter, values)

    def static(self, **sizes: float) -> None:
        for k, v in sizes.items():
            if k not in STATICS:
                raise ValueError(f"unknown static size {k!r}; sizes: {list(STATICS)}")
            self.prof._statics[self.layer][k] = float(v)

    def mark_spikes(self, output: Tensor) -> None:
        """Declare ``output`` a spike tensor whatever its values (e.g. ``θ·s`` of a converted IF layer)."""
        self.prof._mark_spikes(output)

    def is_spikes(self, x: Tensor) -> bool:
        """Whether ``x`` counts as spikes: marked (:meth:`mark_spikes`, or a view, reshape or
        concatenation of marked tensors) or every value in {−1, 0, 1}."""
        return self.prof._is_spikes(x)

    def synaptic(self, x: Tensor, fanout: Union[Tensor, int, float], feature_ndim: int) -> None:
        """Count a weighted layer's input ``x`` (see :mod:`snn.energy.registry`)."""
        nf = feature_ndim
        if x.dim() < nf:
            raise ValueError(f"{self.layer}: input of shape {tuple(x.shape)} has fewer than {nf} feature dims")
        lead = x.shape[: x.dim() - nf]
        feat = x.detach().reshape(-1, math.prod(x.shape[x.dim() - nf:]))
        nz = feat != 0
        spiking = self.prof._is_spikes(x)
        events = (not spiking and self.options.graded_inputs == "events"
                  and bool(((feat >= 0) & (feat == feat.round())).all()))
        weights = feat.to(torch.float64) if events else nz.to(torch.float64)
        if isinstance(fanout, Tensor):
            f = fanout.reshape(-1).to(device=weights.device, dtype=torch.float64)
            ops, per_step = weights @ f, float(f.sum())
        else:
            ops, per_step = weights.sum(1) * float(fanout), float(fanout) * feat.shape[1]
        self.add("sops" if spiking or events else "macs", ops.reshape(lead).cpu())
        self.add("dense_ops", torch.full(lead, per_step, dtype=torch.float64))
        self.add("in_nonzero", nz.sum(1).to(torch.float64).reshape(lead).cpu())
        self.add("in_elements", torch.full(lead, float(feat.shape[1]), dtype=torch.float64))
        self.static(synapses=per_step, ann_macs=per_step)


class Profiler:
    """Count operations of ``model`` while active (a context manager).

    Args:
        model: any ``nn.Module``; its layers are matched to rules by type.
        options: counting definitions (:class:`snn.energy.registry.CountOptions`).
        time_first: root inputs are ``[T, B, ...]``; ``False`` for ANNs (``[B, ...]``, ``T = 1``).

    Attributes:
        layers: ``{name: module}`` of the counted layers.
        uncounted: names of modules without a rule.
        enabled: set ``False`` to run the model without counting (e.g. for timing).
        spread: some counts were spread evenly instead of attributed (see module docstring).

    While active it also follows spike marks through concatenations and copies
    (:class:`snn.energy.spike_flow.SpikeFlow`, a ``TorchFunctionMode``). It may be entered
    again after leaving (counts accumulate across ``with`` blocks).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        RuntimeError: entering a profiler that is already active.

    Examples:
        >>> with Profiler(model) as prof:
        ...     model(x)                 # or model[0].step(x_t) ... one timestep at a time
        ...     prof.end_batch()
        >>> report = prof.report("cmos45")
    """

    def __init__(self, model: nn.Module, options: Optional[CountOptions] = None, time_first: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"Profiler: model must be an nn.Module, got {type(model).__name__}")
        self.model, self.options, self.time_first = model, options or CountOptions(), time_first
        self.layers: dict[str, nn.Module] = {}
        self._rules: dict[str, Rule] = {}
        self.uncounted: list[str] = []
        self._walk(model, "", set())
        self.cache: dict = {}
        self.enabled = True
        self.spread = False
        self._statics: dict[str, dict[str, float]] = {n: {} for n in self.layers}
        self._itemsize: dict[str, int] = {}
        self._batches: list[tuple[int, int, dict[str, dict[str, Tensor]]]] = []
        self._handles: list[Any] = []
        self._patched: list[tuple[nn.Module, bool, Any]] = []
        self._in_forward: set[int] = set()
        self._in_step: set[int] = set()
        self._spike_storages: dict[int, Tensor] = {}
        self._flow: Optional[SpikeFlow] = None
        self._warned = False
        self._new_batch()

    # -- which modules are counted ---------------------------------------------------
    def _walk(self, module: nn.Module, name: str, seen: set[int]) -> None:
        if id(module) in seen:
            return
        seen.add(id(module))
        rule = get_rule(module)
        children = list(module.named_children())
        if rule is not None and rule is not CONTAINER:
            key = name or type(module).__name__
            self.layers[key], self._rules[key] = module, rule
        elif rule is None and not children:
            self.uncounted.append(f"{name or type(module).__name__} ({type(module).__name__})")
        if rule is None or counts_children(module):
            for child_name, child in children:
                self._walk(child, f"{name}.{child_name}" if name else child_name, seen)

    # -- hooks -----------------------------------------------------------------------
    def __enter__(self) -> "Profiler":
        if self._flow is not None:
            raise RuntimeError("this Profiler is already active; leave its `with` block before entering it again")
        if self.uncounted and not self._warned:
            self._warned = True
            log.warning("snn.energy: no counting rule for %s; their operations are not counted "
                        "(register one with snn.energy.register_rule)", ", ".join(self.uncounted))
        for name, m in self.layers.items():
            self._handles.append(m.register_forward_pre_hook(self._pre_hook()))
            self._handles.append(m.register_forward_hook(self._hook(name)))
            if callable(getattr(m, "step", None)):
                self._patch_step(name, m)
        self._handles.append(self.model.register_forward_pre_hook(self._root_pre))
        self._handles.append(self.model.register_forward_hook(self._root_post))
        self._flow = SpikeFlow(self)  # marks concatenations (and copies) of spike trains
        self._flow.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._flow is not None:
            self._flow.__exit__(None, None, None)
            self._flow = None
        self._spike_storages.clear()
        for h in self._handles:
            h.remove()
        self._handles = []
        for m, had_own, old in self._patched:
            if had_own:
                m.step = old
            else:
                del m.step
        self._patched = []

    def _pre_hook(self):
        def pre(module, inputs):
            if self.enabled and id(module) not in self._in_step:  # a step that calls forward counts once
                self._in_forward.add(id(module))
        return pre

    def _hook(self, name: str):
        def hook(module, inputs, output):
            if id(module) not in self._in_forward:
                return
            self._in_forward.discard(id(module))
            self._run(name, module, inputs, output, single_step=False)
        return hook

    def _patch_step(self, name: str, m: nn.Module) -> None:
        had_own = "step" in vars(m)
        orig = m.step

        def step(x_t, *args, **kwargs):
            if not self.enabled or id(m) in self._in_forward:  # a forward that steps internally counts once
                return orig(x_t, *args, **kwargs)
            self._in_step.add(id(m))
            try:
                out = orig(x_t, *args, **kwargs)
            finally:
                self._in_step.discard(id(m))
            self._run(name, m, (x_t, *args), out, single_step=True)
            return out

        self._patched.append((m, had_own, vars(m).get("step")))
        m.step = step

    def _root_pre(self, module, inputs) -> None:
        if not self.enabled:
            return
        x = next((a for a in inputs if isinstance(a, Tensor)), None)
        if x is None or x.dim() < (2 if self.time_first else 1):
            self._root = None
            return
        T, B = (int(x.shape[0]), int(x.shape[1])) if self.time_first else (1, int(x.shape[0]))
        if self._B is not None and B != self._B:
            self.end_batch()
        self._B, self._root, self._clock = B, (T, B), {}
        self._spike_storages.clear()

    def _root_post(self, module, inputs, output) -> None:
        if self.enabled and self._root is not None:
            self._t0 += self._root[0]
            self._T_used = max(self._T_used, self._t0)
            self._root, self._clock = None, {}
        self._spike_storages.clear()

    # -- tensors declared spikes (scaled spikes θ·s, their views, reshapes and concatenations) --
    _MAX_MARKED = 256

    def _mark_spikes(self, t: Tensor) -> None:
        # keyed by storage, so views (flatten, reshape) of a marked tensor count as spikes too;
        # the reference keeps the storage alive, so its address cannot be reused meanwhile
        if len(self._spike_storages) >= self._MAX_MARKED:   # step-driven runs have no root call
            self._spike_storages.clear()
        self._spike_storages[t.untyped_storage().data_ptr()] = t

    def _is_marked(self, t: Tensor) -> bool:
        return bool(self._spike_storages) and t.untyped_storage().data_ptr() in self._spike_storages

    def _is_spikes(self, t: Tensor) -> bool:
        if self._is_marked(t):
            return True
        v = t.detach()
        return bool(((v == 0) | (v == 1) | (v == -1)).all())

    def _run(self, name: str, module: nn.Module, inputs: tuple, output: Any, single_step: bool) -> None:
        ctx = _Ctx(self, name, single_step)
        with torch.no_grad():
            self._rules[name](module, inputs, output, ctx)
        if isinstance(output, Tensor):
            self._itemsize[name] = output.element_size()
        if ctx.row_mode == "step":
            self._clock[name] = self._clock.get(name, 0) + 1

    # -- the grid --------------------------------------------------------------------
    def _new_batch(self) -> None:
        self._grids: dict[str, dict[str, Tensor]] = {}
        self._B: Optional[int] = None
        self._root: Optional[tuple[int, int]] = None
        self._t0 = 0
        self._T_used = 0
        self._clock: dict[str, int] = {}

    def _add(self, ctx: _Ctx, counter: str, values: Union[Tensor, float]) -> None:
        v = values.detach().to(torch.float64).reshape(-1).cpu() if isinstance(values, Tensor) \
            else torch.tensor([float(values)], dtype=torch.float64)
        n = v.numel()
        if self._root is not None and not ctx.single_step and n == self._root[0] * self._root[1] \
                and ctx.row_mode != "step":
            ctx.row_mode = "sequence"
            T, B = self._root
            self._put(ctx.layer, counter, self._t0, v.view(T, B))
            return
        ctx.row_mode = "step"
        if self._B is None:
            self._B = n
        row = self._t0 + self._clock.get(ctx.layer, 0)
        if n == self._B:
            self._put(ctx.layer, counter, row, v.view(1, n))
        else:
            self.spread = True
            self._put(ctx.layer, counter, row, torch.full((1, self._B), float(v.sum()) / self._B, dtype=torch.float64))

    def _put(self, layer: str, counter: str, row: int, block: Tensor) -> None:
        g = self._grids.setdefault(layer, {}).get(counter)
        need = row + block.shape[0]
        if g is None or g.shape[0] < need:
            new = torch.zeros((max(need, 2 * (0 if g is None else g.shape[0])), block.shape[1]), dtype=torch.float64)
            if g is not None:
                new[: g.shape[0]] = g
            g = self._grids[layer][counter] = new
        g[row:need] += block
        self._T_used = max(self._T_used, need)

    def end_batch(self) -> None:
        """Close the current batch of samples (the next call starts new samples at t = 0)."""
        if self._B is not None and self._T_used > 0:
            self._batches.append((self._B, self._T_used,
                                  {layer: {c: g[: self._T_used].clone() for c, g in cs.items()}
                                   for layer, cs in self._grids.items()}))
        self._new_batch()

    # -- results ---------------------------------------------------------------------
    def counts(self) -> RawCounts:
        """Close the current batch and return everything counted so far."""
        self.end_batch()
        N = sum(b for b, _, _ in self._batches)
        T = max((t for _, t, _ in self._batches), default=0)
        grids: dict[str, dict[str, Tensor]] = {}
        for name in self.layers:
            used = sorted({c for _, _, g in self._batches for c in g.get(name, {})}, key=COUNTERS.index)
            grids[name] = {}
            for c in used:
                full = torch.zeros((T, N), dtype=torch.float64)
                col = 0
                for b, t, g in self._batches:
                    if c in g.get(name, {}):
                        full[:t, col:col + b] = g[name][c]
                    col += b
                grids[name][c] = full
        infos = []
        for name, m in self.layers.items():
            params = sum(p.numel() for p in m.parameters())
            mem = sum(p.numel() * p.element_size() for p in m.parameters()) + \
                sum(b.numel() * b.element_size() for b in m.buffers())
            infos.append(LayerInfo(name, type(m).__name__, params, mem, self._itemsize.get(name, 4),
                                   dict(self._statics[name])))
        mp = sum(p.numel() for p in self.model.parameters())
        mm = sum(p.numel() * p.element_size() for p in self.model.parameters()) + \
            sum(b.numel() * b.element_size() for b in self.model.buffers())
        return RawCounts(infos, grids, N, T, list(self.uncounted), self.spread, mp, mm, self.options)

    def report(self, energy_model: str | EnergyModel = "cmos45", **meta: Any) -> EnergyReport:
        """An :class:`snn.energy.EnergyReport` of everything counted (closes the current batch).

        Args:
            energy_model: as :class:`snn.energy.EnergyReport` (name, model, mapping or JSON file).
            **meta: keyword arguments of :class:`~snn.energy.EnergyReport` (``wall_time_s``,
                ``batch_size``, ``accuracy``, ``label``, ``ann_energy_model``).

        Raises:
            ValueError: unknown energy model.
        """
        from snn.energy.report import EnergyReport
        return EnergyReport(self.counts(), energy_model, **meta)
