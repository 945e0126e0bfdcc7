"""NVRTC, the runtime compiler CuPy's ``RawModule`` uses, called directly through ctypes: the
tests compile ``snn/cuda/csrc/neuron.cu`` with it as CuPy would, without a GPU.

The library comes from the ``nvidia-cuda-nvrtc`` wheel (a test dependency on Linux x86-64),
a CUDA toolkit (``CUDA_HOME``/``CUDA_PATH``, ``/usr/local/cuda``) or the loader's search path.
Only the compiler runs: no CUDA toolkit headers are put on the include path, as under a CuPy
installed from pip wheels.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["library", "compile_program"]


def _candidates() -> list[str]:
    found: list[str] = []
    try:
        import nvidia  # the namespace package of NVIDIA's wheels
        for root in map(Path, nvidia.__path__):
            found += sorted(map(str, root.glob("cu*/lib/libnvrtc.so*")), reverse=True)
            found += sorted(map(str, root.glob("cuda_nvrtc/lib/libnvrtc.so*")), reverse=True)
    except ImportError:
        pass
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            found += sorted(map(str, Path(os.environ[var]).glob("lib*/libnvrtc.so*")), reverse=True)
    found += sorted(map(str, Path("/usr/local/cuda").glob("lib*/libnvrtc.so*")), reverse=True)
    name = ctypes.util.find_library("nvrtc")
    return [f for f in found if not f.endswith(".alt.so")] + ([name] if name else [])


@functools.lru_cache(maxsize=None)
def library() -> Optional[ctypes.CDLL]:
    """The loaded NVRTC library, or None if none is found."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        return lib
    return None


def compile_program(source: Path, options: Sequence[str], name_expressions: Sequence[str]
                    ) -> tuple[bool, str, dict[str, str]]:
    """Compile ``source`` with NVRTC: ``(ok, log, {name expression: lowered (mangled) name})``."""
    lib = library()
    if lib is None:
        raise RuntimeError("NVRTC is not available")
    prog = ctypes.c_void_p()

    def check(status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"{what}: {lib.nvrtcGetErrorString(status).decode()}")

    check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.read_bytes(), source.name.encode(), 0, None, None),
          "nvrtcCreateProgram")
    try:
        for name in name_expressions:
            check(lib.nvrtcAddNameExpression(prog, name.encode()), f"nvrtcAddNameExpression({name})")
        opts = [o.encode() for o in options]
        status = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        check(lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)), "nvrtcGetProgramLogSize")
        log = ctypes.create_string_buffer(size.value)
        check(lib.nvrtcGetProgramLog(prog, log), "nvrtcGetProgramLog")
        if status != 0:
            return False, log.value.decode(errors="replace"), {}
        lowered = {}
        for name in name_expressions:
            out = ctypes.c_char_p()
            check(lib.nvrtcGetLoweredName(prog, name.encode(), ctypes.byref(out)), f"nvrtcGetLoweredName({name})")
            lowered[name] = out.value.decode()
        return True, log.value.decode(errors="replace"), lowered
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
