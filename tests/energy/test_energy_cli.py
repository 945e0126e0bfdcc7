"""`snn energy CHECKPOINT` end to end on a tiny checkpoint."""
import json

from snn.cli import main


def test_snn_energy_on_a_checkpoint(event_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(event_folder), "--T", "4", "--model", "mlp", "--epochs", "1",
                 "--batch-size", "8", "--backend", "torch", "--out", str(run), "--no-progress",
                 "--cache-dir", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    out = tmp_path / "energy"
    assert main(["energy", str(run / "checkpoint.pt"), "--max-samples", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "layers.1" in text and "total" in text and "ANN" in text
    d = json.loads((out / "energy.json").read_text())
    assert d["summary"]["samples"] == 3 and d["summary"]["timesteps"] == 4
    assert d["data"]["frame_shape"] == [4, 2, 16, 16] and d["checkpoint"].endswith("checkpoint.pt")
    assert d["energy_model"]["name"] == "cmos45" and d["summary"]["energy_pj"] > 0
    assert (out / "energy_layers.png").stat().st_size > 0 and (out / "energy_timesteps.png").stat().st_size > 0
    assert main(["energy", str(run / "checkpoint.pt"), "--max-samples", "3", "--energy-model", "loihi",
                 "--events-as-spikes"]) == 0
    assert "'loihi'" in capsys.readouterr().out


def test_snn_energy_errors_and_model_list(tmp_path, capsys):
    assert main(["energy", "--list-energy-models"]) == 0
    assert "Horowitz" in capsys.readouterr().out
    assert main(["energy", str(tmp_path / "missing.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["energy"]) == 2
    assert main(["energy", str(tmp_path / "x.pt"), "--energy-model", "abacus"]) == 2
    assert "unknown energy model 'abacus'" in capsys.readouterr().err
