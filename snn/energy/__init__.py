"""Energy and latency estimation: synaptic operations, MACs, firing rates, energy models.

``snn.energy.profile(model, data)`` runs a model on real inputs and returns an
:class:`EnergyReport`: per layer and in total (per sample) neurons, spikes, firing rate
(spikes / neuron / timestep), activation sparsity, synaptic operations (SOPs: every input
spike × its exact fan-out), MACs for graded inputs, membrane updates, parameter and state
memory, energy under a hardware model (default 45 nm CMOS, Horowitz ISSCC 2014; ``loihi``,
Davies et al. 2018), the equivalent ANN's MAC energy, and latency (timesteps, wall time).
``snn energy CHECKPOINT`` does the same from the command line.

How counting works: one rule per layer type (:mod:`snn.energy.registry`,
:mod:`snn.energy.rules`) attached by forward hooks and ``step`` wrappers
(:class:`Profiler`), so multi-step, single-step and every neuron backend are counted
alike. **A new layer type adds one rule** — e.g. for a delay layer, in its own module::

    from snn.energy import register_rule

    @register_rule(DelayedSynapses)
    def _count(module, inputs, output, ctx):
        # one SOP per input spike per synapse, whatever the delay (not per kernel tap)
        ctx.synaptic(inputs[0], fanout=module.out_features, feature_ndim=1)

For other counters use ``ctx.add(counter, values)`` with values over the call's leading
(time/batch) dims, and ``ctx.static(neurons=..., synapses=..., state_elements=...)``.
Integrations: ``report.summary()`` per IIR compression stage and :func:`compare` for a
table; ``report.per_sample_energy(stop_steps)`` / ``report.early_exit(stop_steps)`` for
Dynamic-Confidence early stopping (samples that stop early cost less);
:func:`neurobench_metrics` to cross-check SOPs and sparsity with NeuroBench.
"""
from snn.energy.hardware import ENERGY_MODELS, EnergyModel, get_energy_model, register_energy_model
from snn.energy.measure import profile
from snn.energy.neurobench import neurobench_metrics
from snn.energy.profiler import Profiler, RawCounts
from snn.energy.registry import CONTAINER, COUNTERS, FREE, STATICS, CountOptions, get_rule, register_rule
from snn.energy.report import EnergyReport, compare

__all__ = ["profile", "Profiler", "EnergyReport", "RawCounts", "compare", "EnergyModel", "ENERGY_MODELS",
           "get_energy_model", "register_energy_model", "register_rule", "get_rule", "CountOptions",
           "COUNTERS", "STATICS", "FREE", "CONTAINER", "neurobench_metrics"]
