"""Predicates behind the argument checks of the public API (each caller raises its own error,
naming its argument)."""
from __future__ import annotations

import math
import numbers

__all__ = ["is_positive_int", "is_positive_finite"]


def is_positive_int(v: object) -> bool:
    """``v`` is an integer (Python or NumPy; not a bool) ``≥ 1``."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1


def is_positive_finite(v: object) -> bool:
    """``v`` is a real number (not a bool) with ``0 < v < inf`` (NaN fails)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 < v < math.inf
