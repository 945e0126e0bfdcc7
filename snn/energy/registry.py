"""The per-op rule registry: one counting rule per layer type.

A *rule* is a function ``rule(module, inputs, output, ctx) -> None`` called after every
forward (and every ``step``) of a module of its type while a :class:`snn.energy.Profiler`
is active. It reports what that call cost through ``ctx``:

* ``ctx.synaptic(x, fanout, feature_ndim)`` for a weighted layer: every nonzero input
  element ``x_i`` is one event sent to ``fanout_i`` synapses. Spike inputs (values in
  {−1, 0, 1}) cost ``Σ_i |x_i|·fanout_i`` synaptic operations (SOPs, accumulates); graded
  inputs cost ``Σ_i [x_i ≠ 0]·fanout_i`` MACs (see :class:`CountOptions` for counting
  integer event frames as spikes instead).
* ``ctx.add(counter, values)`` for any other counter of :data:`COUNTERS`, with ``values`` of
  the shape of the call's leading (time/batch) dims, e.g. ``[T, B]`` or ``[T·B]`` or ``[B]``.
* ``ctx.static(neurons=..., synapses=..., ...)`` for per-sample sizes of :data:`STATICS`.
* ``ctx.mark_spikes(output)`` for a layer whose output is spikes scaled by a constant (a
  converted IF layer emits ``θ·s``): downstream synaptic layers count its nonzeros (and any
  view or reshape of it, and any concatenation, stacking, zero padding or indexing of marked
  spike tensors, :mod:`snn.energy.spike_flow`) as spikes (SOPs), not as graded inputs (MACs).
* ``ctx.is_spikes(x)``: whether ``x`` counts as spikes (marked, or every value in {−1, 0, 1}),
  for a rule whose output is spikes only if its input is (a spiking max-pool).

Rules are looked up along the module's MRO, so a subclass inherits its base's rule unless it
registers its own. A module with a rule *claims its subtree*: its children are not hooked
(the rule accounts for everything inside), unless it was registered with
``count_children=True`` (a residual block whose rule adds only the addition).
:data:`CONTAINER` marks types whose children are counted instead (``nn.Sequential``,
:class:`snn.TimeDistributed`); unknown modules with children are treated the same way;
unknown leaf modules are listed as uncounted (with a warning).

Adding a layer type (delays, converted models, latency methods) is one decorated function,
in your own module or in :mod:`snn.energy.rules`::

    from snn.energy.registry import register_rule

    @register_rule(MyDelayedLinear)
    def _delayed_linear(module, inputs, output, ctx):
        # each input spike reaches each of the out_features synapses once, whatever its delay
        ctx.synaptic(inputs[0], fanout=module.out_features, feature_ndim=1)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Union

from torch import Tensor, nn

__all__ = ["COUNTERS", "STATICS", "CountOptions", "RuleContext", "Rule", "register_rule", "get_rule",
           "registered_types", "counts_children", "FREE", "CONTAINER"]

#: Dynamic counters (summed over calls, resolved per timestep and sample).
COUNTERS: tuple[str, ...] = (
    "sops",              # synaptic operations: accumulates triggered by input spikes (× fan-out)
    "macs",              # multiply-accumulates triggered by graded (non-spike) inputs (× fan-out)
    "acs",               # other accumulates (average-pool window sums, unfolded additions)
    "membrane_updates",  # neuron state updates (one per neuron per timestep)
    "spikes",            # output spikes (nonzero outputs of spiking layers)
    "activations",       # output elements of spiking layers (neurons × timesteps), for sparsity
    "dense_ops",         # synaptic operations if every input were nonzero (NeuroBench's "Dense")
    "in_nonzero",        # nonzero input elements of synaptic layers
    "in_elements",       # input elements of synaptic layers
)

#: Static sizes per sample (and, for synapses/ANN ops, per timestep).
STATICS: tuple[str, ...] = (
    "neurons",         # neurons of the layer
    "synapses",        # Σ_i fan-out_i: connections used per timestep (= the ANN layer's MACs)
    "state_elements",  # state values kept per sample between timesteps (membranes, delay lines)
    "ann_macs",        # MACs of the equivalent ANN layer for one input
    "ann_acs",         # accumulates of the equivalent ANN layer for one input
)


@dataclass(frozen=True)
class CountOptions:
    """How operations are counted (definitions that differ between papers and tools).

    Args:
        fold_batchnorm: batch norm is folded into the preceding conv/linear layer at inference
            (free); otherwise one MAC per normalised element.
        skip_zero_weights: a zero weight is no synapse (pruned), as in NeuroBench's
            ``SynapticOperations``; by default every weight of the layer's shape is a synapse.
        graded_inputs: ``"macs"``: an input that is not a spike tensor (values outside {−1, 0, 1})
            costs one MAC per nonzero element × fan-out (NeuroBench's convention);
            ``"events"``: non-negative integer inputs (event-count frames) are that many
            spikes, ``Σ_i x_i·fanout_i`` SOPs; other graded inputs still cost MACs.
    """

    fold_batchnorm: bool = True
    skip_zero_weights: bool = False
    graded_inputs: str = "macs"

    def __post_init__(self) -> None:
        if self.graded_inputs not in ("macs", "events"):
            raise ValueError(f"graded_inputs must be 'macs' or 'events', got {self.graded_inputs!r}")


class RuleContext(Protocol):
    """What a rule may call (implemented by the profiler, see :class:`snn.energy.Profiler`)."""

    options: CountOptions
    single_step: bool  # the call is a ``step(x_t)`` call: inputs are ``[B, *feature]``
    cache: dict        # per-profiler cache for fan-out maps (keyed by the rule)

    def add(self, counter: str, values: Tensor) -> None:
        """Add ``values`` (over the call's leading time/batch dims, or a number) to ``counter``,
        one of :data:`COUNTERS`; raises ``ValueError`` for an unknown counter."""
        ...

    def static(self, **sizes: float) -> None:
        """Record per-layer sizes (keys of :data:`STATICS`); raises ``ValueError`` for an unknown key."""
        ...

    def synaptic(self, x: Tensor, fanout: Union[Tensor, int], feature_ndim: int) -> None:
        """Count a weighted layer's input ``x [*lead, *feature]``: SOPs ``Σ_i s_i·fanout_i`` for
        spikes (or, with ``graded_inputs="events"``, non-negative integer counts), else MACs
        ``Σ_i [x_i ≠ 0]·fanout_i``. ``fanout``: a number, or a tensor with one entry per
        element of the last ``feature_ndim`` dims. Raises ``ValueError`` when ``x`` has fewer
        than ``feature_ndim`` dims."""
        ...

    def mark_spikes(self, output: Tensor) -> None:
        """Mark ``output`` as spikes (downstream layers then count SOPs for it)."""
        ...

    def is_spikes(self, x: Tensor) -> bool:
        """Whether ``x`` counts as spikes: marked (or a view/concatenation of a marked tensor)
        or every value in {−1, 0, 1}."""
        ...


Rule = Callable[[nn.Module, tuple, object, RuleContext], None]

_RULES: dict[type, tuple[Rule, bool]] = {}


def FREE(module: nn.Module, inputs: tuple, output: object, ctx: RuleContext) -> None:
    """Rule of layers that cost nothing (reshapes, dropout at inference, max pooling, ...)."""


def CONTAINER(module: nn.Module, inputs: tuple, output: object, ctx: RuleContext) -> None:
    """Marker rule: the module's children are counted, not the module itself."""


def register_rule(cls: type, rule: Optional[Rule] = None, *, count_children: bool = False,
                  overwrite: bool = False) -> Any:
    """Register ``rule`` for module type ``cls`` (usable as a decorator).

    Args:
        cls: an ``nn.Module`` subclass; subclasses inherit the rule.
        rule: ``rule(module, inputs, output, ctx) -> None``.
        count_children: also count the module's children with their own rules (for a container
            that adds operations of its own, e.g. a residual block's addition); by default a
            rule claims the whole subtree.
        overwrite: replace an existing rule for ``cls``.

    Raises:
        TypeError: ``cls`` is not an ``nn.Module`` subclass, or ``rule`` is not callable.
        ValueError: ``cls`` already has a rule and ``overwrite`` is false.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register_rule: cls must be an nn.Module subclass, got {cls!r}")

    def deco(fn: Rule) -> Rule:
        if not callable(fn):
            raise TypeError(f"register_rule: rule must be callable, got {type(fn).__name__}")
        if cls in _RULES and not overwrite and _RULES[cls] != (fn, count_children):
            raise ValueError(f"an energy rule for {cls.__qualname__} is already registered "
                             "(pass overwrite=True to replace it)")
        _RULES[cls] = (fn, count_children)
        return fn

    return deco if rule is None else deco(rule)


def _lookup(module_or_cls: nn.Module | type) -> Optional[tuple[Rule, bool]]:
    cls = module_or_cls if isinstance(module_or_cls, type) else type(module_or_cls)
    for c in cls.__mro__:
        if c in _RULES:
            return _RULES[c]
    return None


def get_rule(module_or_cls: nn.Module | type) -> Optional[Rule]:
    """The rule for a module (or type), found along its MRO; ``None`` if there is none."""
    found = _lookup(module_or_cls)
    return None if found is None else found[0]


def counts_children(module_or_cls: nn.Module | type) -> bool:
    """Whether the module's children are counted too (containers, ``count_children=True`` rules)."""
    found = _lookup(module_or_cls)
    return found is not None and (found[0] is CONTAINER or found[1])


def registered_types() -> list[type]:
    """Module types with a rule (including :data:`FREE` and :data:`CONTAINER` ones)."""
    return list(_RULES)

