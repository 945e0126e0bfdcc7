"""IIR compression and Dynamic Confidence on real recorded N-MNIST data (the 100 test recordings)."""
import pytest
import torch

from snn.datasets import EventFolder, FrameDataset
from snn.latency import DynamicConfidence, calibrate_threshold, compress_timesteps, static_images
from snn.models import MLPSNN


@pytest.fixture(scope="module")
def nmnist_images(nmnist_small_dir, tmp_path_factory):
    folder = EventFolder(nmnist_small_dir, nmnist_small_dir / "test100.txt", sensor_size=(34, 34, 2))
    frames = FrameDataset(folder, n_time_bins=1, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    images = static_images(frames, scale=0.1)
    x = torch.stack([images[i][0] for i in range(len(images))])
    y = torch.tensor([images[i][1] for i in range(len(images))])
    return x, y


def test_real_recordings_compress_then_stop_early(nmnist_images):
    x, y = nmnist_images
    events = x.sum(dim=(1, 2, 3)) * 10  # scale 0.1: counts / 10
    assert x.shape == (100, 2, 34, 34) and x.min() >= 0 and 2000 < float(events.mean()) < 6000  # N-MNIST: ~4,000
    torch.manual_seed(0)
    model = MLPSNN(in_features=2 * 34 * 34, num_classes=10, hidden=(32,), backend="torch")
    res = compress_timesteps(model, (x[:70], y[:70]), (x[70:], y[70:]), (3, 1), epochs=(5, 2), lr=4e-3,
                             batch_size=14, report_samples=30)
    t3, t1 = res.stages
    assert t3["val_acc"] >= 0.4 and t1["val_acc"] >= t3["val_acc"] - 0.15  # chance: 0.1
    assert t1["neuron_updates_per_sample"] == 32 and t3["neuron_updates_per_sample"] == 3 * 32
    assert t1["energy_pj"] is None or t1["energy_pj"] < t3["energy_pj"]
    # Dynamic Confidence on the compressed network run for up to 8 steps: calibrated on the
    # training recordings, applied to the held-out ones
    cal = calibrate_threshold(model, (x[:70], y[:70]), 8, encode="direct", max_accuracy_drop=0.02)
    trace_pred, trace_lat = cal.trace.decide(cal.threshold)
    assert (trace_lat <= 8).all() and cal.oracle["stays_correct"]["mean_latency"] <= 8
    dc = DynamicConfidence(model, cal.threshold, 8)
    train_run = dc.run_static(x[:70])
    assert torch.equal(train_run.latency, trace_lat) and torch.equal(train_run.prediction, trace_pred)
    assert train_run.neuron_updates == int(train_run.latency.sum()) * 32
    test_run = dc.evaluate((x[70:], y[70:]), encode="direct")
    assert test_run.n == 30 and 1 <= test_run.mean_latency <= 8
