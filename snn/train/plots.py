"""Training-curve and spike-raster figures (matplotlib, headless Agg backend)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402

__all__ = ["plot_training_curves", "plot_spike_raster"]


def _save(fig, path: str | os.PathLike) -> None:
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, p)


def plot_training_curves(history: Sequence[dict], path: str | os.PathLike) -> None:
    """Loss, accuracy and firing rate per epoch from ``metrics.json``'s ``epochs`` list."""
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained")
    ax[0].plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    ax[0].plot(ep, [h["test_loss"] for h in history], "o-", label="test")
    ax[0].set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax[1].plot(ep, [100 * h["train_acc"] for h in history], "o-", label="train")
    ax[1].plot(ep, [100 * h["test_acc"] for h in history], "o-", label="test")
    ax[1].set(xlabel="epoch", ylabel="%", title="accuracy")
    ax[2].plot(ep, [h["firing_rate"] for h in history], "o-", color="C2")
    ax[2].set(xlabel="epoch", ylabel="spikes / neuron / step", title="firing rate (test)")
    for a in ax[:2]:
        a.legend()
    for a in ax:
        a.grid(alpha=0.3)
    _save(fig, path)


def plot_spike_raster(spikes: Tensor, path: str | os.PathLike, title: str = "", max_neurons: int = 256) -> None:
    """Raster of one sample's spikes ``[T, *neurons]`` (the first ``max_neurons`` neurons)."""
    s = spikes.reshape(spikes.shape[0], -1)[:, :max_neurons].numpy()
    t, n = np.nonzero(s)
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    ax.scatter(t, n, s=4, marker="|", color="k")
    ax.set(xlabel="timestep", ylabel="neuron", title=title or "spike raster", xlim=(-0.5, s.shape[0] - 0.5),
           ylim=(-0.5, s.shape[1] - 0.5))
    _save(fig, path)
