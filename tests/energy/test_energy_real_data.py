"""Profiling on real recorded N-MNIST data (the 100 test recordings beside the checkout)."""
import importlib.util

import pytest
import torch

from snn.datasets import EventFolder, FrameDataset
from snn.energy import neurobench_metrics, profile
from snn.models import build_model


@pytest.fixture(scope="module")
def nmnist_test_frames(nmnist_small_dir, tmp_path_factory):
    folder = EventFolder(nmnist_small_dir, nmnist_small_dir / "test100.txt", sensor_size=(34, 34, 2))
    return FrameDataset(folder, n_time_bins=8, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def _model():
    torch.manual_seed(0)
    return build_model("conv", backend="torch")  # random weights, seeded


def test_real_recordings_event_frames(nmnist_test_frames):
    model = _model()
    r = profile(model, nmnist_test_frames, max_samples=24, batch_size=12)
    s = r.summary()
    assert s["samples"] == 24 and s["timesteps"] == 8 and s["wall_ms_per_sample"] > 0
    first = r.layer("features.0.0")
    # event-count frames are not binary: the first conv pays MACs on its nonzero pixels only
    assert first["macs"] > 0 and first["sops"] == 0 and 0.5 < first["input_sparsity"] < 1
    assert r.layer("features.2.0")["sops"] > 0  # spikes drive the second conv
    ev = profile(model, nmnist_test_frames, max_samples=24, batch_size=12, graded_inputs="events",
                 measure_time=False).layer("features.0.0")
    assert ev["macs"] == 0 and ev["sops"] >= first["macs"]  # every event counted, ≥ 1 per nonzero pixel
    assert 0 < s["firing_rate"] < 0.5 and s["energy_pj"] < s["ann_energy_pj"] * 10


@pytest.mark.skipif(importlib.util.find_spec("neurobench") is None or importlib.util.find_spec("snntorch") is None,
                    reason="NeuroBench not installed (pip install --no-deps neurobench snntorch)")
def test_real_recordings_agree_with_neurobench(nmnist_test_frames):
    model = _model()
    ours = profile(model, nmnist_test_frames, max_samples=16, batch_size=8, measure_time=False).summary()
    theirs = neurobench_metrics(model, nmnist_test_frames, max_samples=16, batch_size=8)
    assert ours["sops"] == pytest.approx(theirs["Effective_ACs"], rel=1e-12)
    assert ours["macs"] == pytest.approx(theirs["Effective_MACs"], rel=1e-12)
    assert ours["dense_ops"] == pytest.approx(theirs["Dense"], rel=1e-12)
    assert ours["activation_sparsity"] == pytest.approx(theirs["ActivationSparsity"], rel=1e-9)
