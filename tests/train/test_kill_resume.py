"""SIGKILL ``snn train`` mid-epoch; ``--resume`` continues from the last complete epoch and ends
exactly where an uninterrupted run with the same seed ends (real N-MNIST recordings)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _cmd(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snn", "train", "--data", str(data), "--labels", "train1K.txt",
            "--test-data", str(data), "--test-labels", "test100.txt", "--model", "mlp", "--T", "4",
            "--downsample", "0.25", "--epochs", "3", "--batch-size", "50", "--backend", "torch",
            "--no-progress", "--seed", "3", "--out", str(out), "--cache-dir", str(cache), *extra]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.timeout(400)
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(nmnist_small_dir, tmp_path):
    cache = tmp_path / "cache"
    ref_out, run_out = tmp_path / "ref", tmp_path / "run"
    subprocess.run(_cmd(nmnist_small_dir, ref_out, cache), check=True, env=_env(), cwd=tmp_path,
                   capture_output=True, timeout=300)

    proc = subprocess.Popen(_cmd(nmnist_small_dir, run_out, cache), env=_env(), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:                 # the log line comes after the epoch-1 checkpoint
            if line.startswith("epoch 1:"):
                break
        time.sleep(1.5)                          # well inside epoch 2 (~5 s per epoch)
        assert proc.poll() is None, "training ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    ck = torch.load(run_out / "checkpoint.pt", weights_only=True)   # uncorrupted, no code executed
    assert ck["epoch"] == 1 and len(ck["history"]) == 1

    subprocess.run(_cmd(nmnist_small_dir, run_out, cache, "--resume"), check=True, env=_env(), cwd=tmp_path,
                   capture_output=True, timeout=300)
    ref = json.loads((ref_out / "metrics.json").read_text())
    got = json.loads((run_out / "metrics.json").read_text())
    acc = lambda m: [h["test_acc"] for h in m["epochs"]]
    assert acc(got) == acc(ref) and len(acc(got)) == 3
    assert got["final"]["test_acc"] == ref["final"]["test_acc"]
    a = torch.load(ref_out / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(run_out / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
