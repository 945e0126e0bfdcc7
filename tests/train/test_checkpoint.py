import os

import pytest
import torch

from snn.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_round_trip_loads_with_weights_only(tmp_path):
    p = tmp_path / "ck.pt"
    state = {"model": {"w": torch.arange(3.0)}, "epoch": 2, "config": {"lr": 1e-3, "name": "x"}}
    save_checkpoint(state, p)
    assert torch.load(p, weights_only=True)["epoch"] == 2
    assert torch.equal(load_checkpoint(p)["model"]["w"], torch.arange(3.0))


def test_a_run_folder_stands_for_its_checkpoint(tmp_path):
    # `--checkpoint runs/x` (README) as well as runs/x/checkpoint.pt
    save_checkpoint({"model": {"w": torch.ones(2)}}, tmp_path / "checkpoint.pt")
    assert torch.equal(load_checkpoint(tmp_path)["model"]["w"], torch.ones(2))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="folder without checkpoint.pt"):
        load_checkpoint(tmp_path / "empty")


def test_interrupted_save_keeps_the_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "ck.pt"
    save_checkpoint({"model": {}, "epoch": 1}, p)

    def broken(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"model": {}, "epoch": 2}, p)
    monkeypatch.undo()
    assert load_checkpoint(p)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ck.pt"]


def test_corrupt_or_foreign_files_raise_naming_the_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save([1, 2], other)
    with pytest.raises(CheckpointError, match="not an snn checkpoint"):
        load_checkpoint(other)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("state, what", [
    ({"format": 1, "kind": "snn.latency.iir-stage", "config": {"schedule": [5, 1]}, "stage": 1, "T": 1,
      "model": {}, "result": {}, "extra": {}}, r"a `snn compress` stage checkpoint \(stage 2, T=1; .*compress\.json"),
    ({"format": 1, "kind": "snn.latency.iir-progress", "config": {}, "stage": 0, "model": {}},
     r"a `snn compress` progress file"),
    ({"model": {}, "kind": "iir-stage"}, r"kind 'iir-stage', with entries 'kind', 'model' but no 'config', "
                                         r"'model_kwargs'"),
    ({"model": {}, "history": []}, r"with entries 'history', 'model' but no 'config', 'model_kwargs'"),
    ({"model": {}, "config": {"lr": 1}, "model_kwargs": {}}, r"with entries .* but no model preset in 'config'"),
])
def test_train_checkpoint_other_files_raise_saying_what_they_are(tmp_path, state, what):
    from snn.train import load_train_checkpoint
    p = tmp_path / "other.pt"
    save_checkpoint(state, p)
    with pytest.raises(CheckpointError, match=rf"other\.pt: not a `snn train` checkpoint \({what}.*\); expected a "
                                              r"checkpoint\.pt written by `snn train`"):
        load_train_checkpoint(p)


def test_train_checkpoint_accepts_what_snn_train_writes(tmp_path):
    from snn.train import load_train_checkpoint
    p = tmp_path / "checkpoint.pt"
    save_checkpoint({"format": 1, "config": {"model": "mlp"}, "model_kwargs": {"in_features": 4}, "model": {}}, p)
    assert load_train_checkpoint(p)["config"]["model"] == "mlp"
