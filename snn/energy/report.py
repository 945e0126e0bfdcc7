"""Energy reports: per-layer and total counts per sample, energy, ANN equivalent, latency;
as a terminal table, JSON and (see :mod:`snn.energy.plots`) PNG figures."""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor

from snn.energy.hardware import EnergyModel, EnergyModelLike, get_energy_model
from snn.energy.profiler import RawCounts
from snn.energy.registry import COUNTERS

__all__ = ["EnergyReport", "compare", "format_si"]

_ENERGY_COUNTERS = ("sops", "macs", "acs", "membrane_updates", "spikes")


def format_si(v: Optional[float], unit: str = "", digits: int = 3) -> str:
    """``1234567 → '1.23M'`` (``unit`` appended); ``None`` → ``'-'``."""
    if v is None:
        return "-"
    for factor, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.{digits}g}{p}{unit}"
    return f"{v:.{digits}g}{unit}"


def _energy_str(pj: float) -> str:
    for factor, u in ((1e6, "µJ"), (1e3, "nJ")):
        if abs(pj) >= factor:
            return f"{pj / factor:.3g} {u}"
    return f"{pj:.3g} pJ"


class EnergyReport:
    """What a profiled model cost, per sample, per layer and in total.

    All counts are means **per sample** over the profiled data (one sample = one sequence of
    ``timesteps`` steps). Energies are in pJ. Firing rate = spikes / (neurons × timesteps);
    activation sparsity = fraction of zero outputs of spiking layers (NeuroBench's
    ``ActivationSparsity``); input sparsity = fraction of zero inputs of a synaptic layer.

    Args:
        counts: what :class:`snn.energy.Profiler` counted.
        energy_model: name, :class:`snn.energy.EnergyModel`, mapping or JSON file.
        ann_energy_model: energy model of the equivalent ANN (default ``"cmos45"``).
        wall_time_s: measured forward time over all samples (without counting hooks).
        batch_size: batch size of the timed forwards.
        accuracy: classification accuracy, if labels were given.
        label: a name for this report (model, IIR stage, ...).

    Raises:
        ValueError: unknown energy model or a bad model JSON/mapping (``FileNotFoundError`` for
            a missing ``.json`` file; see :func:`snn.energy.get_energy_model`).
    """

    def __init__(self, counts: RawCounts, energy_model: EnergyModelLike = "cmos45", *,
                 ann_energy_model: EnergyModelLike = "cmos45", wall_time_s: Optional[float] = None,
                 batch_size: Optional[int] = None, accuracy: Optional[float] = None,
                 label: Optional[str] = None) -> None:
        self.counts = counts
        self.energy_model: EnergyModel = get_energy_model(energy_model)
        self.ann_energy_model: EnergyModel = get_energy_model(ann_energy_model)
        self.wall_time_s, self.batch_size, self.accuracy, self.label = wall_time_s, batch_size, accuracy, label

    # -- basic quantities --------------------------------------------------------------
    @property
    def samples(self) -> int:
        """Number of profiled samples ``N``."""
        return self.counts.samples

    @property
    def timesteps(self) -> int:
        """Timesteps ``T`` of the longest profiled batch (1 for ``time_first=False``)."""
        return self.counts.timesteps

    def with_energy_model(self, energy_model: EnergyModelLike) -> "EnergyReport":
        """The same counts under another energy model (nothing is re-run)."""
        return EnergyReport(self.counts, energy_model, ann_energy_model=self.ann_energy_model,
                            wall_time_s=self.wall_time_s, batch_size=self.batch_size, accuracy=self.accuracy,
                            label=self.label)

    def _per_sample(self, grid: Optional[Tensor]) -> float:
        return float(grid.sum()) / self.samples if grid is not None and self.samples else 0.0

    def layer(self, name: str) -> dict[str, Any]:
        """Per-sample figures of one layer (see :meth:`layers`).

        Raises:
            KeyError: no counted layer of that name (the message lists them).
        """
        for d in self.layers():
            if d["name"] == name:
                return d
        raise KeyError(f"no counted layer {name!r}; layers: {[i.name for i in self.counts.layers]}")

    def layers(self) -> list[dict[str, Any]]:
        """One dict per counted layer: counts per sample, sizes, rates and energy (pJ)."""
        out = []
        for info in self.counts.layers:
            g = self.counts.grids.get(info.name, {})
            c = {k: self._per_sample(g.get(k)) for k in COUNTERS}
            st = info.statics
            d: dict[str, Any] = {"name": info.name, "type": info.type,
                                 "neurons": int(st.get("neurons", 0)), "synapses": st.get("synapses", 0.0),
                                 "params": info.params, "memory_bytes": info.memory_bytes,
                                 "state_bytes": int(st.get("state_elements", 0)) * info.state_itemsize, **c}
            d["firing_rate"] = c["spikes"] / c["activations"] if c["activations"] else None
            d["activation_sparsity"] = 1 - c["spikes"] / c["activations"] if c["activations"] else None
            d["input_sparsity"] = 1 - c["in_nonzero"] / c["in_elements"] if c["in_elements"] else None
            e = self.energy_model.energy(c)
            d["energy_pj"] = {**e, "total": sum(e.values())}
            d["ann_macs"], d["ann_acs"] = st.get("ann_macs", 0.0), st.get("ann_acs", 0.0)
            out.append(d)
        return out

    def totals(self) -> dict[str, float]:
        """Per-sample counts summed over all layers."""
        t = {k: 0.0 for k in COUNTERS}
        for g in self.counts.grids.values():
            for k, v in g.items():
                t[k] += self._per_sample(v)
        return t

    @property
    def firing_rate(self) -> Optional[float]:
        """Spikes / (neurons × timesteps) over all spiking layers together."""
        t = self.totals()
        return t["spikes"] / t["activations"] if t["activations"] else None

    @property
    def activation_sparsity(self) -> Optional[float]:
        """Fraction of zero outputs over all spiking layers (NeuroBench ``ActivationSparsity``)."""
        r = self.firing_rate
        return None if r is None else 1.0 - r

    def energy_breakdown(self) -> dict[str, float]:
        """Energy per sample in pJ per component (``sops``, ``macs``, ``acs``, ``membrane_updates``, ``spikes``)."""
        return self.energy_model.energy(self.totals())

    def energy_pj(self) -> float:
        """Mean energy per sample in pJ."""
        return sum(self.energy_breakdown().values())

    # -- the equivalent ANN ------------------------------------------------------------
    def ann_ops(self) -> dict[str, float]:
        """MACs and ACs of the same architecture run once as an ANN (dense, every synapse used)."""
        return {"macs": sum(i.statics.get("ann_macs", 0.0) for i in self.counts.layers),
                "acs": sum(i.statics.get("ann_acs", 0.0) for i in self.counts.layers)}

    def ann_energy_pj(self) -> float:
        """Energy of the equivalent ANN's inference per sample, in pJ (``ann_energy_model``)."""
        ops = self.ann_ops()
        return self.ann_energy_model.e_mac * ops["macs"] + self.ann_energy_model.e_ac * ops["acs"]

    # -- time-resolved energy (early exit, Dynamic Confidence) --------------------------
    def energy_grid(self) -> Tensor:
        """Energy in pJ per timestep and sample, float64 ``[T, N]``."""
        E = torch.zeros((self.timesteps, self.samples), dtype=torch.float64)
        for g in self.counts.grids.values():
            for k, v in g.items():
                if k in _ENERGY_COUNTERS:
                    cost = self.energy_model.energy({k: 1.0})[k]
                    E += cost * v
        return E

    def per_sample_energy(self, stop_steps: Optional[Union[Tensor, Sequence[int]]] = None) -> Tensor:
        """Energy of each sample in pJ, float64 ``[N]``.

        Args:
            stop_steps: timesteps each sample actually ran, ``1 ≤ stop_steps[n] ≤ T`` (e.g. the
                decision time under Dynamic Confidence, Li et al., ICCV 2023); counts after a
                sample's stop are dropped. ``None``: all ``T`` timesteps.

        Raises:
            ValueError: wrong length or a value outside ``[1, T]``; or counts were spread
                (not attributable to timesteps, see :class:`snn.energy.Profiler`).
        """
        E = self.energy_grid()
        if stop_steps is None:
            return E.sum(0)
        s = torch.as_tensor(stop_steps).reshape(-1)
        if s.numel() != self.samples:
            raise ValueError(f"stop_steps has {s.numel()} entries, expected one per sample ({self.samples})")
        if ((s < 1) | (s > self.timesteps)).any():
            raise ValueError(f"stop_steps must lie in [1, T={self.timesteps}], got min {int(s.min())}, "
                             f"max {int(s.max())}")
        if self.counts.spread:
            raise ValueError("some counts could not be attributed to timesteps; per-timestep energy is undefined")
        keep = torch.arange(self.timesteps)[:, None] < s[None, :].to(torch.long)
        return (E * keep).sum(0)

    def energy_vs_timesteps(self) -> Tensor:
        """Mean energy per sample in pJ if every sample stopped after ``t = 1 … T`` steps, float64 ``[T]``."""
        return self.energy_grid().cumsum(0).mean(1) if self.samples else torch.zeros(self.timesteps)

    def early_exit(self, stop_steps: Union[Tensor, Sequence[int]]) -> dict[str, float]:
        """Summary of an early-exit run: mean timesteps, mean energy per sample and the saving.

        Args:
            stop_steps: ``[N]`` timesteps each sample ran, in ``[1, T]`` (as :meth:`per_sample_energy`).

        Returns:
            ``{"mean_timesteps", "energy_pj", "full_energy_pj", "saving"}`` (energies in pJ per
            sample; ``saving`` as a fraction of the full-length energy).

        Raises:
            ValueError: as :meth:`per_sample_energy`.
        """
        e = self.per_sample_energy(stop_steps)
        full = self.energy_pj()
        mean = float(e.mean())
        return {"mean_timesteps": float(torch.as_tensor(stop_steps, dtype=torch.float64).mean()),
                "energy_pj": mean, "full_energy_pj": full, "saving": 1 - mean / full if full else 0.0}

    # -- output --------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Compact per-sample figures (for IIR stage reports, benchmark rows, CLI output)."""
        t = self.totals()
        ann = self.ann_energy_pj()
        e = self.energy_pj()
        wall = (1e3 * self.wall_time_s / self.samples) if self.wall_time_s is not None and self.samples else None
        return {"label": self.label, "samples": self.samples, "timesteps": self.timesteps,
                "accuracy": self.accuracy, "firing_rate": self.firing_rate,
                "activation_sparsity": self.activation_sparsity,
                **{k: t[k] for k in ("sops", "macs", "acs", "membrane_updates", "spikes", "dense_ops")},
                "neurons": sum(int(i.statics.get("neurons", 0)) for i in self.counts.layers),
                "synapses_per_timestep": sum(i.statics.get("synapses", 0.0) for i in self.counts.layers),
                "energy_model": self.energy_model.name, "energy_pj": e,
                "ann_macs": self.ann_ops()["macs"], "ann_energy_pj": ann,
                "ann_over_snn_energy": ann / e if e else None,
                "wall_ms_per_sample": wall, "batch_size": self.batch_size,
                "params": self.counts.model_params, "memory_bytes": self.counts.model_memory_bytes,
                "state_bytes_per_sample": sum(d["state_bytes"] for d in self.layers())}

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready data (the time/sample grids are reduced to energy vs. T)."""
        return {"summary": self.summary(), "energy_breakdown_pj": self.energy_breakdown(),
                "energy_model": self.energy_model.to_dict(), "ann_energy_model": self.ann_energy_model.name,
                "options": asdict(self.counts.options), "layers": self.layers(),
                "energy_vs_timesteps_pj": self.energy_vs_timesteps().tolist(),
                "uncounted": self.counts.uncounted, "spread": self.counts.spread}

    def save_json(self, path: Union[str, os.PathLike]) -> None:
        """Write :meth:`to_dict` as JSON, atomically."""
        from snn.train.checkpoint import write_json
        write_json(self.to_dict(), path)

    def plot(self, out_dir: Union[str, os.PathLike], prefix: str = "energy") -> list:
        """Write ``{prefix}_layers.png`` (firing rate and energy per layer) and
        ``{prefix}_timesteps.png`` (energy vs. timesteps); returns the paths."""
        from snn.energy.plots import plot_energy_vs_timesteps, plot_layers
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        paths = [d / f"{prefix}_layers.png", d / f"{prefix}_timesteps.png"]
        plot_layers(self, paths[0])
        plot_energy_vs_timesteps(self, paths[1])
        return paths

    def table(self) -> str:
        """A terminal table: one row per layer with counts per sample, then totals and latency."""
        rows = [("layer", "type", "neurons", "rate", "SOPs", "MACs", "ACs", "updates", "energy")]
        for d in self.layers():
            if not any(d[k] for k in ("sops", "macs", "acs", "membrane_updates")) and not d["neurons"]:
                continue
            rows.append((d["name"], d["type"], format_si(d["neurons"]) if d["neurons"] else "",
                         f"{d['firing_rate']:.3f}" if d["firing_rate"] is not None else "",
                         format_si(d["sops"]), format_si(d["macs"]), format_si(d["acs"]),
                         format_si(d["membrane_updates"]), _energy_str(d["energy_pj"]["total"])))
        s, t = self.summary(), self.totals()
        rows.append(("total", "", format_si(s["neurons"]),
                     f"{s['firing_rate']:.3f}" if s["firing_rate"] is not None else "",
                     format_si(t["sops"]), format_si(t["macs"]), format_si(t["acs"]),
                     format_si(t["membrane_updates"]), _energy_str(s["energy_pj"])))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        wall = f"{s['wall_ms_per_sample']:.3g} ms/sample (batch {s['batch_size']})" \
            if s["wall_ms_per_sample"] is not None else "not measured"
        lines += [
            f"per sample over {s['samples']} samples, T = {s['timesteps']} timesteps; energy model "
            f"'{self.energy_model.name}' ({self.energy_model.citation.split(',')[0]})",
            f"SNN {_energy_str(s['energy_pj'])}  vs  ANN of the same architecture {_energy_str(s['ann_energy_pj'])} "
            f"({format_si(s['ann_macs'])} MACs, '{self.ann_energy_model.name}')"
            + (f"  → ANN/SNN = {s['ann_over_snn_energy']:.2f}×" if s["ann_over_snn_energy"] else ""),
            f"activation sparsity {s['activation_sparsity']:.3f}" if s["activation_sparsity"] is not None else
            "no spiking layers",
            f"latency: {s['timesteps']} timesteps, wall time {wall}; params {format_si(s['params'])} "
            f"({format_si(s['memory_bytes'], 'B')}), state {format_si(s['state_bytes_per_sample'], 'B')}/sample"]
        if s["accuracy"] is not None:
            lines.append(f"accuracy {100 * s['accuracy']:.2f}%")
        if self.counts.uncounted:
            lines.append(f"NOT counted (no rule): {', '.join(self.counts.uncounted)}")
        return "\n".join(lines)


def compare(reports: Mapping[str, EnergyReport]) -> str:
    """A table comparing several reports (models, IIR compression stages, energy models)."""
    head = ("name", "T", "acc", "rate", "SOPs", "MACs", "energy", "ANN energy", "ms/sample")
    rows = [head]
    for name, r in reports.items():
        s = r.summary()
        rows.append((name, str(s["timesteps"]), "-" if s["accuracy"] is None else f"{100 * s['accuracy']:.1f}%",
                     "-" if s["firing_rate"] is None else f"{s['firing_rate']:.3f}", format_si(s["sops"]),
                     format_si(s["macs"]), _energy_str(s["energy_pj"]), _energy_str(s["ann_energy_pj"]),
                     "-" if s["wall_ms_per_sample"] is None else f"{s['wall_ms_per_sample']:.3g}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
