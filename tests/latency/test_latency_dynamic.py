"""Dynamic Confidence: the termination rule by hand, finished samples leaving the batch, the stream."""
import math

import pytest
import torch
from torch import nn

import snn
from snn.latency import DynamicConfidence, UpdateCounter, record_trace



def _z():
    """Hand-written outputs z_t [T=3, B=3, C=2]."""
    return torch.tensor([
        [[1.0, 0.0], [0.0, 3.0], [0.5, 0.0]],
        [[1.0, 0.0], [0.0, 3.0], [-0.5, 0.0]],
        [[1.0, 0.0], [0.0, 3.0], [0.1, 0.0]],
    ])


def test_termination_rule_matches_a_hand_computed_example(scripted):
    # scale 1, θ = 0.8:  sample 0: O = [1,0] → c = σ(1) = .731; [2,0] → σ(2) = .881 > .8 → stops at t=2, class 0
    #                    sample 1: O = [0,3] → σ(3) = .953 → stops at t=1, class 1
    #                    sample 2: c = σ(.5)=.622, σ(0)=.5, σ(.1)=.525 → never → t = T = 3, argmax O_3 = class 0
    r = DynamicConfidence(scripted, threshold=0.8, max_T=3, scale=1.0, readout="sum").run(_z())
    assert r.latency.tolist() == [2, 1, 3]
    assert r.prediction.tolist() == [0, 1, 0]
    sig = lambda a: 1 / (1 + math.exp(-a))  # noqa: E731
    assert r.confidence.tolist() == pytest.approx([sig(2), sig(3), sig(0.1)], abs=1e-7)
    torch.testing.assert_close(r.scores, torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.1, 0.0]]))
    assert r.mean_latency == pytest.approx(2.0)
    # the fixed scale divides O_t: with s = 2 sample 0 needs σ(1.5) = .818 at t = 3
    r2 = DynamicConfidence(scripted, threshold=0.8, max_T=3, scale=2.0, readout="sum").run(_z())
    assert r2.latency.tolist() == [3, 1, 3]
    # a "cumulative" network outputs O_t itself: feeding the running sums gives the same decisions
    r3 = DynamicConfidence(scripted, threshold=0.8, max_T=3, scale=1.0, readout="cumulative").run(_z().cumsum(0))
    assert r3.latency.tolist() == r.latency.tolist() and r3.prediction.tolist() == r.prediction.tolist()


def test_the_rule_is_strict_and_theta_one_runs_everything(scripted):
    z = torch.zeros(4, 2, 2)  # c = 0.5 exactly at every step
    assert DynamicConfidence(scripted, 0.5, 4, scale=1.0).run(z).latency.tolist() == [4, 4]
    assert DynamicConfidence(scripted, 0.4999, 4, scale=1.0).run(z).latency.tolist() == [1, 1]
    big = torch.full((5, 3, 2), 50.0) * torch.tensor([1.0, 0.0])
    assert DynamicConfidence(scripted, 1.0, 5, scale=1.0).run(big).latency.tolist() == [5, 5, 5]


def test_readout_is_detected(scripted, small_snn):
    assert DynamicConfidence(small_snn(), 0.9, 4).readout == "sum"
    cum = nn.Sequential(nn.Linear(3, 2), snn.LeakyIntegrator(tau=float("inf")))
    assert DynamicConfidence(cum, 0.9, 4).readout == "cumulative"


def _theta(conf, lo=0.3, hi=0.7):
    """A θ between two recorded confidences (the widest gap in a quantile range): decisions do
    not then hinge on last-bit rounding, which differs between batch sizes."""
    c = conf.flatten().sort().values
    c = c[int(lo * len(c)):int(hi * len(c))]
    i = int((c[1:] - c[:-1]).argmax())
    return float(c[i] + c[i + 1]) / 2


def _inputs(B=24, T=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.2, 3.0, B)[None, :, None]  # weak to strong inputs: varied latencies
    return torch.rand(T, B, 6, generator=g) * scale


@pytest.mark.parametrize("chunk", [1, 3])
def test_finished_samples_leave_the_batch(chunk, small_snn):
    model, x = small_snn(), _inputs()
    T, B = x.shape[:2]
    th = _theta(record_trace(model, (x, torch.zeros(B, dtype=torch.long)), T).confidence, 0.5, 0.7)
    seen = []
    hook = model[1].register_forward_hook(lambda m, i, o: seen.append(o.shape[:2]))
    res = DynamicConfidence(model, th, T, chunk=chunk).run(x)
    hook.remove()
    assert 1 < res.latency.min() and res.latency.max() < T and len(set(res.latency.tolist())) >= 3
    # the first spiking layer saw exactly the samples still running at each step
    steps, t = [], 0
    for k, b in seen:
        assert b == int((res.steps_run > t).sum())  # samples that had not decided before this chunk
        steps.append(k)
        t += k
    assert t == int(res.steps_run.max()) and len(seen) == -(-t // chunk)
    # membrane updates: each sample's steps × 2 layers × 12 neurons; far fewer than for all T
    assert res.neuron_updates == int(res.steps_run.sum()) * 24
    assert res.full_neuron_updates == B * T * 24
    assert res.neuron_updates < (0.85 if chunk == 1 else 1.0) * res.full_neuron_updates
    if chunk == 1:
        assert torch.equal(res.steps_run, res.latency)
    else:
        assert (res.steps_run >= res.latency).all() and (res.steps_run - res.latency < chunk).all()


def test_runner_stream_and_offline_trace_decide_alike(small_snn):
    model, x = small_snn(seed=3), _inputs(seed=3)
    T, B = x.shape[:2]
    y = torch.zeros(B, dtype=torch.long)
    trace = record_trace(model, (x, y), T)
    th = _theta(trace.confidence)
    pred_off, lat_off = trace.decide(th)
    dc = DynamicConfidence(model, th, T)
    for chunk in (1, 4):
        dc.chunk = chunk
        r = dc.run(x)
        assert torch.equal(r.latency, lat_off) and torch.equal(r.prediction, pred_off)
    with dc.stream() as s:
        for t in range(T):
            st = s.step(x[t])
            assert st.t == t + 1 and st.done.tolist() == (lat_off <= t + 1).tolist()
        assert st.all_done
        assert torch.equal(s.result().latency, lat_off) and torch.equal(s.result().prediction, pred_off)
    assert all(getattr(m, "v", None) is None for m in model.modules())  # state reset on exit


def test_stream_drops_decided_samples_and_stops_computing(small_snn):
    model, x = small_snn(seed=3), _inputs(seed=3)
    T = x.shape[0]
    dc = DynamicConfidence(model, 0.0, T)  # everyone decides at t = 1
    with UpdateCounter(model) as c, dc.stream() as s:
        first = s.step(x[0])
        later = s.step(x[1])
    assert first.all_done and later.t == 1 and c.updates == x.shape[1] * 24


def test_stream_and_runner_errors(scripted):
    dc = DynamicConfidence(scripted, 0.9, 3)
    s = dc.stream()
    with pytest.raises(ValueError, match="inside"):
        s.step(torch.zeros(2, 2))
    with s:
        s.step(torch.zeros(2, 2))
        with pytest.raises(ValueError, match="started with"):
            s.step(torch.zeros(3, 2))
        with pytest.raises(ValueError, match="not every stream"):
            s.result()
    with pytest.raises(ValueError, match="max_T=3"):
        dc.run(torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match=r"\[k, B, C\]"):
        DynamicConfidence(nn.Flatten(0), 0.9, 2).run(torch.zeros(2, 3, 2))
    for kw in ({"threshold": 1.5}, {"threshold": 0.5, "max_T": 0}, {"threshold": 0.5, "scale": -1.0},
               {"threshold": 0.5, "readout": "mean"}, {"threshold": 0.5, "chunk": 0}):
        with pytest.raises(ValueError):
            DynamicConfidence(scripted, **{"max_T": 3, **kw})


def test_static_inputs_and_evaluate_with_labels(two_blobs, small_snn):
    x, y = two_blobs
    model = small_snn(seed=5)
    dc = DynamicConfidence(model, _theta(record_trace(model, (x[:20], y[:20]), 6, encode="direct").confidence), 6)
    a = dc.run_static(x[:20])
    b = dc.run(snn.encoders.direct(x[:20], 6))
    assert torch.equal(a.latency, b.latency) and torch.equal(a.prediction, b.prediction)
    assert 1 < len(set(a.latency.tolist()))  # samples leave at different steps
    dc.chunk = 4
    c = dc.run_static(x[:20])
    assert torch.equal(a.latency, c.latency) and torch.equal(a.prediction, c.prediction)
    dc.chunk = 1
    ev = dc.evaluate((x, y), encode="direct", batch_size=64)
    assert ev.n == 160 and ev.labels.tolist() == y.tolist()
    assert ev.accuracy == pytest.approx(float((ev.prediction == y).double().mean()))
    d = ev.to_dict(per_sample=True)
    assert sum(d["latency_histogram"]) == 160 and len(d["latency"]) == 160


def test_wall_time_comparison_runs_the_same_inputs_three_ways(two_blobs, small_snn):
    x, y = two_blobs
    model = small_snn(seed=5, classes=2)
    cal = snn.latency.calibrate_threshold(model, (x, y), 6, encode="direct")
    dc = cal.dynamic_confidence(model)
    t = snn.latency.compare_wall_time(dc, (x, y), encode="direct", batch_size=80, repeats=1)
    ev = dc.evaluate((x, y), encode="direct", batch_size=80)
    assert t["n"] == 160 and t["mean_latency"] == pytest.approx(ev.mean_latency)
    assert t["dc_accuracy"] == pytest.approx(ev.accuracy) and t["full_accuracy"] == pytest.approx(cal.full_accuracy)
    assert min(t["full_ms_per_sample"], t["dc_ms_per_sample"], t["stepwise_ms_per_sample"]) > 0
    assert t["wall_time_reduction"] == pytest.approx(1 - t["dc_ms_per_sample"] / t["full_ms_per_sample"])


@pytest.mark.parametrize("preset, kw, shape", [("mlp", dict(in_features=140, num_classes=20), (140,)),
                                               ("shd-delays", dict(), (140,)),
                                               ("conv", dict(input_size=8, in_channels=2, num_classes=3), (2, 8, 8))])
def test_presets_built_for_a_fixed_T_run_in_chunks(preset, kw, shape):
    # a preset built with T checks its input length; Dynamic Confidence feeds it chunk by
    # chunk and must lift that check for every preset (shd-delays raised "T=1 ... T=6 expected")
    from snn.models import build_model
    torch.manual_seed(0)
    model = build_model(preset, T=6, **kw).eval()
    x = torch.rand(6, 3, *shape)
    with torch.no_grad():
        whole = model(x).sum(0)
    for chunk in (1, 4):  # θ = 1: softmax never exceeds it, every sample runs all 6 steps
        r = DynamicConfidence(model, threshold=1.0, max_T=6, chunk=chunk, scale=1.0, readout="sum").run(x)
        assert (r.latency == 6).all() and (r.steps_run == 6).all()
        torch.testing.assert_close(r.scores, whole, rtol=1e-5, atol=1e-5)
    assert model.T == 6  # restored
