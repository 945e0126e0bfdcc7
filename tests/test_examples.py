"""Smoke test of every script in examples/: each runs as a user would run it (a subprocess,
``--smoke`` settings) and must exit 0 and write its results.

Scripts that read the real N-MNIST recordings (../shared/data/nmnist_small, or
$SNN_SHARED_DATA) fall back to the embedded digits-events where that folder is absent, so
nothing here is skipped; ``test_energy_report_and_fallback`` checks the fallback explicitly.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SHARED_DATA = Path(os.environ.get("SNN_SHARED_DATA", REPO.parent / "shared" / "data"))
HAVE_NMNIST = (SHARED_DATA / "nmnist_small" / "train1K.txt").is_file()
FALLBACK_NOTE = "N-MNIST recordings not found"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One frame cache for all scripts (SNN_CACHE), so each dataset is binned once."""
    return tmp_path_factory.mktemp("snn-cache")


def run_example(name: str, out: Path, cache: Path, *args: str, env: dict | None = None) -> str:
    """Run ``examples/<name>.py --smoke --out OUT ARGS``; returns stdout; fails with the output."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               "SNN_CACHE": str(cache), "MPLBACKEND": "Agg", **(env or {})}
    r = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--smoke", "--out", str(out), *args],
                       check=False, cwd=REPO, env=environ, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"examples/{name}.py exited {r.returncode}\n{r.stdout}\n{r.stderr[-4000:]}"
    return r.stdout


def check_data(stdout: str) -> None:
    """The script used the real N-MNIST recordings where present, else said it fell back."""
    assert (FALLBACK_NOTE in stdout) == (not HAVE_NMNIST), stdout


SCRIPTS = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_"))   # _data.py: shared helpers
#: scripts with their own test below (checking their outputs); any other script gets the generic run
CHECKED = {"train_nmnist", "shd_delays", "convert_cnn", "compress_iir", "dynamic_confidence", "energy_report",
           "nir_export", "streaming"}
#: scripts not run here (none)
NOT_RUN: set[str] = set()


def test_every_example_is_documented():
    assert CHECKED <= set(SCRIPTS)
    readme = (EXAMPLES / "README.md").read_text()
    for name in SCRIPTS:
        assert f"examples/{name}.py" in readme, f"examples/README.md does not list {name}.py"
        text = (EXAMPLES / f"{name}.py").read_text()
        assert text.startswith('"""') and f"python examples/{name}.py" in text, f"{name}.py: docstring with command"
        for needed in ("--smoke", "--out", 'if __name__ == "__main__":'):
            assert needed in text, f"examples/{name}.py lacks {needed}"


def test_train_nmnist(tmp_path, cache_dir):
    out = tmp_path / "train"
    stdout = run_example("train_nmnist", out, cache_dir)
    check_data(stdout)
    for f in ("checkpoint.pt", "metrics.json", "training.png", "raster.png"):
        assert (out / f).is_file(), f
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 1 and 0 <= metrics["final"]["test_acc"] <= 1
    assert f"test accuracy: {100 * metrics['final']['test_acc']:.2f}%" in stdout
    # the energy example profiles a trained run from its checkpoint, on that run's test split
    stdout = run_example("energy_report", tmp_path / "energy", cache_dir, "--checkpoint", str(out / "checkpoint.pt"))
    assert "total" in stdout and (tmp_path / "energy" / "energy.json").is_file()


def test_shd_delays(tmp_path, cache_dir):
    stdout = run_example("shd_delays", tmp_path, cache_dir)
    check_data(stdout)
    d = json.loads((tmp_path / "delays.json").read_text())
    assert [h["sigma"] for h in d["history"]] == [2.0, 0.5]          # SigmaSchedule max_delay/2 → 0.5
    assert len(d["delay_histogram"]) <= 5                           # integer delays in [0, max_delay = 4]
    assert "after rounding to integer delays" in stdout and 0 <= d["acc_after_rounding"] <= 1


def test_convert_cnn(tmp_path, cache_dir):
    stdout = run_example("convert_cnn", tmp_path, cache_dir)
    check_data(stdout)
    rep = json.loads((tmp_path / "conversion.json").read_text())
    assert rep["T"] == [1, 2, 4, 8] and len(rep["snn_accuracy"]) == 4 and rep["ann_accuracy"] is not None
    assert (tmp_path / "conversion.png").is_file() and "ANN" in stdout


def test_compress_iir(tmp_path, cache_dir):
    stdout = run_example("compress_iir", tmp_path, cache_dir)
    res = json.loads((tmp_path / "compress.json").read_text())
    assert [s["T"] for s in res["stages"]] == [2, 1]
    assert (tmp_path / "compress.png").is_file() and (tmp_path / "stage2_T1.pt").is_file()
    assert "T = 2 → 1: test accuracy" in stdout


def test_dynamic_confidence(tmp_path, cache_dir):
    stdout = run_example("dynamic_confidence", tmp_path, cache_dir)
    check_data(stdout)
    for f in ("dc_calibration.json", "dc_pareto.png", "dc_latency.png", "dc_test.json"):
        assert (tmp_path / f).is_file(), f
    d = json.loads((tmp_path / "dc_test.json").read_text())
    assert d["dynamic_confidence"]["max_T"] == 8 and 1 <= d["dynamic_confidence"]["mean_latency"] <= 8
    assert d["timing"]["full_ms_per_sample"] > 0 and "Dynamic Confidence: test accuracy" in stdout


def test_energy_report_and_fallback(tmp_path, cache_dir):
    """Also the data fallback: without the shared recordings the script says so and uses digits-events."""
    stdout = run_example("energy_report", tmp_path, cache_dir, env={"SNN_SHARED_DATA": str(tmp_path / "absent")})
    assert FALLBACK_NOTE in stdout
    d = json.loads((tmp_path / "energy.json").read_text())
    assert d and (tmp_path / "energy_layers.png").is_file() and (tmp_path / "energy_timesteps.png").is_file()
    assert "total" in stdout and "(loihi)" in stdout


def test_nir_export(tmp_path, cache_dir):
    pytest.importorskip("nir")
    stdout = run_example("nir_export", tmp_path, cache_dir)
    check_data(stdout)
    assert (tmp_path / "model.nir").is_file() and "outputs identical" in stdout


def test_streaming(tmp_path, cache_dir):
    stdout = run_example("streaming", tmp_path, cache_dir)
    assert "streamed 5 recordings in 10 ms packets" in stdout and "decided after" in stdout
    assert (tmp_path / "train" / "checkpoint.pt").is_file()


def test_streaming_replays_the_runs_own_test_recordings(tmp_path):
    """A run on a folder streams that folder's held-out split (the one training tested on) or
    its test folder, not a named dataset."""
    import importlib.util

    import numpy as np
    import tonic

    from snn.train import DataSpec, build_datasets
    spec = importlib.util.spec_from_file_location("streaming_example", EXAMPLES / "streaming.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    for label in (0, 1, 2):
        (tmp_path / f"c{label}").mkdir()
        for i in range(5 + label):
            ev = np.zeros(20, dtype=tonic.io.events_struct)
            ev["x"], ev["y"], ev["t"] = 3 * label + rng.integers(0, 3, 20), rng.integers(0, 8, 20), np.arange(20) * 100
            np.save(tmp_path / f"c{label}" / f"{i}.npy", ev)
    data = DataSpec(data=str(tmp_path), sensor_size=(9, 8, 2), T=2, cache_dir=str(tmp_path / "cache"), progress=False)
    _, test, _ = build_datasets(data)
    ck = {"config": {"data": {**vars(data), "dataset": "digits-events"}}, "info": {"sensor_size": [9, 8, 2]}}
    held_out, sensor = mod.test_recordings(ck)
    assert sensor == (9, 8, 2) and len(held_out) == len(test) == 3   # one of each class's 5-7
    assert list(held_out.indices) == list(test.indices)
    assert [int(held_out[i][1]) for i in range(3)] == [int(test[i][1]) for i in range(3)] == [0, 1, 2]
    ck["config"]["data"]["test_data"] = str(tmp_path)
    assert len(mod.test_recordings(ck)[0]) == 18
    ck["config"]["data"].update(data=None, test_data=None)
    assert len(mod.test_recordings(ck)[0]) == len(build_datasets(DataSpec(T=2, progress=False))[1])


OTHERS = sorted(set(SCRIPTS) - CHECKED - NOT_RUN)
if OTHERS:                                          # a new script runs here until it gets its own test
    @pytest.mark.parametrize("name", OTHERS)
    def test_other_example_runs(name, tmp_path, cache_dir):
        run_example(name, tmp_path / name, cache_dir)
        assert any((tmp_path / name).rglob("*")), f"examples/{name}.py --smoke wrote nothing to --out"
