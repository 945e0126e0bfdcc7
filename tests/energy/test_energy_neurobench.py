"""Agreement with NeuroBench 2.x's SynapticOperations and ActivationSparsity, and the
documented definition differences (tested with and without NeuroBench installed)."""
import importlib.util

import pytest
import torch

from snn.energy import neurobench_metrics, profile
from snn.models import build_model


def _spikes(shape, p, seed):
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < p).float()


def _conv_model():
    torch.manual_seed(0)
    return build_model("conv", backend="torch", channels=(8, 16))


def _pruned_mlp():
    torch.manual_seed(0)
    model = build_model("mlp2", in_features=50, num_classes=4, hidden=(32, 16), backend="torch", dropout=0.0)
    lin = model.layers[1]
    with torch.no_grad():
        lin.weight[:, :10] = 0.0           # 10 inputs lose all 32 synapses
        lin.weight[:5, 10:20] = 0.0        # 10 inputs lose 5 of 32
        model.layers[1].weight.mul_(3.0)   # keep the network spiking
    return model


def test_documented_definitions_without_neurobench():
    """Dense = synapses × T; zero weights are synapses unless skip_zero_weights (NeuroBench)."""
    model = _pruned_mlp()
    x = _spikes((6, 5, 50), 0.3, 0)
    r = profile(model, x, measure_time=False)
    pruned = profile(model, x, measure_time=False, skip_zero_weights=True)
    lin = r.layer("layers.1")
    assert lin["dense_ops"] == lin["synapses"] * 6 == 50 * 32 * 6
    assert pruned.layer("layers.1")["synapses"] == 50 * 32 - 10 * 32 - 10 * 5
    # the difference is exactly: each input spike × the synapses its column lost
    spikes_per_input = x.sum((0, 1)).double() / 5
    lost = torch.zeros(50, dtype=torch.float64)
    lost[:10], lost[10:20] = 32, 5
    diff = lin["sops"] - pruned.layer("layers.1")["sops"]
    assert diff == pytest.approx(float((spikes_per_input * lost).sum()), rel=1e-12)
    assert r.activation_sparsity == pytest.approx(1 - r.firing_rate)


needs_neurobench = pytest.mark.skipif(
    importlib.util.find_spec("neurobench") is None or importlib.util.find_spec("snntorch") is None,
    reason="NeuroBench not installed (pip install --no-deps neurobench snntorch)")


@needs_neurobench
def test_conv_preset_sops_macs_and_sparsity_equal_neurobench():
    model = _conv_model()
    x = _spikes((8, 6, 2, 34, 34), 0.15, 1) * 2  # graded first layer: MACs; spiking later layers: SOPs
    ours = profile(model, x, measure_time=False).summary()
    theirs = neurobench_metrics(model, x, batch_size=4)
    assert theirs["samples"] == 6
    assert ours["sops"] == pytest.approx(theirs["Effective_ACs"], rel=1e-12) and ours["sops"] > 0
    assert ours["macs"] == pytest.approx(theirs["Effective_MACs"], rel=1e-12) and ours["macs"] > 0
    assert ours["dense_ops"] == pytest.approx(theirs["Dense"], rel=1e-12)
    assert ours["activation_sparsity"] == pytest.approx(theirs["ActivationSparsity"], rel=1e-9)


@needs_neurobench
def test_zero_weights_differ_from_neurobench_by_the_documented_amount():
    model = _pruned_mlp()
    x = _spikes((6, 5, 50), 0.3, 0)
    theirs = neurobench_metrics(model, x)
    default = profile(model, x, measure_time=False)
    skip = profile(model, x, measure_time=False, skip_zero_weights=True)
    assert skip.totals()["sops"] == pytest.approx(theirs["Effective_ACs"], rel=1e-12)
    assert default.totals()["sops"] > theirs["Effective_ACs"]
    # NeuroBench's Dense counts zero weights (all-ones copy) although its effective counts skip them
    assert default.totals()["dense_ops"] == pytest.approx(theirs["Dense"], rel=1e-12)
    assert skip.totals()["dense_ops"] < theirs["Dense"]


@needs_neurobench
def test_unfolded_batchnorm_macs_are_ours_only():
    model = _conv_model()
    x = _spikes((4, 3, 2, 34, 34), 0.2, 2)
    theirs = neurobench_metrics(model, x)
    unfolded = profile(model, x, measure_time=False, fold_batchnorm=False)
    bn = sum(d["macs"] for d in unfolded.layers() if d["type"].startswith("BatchNorm"))
    assert bn == 4 * (8 * 34 * 34 + 16 * 17 * 17)
    assert unfolded.totals()["macs"] - bn == pytest.approx(theirs["Effective_MACs"], rel=1e-12)
    assert unfolded.totals()["sops"] == pytest.approx(theirs["Effective_ACs"], rel=1e-12)
