"""Cache stamps of kernels that use the shared dynamics include the dynamics' sources."""
import inspect

import pytest

from snn.cuda import numba_cache

pytest.importorskip("numba")


def _locator(py_func):
    from numba.core import caching
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    for cls in impl._locator_classes:  # the order Numba tries them in
        loc = cls.from_function(py_func, inspect.getfile(py_func))
        if loc is not None:
            return loc


def test_kernels_get_dependency_aware_locators():
    from snn.cuda import cpu
    assert numba_cache.install()
    loc = _locator(cpu.forward_parallel.py_func)
    assert type(loc).__name__.startswith("SnnDeps")
    assert loc.get_source_stamp()[1] == numba_cache.dependency_digest()
    # functions that do not use the dynamics keep Numba's own locators
    assert not type(_locator(numba_cache.dependency_digest.__wrapped__)).__name__.startswith("SnnDeps")
