"""Threshold calibration: max and percentile norms, layer- and channel-wise, clipped and QCFS activations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from snn.conversion import QCFS, calibrate, prepare_ann


def _net_and_acts(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 5), nn.ReLU6(),
                          nn.Linear(5, 2)).eval()
    x = torch.randn(200, 1, 4, 4) * 2
    with torch.no_grad():
        a1 = torch.relu(model[0](x))
        a2 = torch.clamp(model[3](model[2](a1)), 0, 6)
    return model, x, a1, a2


def test_max_norm_layer_and_channel_wise():
    model, x, a1, a2 = _net_and_acts()
    ann = prepare_ann(model)
    th = calibrate(ann, x, norm="max", batch_size=32)
    assert list(th) == ["1", "4"] and th["1"].shape == ()
    torch.testing.assert_close(th["1"], a1.max())
    torch.testing.assert_close(th["4"], a2.max())
    thc = calibrate(ann, x, norm="max", channel_wise=True)
    assert thc["1"].shape == (3,) and thc["4"].shape == (5,)
    torch.testing.assert_close(thc["1"], a1.amax((0, 2, 3)))
    torch.testing.assert_close(thc["4"], torch.where(a2.amax(0) > 0, a2.amax(0), a2.max()))


@pytest.mark.parametrize("p", [50.0, 99.0, 99.9])
def test_percentile_matches_numpy_on_positive_activations(p):
    model, x, a1, _ = _net_and_acts(1)
    th = calibrate(prepare_ann(model), x, norm="percentile", percentile=p)
    ref = np.percentile(a1[a1 > 0].numpy(), p, method="inverted_cdf")
    assert abs(float(th["1"]) - ref) <= float(a1.max()) / 4096 * 2 + 1e-6  # histogram resolution
    thc = calibrate(prepare_ann(model), x, norm="percentile", percentile=p, channel_wise=True)
    for c in range(3):
        v = a1[:, c][a1[:, c] > 0].numpy()
        assert abs(float(thc["1"][c]) - np.percentile(v, p, method="inverted_cdf")) <= float(v.max()) / 4096 * 2 + 1e-6


def test_percentile_is_below_max_and_max_samples_limits_data():
    model, x, a1, _ = _net_and_acts(2)
    ann = prepare_ann(model)
    assert calibrate(ann, x, norm="percentile", percentile=90)["1"] < calibrate(ann, x)["1"]
    few = calibrate(ann, x, max_samples=10)["1"]
    torch.testing.assert_close(few, a1[:10].max())


def test_qcfs_threshold_is_lambda_without_data():
    model = nn.Sequential(nn.Linear(3, 4), QCFS(levels=4, clip=1.7), nn.Linear(4, 2))
    th = calibrate(prepare_ann(model), None)
    assert float(th["1"]) == pytest.approx(1.7)


def test_clipped_activation_threshold_never_above_bound():
    model = nn.Sequential(nn.Linear(1, 1), nn.ReLU6()).eval()
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
    th = calibrate(prepare_ann(model), torch.tensor([[2.0], [100.0]]))
    assert float(th["1"]) == 6.0


def test_errors_and_dead_layers():
    model, x, _, _ = _net_and_acts()
    ann = prepare_ann(model)
    with pytest.raises(ValueError, match="norm"):
        calibrate(ann, x, norm="mean")
    with pytest.raises(ValueError, match="percentile"):
        calibrate(ann, x, norm="percentile", percentile=0)
    with pytest.raises(ValueError, match="calibration data is required"):
        calibrate(ann, None)
    with pytest.raises(ValueError, match="no samples"):
        calibrate(ann, torch.zeros(0, 1, 4, 4))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        calibrate(ann, x, batch_size=0)
    with pytest.raises(ValueError, match="max_samples must be a positive int or None"):
        calibrate(ann, x, max_samples=-1)
    dead = nn.Sequential(nn.Linear(2, 2), nn.ReLU()).eval()
    with torch.no_grad():
        dead[0].weight.zero_()
        dead[0].bias.fill_(-1.0)
    with pytest.warns(UserWarning, match="never positive"):
        assert float(calibrate(prepare_ann(dead), torch.randn(4, 2))["1"]) == 1.0
