"""The CuPy backend's CUDA C kernels, run on the host: a test stand-in for a GPU.

``host/cuda_host.cpp`` includes ``snn/cuda/csrc/neuron.cu`` unchanged, with the CUDA keywords
and intrinsics mapped to host C++ (``host/cuda_host_shim.h``; the compiler's ``_Float16`` stands
in for the PTX float16 conversion), and runs each launch's threads one after another. :class:`HostCupyLauncher` is :class:`snn.cuda.cupy_gpu.CupyLauncher` with only the
launch replaced: the same argument tuples, passed the way CuPy passes them (a pointer to each
argument's bytes, read as the kernel's parameter type), after a check of every argument's
kind and size against the kernel signature. What this cannot check: NVRTC compilation (the
nvcc compile test covers the source), device memory, streams, and the GPU's own ``expf`` and
division rounding.

Needs a host C++17 compiler with ``_Float16`` (GCC 12+, Clang 15+ on x86-64; no CUDA toolkit);
:func:`unavailable_reason` says what is missing.
"""
from __future__ import annotations

import ctypes
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from snn.cuda.cupy_gpu import SOURCE_DIR, THREADS, CupyLauncher, blocks, kernel_name

HOST_DIR = Path(__file__).resolve().parent / "host"
_KIND = {"p": "a pointer (np.uint64)", "f": "a float", "i": "a signed integer"}


def _compiler() -> Optional[str]:
    return shutil.which("c++") or shutil.which("g++")


@functools.lru_cache(maxsize=None)
def unavailable_reason() -> Optional[str]:
    """``None`` if the host build can run here, else why not (no compiler, or no ``_Float16``)."""
    if _compiler() is None:
        return "needs a host C++ compiler (c++ or g++)"
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "f16.cpp"
        src.write_text("float f(float x) { return (float)(_Float16)x; }\n")
        r = subprocess.run([_compiler(), "-std=c++17", "-c", str(src), "-o", str(Path(d) / "f16.o")],
                           capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return f"needs a host C++ compiler with _Float16 (GCC 12+, Clang 15+); {_compiler()} has none"
    return None


def build(out_dir: Path) -> ctypes.CDLL:
    """Compile ``host/cuda_host.cpp`` with the kernel sources into ``out_dir`` and load it."""
    lib = out_dir / "snn_cuda_host.so"
    cmd = [_compiler(), "-std=c++17", "-O2", "-Wall", "-Werror", "-ffp-contract=off", "-fPIC",
           "-shared", "-include", str(HOST_DIR / "cuda_host_shim.h"), f"-I{SOURCE_DIR}",
           str(HOST_DIR / "cuda_host.cpp"), "-o", str(lib)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"host build of the CUDA kernels failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
    dll = ctypes.CDLL(str(lib))
    dll.snn_host_count.restype = ctypes.c_int
    dll.snn_host_name.restype = ctypes.c_char_p
    dll.snn_host_name.argtypes = [ctypes.c_int]
    dll.snn_host_find.restype = ctypes.c_int
    dll.snn_host_find.argtypes = [ctypes.c_char_p]
    dll.snn_host_nparams.restype = ctypes.c_int
    dll.snn_host_nparams.argtypes = [ctypes.c_int]
    dll.snn_host_kinds.restype = ctypes.c_char_p
    dll.snn_host_kinds.argtypes = [ctypes.c_int]
    dll.snn_host_size.restype = ctypes.c_int
    dll.snn_host_size.argtypes = [ctypes.c_int, ctypes.c_int]
    dll.snn_host_launch.restype = None
    dll.snn_host_launch.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
    return dll


def kernel_names(dll: ctypes.CDLL) -> list[str]:
    return [dll.snn_host_name(k).decode() for k in range(dll.snn_host_count())]


def signature(dll: ctypes.CDLL, name: str) -> list[tuple[str, int]]:
    """``[(kind, size in bytes)]`` of the kernel's parameters; kind ``p``/``f``/``i``."""
    k = dll.snn_host_find(name.encode())
    if k < 0:
        raise KeyError(f"kernel {name!r} is not in the host build (has: {kernel_names(dll)})")
    kinds = dll.snn_host_kinds(k).decode()
    return [(kinds[i], dll.snn_host_size(k, i)) for i in range(dll.snn_host_nparams(k))]


def check_arguments(name: str, sig: list[tuple[str, int]], args: tuple) -> None:
    """Raise TypeError unless ``args`` has one NumPy scalar of the right kind and size for each
    kernel parameter (what CuPy needs to pass them correctly)."""
    if len(args) != len(sig):
        raise TypeError(f"{name}: {len(args)} arguments for {len(sig)} parameters")
    for i, (a, (kind, size)) in enumerate(zip(args, sig)):
        if not isinstance(a, np.generic):
            raise TypeError(f"{name}: argument {i} is a Python {type(a).__name__}; pass a NumPy scalar")
        got = "p" if a.dtype == np.uint64 else "f" if a.dtype.kind == "f" else "i" if a.dtype.kind == "i" else "?"
        if got != kind or a.dtype.itemsize != size:
            raise TypeError(f"{name}: argument {i} is {a.dtype} but the parameter is {_KIND.get(kind, kind)} "
                            f"of {size} bytes")


class HostCupyLauncher(CupyLauncher):
    """:class:`CupyLauncher` whose launches run the CUDA C kernels on the host, on CPU tensors."""

    def __init__(self, dll: ctypes.CDLL):
        self.dll = dll
        self._kernels: dict[str, tuple[int, list[tuple[str, int]]]] = {}  # name -> (index, signature)

    def _launch(self, device: torch.device, kernel: str, dtype: torch.dtype, N: int, args: tuple) -> None:
        assert device.type == "cpu", "the host launcher runs on CPU tensors"
        name = kernel_name(kernel, dtype)
        if name not in self._kernels:
            self._kernels[name] = (self.dll.snn_host_find(name.encode()), signature(self.dll, name))
        index, sig = self._kernels[name]
        check_arguments(name, sig, args)
        values = [np.array([a]) for a in args]  # each argument's bytes, kept alive for the call
        params = (ctypes.c_void_p * len(values))(*[v.ctypes.data for v in values])
        self.dll.snn_host_launch(index, blocks(N), THREADS, params)
