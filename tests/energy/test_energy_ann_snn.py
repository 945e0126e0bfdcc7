"""An ANN and its converted SNN report MACs and SOPs consistently: the SNN's SOPs per
timestep at presynaptic firing rate r equal r × the ANN's synapse count (= its MACs)."""
import pytest
import torch
from torch import nn

import snn
from snn.energy import profile


def _ann():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 10), nn.ReLU(), nn.Linear(10, 4))


def _converted(ann):
    """Rate conversion by hand (the ANN's weights, ReLU → IF with soft reset, threshold 1)."""
    snn_layers = []
    for m in ann:
        snn_layers.append(snn.IF(v_threshold=1.0, v_reset=None, backend="torch") if isinstance(m, nn.ReLU) else m)
    return nn.Sequential(*snn_layers)


def test_sops_equal_rate_times_ann_synapses():
    ann = _ann()
    x = torch.rand(16, 20, generator=torch.Generator().manual_seed(0))
    a = profile(ann, x, time_first=False, measure_time=False)
    T = 32
    net = _converted(ann)
    s = profile(net, x.unsqueeze(0).expand(T, -1, -1), measure_time=False)  # direct (analog) input
    # the ANN: every layer's synapses are its MACs; dense first layer (no zero inputs)
    assert a.layer("0")["macs"] == a.layer("0")["synapses"] == 20 * 32
    assert a.ann_ops()["macs"] == 20 * 32 + 32 * 10 + 10 * 4 == s.ann_ops()["macs"]
    # the SNN: the graded first layer costs the same MACs every timestep
    assert s.layer("0")["macs"] == T * a.layer("0")["macs"] and s.layer("0")["sops"] == 0
    for pre, post in (("1", "2"), ("3", "4")):
        r = s.layer(pre)["firing_rate"]
        assert r > 0.01
        assert s.layer(post)["sops"] / T == pytest.approx(r * a.layer(post)["synapses"], rel=1e-9)
        assert s.layer(post)["macs"] == 0
    # and the ANN pays its synapses once, the SNN pays rate × synapses at every timestep
    assert s.layer("2")["sops"] < T * a.layer("2")["synapses"]


def test_conv_sops_equal_fanout_weighted_rate_times_ann_synapses():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, stride=2)
    net = nn.Sequential(snn.IF(v_threshold=1.0, v_reset=None, backend="torch"), snn.TimeDistributed(conv))
    T = 20
    x = torch.rand(1, 5, 3, 9, 9, generator=torch.Generator().manual_seed(0)).expand(T, -1, -1, -1, -1)
    s = profile(net, x, measure_time=False)
    ann = profile(conv, x[0], time_first=False, measure_time=False)
    syn = ann.layer("Conv2d")["synapses"]
    assert s.layer("1.0")["synapses"] == syn
    r = s.layer("0")["firing_rate"]
    # border inputs have smaller fan-outs, so with rates that vary per input this holds within rounding
    assert s.layer("1.0")["sops"] / T == pytest.approx(r * syn, rel=0.05)
