"""Event-camera emulator: threshold crossings, reference memory, timing, polarity, saccades."""
import math

import numpy as np
import pytest
import tonic
import torch

from snn.encoders import EventCameraEmulator, place_in_sensor, saccade_path, shift_bilinear

C = 0.2
EPS = 0.1
EMU = EventCameraEmulator(contrast_threshold=C, log_eps=EPS)


def from_log(log_frames):
    """Intensities whose emulator log, ln(I + eps), equals ``log_frames``."""
    return np.exp(np.asarray(log_frames, dtype=np.float64)) - EPS


def times(n, step=1000):
    return np.arange(n, dtype=np.int64) * step


def test_constant_frames_give_no_events():
    rng = np.random.default_rng(0)
    frame = rng.random((6, 7))
    ev = EMU.from_frames(np.stack([frame] * 5), times(5))
    assert ev.size == 0 and ev.dtype == np.dtype(tonic.io.events_struct)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("sign", [1, -1])
def test_step_of_k_thresholds_gives_k_events_at_that_pixel(k, sign):
    log = np.full((2, 4, 5), 0.0)
    log[1, 2, 3] = sign * k * C  # pixel x=3, y=2
    ev = EMU.from_frames(from_log(log), times(2))
    assert ev.size == k
    assert np.all(ev["x"] == 3) and np.all(ev["y"] == 2)
    assert np.all(ev["p"] == (sign > 0))


def test_partial_threshold_steps_accumulate_in_the_reference():
    # log: 0 -> 0.6C (nothing) -> 1.2C (one ON: the memorised reference, not the frame difference,
    # counts; the reference moves to exactly C) -> 0.1C (nothing: C - C = 0 not reached)
    # -> -0.05C (one OFF, at level 0)
    log = np.zeros((5, 1, 1))
    log[1:, 0, 0] = [0.6 * C, 1.2 * C, 0.1 * C, -0.05 * C]
    ev = EMU.from_frames(from_log(log), times(5))
    assert ev["p"].tolist() == [True, False]
    assert 1000 < ev["t"][0] <= 2000 and 3000 < ev["t"][1] <= 4000


def test_timestamps_interpolated_linearly_in_log():
    # log ramps 0 -> 0.45 over [1000, 2000] µs, then 0.45 -> -0.15 over [2000, 4000] µs
    log = np.zeros((4, 1, 1))
    log[:, 0, 0] = [0.0, 0.0, 0.45, -0.15]
    ev = EMU.from_frames(from_log(log), np.array([0, 1000, 2000, 4000]))
    # ON at levels 0.2, 0.4: 1000 + 1000 * 0.2 / 0.45 = 1444.4, 1000 + 1000 * 0.4 / 0.45 = 1888.9;
    # the reference becomes 0.4. OFF at levels 0.2 and 0.0 (-0.2 is not reached):
    # 2000 + 2000 * (0.45 - 0.2) / 0.6 = 2833.3 and 2000 + 2000 * 0.45 / 0.6 = 3500
    assert ev["t"].tolist() == [1444, 1889, 2833, 3500]
    assert ev["p"].tolist() == [True, True, False, False]


def test_random_frames_sorted_within_window_and_valid():
    rng = np.random.default_rng(1)
    frames = rng.random((12, 9, 11)) * 2
    t = np.sort(rng.choice(np.arange(100, 100_000), 12, replace=False))
    ev = EMU.from_frames(frames, t)
    assert ev.size > 100
    assert np.all(np.diff(ev["t"]) >= 0)
    assert ev["t"].min() >= t[0] and ev["t"].max() <= t[-1]
    assert ev["x"].max() < 11 and ev["y"].max() < 9 and ev["x"].min() >= 0 and ev["y"].min() >= 0
    # torch input gives the same events
    same = EMU.from_frames(torch.from_numpy(frames), torch.from_numpy(t))
    assert np.array_equal(ev, same)


def test_moving_bar_on_leading_edge_off_trailing_edge():
    # a bright bar 3 px wide moving right by 1 px per frame over a dark background
    W, n = 16, 6
    frames = np.full((n, 4, W), 0.05)
    for k in range(n):
        frames[k, :, 2 + k : 5 + k] = 1.0
    ev = EMU.from_frames(frames, times(n))
    interval = (ev["t"] - 1) // 1000  # event in interval k: (k*1000, (k+1)*1000]
    for k in range(n - 1):
        sel = interval == k
        on_x = set(ev["x"][sel & ev["p"]].tolist())
        off_x = set(ev["x"][sel & ~ev["p"]].tolist())
        assert on_x == {5 + k}  # leading (right) edge brightens
        assert off_x == {2 + k}  # trailing (left) edge darkens


def test_refractory_period_drops_close_events():
    log = np.zeros((2, 1, 1))
    log[1, 0, 0] = 5 * C  # crossings at 200, 400, 600, 800, 1000 µs
    assert EMU.from_frames(from_log(log), times(2))["t"].tolist() == [200, 400, 600, 800, 1000]
    emu = EventCameraEmulator(contrast_threshold=C, log_eps=EPS, refractory_us=300)
    assert emu.from_frames(from_log(log), times(2))["t"].tolist() == [200, 600, 1000]


def test_threshold_mismatch_is_seeded_and_varies_across_pixels():
    emu = EventCameraEmulator(contrast_threshold=C, log_eps=EPS, threshold_sigma=0.3)
    log = np.zeros((2, 8, 8))
    log[1] = 10 * C
    a = emu.from_frames(from_log(log), times(2), rng=3)
    b = emu.from_frames(from_log(log), times(2), rng=np.random.default_rng(3))
    c = emu.from_frames(from_log(log), times(2), rng=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    counts = np.bincount(a["y"].astype(int) * 8 + a["x"], minlength=64)
    assert counts.min() < 10 < counts.max()


def test_background_noise_rate_and_determinism():
    emu = EventCameraEmulator(noise_rate_hz=50.0)
    frames = np.ones((2, 20, 20))
    t = np.array([0, 1_000_000])
    a = emu.from_frames(frames, t, rng=0)
    expected = 50.0 * 400 * 1.0  # rate * pixels * seconds
    assert abs(a.size - expected) < 5 * math.sqrt(expected)
    assert np.array_equal(a, emu.from_frames(frames, t, rng=0))
    assert np.all(np.diff(a["t"]) >= 0) and a["t"].max() <= 1_000_000
    assert 0.4 < a["p"].mean() < 0.6


def test_from_image_events_inside_sensor_balanced_and_timed():
    img = np.zeros((20, 20))
    img[5:15, 8:12] = 1.0
    ev = EventCameraEmulator().from_image(img, sensor_size=(30, 26, 2), duration_us=150_000)
    assert ev.dtype == np.dtype(tonic.io.events_struct)
    assert ev.size > 100
    assert ev["x"].min() >= 0 and ev["x"].max() < 30 and ev["y"].min() >= 0 and ev["y"].max() < 26
    assert ev["t"].min() >= 0 and ev["t"].max() <= 150_000 and np.all(np.diff(ev["t"]) >= 0)
    assert 0.3 < ev["p"].mean() < 0.7
    # activity in each of the three saccades
    assert np.all(np.bincount(np.minimum(ev["t"] // 50_000, 2), minlength=3) > 20)


def test_from_images_batch_equals_single_images():
    rng = np.random.default_rng(2)
    imgs = rng.random((3, 10, 12))
    batch = EMU.from_images(imgs, sensor_size=(18, 16, 2))
    for img, ev in zip(imgs, batch):
        assert np.array_equal(ev, EMU.from_image(img, sensor_size=(18, 16, 2)))
    assert not np.array_equal(batch[0], batch[1])


def test_blank_image_gives_no_events():
    assert EventCameraEmulator().from_image(np.zeros((28, 28))).size == 0


def test_saccade_path_is_a_closed_triangle():
    path = saccade_path(3, 4, 3.0)
    assert path.shape == (13, 2)
    assert np.allclose(path[0], path[-1])
    vertices = path[[0, 4, 8]]
    sides = np.linalg.norm(vertices - np.roll(vertices, 1, axis=0), axis=1)
    assert np.allclose(sides, 3.0)
    assert np.allclose(vertices.mean(0), 0.0)
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    assert np.allclose(steps, 0.75)  # constant speed along straight legs


def test_shift_bilinear_integer_and_subpixel():
    img = np.arange(12.0).reshape(1, 3, 4)
    padded = np.pad(img, ((0, 0), (3, 3), (3, 3)))
    assert np.array_equal(shift_bilinear(padded, 3, 1.0, 0.0)[0, :, 1:], img[0, :, :-1])
    assert np.array_equal(shift_bilinear(padded, 3, 0.0, -1.0)[0, :-1], img[0, 1:])
    half = shift_bilinear(padded, 3, 0.5, 0.0)[0]
    assert np.allclose(half[:, 1:], (img[0, :, 1:] + img[0, :, :-1]) / 2)
    with pytest.raises(ValueError, match="margin"):
        shift_bilinear(padded, 3, 3.5, 0.0)


def test_place_in_sensor_centres():
    out = place_in_sensor(np.ones((1, 2, 4)), width=8, height=6)
    assert out.shape == (1, 6, 8) and out.sum() == 8 and np.all(out[0, 2:4, 2:6] == 1)
    with pytest.raises(ValueError, match="does not fit"):
        place_in_sensor(np.ones((1, 7, 4)), width=8, height=6)


@pytest.mark.parametrize("kwargs", [dict(contrast_threshold=0.0), dict(log_eps=-1.0), dict(refractory_us=-5),
                                    dict(threshold_sigma=float("nan")), dict(noise_rate_hz=-1.0)])
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        EventCameraEmulator(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="frames"):
        EMU.from_frames(np.ones((3, 4)), times(3))
    with pytest.raises(ValueError, match="frames"):
        EMU.from_frames(-np.ones((2, 3, 4)), times(2))
    with pytest.raises(ValueError, match="increasing"):
        EMU.from_frames(np.ones((3, 2, 2)), np.array([0, 10, 10]))
    with pytest.raises(ValueError, match="timestamps_us"):
        EMU.from_frames(np.ones((3, 2, 2)), times(2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        EMU.from_image(np.full((5, 5), 2.0))
    with pytest.raises(ValueError, match="does not fit"):
        EMU.from_image(np.ones((40, 10)))
    with pytest.raises(ValueError, match="sensor_size"):
        EMU.from_image(np.ones((5, 5)), sensor_size=(34, 34))
    with pytest.raises(ValueError, match="saccades"):
        EMU.from_image(np.ones((5, 5)), saccades=1)
    with pytest.raises(ValueError, match="duration_us"):
        EMU.from_image(np.ones((5, 5)), duration_us=10)
