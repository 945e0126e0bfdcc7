"""Saccade paths and sub-pixel image motion for emulating N-MNIST-style recordings."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["saccade_path", "place_in_sensor", "shift_bilinear"]


def saccade_path(saccades: int = 3, frames_per_saccade: int = 10, amplitude_px: float = 4.0) -> np.ndarray:
    r"""Image offsets along a closed polygon of straight saccades (a triangle for 3).

    Orchard et al. 2015 ("Converting static image datasets to spiking neuromorphic
    datasets using saccades", Front. Neurosci. 9:437) recorded N-MNIST by moving an ATIS
    sensor in three saccades along the sides of a triangle. Here the image moves instead,
    along the sides of a regular polygon with ``saccades`` vertices, centred on the origin:

    .. math::
        V_k = R\,(\cos\phi_k, \sin\phi_k), \quad \phi_k = -\tfrac{\pi}{2} + \tfrac{2\pi k}{n},
        \quad R = \frac{a}{2 \sin(\pi / n)},

    visited :math:`V_0 \to V_1 \to \dots \to V_{n-1} \to V_0` at constant speed, with ``a`` the
    side length (``amplitude_px``). For ``n = 3`` the first vertex is above the centre
    (y grows downwards), the triangle's sides have length ``a``.

    Args:
        saccades: number of straight saccades, >= 2 (2 = back and forth on a line).
        frames_per_saccade: frames sampled per saccade, >= 1.
        amplitude_px: length of each saccade in pixels, >= 0.

    Shape:
        - output: ``[saccades * frames_per_saccade + 1, 2]``

    Returns:
        float64 offsets ``(dx, dy)`` in pixels; the first and last rows are equal (closed path).

    Raises:
        ValueError: if an argument is out of range.

    Examples:
        >>> saccade_path(3, 2, 3.0).shape
        (7, 2)
    """
    if isinstance(saccades, bool) or not isinstance(saccades, int) or saccades < 2:
        raise ValueError(f"saccades must be an integer >= 2, got {saccades!r}")
    if isinstance(frames_per_saccade, bool) or not isinstance(frames_per_saccade, int) or frames_per_saccade < 1:
        raise ValueError(f"frames_per_saccade must be an integer >= 1, got {frames_per_saccade!r}")
    if not (math.isfinite(amplitude_px) and amplitude_px >= 0):
        raise ValueError(f"amplitude_px must be a finite number >= 0 pixels, got {amplitude_px!r}")
    n = saccades
    radius = amplitude_px / (2.0 * math.sin(math.pi / n))
    phi = -math.pi / 2 + 2 * math.pi * np.arange(n + 1) / n
    vertices = radius * np.stack([np.cos(phi), np.sin(phi)], axis=1)
    vertices[-1] = vertices[0]
    s = np.arange(frames_per_saccade) / frames_per_saccade
    legs = vertices[:-1, None, :] + s[None, :, None] * (vertices[1:] - vertices[:-1])[:, None, :]
    return np.concatenate([legs.reshape(-1, 2), vertices[-1:]], axis=0)


def place_in_sensor(images: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre images in a zero (black) field of ``height x width`` pixels.

    Args:
        images: intensities, shape ``[S, h, w]`` with ``h <= height``, ``w <= width``.
        width: sensor width in pixels.
        height: sensor height in pixels.

    Shape:
        - images: ``[S, h, w]``
        - output: ``[S, height, width]``

    Returns:
        float64 array; the image's top-left corner is at ``((height - h) // 2, (width - w) // 2)``.

    Raises:
        ValueError: if an image is larger than the sensor.
    """
    S, h, w = images.shape
    if h > height or w > width:
        raise ValueError(
            f"image of {h}x{w} pixels (HxW) does not fit the sensor of {height}x{width} pixels"
        )
    out = np.zeros((S, height, width), dtype=np.float64)
    top, left = (height - h) // 2, (width - w) // 2
    out[:, top : top + h, left : left + w] = images
    return out


def shift_bilinear(
    padded: np.ndarray, margin: int, dx: float, dy: float, out: np.ndarray | None = None
) -> np.ndarray:
    r"""Translate images by a sub-pixel offset with bilinear interpolation, zero outside.

    .. math::
        J(y, x) = I(y - d_y,\, x - d_x)

    evaluated bilinearly from the four integer translations around ``(dx, dy)``.

    Args:
        padded: images zero-padded by ``margin`` pixels on every side, ``[S, H + 2m, W + 2m]``.
        margin: the padding ``m``; must be at least ``max(|dx|, |dy|) + 1``.
        dx: shift to the right, pixels.
        dy: shift downwards, pixels.
        out: optional ``[S, H, W]`` array (``padded``'s dtype) to write the result into.

    Shape:
        - padded: ``[S, H + 2m, W + 2m]``
        - output: ``[S, H, W]``

    Returns:
        The shifted images (same dtype as ``padded``; ``out`` if given).

    Raises:
        ValueError: if the shift does not fit in the margin.

    Examples:
        >>> img = np.zeros((1, 1, 3)); img[0, 0, 1] = 1.0
        >>> shift_bilinear(np.pad(img, ((0, 0), (2, 2), (2, 2))), 2, 0.25, 0.0)[0, 0]
        array([0.  , 0.75, 0.25])
    """
    ix, iy = math.floor(dx), math.floor(dy)
    fx, fy = dx - ix, dy - iy
    if max(abs(ix), abs(iy), abs(ix + 1), abs(iy + 1)) > margin:
        raise ValueError(f"shift ({dx}, {dy}) px needs a padding margin > {margin} px")
    S, H, W = padded.shape[0], padded.shape[1] - 2 * margin, padded.shape[2] - 2 * margin
    if out is None:
        out = np.empty((S, H, W), dtype=padded.dtype)

    def view(ax: int, ay: int) -> np.ndarray:  # content moved by (ax, ay) integer pixels
        return padded[:, margin - ay : margin - ay + H, margin - ax : margin - ax + W]

    terms = [(ix, iy, (1 - fx) * (1 - fy)), (ix + 1, iy, fx * (1 - fy)),
             (ix, iy + 1, (1 - fx) * fy), (ix + 1, iy + 1, fx * fy)]
    terms = [t for t in terms if t[2] != 0]
    np.multiply(view(*terms[0][:2]), padded.dtype.type(terms[0][2]), out=out)
    for ax, ay, w in terms[1:]:
        out += padded.dtype.type(w) * view(ax, ay)
    return out
