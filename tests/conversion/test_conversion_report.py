"""Accuracy-vs-T reports: one run read out at every checkpoint, rates, files."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from snn.conversion import convert
from snn.conversion.report import conversion_report, default_checkpoints, save_report
from snn.encoders import direct


def test_default_checkpoints():
    assert default_checkpoints(1) == [1]
    assert default_checkpoints(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert default_checkpoints(100) == [1, 2, 4, 8, 16, 32, 64, 100]
    with pytest.raises(ValueError, match="T_max"):
        default_checkpoints(0)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(),
                        nn.Linear(12, 3)).eval()
    x = torch.randn(50, 4, 4)
    y = ann(x).argmax(1)
    y[::5] = (y[::5] + 1) % 3  # a few wrong labels, so accuracy ≠ agreement
    return ann, convert(ann, x, backend="torch"), x, y


def test_one_run_matches_separate_runs_at_every_checkpoint(small):
    ann, net, x, y = small
    rep = conversion_report(net, (x, y), ann=ann, T_max=20, checkpoints=[1, 3, 8, 20], chunk=6, batch_size=16)
    for t, acc in zip(rep["T"], rep["snn_accuracy"]):
        pred = net(direct(x, t))[-1].argmax(1)
        assert acc == pytest.approx(float((pred == y).float().mean()))
    assert rep["ann_accuracy"] == pytest.approx(0.8)
    assert rep["n_samples"] == 50 and rep["T_max"] == 20


def test_rates_errors_and_agreement(small):
    ann, net, x, y = small
    rep = conversion_report(net, (x, y), ann=ann, T_max=64, chunk=64)
    spikes = {}
    hooks = [m.neuron.register_forward_hook(lambda mod, i, o, k=k: spikes.__setitem__(k, o))
             for k, m in net.neurons().items()]
    net(direct(x, 64))
    for h in hooks:
        h.remove()
    for k, s in spikes.items():
        assert rep["firing_rate"][k] == pytest.approx(float(s.mean()), rel=1e-6)
    assert rep["spikes_per_sample"] == pytest.approx(sum(float(s.sum()) for s in spikes.values()) / 50, rel=1e-6)
    assert set(rep["activation_error"]) == set(net.neurons())
    first = rep["activation_error"]["2"]
    assert first[-1] <= 1 / (2 * 64) + 1e-6  # constant input into layer 1: half a spike at most
    assert rep["agreement"][-1] > rep["agreement"][0]


def test_without_ann_and_errors(small):
    _, net, x, y = small
    rep = conversion_report(net, (x, y), T_max=4)
    assert rep["ann_accuracy"] is None and rep["agreement"] is None and rep["activation_error"] == {}
    with pytest.raises(ValueError, match="checkpoints"):
        conversion_report(net, (x, y), T_max=4, checkpoints=[5])
    with pytest.raises(ValueError, match="chunk"):
        conversion_report(net, (x, y), T_max=4, chunk=0)
    with pytest.raises(ValueError, match="labels"):
        conversion_report(net, x, T_max=4)


def test_save_report_writes_json_and_png(small, tmp_path):
    ann, net, x, y = small
    rep = conversion_report(net, (x, y), ann=ann, T_max=8)
    paths = save_report(rep, tmp_path / "out", title="test")
    assert json.loads(paths["json"].read_text())["T"] == [1, 2, 4, 8]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["conversion.json", "conversion.png"]
