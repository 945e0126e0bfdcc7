"""Reports: energy per layer and total, the ANN equivalent, table, JSON, PNG, comparisons."""
import json

import pytest
import torch
from torch import nn

import snn
from snn.energy import compare, get_energy_model, profile


@pytest.fixture(scope="module")
def report():
    torch.manual_seed(0)
    model = nn.Sequential(snn.TimeDistributed(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.AvgPool2d(2)),
                          snn.LIF(tau=2.0, v_threshold=0.2, backend="torch"), nn.Flatten(2), nn.Linear(4 * 4 * 4, 3),
                          snn.LeakyIntegrator())
    x = torch.rand(5, 6, 2, 8, 8, generator=torch.Generator().manual_seed(0)) * 2  # graded first layer
    y = torch.randint(0, 3, (6,), generator=torch.Generator().manual_seed(1))
    return profile(model, (x, y), label="toy")


def test_energy_is_the_weighted_sum_of_counts(report):
    m = get_energy_model("cmos45")
    t = report.totals()
    expected = 0.9 * t["sops"] + 4.6 * t["macs"] + 0.9 * t["acs"] + 4.6 * t["membrane_updates"]
    assert report.energy_pj() == pytest.approx(expected) and t["macs"] > 0 and t["sops"] > 0 and t["acs"] > 0
    assert sum(d["energy_pj"]["total"] for d in report.layers()) == pytest.approx(report.energy_pj())
    assert float(report.per_sample_energy().mean()) == pytest.approx(report.energy_pj())
    loihi = report.with_energy_model("loihi")
    assert loihi.energy_pj() == pytest.approx(23.6 * (t["sops"] + t["macs"] + t["acs"]) + 52 * t["membrane_updates"]
                                              + 1.7 * t["spikes"])
    assert loihi.totals() == t and m.name == "cmos45"


def test_ann_equivalent(report):
    ops = report.ann_ops()
    conv_syn = report.layer("0.0")["synapses"]
    # conv 3×3 pad 1 on 8×8: Σ fan-out per channel = (Σ per-dim)² = (2 + 6·3 + 2)² = 484
    assert conv_syn == 2 * 4 * 22 ** 2
    assert ops["macs"] == conv_syn + 64 * 3 and ops["acs"] == 4 * 64
    assert report.ann_energy_pj() == pytest.approx(4.6 * ops["macs"] + 0.9 * ops["acs"])


def test_table_json_and_plots(report, tmp_path):
    text = report.table()
    for s in ("0.0", "Conv2d", "LIF", "total", "ANN", "timesteps", "accuracy", "cmos45"):
        assert s in text, s
    report.save_json(tmp_path / "e.json")
    d = json.loads((tmp_path / "e.json").read_text())
    assert d["summary"]["energy_pj"] == pytest.approx(report.energy_pj())
    assert d["summary"]["samples"] == 6 and d["summary"]["timesteps"] == 5 and d["summary"]["label"] == "toy"
    assert d["energy_model"]["citation"].startswith("M. Horowitz")
    assert len(d["energy_vs_timesteps_pj"]) == 5 and d["energy_vs_timesteps_pj"][-1] == pytest.approx(
        report.energy_pj())
    assert [l["name"] for l in d["layers"]][:2] == ["0.0", "0.1"]
    assert d["summary"]["wall_ms_per_sample"] > 0 and d["options"]["fold_batchnorm"] is True
    for p in report.plot(tmp_path / "fig"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_compare_table(report):
    text = compare({"cmos45": report, "loihi": report.with_energy_model("loihi")})
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["name", "T", "acc"] and lines[2].startswith("cmos45")
    assert lines[3].startswith("loihi")


def test_memory_footprint(report):
    s = report.summary()
    model_params = 2 * 4 * 9 + 4 + 4 + 4 + 64 * 3 + 3  # conv w+b, BN w+b, linear w+b
    assert s["params"] == model_params
    assert report.layer("1")["state_bytes"] == 4 * 4 * 4 * 4  # 64 float32 membranes
    assert s["state_bytes_per_sample"] == 64 * 4 + 3 * 4
