"""Streaming inference equals running the whole binned sequence at once; Dynamic Confidence
decides at the same step as the batched runner."""
import numpy as np
import pytest
import torch
import tonic

from snn.datasets import FrameSpec
from snn.latency import DynamicConfidence
from snn.models import build_model
from snn.streaming import StreamingClassifier, classify_stream, slice_events

SENSOR = (12, 12, 2)
W = 5_000  # µs per packet / training bin


def _events(n=3000, seed=0, span=60_000, gap=(20_000, 32_000)):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, span, n))
    t = t[(t < gap[0]) | (t >= gap[1])]             # a silent stretch: empty packets
    ev = np.zeros(len(t), dtype=tonic.io.events_struct)
    ev["t"] = t
    ev["x"] = rng.integers(0, SENSOR[0], len(t))
    ev["y"] = rng.integers(0, SENSOR[1], len(t))
    ev["p"] = rng.integers(0, 2, len(t)).astype(bool)
    return ev


def _model():
    torch.manual_seed(0)
    return build_model("conv", in_channels=2, num_classes=5, input_size=12, backend="torch").eval()


def test_slices_cover_every_event_once_in_order_with_empty_windows():
    ev = _events()
    packets = list(slice_events(ev, W))
    assert sum(len(p) for p in packets) == len(ev)
    assert np.array_equal(np.concatenate(packets)["t"], ev["t"])
    assert any(len(p) == 0 for p in packets)
    for k, p in enumerate(packets):
        assert np.all((p["t"] >= ev["t"][0] + k * W) & (p["t"] < ev["t"][0] + (k + 1) * W))
    with pytest.raises(ValueError, match="time order"):
        list(slice_events(ev[::-1], W))
    with pytest.raises(ValueError, match="time_window"):
        list(slice_events(ev, 0))


def test_streaming_equals_the_whole_sequence_at_once():
    ev, model = _events(), _model()
    packets = list(slice_events(ev, W))
    T = len(packets)
    frames = torch.from_numpy(FrameSpec(SENSOR, time_window=W, T=T)(ev).astype(np.float32))   # [T, 2, 12, 12]
    with torch.no_grad():
        out = model(frames[:, None])                                             # [T, 1, 5]
    acc = out.cumsum(0)[:, 0]
    with StreamingClassifier(model, SENSOR, max_steps=T) as clf:
        for t, p in enumerate(packets):
            d = clf.feed(p)
            assert d.step == t + 1 and d.prediction == int(acc[t].argmax())
            torch.testing.assert_close(d.scores, acc[t] / T, rtol=1e-5, atol=1e-6)
    assert d.decided                                                             # max_steps reached
    with pytest.raises(ValueError, match="inside"):
        clf.feed(packets[0])


def test_dynamic_confidence_stops_where_the_batched_runner_stops():
    ev, model = _events(seed=1), _model()
    packets = list(slice_events(ev, W))
    T = len(packets)
    frames = torch.from_numpy(FrameSpec(SENSOR, time_window=W, T=T)(ev).astype(np.float32))
    with torch.no_grad():
        conf = torch.softmax(model(frames[:, None]).cumsum(0)[:, 0].double() / T, -1).max(-1).values
    theta = float(conf[T // 2])                     # a threshold first crossed inside the stream
    ref = DynamicConfidence(model, theta, max_T=T, scale=T).run(frames[:, None])
    d = classify_stream(model, iter(packets), SENSOR, threshold=theta, max_steps=T)
    assert d.step == int(ref.latency[0]) and d.prediction == int(ref.prediction[0])
    assert d.decided and d.confidence > theta or d.step == T


def test_bad_inputs():
    model = _model()
    with pytest.raises(ValueError, match="threshold"):
        StreamingClassifier(model, SENSOR, threshold=1.5)
    with StreamingClassifier(model, SENSOR) as clf:
        with pytest.raises(ValueError, match="frame must have shape"):
            clf.feed(torch.zeros(2, 5, 5))
        bad = _events(n=10)
        bad["x"][0] = 99
        with pytest.raises(ValueError, match="outside sensor_size"):
            clf.feed(bad)
        assert clf.feed(bad[:0]).step == 1          # an empty packet is a silent timestep


def test_numpy_scalars_are_numbers():
    # values computed with numpy (a window from ev["t"], a budget from an array) were refused
    # as "not a positive number"
    model = _model()
    ev = _events(n=50)
    packets = list(slice_events(ev, np.int64(5000)))
    assert len(packets) == len(list(slice_events(ev, 5000)))
    with StreamingClassifier(model, SENSOR, threshold=np.float32(0.9), max_steps=np.int64(3)) as clf:
        assert clf.max_steps == 3 and type(clf.max_steps) is int
    with pytest.raises(ValueError, match="max_steps"):
        StreamingClassifier(model, SENSOR, max_steps=np.float64(2.5))
    dc = DynamicConfidence(model, np.float64(0.8), max_T=np.int64(4), chunk=np.int32(2))
    assert (dc.max_T, dc.chunk) == (4, 2) and type(dc.max_T) is int


@pytest.mark.parametrize("scale", [0, -1, -2.5, float("inf"), float("nan"), True])
def test_scale_must_be_positive_and_finite(scale):
    # scale=-1 used to flip the decision to the argmin of O_t, scale=0 gave confidence nan
    model, packets = _model(), list(slice_events(_events(n=200), W))
    with pytest.raises(ValueError, match="scale must be a positive finite number"):
        StreamingClassifier(model, SENSOR, scale=scale)
    with pytest.raises(ValueError, match="scale must be a positive finite number"):
        classify_stream(model, packets, SENSOR, scale=scale, threshold=0.5)


@pytest.mark.parametrize("input_scale", [0.0, -0.1, float("nan"), float("inf")])
def test_input_scale_must_be_positive_and_finite(input_scale):
    with pytest.raises(ValueError, match="input_scale must be a positive finite number"):
        StreamingClassifier(_model(), SENSOR, input_scale=input_scale)


def test_legal_scales_are_kept():
    model = _model()
    assert StreamingClassifier(model, SENSOR, scale=np.float32(2.5)).scale == 2.5
    assert StreamingClassifier(model, SENSOR, max_steps=4).scale == 4.0     # default: max_steps
    assert StreamingClassifier(model, SENSOR).scale == 1.0


@pytest.mark.parametrize("time_window", [float("inf"), float("nan"), 0, -5.0, True])
def test_slice_events_time_window_must_be_positive_and_finite(time_window):
    # inf used to drop every event (one packet ending at nan), nan the same
    with pytest.raises(ValueError, match="time_window must be a positive finite number of µs"):
        list(slice_events(_events(n=50), time_window))
