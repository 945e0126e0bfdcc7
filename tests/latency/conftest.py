"""Small networks and data for the latency tests."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import snn


class Scripted(nn.Module):
    """A 'network' whose output at step t is its input at step t: ``[T, B, C] → [T, B, C]``.

    Lets a test write the outputs z_t by hand (no state, no parameters)."""

    def forward(self, x):
        return x


def _small_snn(seed: int = 0, n_in: int = 6, hidden: int = 12, classes: int = 3, readout_tau: float = 4.0) -> nn.Module:
    """Linear → LIF (soft reset) → Linear → LIF → Linear → leaky readout, random weights."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n_in, hidden), snn.LIF(tau=3.0, v_reset=None, v_threshold=0.5, backend="torch"),
                         nn.Linear(hidden, hidden), snn.LIF(tau=3.0, v_reset=None, v_threshold=0.5, backend="torch"),
                         nn.Linear(hidden, classes), snn.LeakyIntegrator(tau=readout_tau))


@pytest.fixture
def small_snn():
    """Factory ``small_snn(seed=0, n_in=6, hidden=12, classes=3, readout_tau=4.0)`` of a small random SNN."""
    return _small_snn


@pytest.fixture
def scripted() -> nn.Module:
    return Scripted()


@pytest.fixture
def two_blobs() -> tuple[torch.Tensor, torch.Tensor]:
    """Static 2-class data: 160 samples of 6 non-negative features; class c is bright on feature c."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(160) % 2
    x = torch.rand(160, 6, generator=g) * 0.5
    x[torch.arange(160), y] += 1.0
    return x, y

