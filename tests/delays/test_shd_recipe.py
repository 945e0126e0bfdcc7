"""The SHD delay-SNN recipe on a small SHD-format HDF5 file written here (tonic's layout)."""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from snn.cli import main
from snn.datasets import FrameDataset, collate_time_first, open_dataset
from snn.delays import delay_layers
from snn.models import PRESETS, build_model
from snn.models.shd import DelaySNN, TimeSharedDropout


def write_shd(root: Path, split: str, n: int, seed: int) -> None:
    """``root/SHD/shd_<split>.h5`` as tonic reads it: spikes/times (s), spikes/units, labels,
    extra/keys, extra/speaker (+ the empty zip whose presence tonic checks)."""
    base = root / "SHD"
    base.mkdir(parents=True, exist_ok=True)
    (base / f"shd_{split}.h5.zip").write_bytes(b"")
    rng = np.random.default_rng(seed)
    with h5py.File(base / f"shd_{split}.h5", "w") as f:
        times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        labels = np.arange(n) % 3
        for i in range(n):
            k = 400
            # class c: a burst sweeping up the cochlea, starting at 100 ms · c
            t = np.sort(rng.uniform(0, 0.3, k)) + 0.1 * labels[i]
            u = np.clip((t - 0.1 * labels[i]) * 2000 + rng.normal(0, 30, k), 0, 699)
            times[i] = t.astype(np.float32)
            units[i] = u.astype(np.uint16)
        f["labels"] = labels.astype(np.uint8)
        f["extra/keys"] = np.array([b"zero", b"one", b"two"])
        f["extra/speaker"] = np.zeros(n, dtype=np.uint8)


@pytest.fixture
def shd_root(tmp_path):
    root = tmp_path / "data"
    write_shd(root, "train", 24, 0)
    write_shd(root, "test", 9, 1)
    return root


def test_frames_are_10ms_bins_of_140_channels(shd_root, tmp_path):
    ds = open_dataset("shd", root=shd_root, train=True)
    fd = FrameDataset(ds, time_window=10_000, T=50, downsample=0.2, cache_dir=tmp_path / "c", progress=False)
    assert fd.frames_shape == (50, 140)
    events, label = ds[3]
    frames, lab = fd[3]
    t = (events["t"] - events["t"][0]) // 10_000
    want = np.zeros((50, 140))
    keep = t < 50
    np.add.at(want, (t[keep].astype(int), events["x"][keep] // 5), 1)
    np.testing.assert_array_equal(frames.numpy(), want)
    assert lab == label


def test_in_model_channel_binning_equals_downsampled_frames(shd_root, tmp_path):
    ds = open_dataset("shd", root=shd_root, train=False)
    full = FrameDataset(ds, time_window=10_000, T=40, cache_dir=tmp_path / "c", progress=False)
    binned = FrameDataset(ds, time_window=10_000, T=40, downsample=0.2, cache_dir=tmp_path / "c", progress=False)
    x700, _ = collate_time_first([full[i] for i in range(4)])
    x140, _ = collate_time_first([binned[i] for i in range(4)])
    torch.manual_seed(0)
    a = build_model("shd-delays", in_features=700, num_classes=3).eval()
    b = build_model("shd-delays", in_features=140, num_classes=3).eval()
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x700), b(x140))


def test_preset_matches_the_paper_configuration():
    m = build_model("shd-delays", in_features=700)
    assert "shd-delays" in PRESETS and isinstance(m, DelaySNN)
    layers = delay_layers(m)
    assert [(l.in_features, l.out_features, l.max_delay) for l in layers] == [(140, 256, 25), (256, 256, 25),
                                                                               (256, 20, 25)]
    assert all(l.bias is None and l.delays == "learned" and float(l.sigma) == 12.5 for l in layers)
    assert m.sigma_schedule.start == 12.5 and m.sigma_schedule.fraction == 0.25 and m.position_lr_factor == 100
    lif = m.features[2]
    assert float(lif.tau) == pytest.approx(10.05) and lif.detach_reset and not lif.decay_input
    assert sum(isinstance(x, TimeSharedDropout) and x.p == 0.4 for x in m.modules()) == 2
    assert delay_layers(DelaySNN(in_features=701))[0].in_features == 117  # groups of 6, the last one partial
    assert delay_layers(DelaySNN(in_features=140))[0].in_features == 140
    with pytest.raises(ValueError, match="channel_bins must be a positive int"):
        DelaySNN(channel_bins=0)
    with pytest.raises(ValueError, match="expected in_features=140"):
        DelaySNN()(torch.zeros(5, 2, 141))


def test_time_shared_dropout_keeps_one_mask_per_sequence():
    torch.manual_seed(0)
    d = TimeSharedDropout(0.5)
    y = d(torch.ones(7, 3, 50))
    assert torch.equal(y, y[:1].expand_as(y)) and 0 < int((y[0] == 0).sum()) < 150
    assert torch.equal(d.eval()(torch.ones(2, 2, 2)), torch.ones(2, 2, 2))


def test_training_hooks_run_the_recipe(shd_root, tmp_path):
    """σ schedule, position lr, clamping and final rounding driven by a plain loop."""
    ds = FrameDataset(open_dataset("shd", root=shd_root), time_window=10_000, T=40, downsample=0.2,
                      cache_dir=tmp_path / "c", progress=False)
    torch.manual_seed(0)
    model = build_model("shd-delays", in_features=140, num_classes=3, hidden=(32,))
    opt = torch.optim.Adam(model.param_groups(1e-3, weight_decay=1e-5))
    sigmas, epochs = [], 4
    for epoch in range(epochs):
        model.on_epoch_start(epoch, epochs)
        sigmas.append(float(delay_layers(model)[0].sigma))
        for x, y in torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=collate_time_first):
            loss = torch.nn.functional.cross_entropy(model(x).mean(0), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.after_optimizer_step()
    model.on_train_end()
    assert sigmas == [12.5, 0.5, 0.5, 0.5]
    for layer in delay_layers(model):
        assert layer.integer and float(layer.delay.detach().min()) >= 0 and float(layer.delay.detach().max()) <= 25
    model.eval()(ds[0][0].unsqueeze(1))
    assert all(layer.backend_used == "numba" for layer in delay_layers(model))


def test_snn_train_runs_the_preset_on_shd(shd_root, tmp_path):
    """``snn train`` drives the recipe's hooks: position learning rate, σ schedule, clamping, and
    rounding after the last epoch (the saved model has exact integer delays)."""
    out = tmp_path / "run"
    rc = main(["train", "--dataset", "shd", "--root", str(shd_root), "--model", "shd-delays", "--T", "20",
               "--time-window", "10000", "--downsample", "0.2", "--epochs", "2", "--batch-size", "24",
               "--out", str(out), "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["frame_shape"] == [20, 140] and m["data"]["num_classes"] == 3   # tonic's classes: an array
    assert m["final"]["finalized"] and 0 <= m["final"]["final_test_acc"] <= 1
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    delays = [v for k, v in ck["model"].items() if k.endswith(".delay")]
    rounded = [v for k, v in ck["model"].items() if k.endswith(".rounded")]
    assert delays and all(bool(r) for r in rounded)
    assert all(torch.equal(d, d.round()) and d.min() >= 0 and d.max() <= 25 for d in delays)
    groups = ck["optimizer"]["param_groups"]
    lrs = sorted({g["initial_lr"] for g in groups})                 # positions at 100 × the weights' rate
    assert len(lrs) == 2 and lrs[1] == pytest.approx(100 * lrs[0])
    assert main(["evaluate", str(out / "checkpoint.pt")]) == 0
