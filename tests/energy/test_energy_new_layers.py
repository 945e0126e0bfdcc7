"""Counting rules of the layers of the delay and conversion packages, by hand."""
import pytest
import torch
from torch import nn

import snn
from snn.delays import DelayLinear
from snn.energy import profile


def test_delay_synapses_count_each_spike_once_per_synapse_whatever_its_delay():
    layer = DelayLinear(3, 2, max_delay=4, delays="fixed", backend="torch")
    x = torch.zeros(6, 2, 3)                       # [T, B, N_in] spikes
    x[0, 0, 0] = x[2, 0, 1] = x[5, 1, 2] = x[3, 1, 0] = x[4, 1, 1] = 1.0
    rep = profile(nn.Sequential(layer), x, measure_time=False)
    d = rep.layer("0")
    assert d["sops"] == 5 * 2 / 2                   # 5 spikes × fan-out 2, per sample (B = 2)
    assert d["macs"] == 0 and d["synapses"] == 6
    assert d["state_bytes"] == 4 * 3 * 4            # max_delay × N_in float32 per sample
    graded = profile(nn.Sequential(layer), x * 0.5, measure_time=False).layer("0")
    assert graded["macs"] == 5 and graded["sops"] == 0


def test_converted_snn_counts_threshold_scaled_spikes_as_sops():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 4 * 4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.rand(16, 2, 8, 8)
    net = snn.convert(ann, x)                      # IF outputs are θ·s with θ ≠ 1
    assert all(float(m.threshold) != 1.0 for m in net.modules() if isinstance(m, snn.conversion.IFActivation))
    T = 12
    rep = profile(net, x.unsqueeze(0).expand(T, -1, -1, -1, -1), measure_time=False)
    names = [d["name"] for d in rep.layers()]
    first_if = next(n for n in names if n.endswith(".neuron"))
    lin = rep.layer("net.4")                      # after the spiking max-pool and the flatten (views)
    assert lin["macs"] == 0 and lin["sops"] > 0
    assert rep.layer("net.0")["macs"] > 0 and rep.layer("net.0")["sops"] == 0   # analog input: MACs
    last = rep.layer("net.6")                      # after the second IF layer: spikes × fan-out 3
    second_if = [n for n in names if n.endswith(".neuron")][1]
    assert last["macs"] == 0 and last["sops"] == pytest.approx(3 * rep.layer(second_if)["spikes"])
    assert rep.layer(first_if)["spikes"] > 0
