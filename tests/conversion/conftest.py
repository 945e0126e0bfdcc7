"""Small real-data ANNs for the conversion tests: scikit-learn's 8×8 handwritten digits
(1,797 real scans, offline), a ReLU and a QCFS CNN trained once per session."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from snn.conversion import QCFS
from snn.conversion.ann_train import ann_accuracy, train_ann


def digits_cnn(act) -> nn.Sequential:
    """conv-BN-act-avgpool ×2 → linear-act → linear, for [B, 1, 8, 8] inputs."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), act(), nn.AvgPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), act(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(64, 32), act(), nn.Dropout(0.1), nn.Linear(32, 10))


@pytest.fixture(scope="session")
def digits():
    """``((x_train [1400, 1, 8, 8], y_train), (x_test [397, 1, 8, 8], y_test))``, grey levels in [0, 1]."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1400], perm[1400:]
    return (x[tr], y[tr]), (x[te], y[te])


def _trained(act, digits):
    (xtr, ytr), (xte, yte) = digits
    torch.manual_seed(0)
    model = digits_cnn(act)
    train_ann(model, (xtr, ytr), epochs=8, lr=3e-3, batch_size=64, generator=torch.Generator().manual_seed(0))
    assert ann_accuracy(model, (xte, yte)) > 0.9  # a real classifier, not chance
    return model


@pytest.fixture(scope="session")
def relu_digits(digits):
    """A trained ReLU CNN on the digits (eval mode)."""
    return _trained(nn.ReLU, digits)


@pytest.fixture(scope="session")
def qcfs_digits(digits):
    """The same CNN trained with QCFS activations, L = 4 (Bu et al. 2022)."""
    return _trained(lambda: QCFS(levels=4, clip=2.0), digits)
