"""Event-camera (DVS) emulator: intensity frames or static images → tonic-format events."""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import tonic.io

from .saccades import place_in_sensor, saccade_path, shift_bilinear

__all__ = ["EventCameraEmulator", "EVENTS_DTYPE"]

#: tonic's structured event dtype: x, y (pixels, int16), t (µs, int64), p (bool, True = ON).
EVENTS_DTYPE: np.dtype = np.dtype(tonic.io.events_struct)

# Crossings short of a level by less than this fraction of the threshold still count:
# absorbs float rounding of log(I) when a change is an exact multiple of the threshold.
_LEVEL_TOL = 1e-9

RngLike = np.random.Generator | int | None


def _stable_argsort(keys: np.ndarray, max_key: int) -> np.ndarray:
    """Stable argsort of non-negative integer keys <= ``max_key`` (radix sort when they fit 16 bits)."""
    if max_key < 2**16:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")


def _as_numpy(a: object, name: str) -> np.ndarray:
    if hasattr(a, "detach"):  # torch.Tensor
        a = a.detach().cpu().numpy()  # type: ignore[union-attr]
    try:
        return np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be array-like, got {type(a).__name__}") from exc


@dataclass(frozen=True)
class EventCameraEmulator:
    r"""Idealised DVS pixel model turning intensity frames into ON/OFF events.

    Each pixel memorises a reference log intensity :math:`r` (initially the first frame's).
    Between two frames the log intensity :math:`L = \ln(I + \epsilon)` is taken to change
    linearly in time; whenever it crosses :math:`r + kC_{on}` (:math:`k \ge 1`) the pixel
    emits an ON event (``p=True``), whenever it crosses :math:`r - kC_{off}` an OFF event
    (``p=False``), at the linearly interpolated crossing time, and :math:`r` moves by the
    crossed multiples of the threshold:

    .. math::
        n = \left\lfloor \frac{|L(t_{k}) - r|}{C} \right\rfloor,\quad
        t_j = t_{k-1} + \frac{r \pm jC - L(t_{k-1})}{L(t_k) - L(t_{k-1})}(t_k - t_{k-1}),
        \quad r \leftarrow r \pm nC .

    Sensor model: Lichtsteiner, Posch & Delbruck 2008, "A 128×128 120 dB 15 µs latency
    asynchronous temporal contrast vision sensor", IEEE JSSC 43(2). Emulation scheme
    (per-pixel reference, interpolated crossing times, threshold mismatch, refractory
    period, background noise): ESIM, Rebecq, Gehrig & Scaramuzza 2018, CoRL; v2e, Hu,
    Liu & Delbruck 2021, CVPR Workshops. Not modelled: photoreceptor bandwidth, leak
    events, linear-log transfer at low intensity.

    Args:
        contrast_threshold: nominal threshold :math:`C` in log-intensity units (> 0),
            used for ON and OFF.
        log_eps: :math:`\epsilon > 0` added to intensities before the log, in the
            intensities' units: bounds the response to dark pixels (0.1 suits intensities
            in [0, 1], close to v2e's linear-log knee at 20/255; scale it with your units).
        refractory_us: after an event a pixel drops further events for this many µs
            (its reference still follows the crossed levels); 0 disables.
        threshold_sigma: relative per-pixel threshold mismatch: :math:`C_{on}` and
            :math:`C_{off}` are drawn per pixel as :math:`C(1 + \sigma z)`, :math:`z \sim N(0,1)`,
            clipped to at least :math:`C/10`, once per call (one map shared by a batch).
        noise_rate_hz: background-activity noise: events per pixel per second, added at
            uniform random pixels, times and polarities (not subject to the refractory period).

    Raises:
        ValueError: if a parameter is out of range (at construction).

    Examples:
        >>> emu = EventCameraEmulator(contrast_threshold=0.2, log_eps=1e-3)
        >>> frames = np.ones((2, 2, 2)); frames[1, 0, 1] = 2.0  # pixel (x=1, y=0): +0.69 in log
        >>> emu.from_frames(frames, np.array([0, 1000])).tolist()  # 3 levels crossed
        [(1, 0, 289, True), (1, 0, 577, True), (1, 0, 866, True)]
        >>> ev = emu.from_image(np.eye(20), sensor_size=(34, 34, 2))  # N-MNIST-style saccades
        >>> bool(ev["p"].any() and (~ev["p"]).any() and ev["x"].max() < 34)
        True
    """

    contrast_threshold: float = 0.15
    log_eps: float = 0.1
    refractory_us: int = 0
    threshold_sigma: float = 0.0
    noise_rate_hz: float = 0.0

    def __post_init__(self) -> None:
        for name, positive in (("contrast_threshold", True), ("log_eps", True), ("refractory_us", False),
                               ("threshold_sigma", False), ("noise_rate_hz", False)):
            value = getattr(self, name)
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            if not (ok and (value > 0 if positive else value >= 0)):
                raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")

    # ------------------------------------------------------------------ public API
    def from_frames(
        self,
        frames: np.ndarray,
        timestamps_us: np.ndarray,
        rng: RngLike = None,
    ) -> np.ndarray:
        """Emulate the events a DVS would output while watching a frame sequence.

        Args:
            frames: intensities >= 0 (any linear unit; a ``numpy`` array or ``torch`` tensor).
            timestamps_us: frame times in µs, strictly increasing integers.
            rng: ``numpy.random.Generator`` or seed for threshold mismatch and noise
                (only used when ``threshold_sigma`` or ``noise_rate_hz`` is > 0; ``None``
                draws fresh entropy, never from a global RNG).

        Shape:
            - frames: ``[N, H, W]``
            - timestamps_us: ``[N]``
            - output: ``[E]``

        Returns:
            Events as a structured array of dtype ``tonic.io.events_struct`` (x, y in pixels,
            t in µs within ``[timestamps_us[0], timestamps_us[-1]]``, p True for ON), sorted by t.

        Raises:
            ValueError: if ``frames`` is not ``[N, H, W]``, has negative or non-finite values,
                or ``timestamps_us`` is not ``[N]`` strictly increasing integers.
        """
        f = _as_numpy(frames, "frames")
        if f.ndim != 3 or f.shape[0] < 1:
            raise ValueError(f"frames must have shape [N, H, W] with N >= 1, got {f.shape}")
        f = f.astype(np.float64, copy=False)
        if not np.all(np.isfinite(f)) or (f.size and f.min() < 0):
            lo, hi = (float(np.nanmin(f)), float(np.nanmax(f))) if f.size else (0.0, 0.0)
            raise ValueError(f"frames must hold finite intensities >= 0, got values in [{lo:.6g}, {hi:.6g}]")
        t = self._check_times(timestamps_us, f.shape[0])
        return self._simulate((frame[None] for frame in f), t, (1,) + f.shape[1:], rng)[0]

    def from_image(
        self,
        image: np.ndarray,
        sensor_size: Sequence[int] = (34, 34, 2),
        saccades: int = 3,
        duration_us: int = 300_000,
        frames_per_saccade: int = 10,
        amplitude_px: float = 4.0,
        rng: RngLike = None,
    ) -> np.ndarray:
        """Emulate an N-MNIST-style recording of a static image moved in saccades.

        The image is centred in a black ``W x H`` field and translated (bilinear
        sub-pixel shifts) along the closed polygon of :func:`~snn.encoders.saccades.saccade_path`
        (a triangle for 3 saccades, as in Orchard et al. 2015, Front. Neurosci. 9:437), sampled
        at ``saccades * frames_per_saccade + 1`` evenly spaced times over ``duration_us``;
        the frames are fed to :meth:`from_frames`. With an ideal sensor (``threshold_sigma=0``)
        the closed path brings pixels back exactly onto their reference levels, so their last
        crossings share the final timestamp ``duration_us`` (which tonic's time binning
        drops); a small mismatch such as ``threshold_sigma=0.03`` (v2e's default) avoids it.

        Args:
            image: intensities in [0, 1] (array or tensor), at most the sensor size.
            sensor_size: tonic-style ``(W, H, 2)``.
            saccades: number of straight saccades (>= 2).
            duration_us: recording length in µs (>= number of frames - 1).
            frames_per_saccade: frames rendered per saccade (time resolution of the motion).
            amplitude_px: length of each saccade in pixels.
            rng: as in :meth:`from_frames`.

        Shape:
            - image: ``[h, w]``
            - output: ``[E]``

        Returns:
            tonic-format events (see :meth:`from_frames`), all with ``0 <= x < W``,
            ``0 <= y < H`` and ``0 <= t <= duration_us``.

        Raises:
            ValueError: if ``image`` is not 2-D in [0, 1], does not fit the sensor, or an
                argument is out of range.
        """
        img = _as_numpy(image, "image")
        if img.ndim != 2:
            raise ValueError(f"image must have shape [H, W], got {img.shape}")
        return self.from_images(img[None], sensor_size, saccades, duration_us, frames_per_saccade, amplitude_px, rng)[0]

    def from_images(
        self,
        images: np.ndarray,
        sensor_size: Sequence[int] = (34, 34, 2),
        saccades: int = 3,
        duration_us: int = 300_000,
        frames_per_saccade: int = 10,
        amplitude_px: float = 4.0,
        rng: RngLike = None,
    ) -> list[np.ndarray]:
        """Batched :meth:`from_image`: one frame loop for many images, vectorised over all pixels.

        Without noise and threshold mismatch, ``from_images(x)[i]`` equals ``from_image(x[i])``.

        Args:
            images: intensities in [0, 1], ``[S, h, w]``.
            sensor_size, saccades, duration_us, frames_per_saccade, amplitude_px, rng:
                as in :meth:`from_image`.

        Shape:
            - images: ``[S, h, w]``
            - output: list of ``S`` arrays ``[E_i]``

        Returns:
            One tonic-format event array per image.

        Raises:
            ValueError: as :meth:`from_image`.
        """
        imgs = _as_numpy(images, "images")
        if imgs.ndim != 3:
            raise ValueError(f"images must have shape [S, H, W], got {imgs.shape}")
        imgs = imgs.astype(np.float64, copy=False)
        if imgs.size and not (np.all(np.isfinite(imgs)) and imgs.min() >= 0 and imgs.max() <= 1):
            lo, hi = (float(np.nanmin(imgs)), float(np.nanmax(imgs))) if imgs.size else (0, 0)
            raise ValueError(f"image intensities must lie in [0, 1], got values in [{lo:.6g}, {hi:.6g}]")
        if len(sensor_size) != 3 or any(
            isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in sensor_size
        ):
            raise ValueError(f"sensor_size must be (W, H, P) positive integers, got {tuple(sensor_size)!r}")
        W, H = int(sensor_size[0]), int(sensor_size[1])
        path = saccade_path(saccades, frames_per_saccade, amplitude_px)
        n = path.shape[0]
        if isinstance(duration_us, bool) or not isinstance(duration_us, numbers.Integral) or duration_us < n - 1:
            raise ValueError(f"duration_us must be an integer >= {n - 1} (frames - 1), got {duration_us!r}")
        times = np.rint(np.linspace(0, int(duration_us), n)).astype(np.int64)
        margin = int(math.ceil(np.abs(path).max())) + 2
        padded = np.pad(place_in_sensor(imgs, W, H).astype(np.float32), ((0, 0), (margin, margin), (margin, margin)))
        buf = np.empty((imgs.shape[0], H, W), dtype=np.float32)  # the engine copies each frame
        frames = (shift_bilinear(padded, margin, dx, dy, out=buf) for dx, dy in path)
        return self._simulate(frames, times, (imgs.shape[0], H, W), rng)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _check_times(timestamps_us: object, n: int) -> np.ndarray:
        t = _as_numpy(timestamps_us, "timestamps_us")
        if t.shape != (n,):
            raise ValueError(f"timestamps_us must have shape [N] = [{n}], got {t.shape}")
        if not (np.issubdtype(t.dtype, np.integer) or np.all(t == np.round(t))):
            raise ValueError("timestamps_us must be integers (µs)")
        t = t.astype(np.int64)
        if n > 1 and not np.all(np.diff(t) > 0):
            raise ValueError("timestamps_us must be strictly increasing")
        return t

    def _thresholds(self, n_pix: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel ON and OFF thresholds ``[n_pix]`` (one sensor), mismatched if ``rng`` is given."""
        c = self.contrast_threshold
        if rng is None or self.threshold_sigma == 0:
            full = np.full(n_pix, c)
            return full, full
        on, off = (np.maximum(c * (1 + self.threshold_sigma * rng.standard_normal(n_pix)), c / 10) for _ in range(2))
        return on, off

    def _simulate(
        self,
        frames: Iterable[np.ndarray],
        times: np.ndarray,
        shape: tuple[int, int, int],
        rng: RngLike,
    ) -> list[np.ndarray]:
        """Run the pixel model over frames ``[S, H, W]`` (yielded per time) for ``S`` sensors.

        Whole-array work per frame is a few multiply/compare passes in the frames' dtype
        (candidate pixels, a superset of those that fire); logs, crossing counts and times
        are then computed in float64 for the candidates only.
        """
        S, H, W = shape
        if max(H, W) > np.iinfo(np.int16).max:
            raise ValueError(f"sensor of {H}x{W} pixels (HxW) exceeds the int16 event coordinates")
        hw = H * W
        gen = np.random.default_rng(rng) if (self.threshold_sigma > 0 or self.noise_rate_hz > 0) else None
        c_on, c_off = self._thresholds(hw, gen)  # [hw], shared by the S sensors
        it = iter(frames)
        first = np.asarray(next(it))
        dt = first.dtype if first.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        v_prev = np.add(first.reshape(S, hw), self.log_eps, dtype=dt)
        ref = np.log(v_prev.astype(np.float64)).reshape(-1)  # reference log intensity [S*hw]
        # candidate test in linear units, loosened by a relative slack well above float32
        # rounding: fire only if v >= exp(ref + C_on) or v <= exp(ref - C_off); the bounds
        # are updated where the reference moves
        slack = 1e-5
        up = (np.exp(c_on) * (1 - slack)).astype(dt)
        down = (np.exp(-c_off) * (1 + slack)).astype(dt)
        hi, lo = v_prev * up, v_prev * down
        last_t = np.full(S * hw if self.refractory_us > 0 else 0, np.iinfo(np.int64).min // 2, dtype=np.int64)
        chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for k in range(1, len(times)):
            v = np.add(np.asarray(next(it)).reshape(S, hw), self.log_eps, dtype=dt)
            cand = np.flatnonzero((v >= hi) | (v <= lo))
            if cand.size:
                cur = np.log(v.reshape(-1)[cand].astype(np.float64))
                diff = cur - ref[cand]
                con, coff = c_on[cand % hw], c_off[cand % hw]
                n_on = np.floor(diff / con + _LEVEL_TOL)
                n_off = np.floor(-diff / coff + _LEVEL_TOL)
                fire = (n_on > 0) | (n_off > 0)
                active, on = cand[fire], n_on[fire] > 0
                if active.size:
                    n = np.where(on, n_on[fire], n_off[fire]).astype(np.int64)
                    step = np.where(on, con[fire], -coff[fire])
                    prev = np.log(v_prev.reshape(-1)[active].astype(np.float64))
                    pix, t_ev = self._crossings(active, n, step, ref[active], prev, cur[fire], times[k - 1], times[k])
                    polarity = np.repeat(on, n)
                    if self.refractory_us > 0:
                        keep = self._refractory(active, n, t_ev, last_t)
                        pix, t_ev, polarity = pix[keep], t_ev[keep], polarity[keep]
                    order = _stable_argsort(t_ev - times[k - 1], int(times[k] - times[k - 1]))
                    chunks.append((pix[order], t_ev[order], polarity[order]))
                    ref[active] += n * step
                    ref_lin = np.exp(ref[active]).astype(dt)
                    hi.reshape(-1)[active] = ref_lin * up[active % hw]
                    lo.reshape(-1)[active] = ref_lin * down[active % hw]
            v_prev = v
        if chunks:
            pix, t_all, p_all = (np.concatenate(parts) for parts in zip(*chunks))
        else:
            pix, t_all, p_all = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
        if self.noise_rate_hz > 0 and gen is not None:
            pix, t_all, p_all = self._add_noise(pix, t_all, p_all, shape, times, gen)
            order = _stable_argsort(t_all - times[0], int(times[-1] - times[0]))
            pix, t_all, p_all = pix[order], t_all[order], p_all[order]
        # events are now sorted by t; a stable sort by sensor keeps t sorted within each
        sample = pix // hw
        if S > 1:
            order = _stable_argsort(sample, S - 1)
            pix, t_all, p_all, sample = pix[order], t_all[order], p_all[order], sample[order]
        local = pix % hw
        events = np.empty(pix.shape[0], dtype=EVENTS_DTYPE)
        events["x"], events["y"], events["t"], events["p"] = local % W, local // W, t_all, p_all
        bounds = np.searchsorted(sample, np.arange(S + 1))
        return [events[bounds[i] : bounds[i + 1]].copy() for i in range(S)]

    @staticmethod
    def _crossings(active, n, step, ref, prev, cur, t0, t1) -> tuple[np.ndarray, np.ndarray]:
        """Pixel ids and interpolated µs times of the ``n`` level crossings of each active pixel."""
        total = int(n.sum())
        starts = np.cumsum(n) - n
        j = np.arange(1, total + 1) - np.repeat(starts, n)  # 1..n within each pixel
        level = np.repeat(ref, n) + j * np.repeat(step, n)
        lo, hi = np.repeat(prev, n), np.repeat(cur, n)
        denom = hi - lo
        frac = np.clip((level - lo) / np.where(denom == 0, 1.0, denom), 0.0, 1.0)
        t_ev = np.rint(t0 + frac * float(t1 - t0)).astype(np.int64)
        return np.repeat(active, n), t_ev

    def _refractory(self, active: np.ndarray, n: np.ndarray, t_ev: np.ndarray, last_t: np.ndarray) -> np.ndarray:
        """Mask of events kept by the refractory period; updates ``last_t`` in place."""
        keep = np.zeros(t_ev.shape[0], dtype=bool)
        starts = np.cumsum(n) - n
        last = last_t[active]
        for j in range(int(n.max())):
            has = n > j
            ev = starts[has] + j
            ok = t_ev[ev] - last[has] >= self.refractory_us
            keep[ev] = ok
            last[has] = np.where(ok, t_ev[ev], last[has])
        last_t[active] = last
        return keep

    def _add_noise(self, pix, t_all, p_all, shape, times, gen: np.random.Generator):
        S, H, W = shape
        duration_s = (times[-1] - times[0]) * 1e-6
        count = int(gen.poisson(self.noise_rate_hz * S * H * W * duration_s))
        noise_pix = gen.integers(0, S * H * W, size=count)
        noise_t = gen.integers(times[0], times[-1], size=count, endpoint=True)
        noise_p = gen.random(count) < 0.5
        return (
            np.concatenate([pix, noise_pix]),
            np.concatenate([t_all, noise_t]),
            np.concatenate([p_all, noise_p]),
        )
