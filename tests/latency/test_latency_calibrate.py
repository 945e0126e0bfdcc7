"""Threshold calibration: oracle bounds, Pareto front, choice of θ, files."""
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snn.latency import ConfidenceTrace, calibrate, calibrate_threshold, pareto_front



def _trace(pred, labels, conf=None):
    pred = torch.as_tensor(pred)
    conf = torch.full(pred.shape, 0.5, dtype=torch.float64) if conf is None else torch.as_tensor(conf).double()
    return ConfidenceTrace(conf, pred, torch.as_tensor(labels), 1.0, "sum")


def test_oracle_by_hand():
    # one sample per column, label 1; T = 5
    pred = [[0, 1, 1, 0, 1],
            [1, 1, 0, 0, 1],
            [0, 1, 1, 1, 1],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 0, 0]]
    tr = _trace(pred, [1, 1, 1, 1, 1])
    lat, ok = tr.oracle("stays_correct")
    # columns: 0 correct from t=4 on; 1 from t=1; 2 from t=3; 3 and 4 wrong at T → T = 5
    assert lat.tolist() == [4, 1, 3, 5, 5] and ok.tolist() == [True, True, True, False, False]
    lat, ok = tr.oracle("first_correct")
    assert lat.tolist() == [2, 1, 1, 3, 1] and ok.tolist() == [True, True, True, True, True]
    with pytest.raises(ValueError, match="mode"):
        tr.oracle("best")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 20), st.integers(2, 4), st.integers(0, 2**31 - 1))
def test_oracle_never_exceeds_the_full_latency(T, N, C, seed):
    g = torch.Generator().manual_seed(seed)
    tr = _trace(torch.randint(0, C, (T, N), generator=g), torch.randint(0, C, (N,), generator=g))
    full_correct = tr.prediction[-1] == tr.labels
    for mode in ("stays_correct", "first_correct"):
        lat, ok = tr.oracle(mode)
        assert ((lat >= 1) & (lat <= T)).all()
        # it stops at a correct prediction wherever it claims to be correct
        assert (tr.prediction.gather(0, (lat - 1)[None])[0] == tr.labels)[ok].all()
    lat, ok = tr.oracle("stays_correct")
    assert torch.equal(ok, full_correct)
    correct = tr.prediction == tr.labels  # "stays correct": right at every step from the stop on
    assert all(bool(correct[lat[n] - 1:, n].all()) for n in range(N) if ok[n])
    assert all(not bool(correct[lat[n] - 2:, n].all()) for n in range(N) if ok[n] and lat[n] > 1)
    assert tr.oracle("first_correct")[1].double().mean() >= full_correct.double().mean()


def test_pareto_front():
    pts = [{"mean_latency": 5, "accuracy": 0.9}, {"mean_latency": 3, "accuracy": 0.8},
           {"mean_latency": 4, "accuracy": 0.7}, {"mean_latency": 6, "accuracy": 0.9},
           {"mean_latency": 2, "accuracy": 0.8}, {"mean_latency": 8, "accuracy": 0.95}]
    front = pareto_front(pts)
    assert [(p["mean_latency"], p["accuracy"]) for p in front] == [(2, 0.8), (5, 0.9), (8, 0.95)]


def _noisy_trace(seed=0, T=8, N=200):
    g = torch.Generator().manual_seed(seed)
    conf = torch.rand(T, N, generator=g, dtype=torch.float64).sort(0).values  # confidence grows with t
    labels = torch.randint(0, 3, (N,), generator=g)
    pred = labels.expand(T, N).clone()
    early_wrong = torch.rand(T, N, generator=g) < torch.linspace(0.5, 0.0, T)[:, None]
    pred[early_wrong] = (labels.expand(T, N)[early_wrong] + 1) % 3
    return ConfidenceTrace(conf, pred, labels, 1.0, "sum")


def test_calibrate_picks_the_fastest_threshold_within_the_drop(tmp_path):
    tr = _noisy_trace()
    T, N = tr.T, tr.n
    for drop in (0.0, 0.02, 0.1):
        cal = calibrate(tr, drop, criterion="accuracy", robust=False)
        assert cal.full_accuracy == pytest.approx(1.0)
        assert cal.accuracy >= cal.full_accuracy - drop - 1e-12
        better = [p for p in cal.sweep if p["mean_latency"] < cal.mean_latency]
        assert all(p["accuracy"] < cal.full_accuracy - drop for p in better)
        pred_t, lat_t = tr.decide(cal.threshold)
        assert float(lat_t.double().mean()) == pytest.approx(cal.mean_latency)
        # default: agreement with the full-length decision, at the chosen θ and every larger one
        rob = calibrate(tr, drop)
        above = [p for p in rob.sweep if p["threshold"] >= rob.threshold]
        assert all(1 - p["agreement"] <= drop + 1e-12 for p in above)
        below = [p for p in rob.sweep if p["threshold"] < rob.threshold]
        faster = [p for p in below if p["mean_latency"] < rob.mean_latency]
        if faster:  # reaching the fastest lower θ crosses a θ that breaks the criterion
            assert any(1 - p["agreement"] > drop for p in below if p["threshold"] >= faster[-1]["threshold"])
        assert rob.mean_latency >= cal.mean_latency
    assert calibrate(tr, 0.1).mean_latency < calibrate(tr, 0.0).mean_latency < T
    paths = cal.save(tmp_path)
    assert [p.name for p in paths] == ["dc_calibration.json", "dc_pareto.png", "dc_latency.png"]
    d = json.loads(paths[0].read_text())
    assert d["threshold"] == cal.threshold and sum(d["latency_histogram"]) == N and d["criterion"] == "accuracy"
    assert d["oracle"]["stays_correct"]["mean_latency"] <= T
    with pytest.raises(ValueError):
        calibrate(tr, -0.1)
    with pytest.raises(ValueError):
        calibrate(tr, 0.0, thresholds=[0.5, 1.2])
    with pytest.raises(ValueError, match="criterion"):
        calibrate(tr, 0.0, criterion="speed")


def test_robust_choice_ignores_a_lucky_dip():
    # 2 samples, label 0, T = 4. Sample 1 decides wrongly at t = 2 (θ < .6) and at t = 3 (θ < .7)
    # it is right again: θ ∈ [.6, .7) disagrees with the full run, θ < .55 agrees by luck (stops at t=1).
    conf = torch.tensor([[0.5, 0.55], [0.5, 0.6], [0.8, 0.7], [0.9, 0.8]], dtype=torch.float64)
    pred = torch.tensor([[0, 0], [0, 1], [0, 1], [0, 0]])
    tr = ConfidenceTrace(conf, pred, torch.tensor([0, 0]), 1.0, "sum")
    grid = [0.52, 0.58, 0.65, 0.75, 0.95]
    lucky = calibrate(tr, 0.0, grid, robust=False)
    safe = calibrate(tr, 0.0, grid)
    assert (lucky.threshold, lucky.mean_latency) == (0.52, 2.0) and (safe.threshold, safe.mean_latency) == (0.75, 3.5)
    assert safe.trace.decide(0.65)[0].tolist() == [0, 1]  # the region the robust choice stays above


def test_calibrate_threshold_on_a_network(two_blobs, small_snn):
    x, y = two_blobs
    model = small_snn(seed=2, classes=2)
    cal = calibrate_threshold(model, (x, y), 6, encode="direct", max_accuracy_drop=0.0)
    assert cal.trace.confidence.shape == (6, 160) and cal.T == 6
    dc = cal.dynamic_confidence(model)
    res = dc.evaluate((x, y), encode="direct")
    assert res.accuracy == pytest.approx(cal.accuracy, abs=1 / 160 + 1e-9)
    assert res.mean_latency == pytest.approx(cal.mean_latency, abs=0.05)
