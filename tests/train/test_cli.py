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


def test_resume_continues_and_matches_an_uninterrupted_run(tiny_folder, tmp_path, monkeypatch):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert _train(tiny_folder, full, "--epochs", "3") == 0
    # interrupt a 3-epoch run during its second epoch
    import snn.train.loop as loop
    real, calls = loop.train_epoch, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(loop, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_folder, cut, "--epochs", "3")
    monkeypatch.undo()
    assert load_checkpoint(cut / "checkpoint.pt")["epoch"] == 1
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
