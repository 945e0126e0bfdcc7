"""Numba on-disk cache that notices edits to the shared scalar dynamics.

Numba stamps a cached function with a hash of its own source file only, so a kernel in
``cpu.py`` compiled against an older ``dynamics.py``/``arith.py`` would keep loading from
``__pycache__`` after those files change. :func:`install` puts locators in front of Numba's
own that, for functions whose module uses :mod:`snn.cuda.dynamics` or :mod:`snn.cuda.arith`,
add a hash of those two files to the stamp. It relies on Numba's (private) locator list
and does nothing if that is not there; clearing ``__pycache__`` is the manual fallback.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

__all__ = ["install", "dependency_digest"]

_DEPS = ("dynamics.py", "arith.py")
_HERE = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def dependency_digest() -> str:
    """sha256 over the shared scalar-dynamics sources."""
    h = hashlib.sha256()
    for name in _DEPS:
        h.update((_HERE / name).read_bytes())
    return h.hexdigest()


def _uses_dynamics(py_func) -> bool:
    from snn.cuda import arith, dynamics
    deps = (dynamics, arith, arith.fma, arith.mul_rn)
    return any(any(v is d for d in deps) for v in getattr(py_func, "__globals__", {}).values())


@functools.lru_cache(maxsize=None)
def install() -> bool:
    """Register the dependency-aware locators once; returns whether it could."""
    try:
        from numba.core import caching
        bases = [caching.UserProvidedCacheLocator, caching.InTreeCacheLocator, caching.UserWideCacheLocator]
        impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # renamed in Numba 0.60s
    except (ImportError, AttributeError):
        return False

    def wrap(base):
        class Locator(base):
            @classmethod
            def from_function(cls, py_func, py_file):
                if not _uses_dynamics(py_func):
                    return None
                return super().from_function(py_func, py_file)

            def get_source_stamp(self):
                return (super().get_source_stamp(), dependency_digest())
        Locator.__name__ = Locator.__qualname__ = f"SnnDeps{base.__name__}"
        return Locator

    impl._locator_classes[:0] = [wrap(b) for b in bases]
    return True
