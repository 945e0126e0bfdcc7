"""``snn convert`` and the converted-SNN file."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import tonic

from snn.cli import main
from snn.conversion import convert
from snn.conversion.io import load_ann, load_converted, resolve_factory
from snn.encoders import direct

FACTORY = "snn.models.vgg:VGG"
KWARGS = dict(cfg=[4, "M", 8, "M"], in_channels=2, num_classes=2, pool_size=2, hidden=8, pool="avg")


@pytest.fixture
def ann_file(tmp_path):
    torch.manual_seed(0)
    model = resolve_factory(FACTORY)(**KWARGS).eval()
    path = tmp_path / "ann.pt"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture
def tensor_data(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 2, 8, 8, generator=g)
    y = torch.randint(0, 2, (40,), generator=g)
    path = tmp_path / "data.pt"
    torch.save({"x": x, "y": y}, path)
    return x, y, path


def test_convert_command_writes_snn_report_and_plot(ann_file, tensor_data, tmp_path, capsys):
    model, ck = ann_file
    x, y, data = tensor_data
    out = tmp_path / "run"
    rc = main(["convert", str(ck), "--model", FACTORY, "--model-args", json.dumps(KWARGS), "--calibration",
               str(data), "--test-data", str(data), "--T-max", "16", "--backend", "torch", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    assert "ANN" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["conversion.json", "conversion.png", "snn.pt"]
    rep = json.loads((out / "conversion.json").read_text())
    assert rep["T"] == [1, 2, 4, 8, 16] and rep["n_samples"] == 40
    assert rep["ann_accuracy"] == pytest.approx(float((model(x).argmax(1) == y).float().mean()))
    assert rep["model"] == {"factory": FACTORY, "factory_kwargs": KWARGS}
    # the saved SNN reloads (weights_only) and behaves like a fresh conversion
    loaded = load_converted(out / "snn.pt")
    fresh = convert(model, x, backend="torch")
    torch.testing.assert_close(loaded(direct(x[:5], 6)), fresh(direct(x[:5], 6)))


def test_factory_stored_in_checkpoint_and_bad_model(tmp_path, tensor_data, capsys):
    _, _, data = tensor_data
    model = resolve_factory(FACTORY)(**KWARGS)
    ck = tmp_path / "tagged.pt"
    torch.save({"model": model.state_dict(), "factory": FACTORY, "factory_kwargs": KWARGS}, ck)
    loaded, spec = load_ann(ck)
    assert spec == {"factory": FACTORY, "factory_kwargs": KWARGS} and not loaded.training
    assert main(["convert", str(ck), "--calibration", str(data), "--T-max", "2", "--out", str(tmp_path / "o")]) == 0
    assert "no --test-data" in capsys.readouterr().out
    assert main(["convert", str(ck), "--model", "snn.models:nope", "--calibration", str(data)]) == 2
    assert "no attribute 'nope'" in capsys.readouterr().err
    assert main(["convert", str(ck), "--model", "snn.models:resnet20", "--calibration", str(data)]) == 2
    assert "do not fit" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing.pt"), "--model", FACTORY, "--calibration", str(data)]) == 2


def test_event_folder_calibration(ann_file, tmp_path):
    """Event recordings → one accumulated [2, H, W] frame per sample (sensor size inferred)."""
    _, ck = ann_file
    rng = np.random.default_rng(0)
    root = tmp_path / "events"
    for label in (0, 1):
        (root / f"c{label}").mkdir(parents=True)
        for i in range(6):
            ev = np.zeros(200, dtype=tonic.io.events_struct)
            ev["x"], ev["y"] = rng.integers(0, 4, 200) + 4 * label, rng.integers(0, 8, 200)
            ev["t"], ev["p"] = np.sort(rng.integers(0, 10_000, 200)), rng.integers(0, 2, 200).astype(bool)
            np.save(root / f"c{label}" / f"{i}.npy", ev)
    out = tmp_path / "run"
    rc = main(["convert", str(ck), "--model", FACTORY, "--model-args", json.dumps(KWARGS), "--calibration",
               str(root), "--test-data", str(root), "--input-scale", "0.1", "--T-max", "4", "--out", str(out),
               "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert rc == 0
    assert json.loads((out / "conversion.json").read_text())["n_samples"] == 12


def test_model_factory_from_a_module_in_the_current_folder(tmp_path, monkeypatch):
    """`snn convert --model mypkg.nets:make` from the folder holding mypkg/, as under `python -m`."""
    import sys
    pkg = tmp_path / "snn_user_pkg_cwd"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text("import torch\n\ndef make(width=3):\n    return torch.nn.Linear(2, width)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert resolve_factory("snn_user_pkg_cwd.nets:make")(width=4).out_features == 4
    with pytest.raises(ValueError, match="cannot import module 'snn_user_pkg_nowhere'"):
        resolve_factory("snn_user_pkg_nowhere:make")
