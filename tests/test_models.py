import pytest
import torch

from snn.models import PRESETS, build_model, make_neuron
from snn.neurons import IF, PLIF


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_map_time_first_inputs(name):
    model = build_model(name, num_classes=7)
    x = torch.rand(3, 2, 140) if name == "shd-delays" else torch.rand(3, 2, 2, 34, 34)   # SHD: 140 channels
    out = model(x)
    assert out.shape == (3, 2, 7)
    out.mean(0).sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_input_checks_name_the_expected_shape():
    conv = build_model("conv", T=4)
    with pytest.raises(ValueError, match="T=4"):
        conv(torch.rand(3, 2, 2, 34, 34))
    with pytest.raises(ValueError, match=r"\[T, B, 2, 34, 34\]"):
        conv(torch.rand(4, 2, 2, 32, 32))
    mlp = build_model("mlp", in_features=10)
    with pytest.raises(ValueError, match="in_features=10"):
        mlp(torch.rand(4, 2, 11))


def test_unknown_names():
    with pytest.raises(ValueError, match="valid presets"):
        build_model("resnet1000")
    with pytest.raises(ValueError, match="valid neurons"):
        make_neuron("hh")
    assert isinstance(make_neuron("if", tau=3.0), IF)
    assert isinstance(build_model("conv-plif").features[1], PLIF)
