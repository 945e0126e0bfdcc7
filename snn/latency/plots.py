"""Figures of the latency tools (matplotlib, headless): Pareto front, latency histogram, IIR stages."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from snn.train.plots import _save  # noqa: E402  (atomic temp-file + rename)

if TYPE_CHECKING:  # pragma: no cover
    from snn.latency.calibrate import Calibration

__all__ = ["plot_pareto", "plot_latency_histogram", "plot_compression"]


def plot_pareto(cal: "Calibration", path: str | os.PathLike) -> None:
    """Accuracy vs mean latency: every θ of the sweep, its Pareto front, the chosen θ, the
    fixed-T baseline (all samples stop at t), the full run and both oracles."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    acc_t = 100 * cal.trace.accuracy_per_step().numpy()
    ax.plot(np.arange(1, cal.T + 1), acc_t, "-", color="0.55", label="fixed T (all stop at t)")
    ax.scatter([p["mean_latency"] for p in cal.sweep], [100 * p["accuracy"] for p in cal.sweep], s=8,
               color="C0", alpha=0.35, label="Dynamic Confidence, θ sweep")
    ax.plot([p["mean_latency"] for p in cal.front], [100 * p["accuracy"] for p in cal.front], "-", color="C0",
            label="Pareto front")
    ax.plot([cal.mean_latency], [100 * cal.accuracy], "*", ms=14, color="C3",
            label=f"chosen θ={cal.threshold:.4g} (drop ≤ {100 * cal.max_accuracy_drop:g}%)")
    ax.plot([cal.T], [100 * cal.full_accuracy], "s", color="k", label=f"full run, T={cal.T}")
    for (mode, o), marker in zip(cal.oracle.items(), ("D", "^")):
        ax.plot([o["mean_latency"]], [100 * o["accuracy"]], marker, color="C2", mfc="none",
                label=f"oracle ({mode.replace('_', ' ')})")
    lo = max(100 * cal.full_accuracy - 15, 0)  # zoom on the region that matters; lower points are clipped
    ax.set(xlabel="mean latency (timesteps)", ylabel="accuracy (%)", ylim=(lo, 100.5),
           title=f"accuracy vs latency (n = {cal.trace.n})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)


def plot_latency_histogram(cal: "Calibration", path: str | os.PathLike) -> None:
    """Histogram of per-sample decision steps at the chosen θ and of the oracle's."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
    bins = np.arange(0.5, cal.T + 1.5)
    ax.hist(cal.latency().numpy(), bins=bins, alpha=0.6, color="C0",
            label=f"Dynamic Confidence θ={cal.threshold:.4g} (mean {cal.mean_latency:.2f})")
    o = cal.oracle["stays_correct"]
    lat = np.repeat(np.arange(1, cal.T + 1), o["histogram"])
    ax.hist(lat, bins=bins, histtype="step", lw=1.5, color="C2", label=f"oracle (mean {o['mean_latency']:.2f})")
    ax.set(xlabel="decision timestep", ylabel="samples", title="per-sample latency")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_compression(stages: Sequence[dict], path: str | os.PathLike) -> None:
    """IIR compression: accuracy, firing rate and energy (or neuron updates) per stage T."""
    T = [s["T"] for s in stages]
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained")
    for key, label in (("val_acc", "validation"), ("test_acc", "test"), ("val_acc_before", "before retraining")):
        vals = [s.get(key) for s in stages]
        if any(v is not None for v in vals):
            ax[0].plot(T, [np.nan if v is None else 100 * v for v in vals], "o-" if key != "val_acc_before" else "x:",
                       label=label)
    ax[0].set(xlabel="timesteps T", ylabel="%", title="accuracy per stage")
    ax[0].legend(fontsize=8)
    ax[1].plot(T, [s["firing_rate"] for s in stages], "o-", color="C2")
    ax[1].set(xlabel="timesteps T", ylabel="spikes / neuron / step", title="firing rate")
    if all(s.get("energy_pj") is not None for s in stages):
        f, unit = (1e6, "µJ") if max(s["energy_pj"] for s in stages) >= 1e6 else (1e3, "nJ")
        ax[2].plot(T, [s["energy_pj"] / f for s in stages], "o-", color="C3")
        ax[2].set(ylabel=f"{unit} / sample", title=f"estimated energy ({stages[0].get('energy_model')})")
    else:
        ax[2].plot(T, [s["spikes_per_sample"] for s in stages], "o-", color="C3")
        ax[2].set(ylabel="spikes / sample", title="spikes per sample")
    ax[2].set(xlabel="timesteps T")
    for a in ax:
        a.grid(alpha=0.3)
        a.invert_xaxis()
    _save(fig, path)
