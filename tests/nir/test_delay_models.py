"""NIR export of the delay models: the shd-delays preset (DelaySNN) with batch norm folded into
its integer-delay DelayLinear layers, TimeSharedDropout left out, and its input binning."""
import pytest
import torch
from torch import nn

pytest.importorskip("nir")
import nir  # noqa: E402

import snn  # noqa: E402
from snn.delays import DelayLinear, round_delays  # noqa: E402
from snn.models.shd import DelaySNN, TimeSharedDropout  # noqa: E402
from snn.nir import export_nir, from_nir, import_nir, to_nir  # noqa: E402


def _bn(n: int, g: torch.Generator) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(n)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.3, 0.3, generator=g)
        bn.running_var.uniform_(0.5, 2.0, generator=g)
        bn.weight.uniform_(0.5, 1.5, generator=g)
        bn.bias.uniform_(-0.2, 0.2, generator=g)
    return bn


@pytest.mark.parametrize("bias", [False, True])
def test_batchnorm_is_folded_into_an_integer_delay_layer(bias):
    g = torch.Generator().manual_seed(0)
    layer = DelayLinear(6, 5, 4, bias=bias, generator=g).round_delays_()
    net = nn.Sequential(layer, snn.TimeDistributed(_bn(5, g)), snn.LeakyIntegrator(tau=3.0)).eval()
    x = (torch.rand(12, 3, 6, generator=g) < 0.4).float()
    graph = to_nir(net, x)
    sub = graph.nodes["0"]
    assert isinstance(sub, nir.NIRGraph) and sorted(graph.nodes) == ["0", "2", "input", "output"]
    assert sum(isinstance(n, nir.Affine) for n in sub.nodes.values()) == 1  # one branch carries the bias
    back = from_nir(graph).eval()
    assert isinstance(back[0], DelayLinear) and not any(isinstance(m, nn.BatchNorm1d) for m in back.modules())
    with torch.no_grad():
        torch.testing.assert_close(back(x), net(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("in_features,sample_shape", [(140, (20, 2, 140)), (700, (20, 2, 700)),
                                                      (60, (20, 2, 3, 20))])
def test_shd_delays_preset_roundtrips(tmp_path, in_features, sample_shape):
    """DelaySNN after round_delays() + eval(): BN folded, dropout dropped, input flattening and
    channel binning (700 → 140) exported as nodes; the imported model gives the same outputs."""
    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    net = DelaySNN(in_features=in_features, hidden=(16, 12), max_delay=5, channel_bins=140 if in_features != 60
                   else 20, tau=3.0, v_threshold=0.3)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.load_state_dict(_bn(m.num_features, g).state_dict())
    net = round_delays(net).eval()
    x = (torch.rand(*sample_shape, generator=g) < 0.3).float()
    graph = export_nir(net, x, tmp_path / "shd.nir", dt=1e-2)
    names = ["features_0", "features_2", "features_4", "features_6", "head", "readout"]  # no BN, no dropout
    stages = {140: [], 700: ["input_bins"], 60: ["input_flatten", "input_bins"]}[in_features]
    assert [b for a, b in graph.edges] == [*stages, *names, "output"]
    back = import_nir(tmp_path / "shd.nir").eval()
    assert not any(isinstance(m, (nn.BatchNorm1d, TimeSharedDropout)) for m in back.modules())
    assert sum(isinstance(m, DelayLinear) for m in back.modules()) == 3
    with torch.no_grad():
        want, got = net(x), back(x)
    assert float(want.abs().sum()) > 0
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    if in_features == 700:
        assert net.bin == 5 and tuple(graph.nodes["input_bins"].weight.shape) == (140, 700)


def test_time_shared_dropout_is_left_out_in_eval_mode_only():
    g = torch.Generator().manual_seed(2)
    net = nn.Sequential(nn.Linear(4, 3), snn.LIF(), TimeSharedDropout(0.4), nn.Linear(3, 2), snn.LeakyIntegrator())
    x = torch.rand(6, 2, 4, generator=g) * 2
    graph = to_nir(net.eval(), x)
    assert sorted(graph.nodes) == ["0", "1", "3", "4", "input", "output"]
    with pytest.raises(ValueError, match="2: dropout must be in eval mode"):
        to_nir(net.train(), x)
