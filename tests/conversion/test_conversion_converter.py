"""End-to-end conversion: the converted SNN's behaviour and the acceptance properties on real
handwritten digits (trained ReLU and QCFS networks, see conftest.py)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import snn
from snn.conversion import ConvertedSNN, IFActivation, SpikingMaxPool, convert
from snn.conversion.ann_train import ann_accuracy
from snn.conversion.report import conversion_report
from snn.encoders import direct


class Residual(nn.Module):
    """Conv-BN-ReLU, a residual block, concatenation, max pooling, functional flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.conv = nn.Conv2d(6, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(12 * 4 * 4, 10)

    def forward(self, x):
        a = self.stem(x)
        b = self.relu(self.bn(self.conv(a)) + a)
        c = self.pool(torch.cat([a, b], 1))
        return self.fc(torch.flatten(c, 1))


def test_converted_structure_and_shapes(digits):
    (xtr, _), (xte, _) = digits
    model = Residual().eval()
    net = convert(model, xtr[:200], backend="torch")
    assert isinstance(net, ConvertedSNN)
    assert list(net.neurons()) == ["stem.2", "relu"]
    assert isinstance(net.net.get_submodule("pool"), SpikingMaxPool)
    for m in net.neurons().values():
        assert isinstance(m, IFActivation) and m.neuron.v_reset is None
        torch.testing.assert_close(m.neuron.v_init, m.threshold / 2)
    out = net(direct(xte[:5], 7))
    assert out.shape == (7, 5, 10)
    with pytest.raises(ValueError, match="time-first"):
        net(xte[0])


def test_step_and_stateful_chunks_equal_one_run(digits):
    (xtr, _), (xte, _) = digits
    net = convert(Residual().eval(), xtr[:200], backend="torch")
    x = xte[:4]
    whole = net(direct(x, 12))
    snn.reset(net)
    steps = torch.stack([net.step(x) for _ in range(12)])
    snn.reset(net)
    with snn.stateful(net):
        chunks = torch.cat([net(direct(x, 5)), net(direct(x, 7))])
    torch.testing.assert_close(steps, whole)
    torch.testing.assert_close(chunks, whole)
    torch.testing.assert_close(net(direct(x, 12)), whole)  # a new forward starts from rest


def test_relu_network_rates_approach_ann_activations(relu_digits, digits):
    """Acceptance: per-layer |rate·θ − a|/θ falls monotonically on average as T grows, and
    the converted SNN agrees with the ANN on ≥ 99 % of the test digits at large T."""
    (xtr, _), (xte, yte) = digits
    net = convert(relu_digits, xtr, norm="max")
    rep = conversion_report(net, (xte, yte), ann=relu_digits, T_max=256, batch_size=200)
    errs = torch.tensor(list(rep["activation_error"].values()))  # [layers, checkpoints]
    assert errs.shape == (3, len(rep["T"]))
    mean = errs.mean(0)
    assert torch.all(mean[1:] <= mean[:-1] * 1.02), mean  # monotone on average (2 % slack)
    assert float(mean[-1]) < 0.1 * float(mean[2])  # and really falls (T = 4 → 256)
    assert rep["agreement"][-1] >= 0.99
    assert rep["snn_accuracy"][-1] >= rep["ann_accuracy"] - 0.01


def test_qcfs_network_at_T_equals_L_within_one_percent(qcfs_digits, digits):
    """Acceptance (Bu et al. 2022): a QCFS network (L = 4) converted with θ = λ, no
    calibration data, is within 1 % of the ANN's accuracy at T = L."""
    (_, _), (xte, yte) = digits
    net = convert(qcfs_digits, None)
    for name, m in net.neurons().items():
        assert float(m.threshold) == pytest.approx(float(qcfs_digits.get_submodule(name).clip))
    rep = conversion_report(net, (xte, yte), ann=qcfs_digits, T_max=8, checkpoints=[4, 8], batch_size=200,
                            layer_errors=False)
    ann = ann_accuracy(qcfs_digits, (xte, yte))
    assert rep["ann_accuracy"] == pytest.approx(ann)
    assert rep["snn_accuracy"][0] >= ann - 0.01


def _tiny_ann():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).eval()


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, None, True])
def test_convert_batch_size_must_be_a_positive_int(batch_size):
    # 0 used to fail with "range() arg 3 must not be zero", -1 with "calibration_data holds
    # no samples" (untrue), 2.5/None with a TypeError from deep inside
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        convert(_tiny_ann(), torch.rand(8, 4), batch_size=batch_size)


@pytest.mark.parametrize("max_samples", [0, -1, 2.5, True])
def test_convert_max_samples_must_be_a_positive_int_or_none(max_samples):
    with pytest.raises(ValueError, match="max_samples must be a positive int or None"):
        convert(_tiny_ann(), torch.rand(8, 4), max_samples=max_samples)


def test_convert_batch_size_does_not_change_thresholds():
    ann, x = _tiny_ann(), torch.rand(20, 4, generator=torch.Generator().manual_seed(1))
    ref = convert(ann, x, batch_size=64, max_samples=None)(direct(x[:3], 8))
    for bs, ms in ((1, None), (3, 20), (7, 1024)):
        assert torch.equal(convert(ann, x, batch_size=bs, max_samples=ms)(direct(x[:3], 8)), ref)
