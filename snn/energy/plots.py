"""PNG figures of an energy report (matplotlib, headless Agg backend, written atomically)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from snn.energy.report import EnergyReport

__all__ = ["plot_layers", "plot_energy_vs_timesteps"]

_COMPONENTS = (("sops", "SOPs"), ("macs", "MACs"), ("acs", "ACs"), ("membrane_updates", "neuron updates"),
               ("spikes", "spikes"))


def _save(fig, path: Union[str, os.PathLike]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".png", dir=p.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, p)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def plot_layers(report: "EnergyReport", path: Union[str, os.PathLike]) -> None:
    """Two panels: firing rate of each spiking layer, and energy per sample of each layer
    stacked by component (nJ)."""
    layers = [d for d in report.layers() if d["energy_pj"]["total"] > 0 or d["firing_rate"] is not None]
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    spiking = [d for d in layers if d["firing_rate"] is not None]
    ax[0].bar(range(len(spiking)), [d["firing_rate"] for d in spiking], color="C2")
    ax[0].set_xticks(range(len(spiking)), [f"{d['name']}\n{d['type']}" for d in spiking], rotation=30, ha="right")
    ax[0].set(ylabel="spikes / neuron / timestep", title="firing rate per spiking layer")
    bottom = [0.0] * len(layers)
    for i, (key, label) in enumerate(_COMPONENTS):
        vals = [d["energy_pj"][key] / 1e3 for d in layers]
        if any(vals):
            ax[1].bar(range(len(layers)), vals, bottom=bottom, label=label, color=f"C{i}")
            bottom = [b + v for b, v in zip(bottom, vals)]
    ax[1].set_xticks(range(len(layers)), [f"{d['name']}\n{d['type']}" for d in layers], rotation=30, ha="right")
    ax[1].set(ylabel="nJ per sample", title=f"energy per layer ({report.energy_model.name})")
    ax[1].legend(fontsize=8)
    for a in ax:
        a.grid(alpha=0.3, axis="y")
    _save(fig, path)


def plot_energy_vs_timesteps(report: "EnergyReport", path: Union[str, os.PathLike]) -> None:
    """Mean energy per sample (nJ) if inference stopped after each timestep."""
    e = report.energy_vs_timesteps() / 1e3
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.plot(range(1, len(e) + 1), e.tolist(), "o-")
    ax.set(xlabel="timesteps run", ylabel="nJ per sample", title=f"energy vs. latency ({report.energy_model.name})")
    ax.grid(alpha=0.3)
    _save(fig, path)
