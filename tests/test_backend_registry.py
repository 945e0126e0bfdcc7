"""The shared backend registry: names, priorities, lookups and install hints."""
from dataclasses import dataclass
from typing import Callable, Optional

import pytest

from snn.backend_registry import BackendRegistry, requirement_reason


@dataclass(frozen=True)
class B:
    name: str
    device_type: str
    priority: int = 0
    requires: Optional[str] = None
    install_hint: str = ""
    available: Optional[Callable[[], Optional[str]]] = None


def test_names_priorities_and_reference():
    reg = BackendRegistry("widget backend")
    for b in (B("ref", "cpu"), B("fast", "cpu", priority=10), B("gpu", "cuda", priority=5), B("ref", "cuda")):
        reg.register(b)
    assert reg.names() == ["auto", "fast", "gpu", "ref"]
    assert [b.name for b in reg.by_priority("cpu")] == ["fast", "ref"]
    assert reg.reference("ref", "mps") is reg.entries[("ref", "cpu")]
    assert reg.lookup("gpu", "cuda").priority == 5
    with pytest.raises(ValueError, match="reserved"):
        reg.register(B("auto", "cpu"))
    with pytest.raises(ValueError, match=r"unknown widget backend 'nope'; valid backends: \['auto', 'fast'"):
        reg.lookup("nope", "cpu")
    with pytest.raises(ValueError, match=r"widget backend 'gpu' runs on \['cuda'\] tensors, but the input is on 'cpu'"):
        reg.lookup("gpu", "cpu")


def test_unavailable_backends_say_what_to_install():
    missing = B("x", "cpu", requires="surely_not_an_installed_package_1234", install_hint="pip install x")
    assert requirement_reason(missing, "delay backend") == (
        "delay backend 'x' needs the package 'surely_not_an_installed_package_1234', which is not installed; "
        "install it with `pip install x`")
    down = B("y", "cpu", available=lambda: "no GPU here")
    assert requirement_reason(down) == "no GPU here" and requirement_reason(B("z", "cpu", requires="numpy")) is None
    reg = BackendRegistry()
    reg.register(missing)
    with pytest.raises(RuntimeError, match="pip install x"):
        reg.lookup("x", "cpu")


def test_compiled_code_takes_availability_as_a_constant():
    # the GPU backends' checks are functools.lru_cache'd and import packages and probe the
    # device (here: a ctypes call); Dynamo must not trace into them (a graph break), but take
    # the cached answer as a constant
    import ctypes
    import functools

    import torch
    calls = []

    @functools.lru_cache(maxsize=None)
    def probe() -> Optional[str]:
        calls.append(1)
        ctypes.CDLL(None)
        return None
    reg = BackendRegistry()
    reg.register(B("gpu-like", "cpu", requires="numpy", available=probe))

    def fn(x):
        return x + 1 if reg.lookup("gpu-like", "cpu").name == "gpu-like" else x
    x = torch.ones(3)
    explained = torch._dynamo.explain(fn)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert torch.equal(torch.compile(fn, fullgraph=True, backend="eager")(x), x + 1)
    assert calls == [1]
