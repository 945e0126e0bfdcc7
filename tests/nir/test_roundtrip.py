"""snn → NIR file → snn gives identical outputs; conventions and errors."""
import math

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("nir")
import nir  # noqa: E402

import snn  # noqa: E402
from snn.nir import export_nir, from_nir, import_nir, load_nir, to_nir  # noqa: E402
from snn.nir.params import beta_to_nir_tau, nir_tau_to_beta  # noqa: E402


def _roundtrip(net, x, tmp_path, **kw):
    net.eval()
    export_nir(net, x, tmp_path / "m.nir", **kw)
    back = import_nir(tmp_path / "m.nir").eval()
    with torch.no_grad():
        return net(x), back(x), back


@pytest.mark.parametrize("disc", ["euler", "exact"])
@pytest.mark.parametrize("decay_input", [False, True])
def test_conv_lif_chain_identical(tmp_path, disc, decay_input):
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    net = nn.Sequential(
        snn.TimeDistributed(nn.Conv2d(2, 4, 3, padding=1), nn.AvgPool2d(2)),
        snn.LIF(tau=3.0, decay_input=decay_input, v_reset=None),
        nn.Flatten(2), nn.Linear(64, 6), snn.IF(v_threshold=0.7),
        nn.Linear(6, 3, bias=False), snn.LeakyIntegrator(tau=4.0, decay_input=decay_input))
    x = torch.rand(12, 3, 2, 8, 8, generator=g) * 3
    a, b, back = _roundtrip(net, x, tmp_path, dt=1e-3, discretization=disc)
    assert torch.equal(a, b)
    lif, if_ = [m for m in back if isinstance(m, (snn.LIF, snn.IF))]
    assert lif.v_reset is None and math.isclose(if_.v_threshold.item(), 0.7, rel_tol=1e-7)
    assert a.abs().sum() > 0


def test_per_channel_plif_conv1d_and_hard_reset(tmp_path):
    torch.manual_seed(2)
    lif = snn.LIF(tau=2.0, num_channels=3, v_reset=-0.1)
    with torch.no_grad():
        lif.beta.copy_(torch.tensor([0.3, 0.6, 0.9]))
        lif.v_threshold.copy_(torch.tensor([0.5, 1.0, 1.5]))
    net = nn.Sequential(snn.TimeDistributed(nn.Conv1d(2, 3, 3, padding="same")), lif,
                        nn.Flatten(2), nn.Linear(30, 4), snn.PLIF(tau=2.5, v_threshold=0.1))
    x = torch.rand(10, 2, 2, 10) * 4
    a, b, back = _roundtrip(net, x, tmp_path)
    assert torch.equal(a, b) and a.sum() > 0
    lif2 = [m for m in back if isinstance(m, snn.LIF)][0]
    assert torch.equal(lif2.beta, lif.beta) and lif2.v_reset == pytest.approx(-0.1)


def test_batchnorm_is_folded(tmp_path):
    torch.manual_seed(3)
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
    net = nn.Sequential(snn.TimeDistributed(nn.Conv2d(2, 4, 3, bias=False), bn), snn.LIF(),
                        nn.Flatten(2), nn.Linear(4 * 36, 3), snn.LeakyIntegrator())
    x = torch.rand(5, 2, 2, 8, 8)
    a, b, back = _roundtrip(net, x, tmp_path)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in back.modules())
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_integer_delays_roundtrip(tmp_path):
    DelayLinear = pytest.importorskip("snn.delays", reason="snn.delays (learnable delays) not installed").DelayLinear
    g = torch.Generator().manual_seed(4)
    layer = DelayLinear(5, 4, max_delay=3, delays="fixed", generator=g)
    net = nn.Sequential(layer, snn.LIF(tau=2.0, v_threshold=0.3), nn.Linear(4, 2), snn.LeakyIntegrator())
    x = (torch.rand(9, 2, 5, generator=g) < 0.5).float()
    graph = to_nir(net.eval(), x)
    sub = graph.nodes["0"]
    assert isinstance(sub, nir.NIRGraph) and any(isinstance(n, nir.Delay) for n in sub.nodes.values())
    a, b, back = _roundtrip(net, x, tmp_path)
    assert isinstance(back[0], DelayLinear) and torch.equal(back[0].integer_delays()[layer.weight != 0],
                                                            layer.integer_delays()[layer.weight != 0])
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # generic path: the Delay → Linear branches without snn metadata give the same outputs
    sub.metadata = {}
    generic = from_nir(graph).eval()
    with torch.no_grad():
        torch.testing.assert_close(generic(x), a, rtol=1e-5, atol=1e-5)


def test_tau_conventions():
    beta = np.array([0.5, 0.9], dtype=np.float32)
    tau = beta_to_nir_tau(beta, 1e-3, "euler")
    np.testing.assert_allclose(tau, [2e-3, 1e-2], rtol=1e-6)
    np.testing.assert_allclose(beta_to_nir_tau(beta, 1e-3, "exact"), -1e-3 / np.log(beta.astype(np.float64)))
    assert np.array_equal(nir_tau_to_beta(tau, 1e-3).astype(np.float32), beta)
    with pytest.raises(ValueError, match="dt"):
        nir_tau_to_beta(np.array([1e-4]), 1e-3)        # Euler with tau < dt: beta < 0
    with pytest.raises(ValueError, match="discretization"):
        beta_to_nir_tau(beta, 1e-3, "rk4")


def test_unsupported_and_non_chain_errors(tmp_path):
    x = torch.rand(4, 1, 2, 8, 8)
    with pytest.raises(ValueError, match="MaxPool2d"):
        to_nir(nn.Sequential(snn.TimeDistributed(nn.MaxPool2d(2)), snn.LIF()), x)

    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), snn.LIF()
            nn.init.zeros_(self.a.weight), nn.init.zeros_(self.a.bias)

        def forward(self, x):
            return self.b(self.a(x) + x)

    with pytest.raises(ValueError, match="not a chain"):
        to_nir(Skip(), torch.rand(4, 1, 3) + 2)
    with pytest.raises(ValueError, match="v_init"):
        to_nir(nn.Sequential(nn.Linear(3, 3), snn.IF(v_init=0.5)), torch.rand(4, 1, 3))
    with pytest.raises(ValueError, match="dt"):
        from_nir(nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "output": nir.Output(np.array([2]))},
                              edges=[("input", "output")]))


def test_load_rejects_garbage_and_missing(tmp_path):
    p = tmp_path / "bad.nir"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(ValueError, match="bad.nir"):
        load_nir(p)
    with pytest.raises(FileNotFoundError):
        load_nir(tmp_path / "missing.nir")
