"""IIR timestep compression: neuron preparation, exact stage initialisation, resume, thresholds."""
import json

import pytest
import torch
from torch import nn

import snn
from snn.latency import (compress_timesteps, match_firing_rates, neuron_parameters, prepare_for_iir,
                         rescale_thresholds, scale_thresholds)
from snn.latency.runs import PROGRESS, stage_file
from snn.models import MLPSNN
from snn.train import load_checkpoint
from snn.train.monitor import SpikeMonitor



def test_prepare_makes_threshold_and_leak_learnable_with_soft_reset():
    model = nn.Sequential(nn.Linear(4, 5), snn.LIF(beta=0.7, v_threshold=0.8, backend="torch"),
                          nn.Linear(5, 3), snn.IF(v_threshold=1.5, num_channels=3, v_init=0.75, backend="torch"),
                          snn.LeakyIntegrator())
    replaced = prepare_for_iir(model, if_beta=0.95)
    assert replaced == ["1", "3"]
    lif, if_ = model[1], model[3]
    assert isinstance(lif, snn.PLIF) and isinstance(if_, snn.PLIF)
    assert isinstance(lif.v_threshold, nn.Parameter) and lif.v_reset is None and lif.w.requires_grad
    assert lif.decay().item() == pytest.approx(0.7, abs=1e-6) and lif.v_threshold.item() == pytest.approx(0.8)
    assert if_.num_channels == 3 and if_.decay().tolist() == pytest.approx([0.95] * 3, abs=1e-6)
    assert if_.v_threshold.tolist() == pytest.approx([1.5] * 3) and if_.v_init.tolist() == pytest.approx([0.75] * 3)
    assert prepare_for_iir(model) == []  # idempotent
    p = neuron_parameters(model)
    assert p["1"]["beta"] == pytest.approx([0.7], abs=1e-6) and len(p["3"]["v_threshold"]) == 3
    # learn_leak=False keeps the neuron type and its leak; thresholds still learn
    m2 = nn.Sequential(snn.LIF(beta=0.6, backend="torch"))
    prepare_for_iir(m2, learn_leak=False)
    assert type(m2[0]) is snn.LIF and m2[0].beta.item() == pytest.approx(0.6)
    assert isinstance(m2[0].v_threshold, nn.Parameter) and m2[0].v_reset is None
    with pytest.raises(ValueError, match="no spiking layers"):
        prepare_for_iir(nn.Linear(2, 2))


def test_prepared_neuron_computes_what_the_original_did():
    torch.manual_seed(0)
    lif = snn.LIF(beta=0.8, v_threshold=0.7, v_reset=None, backend="torch", record_v=True)
    model = nn.Sequential(lif)
    x = torch.rand(6, 4, 5)
    before, v_before = lif(x), lif.v_seq
    prepare_for_iir(model)
    after = model(x)
    torch.testing.assert_close(model[0].v_seq, v_before, atol=1e-5, rtol=0)
    assert torch.equal(after, before)


def _data(two_blobs):
    x, y = two_blobs
    return (x[:120], y[:120]), (x[120:], y[120:])


def test_each_stage_starts_from_the_previous_stages_parameters_exactly(two_blobs, tmp_path, small_snn):
    train, val = _data(two_blobs)
    model = small_snn(seed=1, classes=2)
    starts = {}
    res = compress_timesteps(model, train, val, (3, 2, 1), epochs=2, lr=5e-3, batch_size=16, out=tmp_path,
                             on_stage_start=lambda i, T, m: starts.__setitem__(i, {k: v.clone() for k, v in
                                                                                   m.state_dict().items()}))
    assert [s["T"] for s in res.stages] == [3, 2, 1]
    for i in (1, 2):
        prev = load_checkpoint(tmp_path / stage_file(i - 1, (3, 2, 1)[i - 1]))["model"]
        assert prev.keys() == starts[i].keys()
        for k in prev:
            assert torch.equal(prev[k], starts[i][k]), k
    # the stage really trained: its saved parameters differ from its start
    last = load_checkpoint(tmp_path / stage_file(2, 1))["model"]
    assert any(not torch.equal(last[k], starts[2][k]) for k in last)
    assert res.stages[-1]["val_acc"] >= 0.9  # two bright features: separable at T = 1
    d = json.loads((tmp_path / "compress.json").read_text())
    assert [s["T"] for s in d["stages"]] == [3, 2, 1] and (tmp_path / "compress.png").stat().st_size > 0
    s = res.stages[0]
    assert s["neuron_updates_per_sample"] == 3 * 24 and 0 < s["firing_rate"] < 1
    assert s["spikes_per_sample"] == pytest.approx(s["firing_rate"] * 3 * 24)
    assert "T" in res.table() and not (tmp_path / PROGRESS).exists()
    # each epoch records the rate it trained with: the cosine from lr, halfway down at epoch 2 of 2
    assert [h["lr"] for h in d["stages"][0]["history"]] == pytest.approx([5e-3, 2.5e-3])


def test_resume_after_an_interruption_gives_the_uninterrupted_result(two_blobs, tmp_path, monkeypatch, small_snn):
    train, val = _data(two_blobs)
    kw = dict(epochs=(2, 2), lr=5e-3, batch_size=16, seed=3)
    full = compress_timesteps(small_snn(seed=1, classes=2), train, val, (2, 1), out=tmp_path / "full", **kw)
    import snn.latency.iir as iir
    real, calls = iir.train_epoch, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 4:  # second epoch of the second stage
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(iir, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compress_timesteps(small_snn(seed=1, classes=2), train, val, (2, 1), out=tmp_path / "cut", **kw)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "cut" / PROGRESS)["epoch"] == 1
    with pytest.raises(FileExistsError):
        compress_timesteps(small_snn(seed=1, classes=2), train, val, (2, 1), out=tmp_path / "cut", **kw)
    with pytest.raises(ValueError, match="lr"):
        compress_timesteps(small_snn(seed=1, classes=2), train, val, (2, 1), out=tmp_path / "cut", resume=True,
                           **{**kw, "lr": 1e-3})
    resumed = compress_timesteps(small_snn(seed=1, classes=2), train, val, (2, 1), out=tmp_path / "cut",
                                 resume=True, **kw)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert [s["val_acc"] for s in full.stages] == [s["val_acc"] for s in resumed.stages]
    assert [h["epoch"] for h in resumed.stages[1]["history"]] == [1, 2]


def test_fixed_T_models_and_bad_arguments(two_blobs, small_snn):
    train, val = _data(two_blobs)
    model = MLPSNN(in_features=6, num_classes=2, hidden=(8,), T=4, backend="torch")
    res = compress_timesteps(model, train, val, (4, 1), epochs=(0, 1), lr=1e-3)
    assert model.T == 1 and res.stages[0]["history"] == [] and len(res.stages[1]["history"]) == 1
    for bad in (dict(schedule=(2, 3)), dict(schedule=()), dict(epochs=(1, 2, 3)), dict(lr=0.0),
                dict(select="worst"), dict(threshold_rescale="max"), dict(threshold_rescale=-1.0)):
        kw = {"schedule": (2, 1), **bad}
        with pytest.raises(ValueError):
            compress_timesteps(small_snn(classes=2), train, val, kw.pop("schedule"), **kw)
    with pytest.raises(ValueError, match="resume"):
        compress_timesteps(small_snn(classes=2), train, val, (2, 1), resume=True)


def _rates(model, x):
    with SpikeMonitor(model) as mon, torch.no_grad():
        model(x)
    snn.reset(model)
    return mon.rates()


def test_threshold_rescaling_matches_firing_rates(two_blobs, small_snn):
    x, _ = two_blobs
    model = small_snn(seed=4, classes=2)
    prepare_for_iir(model)
    enc = snn.encoders.direct
    target = _rates(model, enc(x, 5))
    plain = _rates(model, enc(x, 1))
    factors = match_firing_rates(model, x, 5, 1, enc)
    matched = _rates(model, enc(x, 1))
    for name in target:
        assert abs(matched[name] - target[name]) <= abs(plain[name] - target[name]) + 1e-9
    assert abs(matched["1"] - target["1"]) < 0.02 and factors["1"] != 1.0
    th = model[3].v_threshold.item()
    scale_thresholds(model, 2.0)
    assert model[3].v_threshold.item() == pytest.approx(2 * th)
    assert rescale_thresholds(model, None, x, 5, 1, enc) == {}
    assert set(rescale_thresholds(model, 0.5, x, 5, 1, enc).values()) == {0.5}
    with pytest.raises(ValueError):
        scale_thresholds(model, 0.0)


def test_compress_a_converted_network(two_blobs):
    conversion = pytest.importorskip("snn.conversion")
    train, val = _data(two_blobs)
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(ann.parameters(), 1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(ann(train[0]), train[1]).backward()
        opt.step()
    net = conversion.convert(ann, train[0], backend="torch")
    assert snn.latency.detect_readout(net) == "cumulative"
    res = compress_timesteps(net, train, val, (4, 1), epochs=(1, 2), lr=2e-3, batch_size=16)
    layers = [m for m in net.modules() if isinstance(m, snn.neurons.BaseNeuron)]
    assert layers and all(isinstance(m, snn.PLIF) and isinstance(m.v_threshold, nn.Parameter) for m in layers)
    assert res.stages[0]["val_acc_before"] >= 0.9  # the conversion itself works at T = 4
    assert res.stages[-1]["val_acc"] >= 0.9 and res.stages[-1]["T"] == 1


@pytest.mark.parametrize("preset,kw,shape", [
    ("conv", dict(in_channels=2, num_classes=3), (2, 2, 34, 34)),
    ("mlp", dict(in_features=6, num_classes=3), (2, 6)),
    ("shd-delays", dict(in_features=12, num_classes=3, channel_bins=None, hidden=(8,), max_delay=2), (2, 12)),
])
def test_set_timesteps_moves_every_presets_fixed_T(preset, kw, shape):
    from snn.latency import set_timesteps
    from snn.models import build_model
    model = build_model(preset, T=5, **kw).eval()
    set_timesteps(model, 3)
    model(torch.zeros(3, *shape))  # accepted at the new T
    with pytest.raises(ValueError, match="T=3"):
        model(torch.zeros(5, *shape))
