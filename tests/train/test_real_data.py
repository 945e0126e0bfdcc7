"""Short versions of the main jobs on real data: N-MNIST recordings and digits-events."""
import json

import pytest

from snn.cli import main


def _subset(src, dst, n):
    lines = [l for l in src.read_text().splitlines() if l and not l.startswith("#")]
    dst.write_text("#sample #class\n" + "\n".join(lines[:n]) + "\n")
    return dst


def test_conv_preset_learns_real_nmnist_recordings(nmnist_small_dir, tmp_path):
    """400 of the 1,000 real training recordings, 3 epochs, tested on the 100 real test recordings."""
    train = _subset(nmnist_small_dir / "train1K.txt", tmp_path / "train400.txt", 400)
    out = tmp_path / "run"
    rc = main(["train", "--data", str(nmnist_small_dir), "--labels", str(train),
               "--test-data", str(nmnist_small_dir), "--test-labels", "test100.txt",
               "--T", "8", "--epochs", "3", "--out", str(out), "--no-progress",
               "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["n_train"] == 400 and m["data"]["n_test"] == 100
    assert m["data"]["frame_shape"] == [8, 2, 34, 34]
    assert m["best_test_acc"] >= 0.70, m["epochs"]
