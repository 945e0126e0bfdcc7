"""Energy models as data: the published constants, the formula, user models."""
import json

import pytest

from snn.energy import ENERGY_MODELS, EnergyModel, get_energy_model, register_energy_model
import snn.energy.hardware as hardware


def test_default_cmos45_constants_horowitz_2014():
    m = get_energy_model("cmos45")
    assert (m.e_mac, m.e_ac, m.e_sop) == (4.6, 0.9, 0.9)
    assert "Horowitz" in m.citation and "ISSCC 2014" in m.citation
    assert get_energy_model("cmos45-synaptic").e_neuron_update == 0.0


def test_loihi_constants_davies_2018():
    m = get_energy_model("loihi")
    assert (m.e_sop, m.e_neuron_update, m.e_spike) == (23.6, 52.0, 1.7)
    assert "Davies" in m.citation and "IEEE Micro" in m.citation


def test_energy_formula():
    m = EnergyModel("toy", e_sop=1.0, e_mac=10.0, e_ac=0.5, e_neuron_update=2.0, e_spike=3.0)
    e = m.energy({"sops": 100, "macs": 2, "acs": 4, "membrane_updates": 5, "spikes": 7})
    assert e == {"sops": 100.0, "macs": 20.0, "acs": 2.0, "membrane_updates": 10.0, "spikes": 21.0}


def test_user_models_by_object_mapping_json_and_registration(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "ENERGY_MODELS", dict(ENERGY_MODELS))
    d = {"name": "mychip", "e_sop": 2.0, "e_mac": 3.0, "e_ac": 1.0, "citation": "my paper"}
    assert get_energy_model(d).e_sop == 2.0
    p = tmp_path / "chip.json"
    p.write_text(json.dumps(d))
    assert get_energy_model(str(p)) == EnergyModel(**d)
    assert get_energy_model(EnergyModel(**d)).to_dict()["citation"] == "my paper"
    register_energy_model(EnergyModel(**d))
    assert get_energy_model("mychip").e_mac == 3.0
    with pytest.raises(ValueError, match="exists"):
        register_energy_model(EnergyModel(**{**d, "e_mac": 4.0}))


def test_bad_models_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="e_sop must be a finite number"):
        EnergyModel("x", e_sop=-1, e_mac=1, e_ac=1)
    with pytest.raises(ValueError, match="unknown fields"):
        EnergyModel.from_dict({"name": "x", "e_sop": 1, "e_mac": 1, "e_ac": 1, "e_flop": 2})
    with pytest.raises(ValueError, match="missing fields"):
        EnergyModel.from_dict({"name": "x", "e_sop": 1})
    with pytest.raises(ValueError, match="registered models"):
        get_energy_model("gpu")
    with pytest.raises(FileNotFoundError):
        get_energy_model(str(tmp_path / "none.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not an energy model"):
        get_energy_model(str(bad))
