"""The outcome of IIR timestep compression: per-stage table, JSON and figure."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from torch import nn

__all__ = ["CompressionResult", "format_stage_table"]


def _pct(v: Optional[float]) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _si(v: Optional[float]) -> str:
    if v is None:
        return "-"
    for f, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= f:
            return f"{v / f:.3g}{p}"
    return f"{v:.3g}"


def _energy(pj: Optional[float]) -> str:
    if pj is None:
        return "-"
    for f, u in ((1e6, "µJ"), (1e3, "nJ")):
        if abs(pj) >= f:
            return f"{pj / f:.3g} {u}"
    return f"{pj:.3g} pJ"


def format_stage_table(stages: list[dict]) -> str:
    """A terminal table with one row per IIR stage."""
    head = ("stage", "T", "val before", "val", "test", "rate", "spikes/sample", "updates/sample", "SOPs/sample",
            "energy/sample", "train s")
    rows = [head]
    for s in stages:
        rows.append((str(s["stage"]), str(s["T"]), _pct(s.get("val_acc_before")), _pct(s["val_acc"]),
                     _pct(s.get("test_acc")), f"{s['firing_rate']:.3f}", _si(s["spikes_per_sample"]),
                     _si(s["neuron_updates_per_sample"]), _si(s.get("sops")),
                     _energy(s.get("energy_pj")), f"{s['train_time_s']:.0f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    if stages and stages[0].get("energy_pj") is None:
        lines.append("energy: not estimated (snn.energy unavailable); spikes and neuron updates are counted")
    elif stages:
        lines.append(f"energy: snn.energy.profile, model '{stages[0].get('energy_model')}', "
                     f"over {stages[0].get('report_samples')} samples")
    return "\n".join(lines)


@dataclass
class CompressionResult:
    """What :func:`snn.latency.compress_timesteps` produced.

    Attributes:
        stages: one dict per finished stage (``T``, accuracies, firing rate, spikes / neuron
            updates / SOPs / energy per sample, learned thresholds and leaks, epoch history).
        model: the network after the last stage (trained at ``schedule[-1]`` timesteps).
        config: the settings of the run.
        out: the run folder, if any.
    """

    stages: list[dict]
    model: nn.Module = field(repr=False)
    config: dict[str, Any] = field(default_factory=dict)
    out: Optional[Path] = None

    def table(self) -> str:
        """A plain-text table of the stages (one row per ``T``)."""
        return format_stage_table(self.stages)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content: method, config, stages and the table's lines (not the model)."""
        return {"method": "IIR-SNN timestep compression (Chowdhury, Rathi & Roy 2021)", "config": self.config,
                "stages": self.stages, "table": self.table().splitlines()}

    def save(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write ``compress.json`` and ``compress.png`` (atomically); returns the paths."""
        from snn.latency.plots import plot_compression
        from snn.train.checkpoint import write_json
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        write_json(self.to_dict(), d / "compress.json")
        plot_compression(self.stages, d / "compress.png")
        return [d / "compress.json", d / "compress.png"]
