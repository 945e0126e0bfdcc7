"""`snn train` / `snn evaluate` end to end on tiny data, resume, and the errors users see."""
import json

import pytest
import torch

from snn.cli import main
from snn.train import load_checkpoint


def _train(tiny_folder, out, *extra):
    return main(["train", "--data", str(tiny_folder), "--T", "4", "--model", "mlp", "--batch-size", "8",
                 "--lr", "5e-3", "--out", str(out), "--no-progress", "--cache-dir", str(out.parent / "cache"),
                 *extra])


def test_train_and_evaluate_end_to_end(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(tiny_folder, out, "--epochs", "3") == 0
    for name in ("checkpoint.pt", "metrics.json", "training.png", "raster.png"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert metrics["data"]["sensor_size"] == [16, 16, 2]  # inferred from the files
    assert metrics["final"]["test_acc"] >= 0.9  # left vs right half is easy
    assert 0 < metrics["final"]["firing_rate"] < 1
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 3
    capsys.readouterr()
    assert main(["evaluate", str(out / "checkpoint.pt"), "--out", str(tmp_path / "ev.json")]) == 0
    assert "accuracy" in capsys.readouterr().out
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert ev["acc"] == pytest.approx(metrics["final"]["test_acc"])
    assert ev["n"] == 10  # the run's own hold-out: 20 % of 48 recordings
    # other data: every recording of --data, or of --test-data (with or without --data)
    for args in (["--data", str(tiny_folder)], ["--test-data", str(tiny_folder)],
                 ["--data", str(tiny_folder), "--test-data", str(tiny_folder)]):
        assert main(["evaluate", str(out / "checkpoint.pt"), *args, "--out", str(tmp_path / "all.json")]) == 0
        assert json.loads((tmp_path / "all.json").read_text())["n"] == 48, args


def _interrupted_after_first_epoch(tiny_folder, out, monkeypatch, epochs="3"):
    """Start an ``epochs``-epoch run in ``out`` and interrupt it during its second epoch."""
    import snn.train.loop as loop
    real, calls = loop.train_epoch, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(loop, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_folder, out, "--epochs", epochs)
    monkeypatch.undo()
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1


def test_resume_continues_and_matches_an_uninterrupted_run(tiny_folder, tmp_path, monkeypatch):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert _train(tiny_folder, full, "--epochs", "3") == 0
    _interrupted_after_first_epoch(tiny_folder, cut, monkeypatch)  # a 3-epoch run, during its second epoch
    # as the README says it: the run keeps its own epoch count (3, not the default 8)
    assert main(["train", "--out", str(cut), "--resume", "--no-progress"]) == 0
    a, b = load_checkpoint(full / "checkpoint.pt"), load_checkpoint(cut / "checkpoint.pt")
    assert b["epoch"] == 3 and [h["epoch"] for h in b["history"]] == [1, 2, 3]
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)
    assert a["history"][-1]["test_acc"] == b["history"][-1]["test_acc"]


def test_existing_run_is_not_overwritten(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(tiny_folder, out, "--epochs", "1") == 0
    before = (out / "checkpoint.pt").read_bytes()
    assert _train(tiny_folder, out, "--epochs", "1") == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["--model", "nope"], "valid presets"),
    (["--backend", "nope"], "valid backends"),
    (["--dataset", "nope"], "nope"),
])
def test_unknown_names_list_the_valid_ones(tiny_folder, tmp_path, capsys, args, message):
    base = ["train", "--T", "4", "--epochs", "1", "--out", str(tmp_path / "r"), "--no-progress",
            "--cache-dir", str(tmp_path / "cache")]
    if args[0] != "--dataset":
        base += ["--data", str(tiny_folder)]
    assert main(base + args) == 2
    assert message in capsys.readouterr().err


def test_missing_data_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_failed_start_leaves_no_run_folder(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert not (tmp_path / "r").exists()            # the same command can be run again once fixed


# ------------------------------------------------------------------ class numbering of test folders
ANIMALS = ["cat", "dog", "emu"]


def _animals(root, classes, per=16, seed=0):
    """Class k of ANIMALS: events in columns 5k..5k+4 of a 16×16 sensor."""
    import numpy as np
    import tonic
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True)
        k = ANIMALS.index(c) if c in ANIMALS else 0
        for i in range(per):
            ev = np.zeros(100, dtype=tonic.io.events_struct)
            ev["x"], ev["y"] = rng.integers(5 * k, 5 * k + 5, 100), rng.integers(0, 16, 100)
            ev["t"], ev["p"] = np.sort(rng.integers(0, 100_000, 100)), True
            ev["x"][0] = ev["y"][0] = 15
            np.save(root / c / f"{i}.npy", ev)
    return root


def test_test_folders_are_labelled_with_the_runs_classes(tmp_path, capsys):
    train_dir, full = _animals(tmp_path / "train", ANIMALS), _animals(tmp_path / "full", ANIMALS, seed=1)
    no_cat, extra = _animals(tmp_path / "no_cat", ["dog", "emu"], seed=2), _animals(tmp_path / "x", ["dog", "fox"])
    run = tmp_path / "run"
    assert _train(train_dir, run, "--test-data", str(full), "--epochs", "3") == 0
    ck = load_checkpoint(run / "checkpoint.pt")
    assert ck["info"]["classes"] == ANIMALS and ck["history"][-1]["test_acc"] >= 0.9
    res = tmp_path / "ev.json"
    assert main(["evaluate", str(run / "checkpoint.pt"), "--test-data", str(no_cat), "--out", str(res)]) == 0
    ev = json.loads(res.read_text())
    assert ev["n"] == 32 and ev["acc"] >= 0.9       # dog and emu stay classes 1 and 2 (was 0 %)
    # training with that test folder reports the same
    assert _train(train_dir, tmp_path / "run2", "--test-data", str(no_cat), "--epochs", "3") == 0
    assert load_checkpoint(tmp_path / "run2" / "checkpoint.pt")["history"][-1]["test_acc"] >= 0.9
    capsys.readouterr()
    # a class the run never saw is an error naming it (was an IndexError traceback)
    assert main(["evaluate", str(run / "checkpoint.pt"), "--test-data", str(extra)]) == 2
    err = capsys.readouterr().err
    assert "class folder 'fox'" in err and "['cat', 'dog', 'emu']" in err and "Traceback" not in err


# ------------------------------------------------------------------ --resume
def test_resume_continues_in_the_folder_given(tiny_folder, tmp_path, monkeypatch):
    import shutil
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copytree(tiny_folder, proj / "data")
    monkeypatch.chdir(proj)
    assert main(["train", "--data", "data", "--T", "4", "--model", "mlp", "--batch-size", "8", "--epochs", "1",
                 "--out", "runs/x", "--no-progress", "--cache-dir", "cache"]) == 0
    shutil.copytree("runs/x", "runs/y")             # branch the run to train it longer
    before = (proj / "runs/x/checkpoint.pt").read_bytes()
    assert main(["train", "--out", "runs/y", "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert load_checkpoint(proj / "runs/y/checkpoint.pt")["epoch"] == 2
    assert (proj / "runs/x/checkpoint.pt").read_bytes() == before    # the original run is untouched
    monkeypatch.chdir(tmp_path)                     # another working directory, relative paths
    assert main(["train", "--out", "proj/runs/y", "--resume", "--epochs", "3", "--no-progress"]) == 0
    ck = load_checkpoint(proj / "runs/y/checkpoint.pt")
    assert ck["epoch"] == 3 and ck["config"]["out"] == "proj/runs/y"
    assert not (tmp_path / "runs").exists()
    assert (proj / "runs/x/checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("folder", ["empty", "missing"])
def test_resume_without_a_checkpoint_is_an_error(tmp_path, capsys, folder):
    out = tmp_path / "runs" / "x"
    if folder == "empty":
        out.mkdir(parents=True)                     # a run killed during its first epoch
    assert main(["train", "--out", str(out), "--resume", "--epochs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"nothing to resume in {out}: no checkpoint.pt" in err and "Traceback" not in err
    assert not (out / "checkpoint.pt").exists()     # no new default run started there


# ------------------------------------------------------------------ run folders
def test_runs_started_in_the_same_second_get_their_own_folders(tiny_folder, tmp_path, monkeypatch):
    import time
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20250101-120000")
    for seed in ("1", "2"):
        assert main(["train", "--data", str(tiny_folder), "--T", "2", "--model", "mlp", "--epochs", "1",
                     "--seed", seed, "--no-progress", "--cache-dir", "cache"]) == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert [p.name for p in runs] == ["tiny-20250101-120000", "tiny-20250101-120000-2"]
    assert [load_checkpoint(p / "checkpoint.pt")["config"]["seed"] for p in runs] == [1, 2]


def test_explicit_existing_out_is_an_error(tiny_folder, tmp_path, capsys):
    (tmp_path / "r").mkdir()
    assert _train(tiny_folder, tmp_path / "r", "--epochs", "1") == 2
    assert "already exists: pass --resume" in capsys.readouterr().err
    assert list((tmp_path / "r").iterdir()) == []


# ------------------------------------------------------------------ one-line argument errors
@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_epochs_below_one_is_an_error(tmp_path, capsys, epochs):
    assert main(["train", "--epochs", epochs, "--model", "mlp", "--T", "2", "--no-progress",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"snn train: error: --epochs must be ≥ 1, got {epochs}"
    assert not (tmp_path / "r").exists()


def test_cuda_device_without_cuda_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "--device", "cuda", "--model", "mlp", "--T", "2", "--epochs", "1", "--no-progress",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("snn train: error: --device: device 'cuda' is not available") and "\n" not in err
    assert not (tmp_path / "r").exists()
    assert main(["evaluate", str(tmp_path / "any.pt"), "--device", "cuda:1"]) == 2
    assert capsys.readouterr().err.startswith("snn evaluate: error: --device: device 'cuda:1' is not available")


@pytest.mark.parametrize("command", ["evaluate", "energy"])
def test_other_checkpoints_are_a_checkpoint_error(tmp_path, capsys, command):
    torch.save({"model": {}, "kind": "iir-stage"}, tmp_path / "stage.pt")
    assert main([command, str(tmp_path / "stage.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"snn {command}: error: {tmp_path / 'stage.pt'}: not a `snn train` checkpoint")
    assert "expected a checkpoint.pt written by `snn train`" in err and "Traceback" not in err


def test_failed_download_is_a_one_line_error_naming_the_url(tmp_path, capsys, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert main(["train", "--dataset", "nmnist", "--root", str(tmp_path / "dl"), "--download", "--epochs", "1",
                 "--no-progress", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("snn train: error: nmnist: could not download https://") and "Name or service" in err
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------ learning rate of --resume --epochs N
def _lrs(out):
    return [e["lr"] for e in json.loads((out / "metrics.json").read_text())["epochs"]]


def test_metrics_record_the_rate_each_epoch_trained_with(tiny_folder, tmp_path):
    out = tmp_path / "run"
    assert _train(tiny_folder, out, "--epochs", "2") == 0
    # cosine over 2 epochs from --lr 5e-3: epoch 1 at 5e-3, epoch 2 at 2.5e-3 (was 2.5e-3, 0: the next epoch's)
    assert _lrs(out) == pytest.approx([5e-3, 2.5e-3], rel=1e-9)


def test_resume_extending_a_finished_run_trains_on(tiny_folder, tmp_path):
    out = tmp_path / "run"
    assert _train(tiny_folder, out, "--epochs", "1") == 0
    before = load_checkpoint(out / "checkpoint.pt")["model"]
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 0
    after = load_checkpoint(out / "checkpoint.pt")
    assert after["epoch"] == 2
    # the 1-epoch plan had run out (its rate was 0 and would have climbed back up, so epoch 2 left the
    # weights as they were): epoch 2 continues at the rate of the plan's last epoch, down to 0 after it
    assert _lrs(out) == pytest.approx([5e-3, 5e-3], rel=1e-9)
    assert max(float((before[k].float() - after["model"][k].float()).abs().max()) for k in before) > 0
    # extended again: a new cosine from that rate over epochs 3-4
    assert main(["train", "--out", str(out), "--resume", "--epochs", "4", "--no-progress"]) == 0
    assert _lrs(out) == pytest.approx([5e-3, 5e-3, 5e-3, 2.5e-3], rel=1e-9)


def test_resume_with_another_epoch_count_continues_the_cosine(tiny_folder, tmp_path, monkeypatch):
    import math
    import shutil
    cut = tmp_path / "cut"
    _interrupted_after_first_epoch(tiny_folder, cut, monkeypatch)
    shutil.copytree(cut, tmp_path / "short")
    nxt = 5e-3 * (1 + math.cos(math.pi / 3)) / 2    # the 3-epoch plan's rate for epoch 2
    # extended 3 → 4: from that rate down a cosine to 0 after epoch 4 (no jump, never rising)
    assert main(["train", "--out", str(cut), "--resume", "--epochs", "4", "--no-progress"]) == 0
    assert _lrs(cut) == pytest.approx([5e-3, nxt, nxt * 0.75, nxt * 0.25], rel=1e-9)
    # shortened 3 → 2: the last epoch trains at that rate, the cosine ends after it
    assert main(["train", "--out", str(tmp_path / "short"), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert _lrs(tmp_path / "short") == pytest.approx([5e-3, nxt], rel=1e-9)
    assert load_checkpoint(tmp_path / "short" / "checkpoint.pt")["optimizer"]["param_groups"][0]["lr"] == 0


def test_resume_below_the_epochs_trained_is_an_error(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(tiny_folder, out, "--epochs", "2") == 0
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--epochs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"snn train: error: --epochs 1 is below the 2 epochs the run in {out} has already trained: "
                   "pass --epochs 2 or more")
    assert (out / "checkpoint.pt").read_bytes() == before


# ------------------------------------------------------------------ more one-line argument errors
@pytest.mark.parametrize("fraction", ["1.5", "0", "-0.2"])
def test_val_fraction_is_checked_with_an_official_test_split_too(tiny_folder, tmp_path, capsys, fraction):
    # --test-data is the official test split: --val-fraction is not used, but a bad value is still an error
    assert _train(tiny_folder, tmp_path / "r", "--test-data", str(tiny_folder), "--epochs", "1",
                  "--val-fraction", fraction) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"snn train: error: --val-fraction must be in (0, 1), got {float(fraction)}"
    assert not (tmp_path / "r").exists()


def test_convert_with_an_unavailable_device_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from snn.conversion.io import resolve_factory
    factory = "snn.models.vgg:VGG"
    kwargs = dict(cfg=[4, "M", 8, "M"], in_channels=2, num_classes=2, pool_size=2, hidden=8, pool="avg")
    torch.manual_seed(0)
    torch.save(resolve_factory(factory)(**kwargs).state_dict(), tmp_path / "ann.pt")
    g = torch.Generator().manual_seed(0)
    torch.save({"x": torch.rand(8, 2, 8, 8, generator=g), "y": torch.randint(0, 2, (8,), generator=g)},
               tmp_path / "data.pt")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        assert main(["convert", str(tmp_path / "ann.pt"), "--model", factory, "--model-args", json.dumps(kwargs),
                     "--calibration", str(tmp_path / "data.pt"), "--T-max", "2", "--backend", "torch",
                     "--device", device, "--out", str(tmp_path / "conv"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()       # was a traceback: Torch not compiled with CUDA enabled
        assert err.startswith(f"snn convert: error: --device: device '{device}' is not available") and "\n" not in err
        assert not (tmp_path / "conv").exists()
