"""The profiler: multi-step vs single-step execution, backends, time/sample attribution,
streams, hooks cleaned up, errors."""
import pytest
import torch
from torch import nn

import snn
from snn.energy import Profiler, profile
from snn.models import build_model
from snn.neurons import available_backends


def _mlp(backend="torch"):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), snn.LIF(tau=2.0, backend=backend), nn.Linear(8, 3),
                         snn.LeakyIntegrator(tau=4.0))


def _x(T=6, B=3, n=6, p=0.4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, n, generator=g) < p).float()


def _grids(report):
    return {l: {c: g.clone() for c, g in cs.items()} for l, cs in report.counts.grids.items()}


def test_single_step_execution_counts_like_multi_step():
    model, x = _mlp(), _x()
    multi = profile(model, x, measure_time=False)
    with torch.no_grad(), Profiler(model) as prof:
        snn.reset(model)
        for x_t in x:  # streaming, one timestep at a time, state on the modules
            model[3].step(model[2](model[1].step(model[0](x_t))))
        snn.reset(model)
    step = prof.report()
    g1, g2 = _grids(multi), _grids(step)
    assert g1.keys() == g2.keys()
    for layer in g1:
        for c in g1[layer]:
            assert torch.equal(g1[layer][c], g2[layer][c]), (layer, c)
    assert not hasattr(model[1], "__dict__") or "step" not in vars(model[1])  # wrapper removed


def test_a_forward_that_steps_internally_is_counted_once():
    class Stepper(nn.Module):
        def __init__(self):
            super().__init__()
            self.lif = snn.LIF(backend="torch")

        def forward(self, x):
            return torch.stack([self.lif.step(x_t) for x_t in x])

    model = nn.Sequential(nn.Linear(6, 4), Stepper())
    r = profile(model, _x(), measure_time=False)
    assert r.layer("1.lif")["membrane_updates"] == 6 * 4  # T · neurons per sample, not twice
    assert r.counts.grids["1.lif"]["membrane_updates"].shape == (6, 3)


@pytest.mark.skipif("numba" not in available_backends("cpu"), reason="numba CPU backend not available")
def test_every_backend_gives_the_same_counts():
    x = (torch.rand(6, 4, 2, 34, 34, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    reports = {}
    for backend in ("torch", "numba"):
        torch.manual_seed(0)
        m = build_model("conv", backend=backend, channels=(4, 8))
        reports[backend] = profile(m, x, measure_time=False)
    a, b = reports["torch"].totals(), reports["numba"].totals()
    assert a == b and a["spikes"] > 0


def test_counts_are_resolved_per_timestep_and_sample():
    torch.manual_seed(0)
    model = build_model("conv", backend="torch", channels=(4, 8), kernel_size=3)
    x = (torch.rand(6, 3, 2, 34, 34, generator=torch.Generator().manual_seed(2)) < 0.1).float()
    full = profile(model, x, measure_time=False)
    assert not full.counts.spread
    # one sample alone costs what its column says
    one = profile(model, x[:, 1:2], measure_time=False)
    assert one.energy_pj() == pytest.approx(float(full.per_sample_energy()[1]), rel=1e-12)
    # a causal network stopped after t steps costs what running only t steps costs
    for t in (1, 4):
        short = profile(model, x[:t], measure_time=False)
        stop = torch.full((3,), t)
        assert short.per_sample_energy() == pytest.approx(full.per_sample_energy(stop), rel=1e-12)
        assert float(full.energy_vs_timesteps()[t - 1]) == pytest.approx(short.energy_pj(), rel=1e-12)


def test_early_exit_samples_cost_less():
    model, x = _mlp(), _x(T=8, B=4)
    r = profile(model, x, measure_time=False)
    stop = torch.tensor([8, 2, 5, 1])
    e_full, e_stop = r.per_sample_energy(), r.per_sample_energy(stop)
    assert torch.all(e_stop[1:] < e_full[1:]) and e_stop[0] == e_full[0]
    s = r.early_exit(stop)
    assert s["mean_timesteps"] == 4.0 and 0 < s["saving"] < 1
    with pytest.raises(ValueError, match="stop_steps must lie in"):
        r.per_sample_energy(torch.tensor([0, 1, 1, 1]))
    with pytest.raises(ValueError, match="one per sample"):
        r.per_sample_energy([1, 2])


def test_chunked_stream_counts_like_one_sequence():
    model, x = _mlp(), _x(T=8)
    whole = profile(model, x, measure_time=False)
    with torch.no_grad(), Profiler(model) as prof, snn.stateful(model):
        model(x[:3])
        model(x[3:])
    chunked = prof.report()
    assert chunked.timesteps == 8 and chunked.samples == 3
    for layer, cs in whole.counts.grids.items():
        for c, g in cs.items():
            assert torch.equal(g, chunked.counts.grids[layer][c]), (layer, c)


def test_batches_and_max_samples():
    model, x = _mlp(), _x(B=10)
    y = torch.zeros(10, dtype=torch.long)
    data = [(x[:, :4], y[:4]), (x[:, 4:], y[4:])]
    r = profile(model, data, max_samples=7, measure_time=True)
    assert r.samples == 7 and r.accuracy is not None and r.wall_time_s > 0
    assert r.batch_size == 4
    ref = profile(model, x[:, :7], measure_time=False)
    assert r.totals() == pytest.approx(ref.totals())


def test_ann_input_is_batch_first_with_one_timestep():
    ann = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    r = profile(ann, torch.rand(5, 4) + 0.1, time_first=False, measure_time=False)
    assert r.timesteps == 1 and r.samples == 5
    assert r.totals()["macs"] == 4 * 3 + r.layer("2")["in_nonzero"] * 2
    assert r.ann_ops()["macs"] == 4 * 3 + 3 * 2


def test_uncounted_modules_are_reported(caplog):
    class Mystery(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(6))

        def forward(self, x):
            return x * self.w

    model = nn.Sequential(Mystery(), nn.Linear(6, 2))
    with caplog.at_level("WARNING", logger="snn"):
        r = profile(model, _x(), measure_time=False)
    assert r.counts.uncounted == ["0 (Mystery)"]
    assert "no counting rule" in caplog.text and "NOT counted" in r.table()


@pytest.mark.parametrize("preset,kw,shape", [
    ("conv", dict(in_channels=2, num_classes=10), (4, 2, 2, 34, 34)),
    ("mlp2", dict(in_features=40, num_classes=5), (4, 2, 40)),
    ("shd-delays", dict(in_features=700, num_classes=20), (6, 2, 700)),
])
def test_every_layer_of_the_presets_has_a_rule(preset, kw, shape, caplog):
    model = build_model(preset, **kw).eval()
    with caplog.at_level("WARNING", logger="snn"):
        r = profile(model, (torch.rand(shape) < 0.3).float(), measure_time=False)
    assert r.counts.uncounted == [] and "no counting rule" not in caplog.text


def test_hooks_are_removed_after_profiling():
    model = _mlp()
    profile(model, _x(), measure_time=False)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all("step" not in vars(m) for m in model.modules())


def test_bad_arguments_are_named():
    model = _mlp()
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        profile("model", _x())
    with pytest.raises(TypeError, match="data must be"):
        profile(model, 3.0)
    with pytest.raises(ValueError, match="unknown energy model 'tpu'"):
        profile(model, _x(), energy_model="tpu")
    with pytest.raises(ValueError, match="graded_inputs"):
        profile(model, _x(), graded_inputs="spikes")
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        profile(model, torch.zeros(5))
    with pytest.raises(ValueError, match="no samples"):
        profile(model, [])


def test_accuracy_reads_a_converted_network_at_its_last_step():
    """A converted network outputs the running sum V[t]; its prediction is argmax V[T] (as in
    conversion_report and Dynamic Confidence), not the argmax of the time-mean of V[t], which
    over-weights early steps: here class 1 leads only from t = 2 on, and wins at T."""
    ann = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)).eval()
    with torch.no_grad():
        ann[0].weight.copy_(torch.eye(2))
        ann[2].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.2]]))
        ann[0].bias.zero_(), ann[2].bias.zero_()
    net = snn.convert(ann, torch.ones(1, 2), backend="torch")          # θ = 1 for both neurons
    x, y = torch.tensor([[0.5, 0.45]]), torch.tensor([1])
    seq = x.unsqueeze(0).expand(8, -1, -1)
    with torch.no_grad():
        out = net(seq)
    assert out[-1].argmax(1).item() == 1 and out.mean(0).argmax(1).item() == 0
    assert profile(net, (seq, y), measure_time=False).accuracy == 1.0
    assert profile(net, (seq, y), measure_time=False, readout="cumulative").accuracy == 1.0
    assert profile(net, (seq, y), measure_time=False, readout="sum").accuracy == 0.0


def test_accuracy_of_a_plain_snn_is_the_mean_readout():
    model, x = _mlp(), _x(T=10, B=16)
    with torch.no_grad():
        snn.reset(model)
        out = model(x)
    y = out.mean(0).argmax(1)                       # labels = the mean-readout prediction
    assert (out[-1].argmax(1) != y).any()           # the last step alone would predict otherwise
    assert profile(model, (x, y), measure_time=False).accuracy == 1.0
    assert profile(model, (x, y), measure_time=False, readout="cumulative").accuracy < 1.0
    with pytest.raises(ValueError, match="readout"):
        profile(model, (x, y), readout="last")


def test_profiler_reentered_after_exit_accumulates_and_cannot_nest():
    model, x = _mlp(), _x()
    prof = Profiler(model)
    for _ in range(2):
        with torch.no_grad(), prof:
            model(x)
            prof.end_batch()
    assert prof.counts().samples == 2 * x.shape[1]
    with prof, pytest.raises(RuntimeError, match="already active"):
        prof.__enter__()
    assert all(not m._forward_hooks for m in model.modules())
