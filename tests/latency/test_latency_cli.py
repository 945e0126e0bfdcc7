"""`snn compress` end to end, resume, errors; the `--dynamic-confidence` evaluate options."""
import argparse
import json
import shutil

import pytest
import torch

from snn.cli import main
from snn.datasets import EventFolder, FrameDataset
from snn.latency.cli import add_evaluate_options, load_stage_model, run_dynamic_confidence
from snn.train import load_checkpoint


def _compress(folder, out, *extra):
    return main(["compress", "--data", str(folder), "--sensor-size", "12,12,2", "--model", "mlp", "--schedule", "2,1",
                 "--epochs", "2,1", "--lr", "5e-3", "--batch-size", "8", "--val-fraction", "0.25", "--out", str(out),
                 "--no-progress", "--cache-dir", str(out.parent / "cache"), "--report-samples", "16", *extra])


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    """One finished `snn compress` run (2 stages) shared by the tests of this module; returns
    ``(event folder, run folder, printed output)``. Tests that modify it work on a copy."""
    import numpy as np
    import tonic
    rng = np.random.default_rng(0)
    base = tmp_path_factory.mktemp("compress")
    folder = base / "events"
    for label in (0, 1):  # 2 classes × 20 recordings, (12, 12, 2) sensor: top vs bottom rows
        (folder / f"c{label}").mkdir(parents=True)
        for i in range(20):
            ev = np.zeros(200, dtype=tonic.io.events_struct)
            ev["x"], ev["y"] = rng.integers(0, 12, 200), rng.integers(0, 6, 200) + 6 * label
            ev["t"], ev["p"] = np.sort(rng.integers(0, 50_000, 200)), rng.integers(0, 2, 200).astype(bool)
            np.save(folder / f"c{label}" / f"{i}.npy", ev)
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert _compress(folder, base / "run") == 0
    return folder, base / "run", buf.getvalue()


def test_compress_end_to_end_and_resume(compressed, capsys):
    event_folder, out, printed = compressed
    assert "T=2 → T=1" in printed and "val before" in printed
    for name in ("stage1_T2.pt", "stage2_T1.pt", "compress.json", "compress.png", "compress_cli.json"):
        assert (out / name).stat().st_size > 0, name
    d = json.loads((out / "compress.json").read_text())
    assert [s["T"] for s in d["stages"]] == [2, 1] and d["config"]["schedule"] == [2, 1]
    assert d["stages"][1]["test_acc"] >= 0.8  # top rows vs bottom rows
    model, ck = load_stage_model(out / "stage2_T1.pt")
    assert ck["T"] == 1 and ck["extra"]["preset"] == "mlp"
    for k, v in model.state_dict().items():
        assert torch.equal(v, ck["model"][k]), k
    assert model(torch.rand(1, 3, 2, 12, 12)).shape == (1, 3, 2)
    # everything is done: --resume reloads the settings, trains nothing and leaves the checkpoints alone
    mtime = (out / "stage2_T1.pt").stat().st_mtime_ns
    assert main(["compress", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert (out / "stage2_T1.pt").stat().st_mtime_ns == mtime
    # an existing run folder is never overwritten
    assert _compress(event_folder, out) == 2
    assert "--resume" in capsys.readouterr().err


def test_compress_resumes_a_killed_run(compressed, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(compressed[1], out)
    (out / "stage2_T1.pt").unlink()  # as if killed during the last stage
    first = load_checkpoint(out / "stage1_T2.pt")["result"]
    assert main(["compress", "--out", str(out), "--resume", "--no-progress"]) == 0
    d = json.loads((out / "compress.json").read_text())
    assert d["stages"][0] == json.loads(json.dumps(first)) and d["stages"][1]["T"] == 1


def test_compress_rejects_bad_arguments(compressed, tmp_path, capsys):
    assert _compress(compressed[0], tmp_path / "a", "--schedule", "1,2") == 2
    assert "strictly decreasing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compress", "--schedule", "5,x"])
    # a stage file is not a `snn train` checkpoint: a one-line error saying what it is (was a KeyError)
    assert main(["compress", str(compressed[1] / "stage1_T2.pt"), "--out", str(tmp_path / "b")]) == 2
    assert "not a `snn train` checkpoint" in capsys.readouterr().err


def _frames(folder, tmp_path):
    ev = EventFolder(folder, sensor_size=(12, 12, 2))
    return FrameDataset(ev, n_time_bins=6, cache_dir=tmp_path / "cache", progress=False)


def test_dynamic_confidence_options_for_evaluate(compressed, tmp_path, capsys):
    model, _ = load_stage_model(compressed[1] / "stage1_T2.pt")
    frames = _frames(compressed[0], tmp_path)
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=16)
    add_evaluate_options(parser)
    args = parser.parse_args(["--dynamic-confidence", "--dc-out", str(tmp_path / "dc"), "--dc-repeats", "1"])
    capsys.readouterr()
    res = run_dynamic_confidence(args, model, frames)
    assert "dynamic confidence θ=" in capsys.readouterr().out
    assert res["T"] == 6 and res["calibrated_on"] == 20 and res["n"] == 20
    assert 1 <= res["mean_latency"] <= 6 and 0 <= res["threshold"] <= 1
    assert res["timing"]["full_ms_per_sample"] > 0 and res["accuracy"] is not None
    for name in ("dc.json", "dc_calibration.json", "dc_pareto.png", "dc_latency.png"):
        assert (tmp_path / "dc" / name).stat().st_size > 0, name
    # θ = 1: nobody stops early, so DC equals the full run
    args = parser.parse_args(["--dynamic-confidence", "--dc-threshold", "1", "--dc-repeats", "1"])
    res = run_dynamic_confidence(args, model, frames)
    assert res["mean_latency"] == 6 and res["n"] == 40 and res["accuracy"] == res["full_accuracy"]
    args = parser.parse_args(["--dynamic-confidence", "--dc-calibration-fraction", "1.5"])
    with pytest.raises(ValueError, match="calibration-fraction"):
        run_dynamic_confidence(args, model, frames)


def test_same_seed_same_result(compressed, tmp_path):
    """A run from scratch is reproducible: --seed fixes the initial weights as well as the data
    order and dropout (the global RNG has moved on since the fixture's run)."""
    folder, first, _ = compressed
    torch.rand(7)
    assert _compress(folder, tmp_path / "again") == 0
    for name in ("stage1_T2.pt", "stage2_T1.pt"):
        a, b = load_checkpoint(first / name), load_checkpoint(tmp_path / "again" / name)
        for k in a["model"]:
            torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=f"{name}: {k}")


# ------------------------------------------------------------------ option values: before the run folder
@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "--batch-size must be ≥ 1, got 0"),
    (["--schedule", "5,5"], "--schedule must be strictly decreasing timesteps ≥ 1 (e.g. 5,4,3,2,1), got 5,5"),
    (["--schedule", "2,0"], "--schedule must be strictly decreasing timesteps ≥ 1 (e.g. 5,4,3,2,1), got 2,0"),
    (["--epochs", "0"], "--epochs must be ≥ 1, got 0"),
    (["--epochs", "1,0"], "--epochs must be ≥ 1, got 1,0"),
    (["--epochs", "1,1,1"], "--epochs needs one value or one per stage of --schedule (2), got 3: 1,1,1"),
    (["--lr", "0"], "--lr must be positive, got 0.0"),
    (["--lr", "1e-3,-1"], "--lr must be positive, got 0.001,-1.0"),
    (["--weight-decay", "-1"], "--weight-decay must be ≥ 0, got -1.0"),
    (["--threshold-rescale", "0"], "--threshold-rescale must be none, rate or a positive factor, got 0.0"),
    (["--input-scale", "0"], "--input-scale must be positive, got 0.0"),
    (["--report-samples", "0"], "--report-samples must be ≥ 1, got 0"),
    (["--downsample", "2"], "--downsample must be in (0, 1], got 2.0"),
    (["--val-fraction", "1.5"], "--val-fraction must be in (0, 1), got 1.5"),
    (["--energy-model", "nope"], "--energy-model: unknown energy model 'nope'"),
    (["--device", "cuda"], "--device: device 'cuda' is not available"),
])
def test_compress_bad_values_are_one_line_errors_leaving_no_folder(compressed, tmp_path, capsys, monkeypatch,
                                                                     args, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "runs" / "c"
    assert _compress(compressed[0], out, *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"snn compress: error: {message}") and "\n" not in err, err
    assert not out.exists()                         # the corrected command runs in the same --out


def test_compress_failing_before_its_first_epoch_ends_leaves_no_folder(compressed, tmp_path, capsys, monkeypatch):
    import snn.latency.iir as iir
    out = tmp_path / "runs" / "c"

    def failing(*a, **k):
        raise RuntimeError("out of memory")
    monkeypatch.setattr(iir, "train_epoch", failing)
    assert _compress(compressed[0], out, "--epochs", "1") == 2
    assert "out of memory" in capsys.readouterr().err
    assert not out.exists()
    monkeypatch.undo()
    # the same command now runs (it was "already holds a compress run: pass --resume")
    assert _compress(compressed[0], out, "--epochs", "1") == 0
    assert (out / "stage2_T1.pt").exists()
    # a folder that existed before keeps everything but the settings the failed run wrote there
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    monkeypatch.setattr(iir, "train_epoch", failing)
    assert _compress(compressed[0], other, "--epochs", "1") == 2
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_compress_failing_after_an_epoch_stays_resumable(compressed, tmp_path, monkeypatch):
    import snn.latency.iir as iir
    out = tmp_path / "c"
    real, calls = iir.train_epoch, []

    def second_fails(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(iir, "train_epoch", second_fails)
    with pytest.raises(KeyboardInterrupt):
        _compress(compressed[0], out)
    monkeypatch.undo()
    assert (out / "compress_cli.json").exists() and (out / "progress.pt").exists()
    assert main(["compress", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert (out / "stage2_T1.pt").exists()
