"""Hand-computed operation counts on small networks: linear, conv (padding, stride, dilation,
groups), pooling, batch norm, residual, delays."""
import pytest
import torch
from torch import nn

import snn
from snn.energy import profile, register_rule
from snn.energy.fanout import adaptive_window_counts, conv_fanout, pool_fanout, window_counts


def _spikes(T, B, *shape, positions):
    """Zeros with a 1 at each (t, b, *index) in ``positions``."""
    x = torch.zeros(T, B, *shape)
    for p in positions:
        x[p] = 1.0
    return x


def _prof(model, x, **kw):
    return profile(model, x, measure_time=False, **kw)


def test_linear_sops_are_spikes_times_out_features():
    model = nn.Sequential(nn.Linear(5, 3))
    x = _spikes(2, 2, 5, positions=[(0, 0, 1), (0, 0, 4), (1, 1, 0)])  # 3 spikes, 2 samples
    r = _prof(model, x)
    d = r.layer("0")
    assert d["sops"] == 3 * 3 / 2 and d["macs"] == 0  # per sample
    assert d["synapses"] == 15 and d["dense_ops"] == 15 * 2  # 2 timesteps
    assert d["input_sparsity"] == pytest.approx(1 - 3 / 20)


def test_graded_inputs_cost_macs_for_nonzero_elements_only():
    model = nn.Sequential(nn.Linear(4, 2))
    x = torch.tensor([[[0.5, 0.0, 2.0, 0.0]]])  # T=1, B=1
    r = _prof(model, x)
    assert r.layer("0")["macs"] == 2 * 2 and r.layer("0")["sops"] == 0
    # integer event counts: MACs by default, or one SOP per event with graded_inputs="events"
    counts = torch.tensor([[[3.0, 0.0, 1.0, 2.0]]])
    assert _prof(model, counts).layer("0")["macs"] == 3 * 2
    ev = _prof(model, counts, graded_inputs="events").layer("0")
    assert ev["sops"] == (3 + 1 + 2) * 2 and ev["macs"] == 0


def test_conv_fanout_with_padding_is_smaller_at_borders():
    conv = nn.Conv2d(1, 2, 3, padding=1)
    fan = conv_fanout(conv, (1, 4, 4), (4, 4))
    per_dim = torch.tensor([2.0, 3, 3, 2])
    assert torch.equal(fan[0], 2 * per_dim[:, None] * per_dim[None, :])  # corners 8, edges 12, inside 18
    # a corner, an edge and an inner spike: 2·(4 + 6 + 9) SOPs
    x = _spikes(1, 1, 1, 4, 4, positions=[(0, 0, 0, 0, 0), (0, 0, 0, 0, 1), (0, 0, 0, 1, 1)])
    r = _prof(snn.TimeDistributed(conv), x)
    assert r.layer("0")["sops"] == 2 * (4 + 6 + 9)
    assert r.layer("0")["synapses"] == 2 * 10 * 10  # Σ fan-out = C_out · (Σ per-dim)²


def test_conv_stride_dilation_groups_fanout():
    # stride 2, kernel 3, padding 1 on 5 pixels: 3 windows starting at -1, 1, 3
    s = conv_fanout(nn.Conv1d(1, 1, 3, stride=2, padding=1), (1, 5), (3,))
    assert s[0].tolist() == [1, 2, 1, 2, 1]
    # dilation 2, kernel 3, no padding on 7 pixels: 3 outputs, taps at o, o+2, o+4
    d = conv_fanout(nn.Conv1d(1, 1, 3, dilation=2), (1, 7), (3,))
    assert d[0].tolist() == [1, 1, 2, 1, 2, 1, 1]
    # groups: each of 4 input channels feeds only the 3 output channels of its group
    g = conv_fanout(nn.Conv2d(4, 6, 1, groups=2), (4, 2, 2), (2, 2))
    assert torch.equal(g, torch.full((4, 2, 2), 3.0, dtype=torch.float64))


def _brute_force_fanout(cin, cout, groups, size, k, stride, pad, dil):
    """Loop over every output position and kernel tap (independent of the gradient trick)."""
    out = (size + 2 * pad - dil * (k - 1) - 1) // stride + 1
    fan = torch.zeros(cin, size, size, dtype=torch.float64)
    for oh in range(out):
        for ow in range(out):
            for kh in range(k):
                for kw in range(k):
                    ih, iw = oh * stride - pad + kh * dil, ow * stride - pad + kw * dil
                    if 0 <= ih < size and 0 <= iw < size:
                        fan[:, ih, iw] += cout // groups
    return fan, out


@pytest.mark.parametrize("cin,cout,groups,size,k,stride,pad,dil", [
    (2, 4, 1, 7, 3, 1, 1, 1), (2, 4, 2, 8, 5, 2, 2, 1), (3, 3, 3, 9, 3, 2, 0, 2), (1, 5, 1, 6, 4, 3, 2, 1)])
def test_conv_fanout_matches_a_brute_force_count(cin, cout, groups, size, k, stride, pad, dil):
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dil, groups=groups)
    expected, out = _brute_force_fanout(cin, cout, groups, size, k, stride, pad, dil)
    assert torch.equal(conv_fanout(conv, (cin, size, size), (out, out)), expected)
    # the profiled SOPs of random spikes equal Σ spikes × brute-force fan-out
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 2, cin, size, size, generator=g) < 0.3).float()
    r = _prof(snn.TimeDistributed(conv), x)
    assert r.layer("0")["sops"] == pytest.approx(float((x.sum((0, 1)).double() * expected).sum()) / 2, abs=0)


def test_transposed_conv_fanout():
    conv = nn.ConvTranspose1d(1, 2, 3, stride=2)  # every input reaches 3 outputs per output channel
    x = _spikes(1, 1, 1, 4, positions=[(0, 0, 0, 0), (0, 0, 0, 3)])
    assert _prof(snn.TimeDistributed(conv), x).layer("0")["sops"] == 2 * 2 * 3


def test_pooling_windows():
    assert window_counts(5, 3, 3, 2, 1).tolist() == [1, 2, 1, 2, 1]
    assert adaptive_window_counts(4, 3).tolist() == [1, 2, 2, 1]  # bins [0,2), [1,3), [2,4)
    assert torch.equal(pool_fanout(nn.AvgPool2d(2), (4, 4), (2, 2)), torch.ones(4, 4, dtype=torch.float64))
    x = _spikes(1, 1, 1, 5, 5, positions=[(0, 0, 0, 0, 0), (0, 0, 0, 1, 1), (0, 0, 0, 3, 2)])
    r = _prof(snn.TimeDistributed(nn.AvgPool2d(3, stride=2, padding=1)), x)
    assert r.layer("0")["acs"] == 1 * 1 + 2 * 2 + 2 * 1
    r = _prof(snn.TimeDistributed(nn.AdaptiveAvgPool1d(3)), _spikes(1, 1, 2, 4, positions=[(0, 0, 1, 1)]))
    assert r.layer("0")["acs"] == 2 and r.layer("0")["ann_acs"] == 2 * 6
    r = _prof(snn.TimeDistributed(nn.MaxPool2d(2)), x)
    assert r.totals()["acs"] == 0 and r.energy_pj() == 0


def test_batchnorm_folded_or_counted():
    model = snn.TimeDistributed(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2))
    x = _spikes(2, 1, 1, 4, 4, positions=[(0, 0, 0, 0, 0)])
    assert _prof(model, x).layer("1")["macs"] == 0
    unfolded = _prof(model, x, fold_batchnorm=False).layer("1")
    assert unfolded["macs"] == 2 * 2 * 4 * 4 and unfolded["ann_macs"] == 2 * 4 * 4  # T=2, per element


def test_neurons_membrane_updates_spikes_and_rates():
    lif = snn.LIF(tau=2.0, v_threshold=0.5, backend="torch")
    x = torch.zeros(4, 2, 3)
    x[0, 0, 0] = x[2, 1, 2] = x[3, 1, 2] = 1.0  # three spikes out (h = 1 > 0.5)
    r = _prof(nn.Sequential(lif, snn.LeakyIntegrator(tau=4.0)), x)
    d = r.layer("0")
    assert d["membrane_updates"] == 4 * 3 and d["spikes"] == 3 / 2 and d["neurons"] == 3
    assert d["firing_rate"] == pytest.approx(3 / 24) and d["state_bytes"] == 3 * 4
    ro = r.layer("1")
    assert ro["membrane_updates"] == 12 and ro["spikes"] == 0 and ro["firing_rate"] is None
    assert r.firing_rate == pytest.approx(3 / 24)  # the readout is not a spiking layer


def test_flatten_dropout_identity_are_free_and_td_is_a_container():
    model = nn.Sequential(nn.Flatten(2), nn.Dropout(0.5), nn.Identity(), nn.Linear(8, 2))
    x = _spikes(1, 1, 2, 4, positions=[(0, 0, 1, 3)])
    r = _prof(model, x)
    assert r.counts.uncounted == [] and r.totals()["sops"] == 2
    assert [l.name for l in r.counts.layers] == ["0", "1", "2", "3"]


class Residual(nn.Module):
    """``x + f(x)`` (spike-element-wise ADD, as in SEW ResNet)."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return x + self.f(x)


def _identity_linear(n):
    lin = nn.Linear(n, n, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(n))
    return lin


def _if():
    return snn.IF(v_threshold=0.5, backend="torch")  # an input of 1 fires at once, hard reset to 0


def test_residual_network_counts(isolated_rules):
    model = nn.Sequential(_identity_linear(4), _if(), Residual(nn.Sequential(_identity_linear(4), _if())),
                          nn.Linear(4, 2))
    x = _spikes(3, 1, 4, positions=[(0, 0, 0), (1, 0, 2), (2, 0, 2)])  # k = 3 spikes pass through unchanged
    r = _prof(model, x)
    assert r.layer("0")["sops"] == 3 * 4 and r.layer("1")["spikes"] == 3
    assert r.layer("2.f.0")["sops"] == 3 * 4 and r.layer("2.f.1")["spikes"] == 3
    # the sum of two spike trains holds 2s: graded input, so the last layer pays MACs
    assert r.layer("3")["macs"] == 3 * 2 and r.layer("3")["sops"] == 0
    # one rule for the residual block adds its additions and keeps counting the branch
    @register_rule(Residual, count_children=True)
    def _add(module, inputs, output, ctx):
        ctx.add("acs", ((output - inputs[0]) != 0).flatten(2).sum(-1))

    r2 = _prof(model, x)
    assert r2.layer("2")["acs"] == 3 and r2.layer("2.f.0")["sops"] == 3 * 4


class DelayedLinear(nn.Module):
    """Toy delay synapses: ``y[t, j] = Σ_i W_ji · x[t − D_ji, i]``, implemented as a 1-D conv over
    time with a one-hot kernel of length ``max_delay + 1`` per synapse."""

    def __init__(self, delays: torch.Tensor):
        super().__init__()
        self.out_features, self.in_features = delays.shape
        self.max_delay = int(delays.max())
        k = torch.zeros(self.out_features, self.in_features, self.max_delay + 1)
        for j in range(self.out_features):
            for i in range(self.in_features):
                k[j, i, self.max_delay - int(delays[j, i])] = 1.0
        self.conv = nn.Conv1d(self.in_features, self.out_features, self.max_delay + 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(k)

    def forward(self, x):  # [T, B, in] → [T, B, out]
        T, B, _ = x.shape
        seq = x.permute(1, 2, 0)
        seq = nn.functional.pad(seq, (self.max_delay, 0))
        return self.conv(seq).permute(2, 0, 1)


def test_delay_synapses_count_once_per_spike_per_synapse(isolated_rules):
    delays = torch.tensor([[0, 2, 1], [3, 0, 0]])
    layer = DelayedLinear(delays)
    x = _spikes(5, 1, 3, positions=[(0, 0, 0), (1, 0, 1), (4, 0, 2)])
    y = layer(x)
    assert y[0, 0, 0] == 1 and y[3, 0, 1] == 1 and y[3, 0, 0] == 1  # delays work
    # without a rule the inner Conv1d is counted as a conv over time: every kernel tap is an op
    naive = _prof(nn.Sequential(layer), x)
    assert naive.layer("0.conv")["sops"] > 3 * 2

    @register_rule(DelayedLinear)
    def _delays(module, inputs, output, ctx):
        ctx.synaptic(inputs[0], fanout=module.out_features, feature_ndim=1)

    r = _prof(nn.Sequential(layer), x)
    assert r.layer("0")["sops"] == 3 * 2  # 3 spikes × 2 synapses each, whatever the delays
    assert "0.conv" not in [l.name for l in r.counts.layers]  # the rule claims its subtree
