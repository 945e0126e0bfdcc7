"""Smoke test of the benchmark scripts that run without peer libraries (tiny sizes)."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("numba")
ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_conv_step_reports_every_variant_layout_and_the_bound(tmp_path):
    mod = _load("conv_step")
    mod.main(["--out", str(tmp_path), "--T", "2", "--batch", "2", "--steps", "1", "--warmup", "0"])
    report = json.loads((tmp_path / "conv_step.json").read_text())
    assert set(report["median_ms"]) == {f"{v} {lay}" for v in ("torch", "numba", "free-neurons")
                                        for lay in ("channels_last", "row_major")}
    assert all(ms > 0 for ms in report["median_ms"].values())
    m = report["median_ms"]
    bound = m["torch row_major"] / m["free-neurons row_major"]
    assert report["amdahl_bound_vs_torch"]["row_major"] == pytest.approx(bound)
    parts = report["profile_ms_numba_channels_last"]
    assert parts["convolution"] > 0 and parts["neuron kernels"] > 0 and parts["batch norm"] > 0
    assert "free-neurons" in (tmp_path / "conv_step.md").read_text()


def test_neurons_sigmoid_run_gives_the_same_spikes_and_records_the_surrogate(tmp_path):
    mod = _load("neurons")  # a fresh module object: the --surrogate it sets stays in it
    mod.main(["--out", str(tmp_path), "--sizes", "6x2x40", "--repeats", "1", "--warmup", "0",
              "--surrogate", "sigmoid", "--only", "snn-torch", "snn-numba", "torch-loop"])
    report = json.loads((tmp_path / "neurons.json").read_text())
    assert report["info"]["surrogate"] == "sigmoid"
    rows = report["results"]
    assert [r["impl"] for r in rows] == ["snn-torch", "snn-numba", "torch-loop"]
    assert all("skipped" not in r and r["train_ms"] > 0 for r in rows)
    assert len({r["firing_rate"] for r in rows}) == 1   # one LIF, three implementations
    assert "surrogate: sigmoid" in (tmp_path / "neurons.md").read_text()


def test_gpu_check_script_parses_and_refuses_a_machine_without_a_gpu(tmp_path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert subprocess.run([bash, "-n", str(script)]).returncode == 0
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: run the script itself")
    r = subprocess.run([bash, str(script), str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHON": sys.executable})
    assert r.returncode == 1 and "no CUDA device" in r.stderr
