"""snn.numba_target: wide vectors for Numba only where nobody chose otherwise."""
import os
import subprocess
import sys

import llvmlite.binding as ll
import pytest

PROBE = "import os, snn.delays.cpu; print(os.environ.get('NUMBA_CPU_FEATURES', ''))"
HAS_AVX512 = bool(ll.get_host_cpu_features().get("avx512f"))


def features_after(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CPU_", "SNN_NUMBA_"))}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_host_features_without_the_256_bit_preference_on_avx512():
    feats = features_after(PROBE)
    if HAS_AVX512:
        assert feats.endswith(",-prefer-256-bit") and "+avx512f" in feats
    else:
        assert feats == ""


@pytest.mark.parametrize("env", [dict(SNN_NUMBA_WIDE_VECTORS="0"), dict(NUMBA_CPU_NAME="generic")])
def test_left_alone_when_the_user_chose(env):
    feats = features_after(PROBE, **env)
    assert "-prefer-256-bit" not in feats


def test_left_alone_once_numba_has_compiled():
    code = "from numba import njit; njit(lambda: 1)(); " + PROBE
    assert features_after(code) == ""


def test_kernels_still_match_the_reference_either_way():
    code = ("import torch, snn.delays.cpu; from snn.delays import DelayLinear; torch.manual_seed(0); "
            "m = DelayLinear(5, 4, 6, backend='numba', bias=False); x = torch.rand(9, 3, 5); "
            "r = DelayLinear(5, 4, 6, backend='torch', bias=False); r.load_state_dict(m.state_dict()); "
            "print(float((m(x) - r(x)).abs().max()))")
    for env in ({}, dict(SNN_NUMBA_WIDE_VECTORS="0")):
        assert float(features_after(code, **env)) < 1e-5
