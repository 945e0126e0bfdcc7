"""Energy models as data: per-operation energies in pJ, with their sources.

The energy of a run is a weighted count of its operations (all counts per sample)::

    E = e_sop·SOPs + e_mac·MACs + e_ac·ACs + e_neuron_update·membrane_updates + e_spike·spikes

Built-in models (:data:`ENERGY_MODELS`):

* ``cmos45`` (default) — 45 nm CMOS at 0.9 V, 32-bit floating point (Horowitz, "Computing's
  energy problem (and what we can do about it)", IEEE ISSCC 2014, pp. 10-14): FP add 0.9 pJ,
  FP multiply 3.7 pJ, so E_MAC = 4.6 pJ and E_AC = 0.9 pJ. A SOP is one accumulate (0.9 pJ).
  A membrane update is charged one MAC (4.6 pJ: decay multiply + input add); threshold
  comparison, reset and memory traffic are not charged.
* ``cmos45-synaptic`` — the same constants, synaptic operations only (E = E_MAC·MACs +
  E_AC·(SOPs + ACs)), the convention of most SNN papers (e.g. Zhou et al., "Spikformer",
  ICLR 2023); neuron updates are free.
* ``loihi`` — Intel Loihi (14 nm), Davies et al., "Loihi: a neuromorphic manycore processor
  with on-chip learning", IEEE Micro 38(1), 2018, Table 2 (pre-silicon SDF/SPICE values at
  0.75 V): 23.6 pJ per synaptic spike op (min), 52 pJ per neuron update (inactive; 81 pJ
  active), 1.7 pJ per within-tile spike. Loihi 1 exchanges binary spikes only; a MAC on a
  graded input or a pooling AC is charged as one synaptic op (an approximation).

Add your own with :func:`register_energy_model` or pass an :class:`EnergyModel` (or a JSON
file with its fields) wherever a model name is accepted.
"""
from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Union

__all__ = ["EnergyModel", "ENERGY_MODELS", "register_energy_model", "get_energy_model", "EnergyModelLike"]

_COSTS = ("e_sop", "e_mac", "e_ac", "e_neuron_update", "e_spike")
#: which counter each cost multiplies
_COUNTER_OF = {"e_sop": "sops", "e_mac": "macs", "e_ac": "acs", "e_neuron_update": "membrane_updates",
               "e_spike": "spikes"}


@dataclass(frozen=True)
class EnergyModel:
    """Per-operation energies of one hardware target, in picojoules (pJ).

    Args:
        name: identifier (``--energy-model NAME``).
        e_sop: energy of one synaptic operation (a spike arriving at one synapse: accumulate).
        e_mac: energy of one multiply-accumulate (graded input × weight).
        e_ac: energy of one accumulate outside synapses (pooling sums).
        e_neuron_update: energy of one neuron's state update in one timestep.
        e_spike: energy of emitting/routing one spike.
        citation: the source of the constants.
        notes: assumptions made on top of the source.

    Raises:
        ValueError: a cost is negative, NaN or infinite, or ``name`` is empty.
    """

    name: str
    e_sop: float
    e_mac: float
    e_ac: float
    e_neuron_update: float = 0.0
    e_spike: float = 0.0
    citation: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"EnergyModel: name must be a non-empty string, got {self.name!r}")
        for c in _COSTS:
            v = getattr(self, c)
            if not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
                raise ValueError(f"EnergyModel {self.name!r}: {c} must be a finite number ≥ 0 pJ, got {v!r}")
            object.__setattr__(self, c, float(v))

    def energy(self, counts: Mapping[str, float]) -> dict[str, float]:
        """Energy in pJ per cost component (``"sops"``, ``"macs"``, ...) for operation ``counts``."""
        return {_COUNTER_OF[c]: getattr(self, c) * float(counts.get(_COUNTER_OF[c], 0.0)) for c in _COSTS}

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (the inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EnergyModel":
        """Build from a mapping of the field names.

        Raises:
            ValueError: unknown keys, a missing ``name``/``e_sop``/``e_mac``/``e_ac``, or a bad
                value (as the constructor).
        """
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"EnergyModel: unknown fields {sorted(unknown)}; valid fields: {sorted(names)}")
        missing = {"name", "e_sop", "e_mac", "e_ac"} - set(d)
        if missing:
            raise ValueError(f"EnergyModel: missing fields {sorted(missing)}")
        return cls(**d)


_HOROWITZ = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', IEEE ISSCC 2014, "
             "pp. 10-14: 45 nm, 0.9 V, FP32 add 0.9 pJ, FP32 mult 3.7 pJ")

ENERGY_MODELS: dict[str, EnergyModel] = {}


def register_energy_model(model: EnergyModel, overwrite: bool = False) -> EnergyModel:
    """Make ``model`` available by name.

    Raises:
        TypeError: not an :class:`EnergyModel`.
        ValueError: the name is taken and ``overwrite`` is false.
    """
    if not isinstance(model, EnergyModel):
        raise TypeError(f"register_energy_model expects an EnergyModel, got {type(model).__name__}")
    if model.name in ENERGY_MODELS and not overwrite and ENERGY_MODELS[model.name] != model:
        raise ValueError(f"an energy model named {model.name!r} exists; pass overwrite=True to replace it")
    ENERGY_MODELS[model.name] = model
    return model


register_energy_model(EnergyModel(
    "cmos45", e_sop=0.9, e_mac=4.6, e_ac=0.9, e_neuron_update=4.6, e_spike=0.0, citation=_HOROWITZ,
    notes="SOP = one FP32 add; membrane update = one FP32 multiply-add (decay and input); threshold "
          "comparison, reset and memory accesses not charged"))
register_energy_model(EnergyModel(
    "cmos45-synaptic", e_sop=0.9, e_mac=4.6, e_ac=0.9, e_neuron_update=0.0, e_spike=0.0, citation=_HOROWITZ,
    notes="synaptic operations only, the usual convention of SNN papers (e.g. Zhou et al., Spikformer, "
          "ICLR 2023: E = E_MAC·MACs + E_AC·SOPs)"))
register_energy_model(EnergyModel(
    "loihi", e_sop=23.6, e_mac=23.6, e_ac=23.6, e_neuron_update=52.0, e_spike=1.7,
    citation="M. Davies et al., 'Loihi: A neuromorphic manycore processor with on-chip learning', "
             "IEEE Micro 38(1):82-99, 2018, Table 2 (pre-silicon, 0.75 V)",
    notes="23.6 pJ per synaptic spike op (min); 52 pJ per neuron update (inactive, 81 pJ active); "
          "1.7 pJ within-tile spike; MACs on graded inputs and pooling ACs charged as one synaptic op each "
          "(an approximation: Loihi 1 exchanges binary spikes only)"))

EnergyModelLike = Union[str, os.PathLike, EnergyModel, Mapping[str, Any]]


def get_energy_model(spec: EnergyModelLike) -> EnergyModel:
    """An :class:`EnergyModel` from a registered name, a JSON file of its fields, a mapping or itself.

    Raises:
        ValueError: unknown name (lists the registered ones), or a bad JSON file / mapping.
        FileNotFoundError: ``spec`` names a ``.json`` file that does not exist.
    """
    if isinstance(spec, EnergyModel):
        return spec
    if isinstance(spec, Mapping):
        return EnergyModel.from_dict(spec)
    if isinstance(spec, str) and spec in ENERGY_MODELS:
        return ENERGY_MODELS[spec]
    p = Path(spec)
    if p.suffix.lower() == ".json" or p.is_file():
        if not p.is_file():
            raise FileNotFoundError(f"energy model file not found: {p}")
        try:
            return EnergyModel.from_dict(json.loads(p.read_text()))
        except (json.JSONDecodeError, TypeError) as e:
            raise ValueError(f"{p}: not an energy model JSON object ({e})") from e
    raise ValueError(f"unknown energy model {str(spec)!r}; registered models: {sorted(ENERGY_MODELS)} "
                     "(or pass a JSON file with the EnergyModel fields)")
