"""Built-in counting rules: torch.nn layers and the snn neurons (see :mod:`snn.energy.registry`).

========================================  =====================================================
layer                                     counted per call
========================================  =====================================================
``nn.Linear``                             synaptic: each nonzero input × ``out_features``
``nn.Conv{1,2,3}d``, ``ConvTranspose``    synaptic: each nonzero input × its exact fan-out
                                          (padding, stride, dilation, groups; :mod:`.fanout`)
``nn.AvgPool*``, ``AdaptiveAvgPool*``     ACs: each nonzero input × windows covering it (the
                                          1/k scaling is folded into the next layer)
``nn.MaxPool*``, ``AdaptiveMaxPool*``     free (comparisons are not charged)
``nn.BatchNorm{1,2,3}d``                  free when folded (default), else 1 MAC per element
``snn.IF/LIF/PLIF`` (``BaseNeuron``)      1 membrane update per neuron per timestep; spikes
``snn.LeakyIntegrator``                   1 membrane update per neuron per timestep
``Flatten``, ``Dropout``, ``Identity``,   free; flattened, padded (or concatenated, indexed)
padding, ReLU-type activations,           spike trains stay spikes (:mod:`.spike_flow`)
``TimeSharedDropout`` (``shd-delays``)
``nn.Sequential``, ``snn.TimeDistributed`` container: its children are counted
``IFActivation`` (converted networks)     its IF neuron as above; the output ``θ·s`` is spikes
``SpikingMaxPool`` (converted networks)   free; the output is spikes only if the input is
========================================  =====================================================

Biases are not counted (as in NeuroBench): on neuromorphic hardware they are part of the
neuron update.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from snn.conversion.activations import ClipReLU, QCFS
from snn.conversion.spiking import IFActivation, SpikingMaxPool
from snn.delays.layer import DelayLinear
from snn.energy.fanout import conv_fanout, linear_fanout, pool_fanout
from snn.energy.registry import CONTAINER, FREE, RuleContext, register_rule
from snn.layers import TimeDistributed
from snn.models.shd import TimeSharedDropout
from snn.neurons import BaseNeuron, LeakyIntegrator

__all__ = ["linear_rule", "neuron_rule", "readout_rule"]


def _cached(ctx: RuleContext, key: tuple, make):
    cache = ctx.cache
    if key not in cache:
        cache[key] = make()
    return cache[key]


@register_rule(nn.Linear)
def linear_rule(module: nn.Linear, inputs: tuple, output: Tensor, ctx: RuleContext) -> None:
    skip = ctx.options.skip_zero_weights
    fan = _cached(ctx, ("linear", id(module), skip), lambda: linear_fanout(module.weight, skip))
    ctx.synaptic(inputs[0], fan if skip else module.out_features, feature_ndim=1)


def _conv_rule(module: nn.modules.conv._ConvNd, inputs: tuple, output: Tensor, ctx: RuleContext) -> None:
    x = inputs[0]
    nd = len(module.kernel_size)
    feat, out_sp = tuple(x.shape[-(nd + 1):]), tuple(output.shape[-nd:])
    skip = ctx.options.skip_zero_weights
    fan = _cached(ctx, ("conv", id(module), feat, out_sp, skip),
                  lambda: conv_fanout(module, feat, out_sp, skip))
    ctx.synaptic(x, fan, feature_ndim=nd + 1)


for _cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d):
    register_rule(_cls, _conv_rule)


def _pool_dims(module: nn.Module) -> int:
    return int(type(module).__name__[-2])  # AvgPool2d → 2, AdaptiveMaxPool3d → 3


def _avg_pool_rule(module: nn.Module, inputs: tuple, output: Tensor, ctx: RuleContext) -> None:
    x = inputs[0]
    nd = _pool_dims(module)
    in_sp, out_sp = tuple(x.shape[-nd:]), tuple(output.shape[-nd:])
    fan = _cached(ctx, ("pool", id(module), in_sp, out_sp), lambda: pool_fanout(module, in_sp, out_sp))
    flat = (x.detach() != 0).reshape(*x.shape[:-nd], -1).to(torch.float64)  # [..., C, positions]
    per_channel = flat @ fan.reshape(-1).to(flat.device)                     # [..., C]
    ctx.add("acs", per_channel.sum(-1).cpu())
    ctx.static(ann_acs=float(fan.sum()) * x.shape[-nd - 1])


for _cls in (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
             nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d):
    register_rule(_cls, _avg_pool_rule)

for _cls in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
             nn.AdaptiveMaxPool3d, nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d,
             nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh,
             nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.Softmax,
             nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
             nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d,
             nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d):
    register_rule(_cls, FREE)

for _cls in (nn.Sequential, nn.ModuleList, nn.ModuleDict, TimeDistributed):
    register_rule(_cls, CONTAINER)


def _batchnorm_rule(module: nn.modules.batchnorm._BatchNorm, inputs: tuple, output: Tensor,
                    ctx: RuleContext) -> None:
    if ctx.options.fold_batchnorm:
        return
    x = inputs[0]
    per = math.prod(x.shape[1:])  # batch-first [N, C, ...]
    ctx.add("macs", torch.full((x.shape[0],), float(per), dtype=torch.float64))
    ctx.static(ann_macs=float(per))


for _cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
    register_rule(_cls, _batchnorm_rule)


def _lead_nd(ctx: RuleContext) -> int:
    return 1 if ctx.single_step else 2


@register_rule(BaseNeuron)
def neuron_rule(module: BaseNeuron, inputs: tuple, output: Tensor, ctx: RuleContext) -> None:
    """Every neuron is updated once per timestep; every nonzero output is a spike."""
    x = inputs[0]
    k = _lead_nd(ctx)
    n = math.prod(x.shape[k:])
    lead = x.shape[:k]
    full = torch.full(lead, float(n), dtype=torch.float64)
    ctx.add("membrane_updates", full)
    ctx.add("activations", full)
    ctx.add("spikes", (output.detach() != 0).reshape(*lead, -1).sum(-1).to(torch.float64))
    ctx.static(neurons=n, state_elements=n)


@register_rule(LeakyIntegrator)
def readout_rule(module: LeakyIntegrator, inputs: tuple, output: Tensor, ctx: RuleContext) -> None:
    """Non-spiking readout: one membrane update per neuron per timestep, no spikes."""
    x = inputs[0]
    k = _lead_nd(ctx)
    n = math.prod(x.shape[k:])
    ctx.add("membrane_updates", torch.full(x.shape[:k], float(n), dtype=torch.float64))
    ctx.static(neurons=n, state_elements=n)


# -- delay synapses (Hammouamri et al. 2024) --------------------------------------------
@register_rule(DelayLinear)
def delay_linear_rule(module: DelayLinear, inputs: tuple, output: Tensor, ctx: RuleContext) -> None:
    """Each input spike reaches each of its synapses once, whatever the synapse's delay (delays
    cost memory, not operations): SOPs as :class:`nn.Linear`. The delay line keeps the last
    ``max_delay`` inputs of every input neuron per sample."""
    skip = ctx.options.skip_zero_weights
    fan = _cached(ctx, ("delay", id(module), skip), lambda: linear_fanout(module.weight, skip))
    ctx.synaptic(inputs[0], fan if skip else module.out_features, feature_ndim=1)
    ctx.static(state_elements=module.max_delay * module.in_features)


# -- converted networks (snn.conversion) ------------------------------------------------
def _if_activation_rule(module: IFActivation, inputs: tuple, output: Tensor, ctx: RuleContext) -> None:
    """The wrapped IF neuron is counted by :func:`neuron_rule`; the output ``θ·s`` is spikes."""
    ctx.mark_spikes(output)


def _spiking_max_pool_rule(module: SpikingMaxPool, inputs: tuple, output: Tensor, ctx: RuleContext) -> None:
    """Gating by accumulated input spikes: comparisons only (free). The output is spikes only if
    the input is (``θ·s`` of an IF layer); pooled analog input (a max pool before the first
    activation) stays a graded current, so the next layer costs MACs."""
    if ctx.is_spikes(inputs[0]):
        ctx.mark_spikes(output)


register_rule(IFActivation, _if_activation_rule, count_children=True)
register_rule(SpikingMaxPool, _spiking_max_pool_rule)
for _cls in (QCFS, ClipReLU, TimeSharedDropout):
    register_rule(_cls, FREE)
