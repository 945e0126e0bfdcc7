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


def test_spiking_max_pool_of_analog_input_stays_graded():
    """A max pool before the first activation pools the analog image: the spiking max-pool's
    output is a graded current, so the next conv costs MACs (as after an average pool), while
    a spiking max-pool fed IF spikes passes spikes (SOPs)."""
    torch.manual_seed(0)
    x = torch.rand(32, 1, 12, 12)
    T = 6
    seq = x[:4].unsqueeze(0).expand(T, -1, -1, -1, -1)
    for pool in (nn.MaxPool2d(2), nn.AvgPool2d(2)):
        ann = nn.Sequential(pool, nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)).eval()
        d = profile(snn.convert(ann, x, backend="torch"), seq, measure_time=False).layer("net.1")
        assert d["sops"] == 0 and d["macs"] == T * d["synapses"] == T * 4 * 4 * 9 * 4  # dense graded input
    spiking = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 2, 3)).eval()
    d = profile(snn.convert(spiking, x, backend="torch"), seq, measure_time=False).layer("net.3")
    assert d["macs"] == 0 and d["sops"] > 0


class _IFThen(nn.Module):
    """A converted IF layer (θ = 0.7), then ``op`` on its θ·s output, then a linear layer."""

    def __init__(self, op, n_in):
        super().__init__()
        self.act = snn.conversion.IFActivation(0.7, backend="torch")
        self.op = op
        self.fc = nn.Linear(n_in, 3)

    def forward(self, x):
        T = x.shape[0]
        y = self.act(x.flatten(0, 1), T)
        return self.fc(self.op(y)).unflatten(0, (T, -1))


@pytest.mark.parametrize("op, n_in", [
    (lambda y: torch.cat([y, y.flip(1)], 1), 10),
    (lambda y: torch.stack([y, y], 1).flatten(1), 10),
    (lambda y: torch.nn.functional.pad(y, (1, 2)), 8),
    (lambda y: nn.ReflectionPad1d(1)(y.unsqueeze(1)).squeeze(1), 7),
    (lambda y: y[:, torch.tensor([4, 0, 2])], 3),
    (lambda y: y.t().contiguous().t().clone(), 5),
])
def test_concatenated_and_copied_spike_trains_cost_sops(op, n_in):
    x = torch.rand(8, 2, 5, generator=torch.Generator().manual_seed(0)) * 1.4
    d = profile(_IFThen(op, n_in), x, measure_time=False).layer("fc")
    assert d["macs"] == 0 and d["sops"] > 0
    assert d["sops"] == d["in_nonzero"] * 3  # one SOP per spike and synapse


@pytest.mark.parametrize("op, n_in", [
    (lambda y: torch.cat([y, y * 0.5], 1), 10),                      # a scaled copy is a current
    (lambda y: torch.nn.functional.pad(y, (1, 2), value=0.3), 8),    # nonzero padding
    (lambda y: y + 0.1, 5),                                           # arithmetic
])
def test_spike_marks_do_not_spread_to_graded_values(op, n_in):
    x = torch.rand(8, 2, 5, generator=torch.Generator().manual_seed(0)) * 1.4
    d = profile(_IFThen(op, n_in), x, measure_time=False).layer("fc")
    assert d["sops"] == 0 and d["macs"] > 0


def test_inception_style_concatenation_in_a_converted_network():
    """``torch.cat`` of two IF branches (θ₁·s, θ₂·s) feeds the next conv spikes: it costs the same
    SOPs per input spike as after a single IF layer, and no MACs."""

    class Incep(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(1, 4, 1)
            self.c, self.fc = nn.Conv2d(8, 4, 3, padding=1), nn.Linear(4 * 8 * 8, 3)

        def forward(self, x):
            z = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], 1)
            return self.fc(torch.relu(self.c(z)).flatten(1))

    torch.manual_seed(0)
    x = torch.rand(32, 1, 8, 8)
    net = snn.convert(Incep().eval(), x, backend="torch")
    th = [float(m.threshold) for m in net.neurons().values()]
    assert th[0] != th[1]                                   # two different spike amplitudes
    d = profile(net, x[:4].unsqueeze(0).expand(6, -1, -1, -1, -1), measure_time=False).layer("net.c")
    assert d["macs"] == 0 and d["sops"] > 0


def test_zero_padding_module_in_a_converted_network_is_free_and_keeps_spikes():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.ZeroPad2d(1), nn.Conv2d(4, 2, 3), nn.Flatten(),
                        nn.Linear(2 * 6 * 6, 3)).eval()
    x = torch.rand(16, 1, 8, 8)
    rep = profile(snn.convert(ann, x, backend="torch"), x[:4].unsqueeze(0).expand(6, -1, -1, -1, -1),
                  measure_time=False)
    assert rep.counts.uncounted == []
    d = rep.layer("net.3")
    assert d["macs"] == 0 and d["sops"] > 0
