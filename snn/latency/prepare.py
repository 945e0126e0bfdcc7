"""Give a network the neurons IIR-SNN trains: learnable per-layer threshold and leak, soft reset."""
from __future__ import annotations

import torch
from torch import nn

from snn.neurons import IF, LIF, PLIF, BaseNeuron

__all__ = ["prepare_for_iir", "neuron_parameters"]


def _ready(m: BaseNeuron, learn_threshold: bool, learn_leak: bool, soft_reset: bool) -> bool:
    return (isinstance(m.v_threshold, nn.Parameter) == learn_threshold
            and (m.v_reset is None or not soft_reset)
            and (isinstance(m, PLIF) and m.w.requires_grad) == learn_leak)


@torch.no_grad()
def _replacement(m: BaseNeuron, learn_threshold: bool, learn_leak: bool, soft_reset: bool,
                 if_beta: float) -> BaseNeuron:
    th = m.v_threshold.detach()
    kw = dict(v_threshold=float(th.max()), v_reset=None if soft_reset else m.v_reset, surrogate=m.surrogate,
              detach_reset=m.detach_reset, learn_threshold=learn_threshold, num_channels=m.num_channels,
              backend=m.backend, record_v=m.record_v, device=th.device, dtype=th.dtype)
    if kw["v_reset"] is not None and not kw["v_reset"] < float(th.min()):
        raise ValueError(f"hard reset value {kw['v_reset']} is not below the threshold {float(th.min())}")
    beta = m.decay()
    if learn_leak:
        new: BaseNeuron = PLIF(decay_input=m.decay_input, **kw)
        b = torch.full_like(new.w, if_beta) if beta is None else beta.detach().to(new.w).expand_as(new.w)
        new.w.copy_(torch.log(b / (1 - b)))
    elif isinstance(m, PLIF):
        new = PLIF(decay_input=m.decay_input, **kw)
        new.w.copy_(m.w)
        new.w.requires_grad_(False)
    elif beta is None:
        new = IF(**kw)
    else:
        new = LIF(decay_input=m.decay_input, **kw)
        new.beta.copy_(beta)
    new.v_threshold.copy_(th.expand_as(new.v_threshold))
    new.v_init.copy_(m.v_init)
    new.train(m.training)
    return new


def prepare_for_iir(model: nn.Module, *, learn_threshold: bool = True, learn_leak: bool = True,
                    soft_reset: bool = True, if_beta: float = 0.99) -> list[str]:
    r"""Replace every spiking layer of ``model`` (in place) by the neuron IIR-SNN trains.

    IIR-SNN (Chowdhury, Rathi & Roy, "One Timestep is All You Need: Training Spiking Neural
    Networks with Ultra Low Latency", arXiv:2110.05929, 2021, Sec. 3, Eq. 1-2) uses LIF
    neurons with a soft (subtractive) reset whose threshold ``V_th`` and leak ``λ`` are
    learned per layer together with the weights:

    .. math::
        u_t = \lambda u_{t-1} + W x_t - V_{th}\, o_{t-1}, \qquad o_t = \Theta(u_t - V_{th})

    Here the leak is :class:`snn.PLIF`'s ``β = sigmoid(w)`` (learnable, kept in (0, 1)), the
    threshold a parameter (``learn_threshold``), the reset subtractive (``v_reset=None``).
    Each layer keeps its threshold (scalar or per channel), ``v_init``, surrogate, backend
    and leak: LIF/PLIF start at their β; IF layers (no leak, e.g. converted networks) start at
    ``if_beta`` (a leak of exactly 1 is outside PLIF's range). Layers that already match are
    left alone, so the call is idempotent. The parameters of replaced layers are new
    objects: build the optimizer after this call.

    Args:
        model: any network with :class:`snn.neurons.BaseNeuron` layers (:mod:`snn.models`,
            converted networks, users' models).
        learn_threshold: thresholds become parameters.
        learn_leak: PLIF with a learnable leak; ``False`` keeps the layer's own (fixed) leak.
        soft_reset: subtractive reset (``False`` keeps each layer's reset).
        if_beta: initial leak of former IF layers, in (0, 1).

    Returns:
        the names of the replaced modules.

    Raises:
        ValueError: ``if_beta`` outside (0, 1); a network without spiking layers.
    """
    if not 0 < if_beta < 1:
        raise ValueError(f"if_beta must be in (0, 1), got {if_beta!r}")
    names = [n for n, m in model.named_modules() if isinstance(m, BaseNeuron)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no spiking layers (snn.neurons.BaseNeuron) to prepare")
    replaced = []
    for name in names:
        m = model.get_submodule(name)
        if _ready(m, learn_threshold, learn_leak, soft_reset):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if not child:
            raise ValueError("the model itself is a single neuron layer; wrap it in nn.Sequential to prepare it")
        setattr(parent, child, _replacement(m, learn_threshold, learn_leak, soft_reset, if_beta))
        replaced.append(name)
    return replaced


def neuron_parameters(model: nn.Module) -> dict[str, dict[str, list[float]]]:
    """Per spiking layer: its threshold and leak β (lists, one value or one per channel)."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, BaseNeuron):
            beta = m.decay()
            out[name] = {"v_threshold": m.v_threshold.detach().reshape(-1).tolist(),
                         "beta": [1.0] if beta is None else beta.detach().reshape(-1).tolist()}
    return out

