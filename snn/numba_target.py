"""Code-generation target of the Numba CPU kernels: 512-bit vectors where the CPU has them.

LLVM tunes Intel server and client cores with AVX-512 (Skylake-SP to Sapphire Rapids,
Ice/Rocket/Tiger Lake) to *prefer* 256-bit vectors (its ``prefer-256-bit`` tuning flag), so
Numba's loops use half of the vector width those cores have. The fused delay kernels are
compute-bound loops over contiguous float32 rows: with 512-bit vectors their training step
runs about 17 % faster and integer-delay inference about 15 % faster (2-core Rocket Lake
sandbox; see ``benchmarks/results``). :func:`prefer_wide_vectors` removes that one tuning
flag from the host features Numba compiles for, before Numba's CPU target is first created.

This is process-wide (Numba has one CPU target per process), so it only happens when
nobody chose otherwise: not when ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` are set, not
when ``SNN_NUMBA_WIDE_VECTORS=0``, and not once Numba has compiled anything in this process
(its target then exists with the default tuning, which stays in force). Numba keys its
on-disk cache on the CPU name and features, so cached kernels of either tuning never mix.
"""
from __future__ import annotations

import functools
import os

__all__ = ["prefer_wide_vectors", "ENV"]

ENV = "SNN_NUMBA_WIDE_VECTORS"


@functools.lru_cache(maxsize=None)
def prefer_wide_vectors() -> bool:
    """Make Numba compile for the host CPU without its 256-bit preference; returns whether it did.

    Does nothing (returns False) if ``SNN_NUMBA_WIDE_VECTORS`` is ``0``, if the user set
    ``NUMBA_CPU_NAME`` or ``NUMBA_CPU_FEATURES``, if the CPU has no AVX-512F, or if Numba's
    CPU target already exists.
    """
    if os.environ.get(ENV, "1") == "0":
        return False
    if os.environ.get("NUMBA_CPU_NAME") or os.environ.get("NUMBA_CPU_FEATURES"):
        return False
    try:
        import llvmlite.binding as ll
        from numba.core import config, registry
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    if "_toplevel_target_context" in vars(registry.cpu_target):
        return False
    try:
        features = ll.get_host_cpu_features()
    except RuntimeError:
        return False
    if not features.get("avx512f") or not config.ENABLE_AVX:
        return False
    # Numba re-reads its configuration from the environment before compiling, so the
    # environment (not only numba.config) carries the choice.
    os.environ["NUMBA_CPU_NAME"] = ll.get_host_cpu_name()
    os.environ["NUMBA_CPU_FEATURES"] = features.flatten() + ",-prefer-256-bit"
    config.reload_config()
    return True
