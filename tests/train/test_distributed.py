"""Two data-parallel processes (torchrun, gloo on the CPU) end one epoch with the same
parameters as one process with the equivalent global batch, on real N-MNIST recordings.

Both runs compute in float64: in float32 the two ways of summing the batch's gradient differ
in the last bits, and spiking thresholds and Adam's normalisation of near-zero gradients
amplify such bits over an epoch; in float64 the runs agree to 1e-9."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


_FLOAT64_SNN = """
import sys, torch
torch.set_default_dtype(torch.float64)
import snn.train.loop as loop
_collate = loop.collate_time_first
loop.collate_time_first = lambda batch: (lambda x, y: (x.double(), y))(*_collate(batch))
loop._raster = lambda *a, **k: None          # plots a float32 sample; not compared here
from snn.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _args(data: Path, out: Path, cache: Path, batch: int) -> list[str]:
    return ["train", "--data", str(data), "--labels", "train1K.txt", "--test-data", str(data),
            "--test-labels", "test100.txt", "--model", "mlp", "--T", "4", "--downsample", "0.25", "--epochs", "1",
            "--batch-size", str(batch), "--backend", "torch", "--device", "cpu", "--no-progress", "--seed", "5",
            "--out", str(out), "--cache-dir", str(cache)]


@pytest.mark.timeout(600)
def test_two_processes_equal_one_process_with_the_global_batch(nmnist_small_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    cache = tmp_path / "cache"
    script = tmp_path / "snn64.py"
    script.write_text(_FLOAT64_SNN)
    one = subprocess.run([sys.executable, str(script), *_args(nmnist_small_dir, tmp_path / "one", cache, 50)],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          str(script), *_args(nmnist_small_dir, tmp_path / "two", cache, 25)],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    a = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    assert b["history"][0]["processes"] == 2 and a["history"][0]["processes"] == 1
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert a["model"][k].dtype in (torch.float64, torch.bool), k
        torch.testing.assert_close(b["model"][k], a["model"][k], rtol=1e-9, atol=1e-9, msg=k)
    # the parameters did train (they are not equal merely because nothing moved)
    assert a["history"][0]["train_acc"] > 0.3
    # the training loss and accuracy cover every process's shard (rank 0's half before)
    assert b["history"][0]["train_acc"] == pytest.approx(a["history"][0]["train_acc"], abs=1e-12)
    assert b["history"][0]["train_loss"] == pytest.approx(a["history"][0]["train_loss"], rel=1e-9)


def test_snn_train_nproc_launches_torchrun(nmnist_small_dir, tmp_path):
    """``snn train --nproc 2`` runs two ranks into one run folder (rank 0 writes it)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    args = _args(nmnist_small_dir, tmp_path / "run", tmp_path / "cache", 25)
    r = subprocess.run([sys.executable, "-m", "snn", *args, "--nproc", "2"], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ck["history"][0]["processes"] == 2 and ck["epoch"] == 1


def test_batch_norm_is_synchronised_on_cuda_only():
    # SyncBatchNorm makes N GPU processes normalise over the whole N·b batch; PyTorch has it for
    # GPUs only, so CPU (gloo) runs keep per-process statistics (README); no GPU is needed to
    # convert, only to run it
    from snn.models import build_model
    from snn.train.distributed import sync_batchnorm
    model = build_model("conv", input_size=8, channels=(4, 4))
    params = list(model.parameters())
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert sync_batchnorm(model, torch.device("cpu")) is model and bns[0] in list(model.modules())
    synced = sync_batchnorm(model, torch.device("cuda", 0))
    kinds = [type(m) for m in synced.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert kinds == [torch.nn.SyncBatchNorm] * len(bns)
    assert all(p is q for p, q in zip(synced.parameters(), params))  # the optimizer's tensors
    assert set(synced.state_dict()) == set(build_model("conv", input_size=8, channels=(4, 4)).state_dict())


_NAN_WORKER = r"""
import sys, torch, torch.distributed as dist
from torch import nn
from snn.train.loop import train_epoch
rank, store = int(sys.argv[1]), sys.argv[2]
dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
torch.manual_seed(0)
model = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Flatten(2), nn.Linear(3, 2)))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
batches = [(torch.rand(4, 2, 3), torch.tensor([0, 1])) for _ in range(3)]
if rank == 1:
    batches[1][0][0, 0, 0] = float("nan")          # only rank 1 sees a NaN, in batch 2
try:
    train_epoch(model, batches, opt, torch.device("cpu"), forward=lambda x: model(x).mean(0))
    print("no error")
except FloatingPointError as e:
    print("raised:", e)
"""


def test_a_nan_in_one_process_stops_every_process(tmp_path):
    # DDP averages the gradients, so one process's NaN reaches every model: all must stop
    # before the optimizer step, not only the process that saw it
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    script = tmp_path / "nan_worker.py"
    script.write_text(_NAN_WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(tmp_path / "store")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    out = [p.communicate(timeout=120) for p in procs]
    assert "raised:" in out[0][0] and "batch 2 is not finite in another process" in out[0][0], out[0]
    assert "raised:" in out[1][0] and "batch 2 is nan" in out[1][0], out[1]
